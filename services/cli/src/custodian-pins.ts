import type { Command } from 'commander';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import type { RemoteKeyStore } from '@fleetpki/hsm';
import { custodianPinFiles, openRootKeyStoreAt, readCeremonyPin, siteSoPinFile } from '@fleetpki/sites';

/**
 * PINs a ceremony needs from the custodians: the offline root's user PIN, a site token's SO PIN. Read
 * from the file the custodian names (their default place locally: .fleetpki/custodians/), or typed on
 * standard input with `-`; never from an argument (visible in /proc) or the services' environment.
 */
export function rootPinOption(command: Command): Command {
  return command
    .option('--root-pin-file <file>', "the offline root token's PIN (custodians); - to type it (default: .fleetpki/custodians/<root token>.pin)")
    .option('--root-hsm-dir <dir>', "run the ceremony with the root's second copy in the root HSM at <dir> (`ceremony root-restore`), not the root's own HSM");
}

/** The offline root's key store for a ceremony: the root's own HSM, or the copy `--root-hsm-dir` names. */
export async function openCeremonyRoot(config: FleetConfig, options: { rootPinFile?: string; rootHsmDir?: string }): Promise<RemoteKeyStore> {
  return openRootKeyStoreAt(config, await readRootPin(config, options.rootPinFile), options.rootHsmDir);
}

export function readRootSoPin(config: FleetConfig, file: string | undefined): Promise<string> {
  return readCeremonyPin(file ?? custodianPinFiles(config).rootSoPin, `security officer PIN of root token ${config.rootTokenLabel}`);
}

export function soPinOption(command: Command): Command {
  return command.option('--so-pin-file <file>', "the site token's security officer PIN (custodians); - to type it (default: .fleetpki/custodians/<site token>.so-pin)");
}

export function readRootPin(config: FleetConfig, file: string | undefined): Promise<string> {
  return readCeremonyPin(file ?? custodianPinFiles(config).rootPin, `root token ${config.rootTokenLabel} PIN`);
}

export function readSoPin(config: FleetConfig, site: SiteConfig, file: string | undefined): Promise<string> {
  return readCeremonyPin(file ?? siteSoPinFile(config, site), `security officer PIN of token ${site.hsmTokenLabel}`);
}
