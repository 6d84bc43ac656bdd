import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { run } from './exec.js';

/** The site's token, and at site A the offline root's token (config.rootTokenLabel; in production a separate, offline HSM). */
export function tokensOfSite(config: FleetConfig, site: SiteConfig): string[] {
  return site.id === 'a' ? [site.hsmTokenLabel, config.rootTokenLabel] : [site.hsmTokenLabel];
}

export function soPinFile(config: FleetConfig, site: SiteConfig): string {
  return join(config.stateDir, 'secrets', `hsm-${site.id}.so-pin`);
}

function ensureSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(12).toString('hex');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

/** Labels of the initialised tokens SoftHSM2 sees with this site's configuration. */
export async function listTokens(site: SiteConfig): Promise<string[]> {
  if (!existsSync(site.softhsmConf)) return [];
  const out = await run('softhsm2-util', ['--show-slots'], { env: { SOFTHSM2_CONF: site.softhsmConf } });
  const labels: string[] = [];
  // Slot blocks print "Label:" for the slot's token; uninitialised slots have an empty label.
  for (const match of out.matchAll(/^\s+Label:\s+(.*)$/gm)) {
    const label = match[1]!.trim();
    if (label) labels.push(label);
  }
  return labels;
}

/** Writes the site's softhsm2.conf and initialises its tokens with random PINs kept in secrets/ (0600). */
export async function ensureTokens(config: FleetConfig, site: SiteConfig): Promise<string[]> {
  const tokenDir = join(dirname(site.softhsmConf), 'tokens');
  // The site folder must stay reachable by the postgres user; only the token folder itself is private.
  mkdirSync(site.dir, { recursive: true, mode: 0o755 });
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  writeFileSync(site.softhsmConf, `# fleetpki site ${site.id}\ndirectories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const pin = ensureSecret(site.hsmPinFile);
  const soPin = ensureSecret(soPinFile(config, site));
  const present = await listTokens(site);
  const created: string[] = [];
  for (const label of tokensOfSite(config, site)) {
    if (present.includes(label)) continue;
    await run('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env: { SOFTHSM2_CONF: site.softhsmConf } });
    created.push(label);
  }
  return created;
}
