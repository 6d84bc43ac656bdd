import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { auditActor, internalTlsDays, internalTlsHost, internalTlsNames, internalTlsPart, issueInternalTlsCertificate, listInternalTls, rotationPlan, INTERNAL_TLS_PROFILES, type InternalTlsCertificate, type Principal } from '@fleetpki/ca';
import { FleetError, isFleetError, loadDeployment, type Deployment, type EtcdMemberName, type FleetConfig, type TlsPart } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import type { Pool } from '@fleetpki/store';
import { toPem } from '@fleetpki/x509';
import { requireOfficer, withDatabase } from '../context.js';
import { chainPems, newKey } from '../tls-material.js';
import { bundleUpdate, pairDestination, writeFilesAtomically, type PairDestination } from '../tls-files.js';

/** Which units present (or hold) a part's pair and must restart to use a new one (infra/systemd). */
const RESTART: Readonly<Record<TlsPart, string>> = {
  api: 'fleetpki-issuer-api',
  status: 'fleetpki-status-responder',
  postgres: 'fleetpki-site-agent (it installs the pair for its PostgreSQL when it starts the cluster; on the active site switch over first, as for an upgrade)',
  redis: 'redis-server',
  etcd: 'fleetpki-etcd (one member at a time, each healthy again before the next)',
  etcdPeer: 'fleetpki-etcd (one member at a time, each healthy again before the next)',
  etcdClient: 'every fleetpki unit of the host that reaches etcd: fleetpki-site-agent, fleetpki-issuer-api, fleetpki-status-responder, fleetpki-batch-worker@*, fleetpki-daemons',
};

interface Session {
  readonly config: FleetConfig;
  readonly deployment: Deployment;
  readonly pool: Pool;
  readonly admin: Principal;
}

/** Fails now, before anything is issued, if a folder cannot take the files (a certificate would be recorded and not written). */
function assertWritable(destination: PairDestination, folderMode: number): void {
  for (const folder of new Set([destination.cert, destination.key, ...(destination.bundle ? [destination.bundle] : [])].map((p) => dirname(p)))) {
    const probe = join(folder, `.fleetpki-write-check-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(folder, { recursive: true, mode: folderMode });
      closeSync(openSync(probe, 'wx', 0o600));
      rmSync(probe);
    } catch (err) {
      throw new FleetError('INTERNAL_TLS_WRITE_FAILED', `cannot write into ${folder}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; nothing was issued`);
    }
  }
}

/** Issues one part's certificate for `host` and writes the pair (and the CA bundle) where `destination` says. */
async function issueAndWrite(s: Session, keyStore: Parameters<typeof issueInternalTlsCertificate>[1], order: { part: TlsPart; host: EtcdMemberName; names: readonly string[]; days: number }, destination: PairDestination): Promise<{ lines: string[]; superseded: string | undefined }> {
  const key = newKey();
  const issued = await issueInternalTlsCertificate(s.pool, keyStore, s.config.site, { ...order, publicKeySpki: key.spki, actor: auditActor(s.admin) });
  const serial = issued.serial.toString('hex');
  const { org, root } = await chainPems(s.pool);
  // The organisation CA after the leaf: a peer that trusts the root alone still builds the path.
  const files = [{ path: destination.key, content: key.privatePem, secret: true }, { path: destination.cert, content: toPem(issued.der) + org, secret: false }];
  const bundle = destination.bundle ? bundleUpdate(destination.bundle, org, root) : undefined;
  if (bundle) files.push({ path: destination.bundle!, content: bundle.content, secret: false });
  try {
    writeFilesAtomically(files, destination.out ? 0o700 : 0o755);
  } catch (err) {
    const why = isFleetError(err) ? err.message : String(err);
    throw new FleetError('INTERNAL_TLS_WRITE_FAILED', `certificate ${serial} for ${order.part} of host ${order.host} was issued and recorded, but ${why}; issue it again (that supersedes ${serial})`);
  }
  const profile = INTERNAL_TLS_PROFILES[order.part];
  const lines = [
    `issued ${serial}: ${order.part} of host ${order.host} (${profile.purpose}${profile.clientAuthToo ? ', serverAuth and clientAuth' : ''})${order.names.length ? ` for ${order.names.join(', ')}` : ''}, ${order.days} days${issued.supersedes ? `, superseding ${issued.supersedes.toString('hex')}` : ''}`,
    `  certificate ${destination.cert} (with the organisation CA), key ${destination.key} (0600)`,
  ];
  if (destination.bundle) lines.push(`  CA bundle ${destination.bundle}: ${bundle ? (bundle.action === 'write' ? 'written' : 'replaced: it lacked the organisation CA or the root') : 'already holds the organisation CA and the root'}`);
  if (destination.out) lines.push(...placementHints(s.deployment, order.part, destination));
  return { lines, superseded: issued.supersedes?.toString('hex') };
}

/** What to do with files written to --out: the configuration's keys, or the credential's file. */
function placementHints(deployment: Deployment, part: TlsPart, destination: PairDestination): string[] {
  const configured = deployment.tls[part];
  if (destination.credential) {
    const name = destination.credential.slice('credential:'.length);
    return [
      `  put in place on the host: install -m 0644 ${destination.cert} ${configured!.cert}`,
      `  and the key as the credential "${name}": install -m 0600 ${destination.key} <the file LoadCredential=${name}:... names in the unit, e.g. /etc/fleetpki/credentials/<unit>/${name}>, then delete ${destination.key}`,
    ];
  }
  if (configured) return [`  put in place on the host: install -m 0644 ${destination.cert} ${configured.cert} && install -m 0600 ${destination.key} ${configured.key.replace(/^file:/, '')}`];
  return [`  then name them in the host's configuration: tls: { ${part}: { cert: ${destination.cert}, key: ${destination.key} }${deployment.tls.caBundle ? '' : `, caBundle: ${destination.bundle}`} }`];
}

function restartHint(parts: readonly TlsPart[], superseded: readonly string[]): string[] {
  const units = [...new Set(parts.map((p) => RESTART[p]))];
  return [
    `restart (or reload) so the new pair is presented: ${units.join('; ')}`,
    ...(superseded.length ? [`superseded, not revoked (a running process presents it until restarted): ${superseded.join(', ')}; once restarted, \`fleetpki tls revoke <serial>\` retires it`] : []),
  ];
}

/** An administrator's session with the configuration as written (a key's source, not its resolved file). */
async function asAdministrator<T>(tokenFile: string | undefined, what: string, run: (s: Session) => Promise<T>): Promise<T> {
  return withDatabase(async ({ config, pool }) => {
    const admin = await requireOfficer(pool, tokenFile, ['administrator'], what);
    return run({ config, pool, admin, deployment: loadDeployment(process.env).deployment });
  });
}

function table(certificates: readonly InternalTlsCertificate[]): string {
  const rows = certificates.map((c) => [c.host, c.part, c.serial, c.revoked ? `${c.state}, revoked` : c.state, c.notAfter.toISOString().slice(0, 10), String(c.daysLeft), c.due ? 'ROTATE' : '', c.names.join(',') || '-']);
  const header = ['host', 'part', 'serial', 'state', 'notAfter', 'days', 'due', 'names'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const positiveInt = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new FleetError('INTERNAL_TLS_DAYS_INVALID', `expected a whole number of days, got "${value}"`);
  return Number(value);
};

export function registerTlsInternalCommands(tls: Command): void {
  const internal = tls.command('internal').description("the deployment's own TLS pairs (PostgreSQL, Redis, etcd, API, status) from the organisation CA: issue, list, rotate");
  internal
    .command('issue')
    .description("issue a part's pair for this host (or --host) and write it where tls.<part> says (or --out), as an administrator")
    .requiredOption('--part <part>', 'api, status, postgres, redis, etcd, etcdPeer or etcdClient')
    .option('--names <list>', 'server parts: the host names and IP addresses its clients dial (subjectAltName)', '')
    .option('--days <n>', 'validity in days (1-397)', positiveInt, 365)
    .option('--host <host>', 'whose pair: a, b or witness (default: this host); another host\'s needs --out', undefined)
    .option('--out <dir>', 'write <part>.pem, <part>.key (0600) and ca.pem here instead; needed when the key is a systemd credential or tls.<part> is not configured')
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { part: string; names: string; days: number; host?: string; out?: string; tokenFile?: string }) => {
      // Bad input is refused before a token is checked, a database opened or a key made.
      const part = internalTlsPart(options.part);
      const names = internalTlsNames(part, options.names.split(','));
      const days = internalTlsDays(options.days);
      await asAdministrator(options.tokenFile, 'issuing an internal TLS certificate', async (s) => {
        const host = internalTlsHost(options.host ?? s.config.thisHost.name);
        const destination = pairDestination(s.deployment, part, host, s.config.thisHost.name, options.out);
        assertWritable(destination, destination.out ? 0o700 : 0o755);
        const keyStore = await openSiteKeyStore(s.config, s.config.sites[s.config.site], { sessions: 1 });
        try {
          const { lines, superseded } = await issueAndWrite(s, keyStore, { part, host, names, days }, destination);
          console.log([...lines, ...restartHint([part], superseded ? [superseded] : [])].join('\n'));
        } finally {
          await keyStore.close();
        }
      });
    });
  internal
    .command('list')
    .description('the internal TLS certificates issued, current and superseded, flagging those due for rotation')
    .option('--within-days <n>', 'due: a current certificate that expires within this many days (or is revoked)', positiveInt, 30)
    .option('--json', 'one JSON array')
    .action(async (options: { withinDays: number; json?: boolean }) => {
      await withDatabase(async ({ pool }) => {
        const certificates = await listInternalTls(pool, options.withinDays);
        if (options.json) console.log(JSON.stringify(certificates));
        else console.log(certificates.length ? table(certificates) : 'no internal TLS certificate issued yet: fleetpki tls internal issue --part <part>');
      });
    });
  internal
    .command('rotate')
    .description("re-issue this host's (or --host's) current certificates that are due, as an administrator: new key, same names and validity; the old ones are superseded, not revoked")
    .option('--within-days <n>', 'due: expires within this many days (or is revoked)', positiveInt, 30)
    .option('--part <part>', 'only this part (still only when due)')
    .option('--host <host>', 'whose pairs: a, b or witness (default: this host); another host\'s needs --out')
    .option('--out <dir>', 'write the pairs here instead (needed for parts whose key is a systemd credential or not configured)')
    .option('--days <n>', 'validity of the new certificates (default: that of each one replaced)', positiveInt)
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { withinDays: number; part?: string; host?: string; out?: string; days?: number; tokenFile?: string }) => {
      const part = options.part === undefined ? undefined : internalTlsPart(options.part);
      if (options.days !== undefined) internalTlsDays(options.days);
      await asAdministrator(options.tokenFile, 'rotating internal TLS certificates', async (s) => {
        const host = internalTlsHost(options.host ?? s.config.thisHost.name);
        const plan = rotationPlan(await listInternalTls(s.pool, options.withinDays), host, part);
        if (!plan.length) {
          console.log(`nothing to rotate: no current internal certificate of host ${host}${part ? ` for ${part}` : ''} expires within ${options.withinDays} days`);
          return;
        }
        // Every destination is checked before the first issuance: a rotation stops before it starts, not half way.
        const daysOf = (due: (typeof plan)[number]) => options.days ?? due.days;
        const destinations = new Map<TlsPart, PairDestination>();
        const refused: string[] = [];
        for (const due of plan) {
          try {
            const destination = pairDestination(s.deployment, due.part, host, s.config.thisHost.name, options.out);
            assertWritable(destination, destination.out ? 0o700 : 0o755);
            destinations.set(due.part, destination);
          } catch (err) {
            if (!isFleetError(err)) throw err;
            refused.push(`${due.part}: ${err.message}`);
          }
        }
        if (refused.length) throw new FleetError('INTERNAL_TLS_OUT_REQUIRED', `nothing was rotated; due but not writable here: ${refused.join('; ')}`);
        const keyStore = await openSiteKeyStore(s.config, s.config.sites[s.config.site], { sessions: 1 });
        try {
          for (const due of plan) console.log((await issueAndWrite(s, keyStore, { part: due.part, host, names: due.names, days: daysOf(due) }, destinations.get(due.part)!)).lines.join('\n'));
        } finally {
          await keyStore.close();
        }
        console.log(restartHint(plan.map((p) => p.part), plan.map((p) => p.serial)).join('\n'));
        // A certificate no longer than the window is due again at once: say so rather than let every run replace it.
        const short = plan.filter((due) => daysOf(due) <= options.withinDays);
        if (short.length) console.log(`note: ${short.map((due) => `${due.part} (${daysOf(due)} days)`).join(', ')} expire within ${options.withinDays} days already: the next rotate with this window replaces them again; give --days more than ${options.withinDays}`);
      });
    });
}
