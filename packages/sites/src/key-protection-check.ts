import { existsSync } from 'node:fs';
import type { FleetConfig } from '@fleetpki/core';
import { HsmProcess, readPin, type KeyProtection } from '@fleetpki/hsm';
import { legacySoPinFile, listTokens, listTokensOf } from './hsm-tokens.js';

/** One key as `fleetpki hsm check` reports it: where, how protected, what the token did when probed. */
export interface KeyFinding {
  readonly hsm: string;
  readonly token: string;
  readonly class: 'private' | 'secret';
  readonly label: string;
  readonly id: string;
  readonly sensitive: boolean;
  readonly extractable: boolean;
  readonly wrapWithTrusted: boolean;
  readonly neverExtractable: boolean;
  /** The wrap a user-PIN holder would try: the token's answer ("refused: CKR_...", or "WRAPPED"). */
  readonly probe: string;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

export interface KeyProtectionReport {
  readonly findings: readonly KeyFinding[];
  /** Problems of the layout rather than of one key (where the root lives, where SO PINs are kept). */
  readonly layout: readonly string[];
  /** Tokens that could not be inspected, and why (e.g. no root PIN given). */
  readonly skipped: readonly string[];
  readonly ok: boolean;
}

const HARDEN = 'run `pnpm fleetpki ceremony harden` (makes it non-extractable in place; cloning it again then needs a new key)';

/** What is wrong with one key's protection, and what is only worth knowing. */
export function judgeKey(key: KeyProtection, probe: { refused: boolean; reason?: string }): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (!key.sensitive) problems.push('readable in clear (CKA_SENSITIVE off)');
  if (key.extractable && !key.wrapWithTrusted) problems.push(`can be wrapped out under any key (CKA_EXTRACTABLE on, CKA_WRAP_WITH_TRUSTED off): ${HARDEN}`);
  if (!probe.refused) problems.push('the token wrapped it under a key chosen by the probe: anyone with the user PIN can take it out');
  if (key.trusted && /^custody-kek-/.test(key.label)) problems.push('a trusted key-encryption key outlived its custody ceremony: destroy it');
  if (!key.neverExtractable && !key.wrapWithTrusted && !key.extractable) warnings.push('was wrappable under any key before it was made non-extractable: treat it as possibly copied and rotate it');
  return { problems, warnings };
}

/**
 * Inspects every private and secret key in the site tokens (and the root's, given its PIN): the
 * protection attributes as the token reports them, plus the wrap probe (Pkcs11Probes) run against each,
 * so an HSM that ignores an attribute is caught too. Duplicate labels, a root token inside a site HSM,
 * and SO PINs kept beside the services' PIN are layout problems. Nothing is changed.
 */
export async function checkKeyProtection(config: FleetConfig, options: { rootPin?: string } = {}): Promise<KeyProtectionReport> {
  const findings: KeyFinding[] = [];
  const layout: string[] = [];
  const skipped: string[] = [];
  const places = [
    ...[config.sites.a, config.sites.b].map((site) => ({ hsm: `site ${site.id}`, softhsmConf: site.softhsmConf, token: site.hsmTokenLabel, pin: () => readPin(`file:${site.hsmPinFile}`) })),
    { hsm: 'offline root', softhsmConf: config.rootHsm.softhsmConf, token: config.rootTokenLabel, pin: () => options.rootPin },
  ];
  if ((await listTokens(config.sites.a)).includes(config.rootTokenLabel)) {
    layout.push(`the root token ${config.rootTokenLabel} is inside site a's HSM, initialised with the site's PINs: run \`pnpm fleetpki ceremony migrate-root\``);
    places.push({ hsm: 'site a (root token, old layout)', softhsmConf: config.sites.a.softhsmConf, token: config.rootTokenLabel, pin: () => readPin(`file:${config.sites.a.hsmPinFile}`) });
  }
  for (const site of [config.sites.a, config.sites.b]) {
    if (existsSync(legacySoPinFile(config, site))) layout.push(`the SO PIN of ${site.hsmTokenLabel} is kept beside the services' PIN (${legacySoPinFile(config, site)}): \`pnpm fleetpki ceremony harden\` moves it to the custodians`);
  }
  for (const place of places) {
    if (!(await listTokensOf(place.softhsmConf)).includes(place.token)) {
      skipped.push(`${place.hsm}: no token ${place.token}`);
      continue;
    }
    let pin: string | undefined;
    try {
      pin = place.pin();
    } catch (err) {
      skipped.push(`${place.hsm}: ${(err as Error).message}`);
      continue;
    }
    if (!pin) {
      skipped.push(`${place.hsm}: token ${place.token} not inspected (give the custodians' root PIN with --root-pin-file)`);
      continue;
    }
    const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: place.softhsmConf });
    try {
      await hsm.call('openKeyStore', place.token, pin, 1);
      const keys = await hsm.call('listKeyProtection');
      const labels = new Map<string, number>();
      for (const key of keys) labels.set(`${key.class}/${key.label}`, (labels.get(`${key.class}/${key.label}`) ?? 0) + 1);
      for (const [name, count] of labels) if (count > 1) layout.push(`${place.hsm}: token ${place.token} holds ${count} ${name.replace('/', ' keys labelled ')}: a label must name one key`);
      for (const key of keys) {
        const probe = await hsm.call('probeWrapUnderOwnKey', { label: key.label, id: Buffer.from(key.id) }, key.class);
        const { problems, warnings } = judgeKey(key, probe);
        findings.push({
          hsm: place.hsm,
          token: place.token,
          class: key.class,
          label: key.label,
          id: Buffer.from(key.id).toString('hex'),
          sensitive: key.sensitive,
          extractable: key.extractable,
          wrapWithTrusted: key.wrapWithTrusted,
          neverExtractable: key.neverExtractable,
          probe: probe.refused ? `refused: ${probe.reason}` : 'WRAPPED',
          problems,
          warnings,
        });
      }
    } finally {
      await hsm.close();
    }
  }
  return { findings, layout, skipped, ok: layout.length === 0 && findings.every((f) => f.problems.length === 0) };
}

/** The report as a terminal table, problems under their key. */
export function formatKeyProtectionReport(report: KeyProtectionReport): string {
  const lines: string[] = [];
  for (const f of report.findings) {
    const flags = `sensitive=${f.sensitive} extractable=${f.extractable} wrap-with-trusted=${f.wrapWithTrusted}`;
    lines.push(`${f.problems.length ? 'WEAK' : 'ok  '}  ${f.hsm.padEnd(14)} ${f.token.padEnd(26)} ${f.class.padEnd(7)} ${f.label.padEnd(20)} ${flags}; wrap under a key of one's own: ${f.probe}`);
    for (const p of f.problems) lines.push(`        problem: ${p}`);
    for (const w of f.warnings) lines.push(`        note: ${w}`);
  }
  for (const l of report.layout) lines.push(`LAYOUT  ${l}`);
  for (const s of report.skipped) lines.push(`skipped ${s}`);
  lines.push(report.ok ? 'every key can leave its HSM only under a trusted key-encryption key, or not at all' : 'key protection is too weak: see the problems above');
  return lines.join('\n');
}
