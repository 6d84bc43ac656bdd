import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AccessAdministration, DualControl, auditActor, issueOrganisationCertificate, revokeOrganisationCertificateAs } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { toPem } from '@fleetpki/x509';
import { requireOfficer, withDatabase } from '../context.js';
import { chainPems, newKey } from '../tls-material.js';
import { registerTlsInternalCommands } from './tls-internal.js';

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function registerTlsCommands(program: Command): void {
  const tls = program.command('tls').description('HTTPS and mutual TLS with certificates from the organisation CA');
  registerTlsInternalCommands(tls);
  tls
    .command('server')
    .description("issue this site's API server certificate (and write the client CA bundle) into FLEETPKI_API_TLS's folder, as an administrator")
    .option('--names <list>', 'subjectAltName: host names and IP addresses', '127.0.0.1,localhost,::1')
    .option('--days <n>', 'validity', Number, 397)
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { names: string; days: number; tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const admin = await requireOfficer(pool, options.tokenFile, ['administrator'], "issuing the API's server certificate");
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          const key = newKey();
          const names = options.names.split(',').map((n) => n.trim()).filter(Boolean);
          const issued = await issueOrganisationCertificate(pool, keyStore, config.site, { purpose: 'server', subject: { organization: 'fleetpki', organizationalUnit: 'server', commonName: `fleetpki issuer api site ${config.site}` }, publicKeySpki: key.spki, days: options.days, names, actor: auditActor(admin) });
          const { org, root } = await chainPems(pool);
          const dir = config.api.tlsDir;
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          writeSecret(join(dir, 'server.key'), key.privatePem);
          writeFileSync(join(dir, 'server.pem'), toPem(issued.der) + org);
          writeFileSync(join(dir, 'clients-ca.pem'), org + root);
          console.log(`server certificate ${issued.serial.toString('hex')} for ${names.join(', ')} in ${dir}; start the API with FLEETPKI_API_TLS=on`);
        } finally {
          await keyStore.close();
        }
      });
    });
  tls
    .command('client')
    .description("issue a client certificate for a person (mTLS instead of a token), as an administrator; for a privileged person it executes an approved credential.create")
    .requiredOption('--name <name>', 'the person who holds it (they exist already: tokens create); its CN')
    .requiredOption('--out <dir>', 'writes client.key (0600), client.pem and ca.pem (to verify the server)')
    .option('--days <n>', 'validity', Number, 397)
    .option('--approval <id>', 'the approved credential.create request (privileged people)')
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { name: string; out: string; days: number; approval?: string; tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const admin = await requireOfficer(pool, options.tokenFile, ['administrator'], 'issuing a client certificate');
        const access = new AccessAdministration(pool, config.site, new DualControl(pool, config.site, config.dualControl.approvalTtlMinutes));
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          const key = newKey();
          const { issued, person } = await access.issueOtherCredential(admin, { name: options.name, ...(options.approval ? { approvalId: options.approval } : {}) }, async (person) => ({
            person,
            issued: await issueOrganisationCertificate(pool, keyStore, config.site, {
              purpose: 'client',
              role: person.role,
              ...(person.manufacturerId ? { manufacturerId: person.manufacturerId } : {}),
              subject: { organization: person.manufacturerId ?? 'fleetpki', organizationalUnit: person.role, commonName: person.name },
              publicKeySpki: key.spki,
              days: options.days,
              person: { id: person.id, createdBy: admin.personId },
              actor: `person:${admin.name}`,
            }),
          }));
          const options_ = { role: person.role, manufacturer: person.manufacturerId };
          const { org, root } = await chainPems(pool);
          mkdirSync(options.out, { recursive: true, mode: 0o700 });
          writeSecret(join(options.out, 'client.key'), key.privatePem);
          writeFileSync(join(options.out, 'client.pem'), toPem(issued.der) + org);
          writeFileSync(join(options.out, 'ca.pem'), org + root);
          console.log(`client certificate ${issued.serial.toString('hex')} (${options_.role}${options_.manufacturer ? `, ${options_.manufacturer}` : ''}) for ${options.name} in ${options.out}`);
        } finally {
          await keyStore.close();
        }
      });
    });
  tls
    .command('revoke <serial>')
    .description("revoke an organisation certificate (refused within 5 s), as an administrator; the CMP protection and audit certificates take two administrators together")
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .option('--second-token-file <file>', "a second administrator's API token (another person): the CMP and audit certificates")
    .action(async (serial: string, options: { tokenFile?: string; secondTokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const what = 'revoking an organisation certificate';
        const administrators = [await requireOfficer(pool, options.tokenFile, ['administrator'], what)];
        if (options.secondTokenFile) administrators.push(await requireOfficer(pool, options.secondTokenFile, ['administrator'], what));
        const { purpose } = await revokeOrganisationCertificateAs(pool, config.site, serial, administrators);
        console.log(`revoked ${serial} (${purpose})`);
      });
    });
}
