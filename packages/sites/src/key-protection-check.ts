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
  /** C_CopyObject and C_SetAttributeValue as a user-PIN holder would try them ("refused: CKR_...", or "COPIED"/"MODIFIED"). */
  readonly copyProbe: string;
  readonly modifyProbe: string;
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
export function judgeKey(key: KeyProtection, probe: { refused: boolean; reason?: string }, probes: { copy: { refused: boolean }; modify: { refused: boolean } } = { copy: { refused: true }, modify: { refused: true } }): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (!key.sensitive) problems.push('readable in clear (CKA_SENSITIVE off)');
  if (key.extractable && !key.wrapWithTrusted) problems.push(`can be wrapped out under any key (CKA_EXTRACTABLE on, CKA_WRAP_WITH_TRUSTED off): ${HARDEN}`);
  if (!probe.refused) problems.push('the token wrapped it under a key chosen by the probe: anyone with the user PIN can take it out');
  // The ceremony's key-encryption key is a session object of the ceremony's own process: a trusted token
  // object is never fleetpki's, and any user session can wrap the CA keys under it (and copy or change it).
  if (key.trusted) problems.push(`a trusted key outside a custody ceremony: anyone with the user PIN can wrap the CA and master keys under it${probes.copy.refused && probes.modify.refused ? '' : ', copy it or turn it into an unwrapping key'}; find out who made it, destroy it (\`pnpm fleetpki hsm destroy-trusted-key --label ${key.label}\`) and treat the keys as possibly copied`);
  // Keys made before issue 33 allow both; SoftHSM 2.6.1 lets neither attribute change afterwards. The
  // protection attributes are one-way (sensitive, non-extractable, wrap-with-trusted stay), so these are
  // notes for the next rollover, not holes.
  else if (!probes.copy.refused) warnings.push('copyable (made before CKA_COPYABLE was off): a PIN holder can make copies of it, which keep its protection; the key made at the next rollover is not');
  if (!key.trusted && !probes.modify.refused) warnings.push('modifiable (made before CKA_MODIFIABLE was off): a PIN holder can change its usage attributes, not its protection; the key made at the next rollover is not');
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
      for (const t of await hsm.call('listTrustedKeys')) if (t.class === 'public') layout.push(`${place.hsm}: token ${place.token} holds a trusted public key "${t.label}" outside a custody ceremony: destroy it (\`pnpm fleetpki hsm destroy-trusted-key --label ${t.label}\`)`);
      for (const [name, count] of labels) if (count > 1) layout.push(`${place.hsm}: token ${place.token} holds ${count} ${name.replace('/', ' keys labelled ')}: a label must name one key`);
      for (const key of keys) {
        const ref = { label: key.label, id: Buffer.from(key.id) };
        const probe = await hsm.call('probeWrapUnderOwnKey', ref, key.class);
        const copy = await hsm.call('probeCopy', ref, key.class);
        const modify = await hsm.call('probeModify', ref, key.class);
        const { problems, warnings } = judgeKey(key, probe, { copy, modify });
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
          copyProbe: copy.refused ? `refused: ${copy.reason}` : 'COPIED',
          modifyProbe: modify.refused ? `refused: ${modify.reason}` : 'MODIFIED',
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
    lines.push(`${f.problems.length ? 'WEAK' : 'ok  '}  ${f.hsm.padEnd(14)} ${f.token.padEnd(26)} ${f.class.padEnd(7)} ${f.label.padEnd(20)} ${flags}; wrap under a key of one's own: ${f.probe}; copy: ${f.copyProbe}; modify: ${f.modifyProbe}`);
    for (const p of f.problems) lines.push(`        problem: ${p}`);
    for (const w of f.warnings) lines.push(`        note: ${w}`);
  }
  for (const l of report.layout) lines.push(`LAYOUT  ${l}`);
  for (const s of report.skipped) lines.push(`skipped ${s}`);
  lines.push(report.ok ? 'every key can leave its HSM only under a trusted key-encryption key, or not at all' : 'key protection is too weak: see the problems above');
  return lines.join('\n');
}
