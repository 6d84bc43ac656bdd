import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FleetError, type FleetConfig } from '@fleetpki/core';
import { HsmProcess, openRemoteKeyStore, type CustodyWrapRequest, type CustodyWrapResult, type RemoteKeyStore } from '@fleetpki/hsm';
import { ensureHsmDir, initTokenIn, listTokensOf, openRootKeyStore, rootHsm, type LocalHsm } from './hsm-tokens.js';

/**
 * The offline root's second copy (issue 36): another root HSM, kept elsewhere, holding the root token
 * under the same label (so the root's key URI names it too) and the same custodian PINs. Here a SoftHSM
 * token directory of its own; in production a second offline HSM of the same make. Never a site's HSM:
 * a root key must not sit where a service's PKCS#11 configuration can reach it.
 */
export function rootCopyHsm(dir: string): LocalHsm & { dir: string } {
  // ensureHsmDir writes the header from the name: "# fleetpki offline root copy HSM".
  return { name: 'offline root copy', dir: real(dir), softhsmConf: join(real(dir), 'softhsm2.conf') };
}

/** The real path of `path`, or of its nearest existing parent with the rest appended (symbolic links resolved). */
function real(path: string): string {
  const absolute = resolve(path);
  if (existsSync(absolute)) return realpathSync(absolute);
  const parent = dirname(absolute);
  return parent === absolute ? absolute : join(real(parent), absolute.slice(parent.length + 1));
}

const HEADER = '# fleetpki offline root copy HSM';

/**
 * Refuses a place that is, contains or lies inside another HSM (the root's own, a site's folder, any
 * configured softhsm2.conf's folder), symbolic links resolved; and a softhsm2.conf there that is not a
 * root copy's (it would be overwritten).
 */
function assertNotAnotherHsm(config: FleetConfig, dir: string): void {
  const here = real(dir);
  const taken: (readonly [string, string])[] = [
    [real(config.rootHsm.dir), "the root's own HSM"],
    [real(dirname(config.rootHsm.softhsmConf)), "the root's own HSM"],
    ...Object.values(config.sites).flatMap((s) => [[real(s.dir), `site ${s.id}'s folder (its HSM)`] as const, [real(dirname(s.softhsmConf)), `site ${s.id}'s HSM`] as const]),
  ];
  for (const [path, what] of taken) {
    if (here === path || here.startsWith(`${path}/`) || path.startsWith(`${here}/`)) throw new FleetError('ROOT_COPY_PLACE_INVALID', `${dir} is or holds ${what}: a copy of the root goes into a root HSM of its own`, { httpStatus: 400 });
  }
  const conf = join(here, 'softhsm2.conf');
  if (existsSync(conf) && !readFileSync(conf, 'utf8').startsWith(HEADER)) throw new FleetError('ROOT_COPY_PLACE_INVALID', `${conf} exists and is not a root copy's: refusing to replace it`, { httpStatus: 400 });
}

/** Initialises the copy's token (the root's label, the PINs the custodians bring: the root's own) if it is not there yet. */
export async function ensureRootCopyToken(config: FleetConfig, dir: string, pins: { soPin: string; userPin: string }): Promise<'created' | 'present'> {
  assertNotAnotherHsm(config, dir);
  const hsm = rootCopyHsm(dir);
  ensureHsmDir(hsm, hsm.dir);
  if ((await listTokensOf(hsm.softhsmConf)).includes(config.rootTokenLabel)) return 'present';
  return (await initTokenIn(config, hsm, config.rootTokenLabel, pins.soPin, pins.userPin)) ? 'created' : 'present';
}

/** The root's key store in the copy at `dir` (a ceremony run with the second copy), or in the root's own HSM without one. */
export async function openRootKeyStoreAt(config: FleetConfig, rootPin: string, dir: string | undefined): Promise<RemoteKeyStore> {
  if (dir === undefined) return openRootKeyStore(config, rootPin);
  assertNotAnotherHsm(config, dir);
  const hsm = rootCopyHsm(dir);
  if (!(await listTokensOf(hsm.softhsmConf)).includes(config.rootTokenLabel)) {
    throw new FleetError('HSM_TOKEN_NOT_FOUND', `no root token ${config.rootTokenLabel} in the root copy at ${hsm.dir}: restore one there first (\`ceremony root-restore --hsm-dir ${dir}\`)`);
  }
  return openRemoteKeyStore({ modulePath: config.pkcs11Module, softhsmConf: hsm.softhsmConf }, config.rootTokenLabel, rootPin);
}

/** The root custody ceremony's HSM part on the root token (custody-wrap.ts), in an HSM process of its own: the root's own HSM, or the copy at `dir`. */
export async function wrapRootKeysForCustody(config: FleetConfig, request: Omit<CustodyWrapRequest, 'tokenLabel'>, dir?: string): Promise<CustodyWrapResult> {
  if (dir !== undefined) assertNotAnotherHsm(config, dir);
  const child = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: dir === undefined ? rootHsm(config).softhsmConf : rootCopyHsm(dir).softhsmConf });
  try {
    return await child.call('wrapForCustody', { ...request, tokenLabel: config.rootTokenLabel });
  } finally {
    await child.close();
  }
}
