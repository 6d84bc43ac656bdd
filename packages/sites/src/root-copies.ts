import { resolve, join } from 'node:path';
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
  return { name: 'offline root copy', dir: resolve(dir), softhsmConf: join(resolve(dir), 'softhsm2.conf') };
}

function assertNotAnotherHsm(config: FleetConfig, dir: string): void {
  const taken = [[resolve(config.rootHsm.dir), "the root's own HSM"], ...Object.values(config.sites).map((s) => [resolve(s.dir), `site ${s.id}'s folder (its HSM)`])] as const;
  for (const [path, what] of taken) {
    if (resolve(dir) === path || resolve(dir).startsWith(`${path}/`)) throw new FleetError('ROOT_COPY_PLACE_INVALID', `${dir} is ${what}: a copy of the root goes into a root HSM of its own`, { httpStatus: 400 });
  }
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

/** The root custody ceremony's HSM part on the root token (custody-wrap.ts), in an HSM process of its own. */
export async function wrapRootKeysForCustody(config: FleetConfig, request: Omit<CustodyWrapRequest, 'tokenLabel'>): Promise<CustodyWrapResult> {
  const child = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: rootHsm(config).softhsmConf });
  try {
    return await child.call('wrapForCustody', { ...request, tokenLabel: config.rootTokenLabel });
  } finally {
    await child.close();
  }
}
