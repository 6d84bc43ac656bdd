import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FleetConfig } from '@fleetpki/core';
import { issueApiToken, postgresCustodyStore, registerSyntheticManufacturer, runCeremony, type Role } from '@fleetpki/ca';
import { openSiteKeyStore, readPin, type SigningKeyStore } from '@fleetpki/hsm';
import { custodianPinFiles, openRootKeyStore } from '@fleetpki/sites';
import { createPool, readSiteStates, type Pool } from '@fleetpki/store';
import { toPem } from '@fleetpki/x509';

export interface TestCa {
  readonly dir: string;
  readonly rootPem: string;
  readonly issuingPem: string;
  readonly chainPem: string;
}

/** Runs the ceremony on site A (creates the hierarchy once, checks it afterwards) and writes the chain as files. */
export async function ensureCa(config: FleetConfig, pool: Pool): Promise<TestCa> {
  const site = config.sites.a;
  const state = (await readSiteStates(pool)).find((s) => s.site === 'a')!;
  const rootKeyStore = await openCustodianRootKeyStore(config);
  const siteKeyStore = await openSiteKeyStore(config, site, { sessions: 1 });
  try {
    const { chain } = await runCeremony({ store: postgresCustodyStore(pool), rootKeyStore, siteKeyStore, site: 'a', serialPrefix: state.serialPrefix, actor: 'test' });
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-ca-'));
    const pem = (id: string) => toPem(chain.find((c) => c.id === id)!.certificate);
    const files = { rootPem: join(dir, 'root.pem'), issuingPem: join(dir, 'issuing.pem'), chainPem: join(dir, 'chain.pem') };
    writeFileSync(files.rootPem, pem('root'));
    writeFileSync(files.issuingPem, pem('fpd1'));
    writeFileSync(files.chainPem, pem('fpd1') + pem('root'));
    return { dir, ...files };
  } finally {
    await siteKeyStore.close();
    await rootKeyStore.close();
  }
}

/** The offline root's key store, opened as the custodians would (their PIN file, the root's own HSM). */
export async function openCustodianRootKeyStore(config: FleetConfig): Promise<SigningKeyStore> {
  return openRootKeyStore(config, readPin(`file:${custodianPinFiles(config).rootPin}`));
}

/**
 * A token for a test principal; `name` tells two officers of one role apart (dual control needs that).
 * A factory's manufacturer is registered with its block of synthetic device ids: enrol inside it with
 * `syntheticEui64(manufacturer)` (@fleetpki/manifest), as a real factory enrols inside its OUI.
 */
export async function createToken(pool: Pool, role: Role, manufacturerId: string | null, name = `test-${role}${manufacturerId ? `-${manufacturerId}` : ''}`): Promise<string> {
  if (manufacturerId) await registerSyntheticManufacturer(pool, { site: 'a', id: manufacturerId, name: `${manufacturerId} (tests)`, actor: 'test' });
  return issueApiToken(pool, { site: 'a', actor: 'test', name, role, manufacturerId });
}

export function siteAPool(config: FleetConfig): Pool {
  return createPool(config.sites.a.databaseUrl, { max: 8, applicationName: 'fleetpki-test' });
}

/** Runs openssl; returns stdout, throws with stderr when it fails. */
export function openssl(args: readonly string[], input?: string | Buffer): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A CSR made by OpenSSL for a key of the given kind (e.g. ['-newkey', 'rsa:2048']). */
export function opensslCsr(newkey: readonly string[]): string {
  return openssl(['req', '-new', ...newkey, '-nodes', '-keyout', '/dev/null', '-subj', '/CN=device', '-outform', 'PEM']);
}

/**
 * openssl without blocking the event loop: needed when it talks to a server running in this process
 * (OCSP against an in-process responder would deadlock with execFileSync).
 */
export function opensslAsync(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout + stderr)));
  });
}

/** Writes a file into the test CA's scratch directory and returns its path. */
export function writeCaFile(ca: TestCa, name: string, content: string | Buffer): string {
  const path = join(ca.dir, name);
  writeFileSync(path, content);
  return path;
}
