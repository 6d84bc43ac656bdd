import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { HsmProcess, openRemoteKeyStore, readPin, type CustodyWrapRequest, type CustodyWrapResult, type RemoteKeyStore } from '@fleetpki/hsm';
import { run } from './exec.js';

/**
 * The local HSMs: one SoftHSM instance (token directory) per site, and one for the offline root, which
 * no service's PKCS#11 configuration lists (in production: a separate HSM kept offline).
 */
export interface LocalHsm {
  readonly name: string;
  readonly softhsmConf: string;
}

/** The tokens a site's own HSM holds: its CA token. */
export function tokensOfSite(_config: FleetConfig, site: SiteConfig): string[] {
  return [site.hsmTokenLabel];
}

export function siteHsm(site: SiteConfig): LocalHsm {
  return { name: `site ${site.id}`, softhsmConf: site.softhsmConf };
}

export function rootHsm(config: FleetConfig): LocalHsm {
  return { name: 'offline root', softhsmConf: config.rootHsm.softhsmConf };
}

/**
 * PINs held by the key custodians, not by any service: the root token's user and SO PINs and each site
 * token's SO PIN. Locally a 0700 folder beside the state; in production the custodians' own media
 * (smart cards, sealed envelopes), brought to the ceremony. The services' environment names none of
 * these files, and a ceremony reads them only when the custodian points it at them (or types the PIN).
 */
export function custodianPinFiles(config: FleetConfig): { dir: string; rootPin: string; rootSoPin: string; soPin(site: SiteConfig): string } {
  const dir = join(config.deploymentDir, 'custodians');
  // Named after the token: deployments that share a folder (a test and the deployments it makes) never overwrite each other's.
  return {
    dir,
    rootPin: join(dir, `${config.rootTokenLabel}.pin`),
    rootSoPin: join(dir, `${config.rootTokenLabel}.so-pin`),
    soPin: (site) => join(dir, `${site.hsmTokenLabel}.so-pin`),
  };
}

/** Where the site token's SO PIN was kept by code before the custodian folder existed (migration). */
export function legacySoPinFile(config: FleetConfig, site: SiteConfig): string {
  return join(config.deploymentDir, 'secrets', `hsm-${site.id}.so-pin`);
}

/** The SO PIN file of a site token: the custodians' copy, or (an older installation) the legacy one. */
export function siteSoPinFile(config: FleetConfig, site: SiteConfig): string {
  const custodians = custodianPinFiles(config).soPin(site);
  return existsSync(custodians) || !existsSync(legacySoPinFile(config, site)) ? custodians : legacySoPinFile(config, site);
}

function ensureSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(12).toString('hex');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

export function ensureHsmDir(hsm: LocalHsm, dir: string): void {
  const tokenDir = join(dirname(hsm.softhsmConf), 'tokens');
  // The site folder must stay reachable by the postgres user; only the token folder itself is private.
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  writeFileSync(hsm.softhsmConf, `# fleetpki ${hsm.name} HSM\ndirectories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
}

/** Labels of the initialised tokens SoftHSM2 sees with this configuration (no PIN involved). */
export async function listTokensOf(softhsmConf: string): Promise<string[]> {
  if (!existsSync(softhsmConf)) return [];
  const out = await run('softhsm2-util', ['--show-slots'], { env: { SOFTHSM2_CONF: softhsmConf } });
  const labels: string[] = [];
  // Slot blocks print "Label:" for the slot's token; uninitialised slots have an empty label.
  for (const match of out.matchAll(/^\s+Label:\s+(.*)$/gm)) {
    const label = match[1]!.trim();
    if (label) labels.push(label);
  }
  return labels;
}

export function listTokens(site: SiteConfig): Promise<string[]> {
  return listTokensOf(site.softhsmConf);
}

/**
 * Initialises a token through the PKCS#11 API in a process of its own (HsmProcess): PINs travel over
 * its IPC channel, never as arguments (softhsm2-util --pin would show them to every user in /proc).
 */
export async function initTokenIn(config: FleetConfig, hsm: LocalHsm, label: string, soPin: string, userPin: string): Promise<boolean> {
  const child = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: hsm.softhsmConf });
  try {
    return (await child.call('initToken', label, soPin, userPin)) === 'created';
  } finally {
    await child.close();
  }
}

/** Deletes a SoftHSM token (no PIN needed: SoftHSM removes the token's folder, and every object in it). */
export async function deleteToken(softhsmConf: string, label: string): Promise<void> {
  await run('softhsm2-util', ['--delete-token', '--token', label], { env: { SOFTHSM2_CONF: softhsmConf } });
}

/** Deletes this deployment's tokens in a site's HSM (the local stand-in for an HSM lost with its site); returns their labels. */
export async function deleteSiteTokens(config: FleetConfig, site: SiteConfig): Promise<string[]> {
  const present = await listTokens(site);
  const deleted: string[] = [];
  for (const label of tokensOfSite(config, site)) {
    if (!present.includes(label)) continue;
    await deleteToken(site.softhsmConf, label);
    deleted.push(label);
  }
  return deleted;
}

/** Writes the site's softhsm2.conf and initialises its token: user PIN in secrets/ (the services'), SO PIN with the custodians. */
export async function ensureTokens(config: FleetConfig, site: SiteConfig): Promise<string[]> {
  ensureHsmDir(siteHsm(site), site.dir);
  const pin = ensureSecret(site.hsmPinFile);
  const present = await listTokens(site);
  if (present.includes(site.hsmTokenLabel)) return [];
  const soPin = ensureSecret(siteSoPinFile(config, site));
  return (await initTokenIn(config, siteHsm(site), site.hsmTokenLabel, soPin, pin)) ? [site.hsmTokenLabel] : [];
}

/**
 * The offline root's token, in an HSM (token directory) of its own with PINs of its own, both with the
 * custodians: it cannot be opened with a site's PIN, and no service's configuration lists it. An older
 * installation keeps its root token inside site A's HSM until `fleetpki ceremony migrate-root` moves it.
 */
export async function ensureRootToken(config: FleetConfig): Promise<'created' | 'present' | 'legacy'> {
  const label = config.rootTokenLabel;
  if ((await listTokens(config.sites.a)).includes(label)) return 'legacy';
  const hsm = rootHsm(config);
  ensureHsmDir(hsm, config.rootHsm.dir);
  if ((await listTokensOf(hsm.softhsmConf)).includes(label)) return 'present';
  const pins = custodianPinFiles(config);
  const created = await initTokenIn(config, hsm, label, ensureSecret(pins.rootSoPin), ensureSecret(pins.rootPin));
  return created ? 'created' : 'present';
}

/** Reads a PIN for a ceremony: from the file the custodian names, or `-` for standard input (typed). */
export async function readCeremonyPin(source: string, what: string): Promise<string> {
  if (source !== '-') {
    if (!existsSync(source)) throw new FleetError('PIN_FILE_MISSING', `${what}: no file ${source} (give the custodian's file, or - to type it)`);
    return readPin(`file:${source}`);
  }
  process.stderr.write(`${what}: `);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  const pin = Buffer.concat(chunks).toString('utf8').split('\n')[0]!.trim();
  if (!pin) throw new FleetError('PIN_MISSING', `${what}: nothing was entered`);
  return pin;
}

/**
 * The offline root's key store for a ceremony, in its own HSM process with the PIN the custodians
 * brought. Refuses while the root token still sits in site A's HSM (an installation from before the
 * root had an HSM of its own): that layout is what `ceremony migrate-root` fixes.
 */
export async function openRootKeyStore(config: FleetConfig, rootPin: string): Promise<RemoteKeyStore> {
  if ((await listTokens(config.sites.a)).includes(config.rootTokenLabel)) {
    throw new FleetError('ROOT_TOKEN_LEGACY', `the root token ${config.rootTokenLabel} is inside site a's HSM and opens with the site's PIN; move it to its own HSM first: \`pnpm fleetpki ceremony migrate-root\``);
  }
  if (!(await listTokensOf(config.rootHsm.softhsmConf)).includes(config.rootTokenLabel)) {
    throw new FleetError('HSM_TOKEN_NOT_FOUND', `no root token ${config.rootTokenLabel} in the root HSM (${config.rootHsm.dir}): run \`pnpm sites up\``);
  }
  return openRemoteKeyStore({ modulePath: config.pkcs11Module, softhsmConf: config.rootHsm.softhsmConf }, config.rootTokenLabel, rootPin);
}

/**
 * The custody ceremony's HSM part on a site's token (custody-wrap.ts), in an HSM process of its own: the
 * security officer's key-encryption key exists only inside that process, for the length of the wrap.
 */
export async function wrapSiteKeysForCustody(config: FleetConfig, site: SiteConfig, request: Omit<CustodyWrapRequest, 'tokenLabel'>): Promise<CustodyWrapResult> {
  const child = await HsmProcess.start({ modulePath: site.hsm.modulePath, softhsmConf: site.softhsmConf });
  try {
    return await child.call('wrapForCustody', { ...request, tokenLabel: site.hsmTokenLabel });
  } finally {
    await child.close();
  }
}
