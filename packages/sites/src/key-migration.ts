import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FleetError, type FleetConfig } from '@fleetpki/core';
import { HsmProcess, readPin } from '@fleetpki/hsm';
import { custodianPinFiles, legacySoPinFile, listTokens, listTokensOf, rootHsm } from './hsm-tokens.js';

/**
 * Migration of an installation made before keys were wrappable only under a trusted key: what can be
 * changed in place is changed (PKCS#11 lets CKA_EXTRACTABLE go from true to false, never back, and
 * SoftHSM refuses to set CKA_WRAP_WITH_TRUSTED on an existing key), and what cannot is reported for
 * rotation. `fleetpki hsm check` shows the state before and after.
 */
export interface HardenReport {
  /** Keys made non-extractable in place, per HSM: they can no longer be cloned (rotate to clone again). */
  readonly restricted: readonly { hsm: string; label: string; class: 'private' | 'secret' }[];
  /** SO PIN files moved from the services' secrets folder to the custodians'. */
  readonly movedPinFiles: readonly string[];
}

async function withToken<T>(config: FleetConfig, softhsmConf: string, token: string, pin: string, fn: (hsm: HsmProcess) => Promise<T>): Promise<T> {
  const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf });
  try {
    await hsm.call('openKeyStore', token, pin, 1);
    return await fn(hsm);
  } finally {
    await hsm.close();
  }
}

/** Makes every key that can be wrapped under any key non-extractable, in both sites' tokens; moves SO PINs to the custodians. */
export async function hardenSiteKeys(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<HardenReport> {
  const restricted: { hsm: string; label: string; class: 'private' | 'secret' }[] = [];
  for (const site of [config.sites.a, config.sites.b]) {
    if (!(await listTokens(site)).includes(site.hsmTokenLabel)) continue;
    await withToken(config, site.softhsmConf, site.hsmTokenLabel, readPin(`file:${site.hsmPinFile}`), async (hsm) => {
      for (const key of await hsm.call('listKeyProtection')) {
        if (!key.extractable || key.wrapWithTrusted) continue;
        await hsm.call('restrictToToken', { label: key.label, id: Buffer.from(key.id) }, key.class);
        restricted.push({ hsm: `site ${site.id}`, label: key.label, class: key.class });
        log(`site ${site.id}: ${key.class} key "${key.label}" is now non-extractable (it was wrappable under any key)`);
      }
    });
  }
  const movedPinFiles: string[] = [];
  const custodians = custodianPinFiles(config);
  for (const site of [config.sites.a, config.sites.b]) {
    const legacy = legacySoPinFile(config, site);
    if (!existsSync(legacy) || existsSync(custodians.soPin(site))) continue;
    mkdirSync(custodians.dir, { recursive: true, mode: 0o700 });
    renameSync(legacy, custodians.soPin(site));
    movedPinFiles.push(custodians.soPin(site));
    log(`site ${site.id}: SO PIN moved to ${custodians.soPin(site)} (custodians)`);
  }
  return { restricted, movedPinFiles };
}

/** SoftHSM keeps each token in a folder of its token directory; its token.object holds the padded label. */
function softhsmTokenFolder(softhsmConf: string, label: string): string {
  const tokenDir = /^directories\.tokendir\s*=\s*(.+)$/m.exec(readFileSync(softhsmConf, 'utf8'))?.[1]?.trim();
  if (!tokenDir) throw new FleetError('HSM_OPERATION_FAILED', `${softhsmConf} names no token directory`);
  const padded = Buffer.from(label.padEnd(32, ' '));
  const matches = readdirSync(tokenDir).filter((d) => existsSync(join(tokenDir, d, 'token.object')) && readFileSync(join(tokenDir, d, 'token.object')).includes(padded));
  if (matches.length !== 1) throw new FleetError('HSM_OPERATION_FAILED', `found ${matches.length} SoftHSM token folders labelled "${label}" in ${tokenDir}`);
  return join(tokenDir, matches[0]!);
}

/** Moves a folder, also onto another file system (a deployment's folder need not share the sites'). */
function moveFolder(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    cpSync(from, to, { recursive: true, preserveTimestamps: true });
    rmSync(from, { recursive: true, force: true });
  }
}

/**
 * Moves a root token that older installations kept inside site A's HSM (initialised with site A's PINs)
 * into the root's own HSM, gives it PINs of its own (held by the custodians) and makes the root key
 * non-extractable. SoftHSM-specific in its first step (a token is a folder); on a real HSM the root is
 * moved with the vendor's backup/restore into a separate, offline device. Stop site A's services first.
 */
export async function migrateRootToken(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<'moved' | 'nothing to do'> {
  const label = config.rootTokenLabel;
  if (!(await listTokens(config.sites.a)).includes(label)) return 'nothing to do';
  const target = rootHsm(config);
  if ((await listTokensOf(target.softhsmConf)).includes(label)) throw new FleetError('ROOT_TOKEN_CONFLICT', `both site a's HSM and the root HSM hold a token ${label}; resolve by hand`);
  const oldSoPin = readPin(`file:${existsSync(legacySoPinFile(config, config.sites.a)) ? legacySoPinFile(config, config.sites.a) : custodianPinFiles(config).soPin(config.sites.a)}`);
  const folder = softhsmTokenFolder(config.sites.a.softhsmConf, label);
  // The root HSM's folders as `sites up` makes them (conf and token directory).
  mkdirSync(join(dirname(target.softhsmConf), 'tokens'), { recursive: true, mode: 0o700 });
  if (!existsSync(target.softhsmConf)) writeFileSync(target.softhsmConf, `# fleetpki offline root HSM\ndirectories.tokendir = ${join(dirname(target.softhsmConf), 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  moveFolder(folder, join(dirname(target.softhsmConf), 'tokens', folder.split('/').pop()!));
  log(`root token ${label} moved out of site a's HSM into ${config.rootHsm.dir}`);
  const pins = custodianPinFiles(config);
  mkdirSync(pins.dir, { recursive: true, mode: 0o700 });
  const userPin = randomBytes(12).toString('hex');
  const soPin = randomBytes(12).toString('hex');
  const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: target.softhsmConf });
  try {
    await hsm.call('rePin', label, oldSoPin, { userPin, soPin });
  } finally {
    await hsm.close();
  }
  writeFileSync(pins.rootPin, userPin + '\n', { mode: 0o600 });
  writeFileSync(pins.rootSoPin, soPin + '\n', { mode: 0o600 });
  log(`root token ${label}: new user and SO PINs, with the custodians (${pins.dir})`);
  await withToken(config, target.softhsmConf, label, userPin, async (child) => {
    for (const key of await child.call('listKeyProtection')) {
      if (!key.extractable) continue;
      await child.call('restrictToToken', { label: key.label, id: Buffer.from(key.id) }, key.class);
      log(`root token: key "${key.label}" is now non-extractable (the root never leaves its token)`);
    }
  });
  return 'moved';
}
