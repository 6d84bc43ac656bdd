import { createHash } from 'node:crypto';
import { FleetError, type KeyRole } from '@fleetpki/core';
import { lintDeviceTbs, type LintedTbs } from '@fleetpki/x509';
import type { IssuingCa } from './issuing-ca.js';
import { crlShardOf, newSerial } from './serials.js';

/** One device key to certify: what online enrolment and a batch chunk both start from. */
export interface IssuanceSubject {
  readonly profileId: string;
  readonly keyRole: KeyRole;
  readonly eui64: Buffer;
  readonly publicKeySpki: Buffer;
}

/** A certificate ready to be signed, and the intent that commits to it before the HSM signs. */
export interface PreparedIssuance {
  readonly linted: LintedTbs;
  readonly serial: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
  /** SHA-256 of the DER TBS: the intent's commitment, checked again when a retry rebuilds it. */
  readonly tbsSha256: Buffer;
}

/**
 * The one issuance path's first step, shared by online enrolment and batch chunks: the profile's DER
 * template filled in (serial from the CSPRNG with the site's prefix, CRL shard from the serial), then
 * linted. The caller commits the intent (serial, tbsSha256) before anything is signed.
 */
export function prepareIssuance(ca: IssuingCa, serialPrefix: number, subject: IssuanceSubject, notBefore: Date): PreparedIssuance {
  return assembleFor(ca, subject, newSerial(serialPrefix), notBefore);
}

/**
 * A retry after a crash: the TBS an intent committed to, rebuilt from its serial and notBefore, and
 * refused (INTENT_MISMATCH) unless it is byte for byte the one committed, so a retry signs exactly it.
 */
export function rebuildIssuance(ca: IssuingCa, subject: IssuanceSubject, intent: { serial: Buffer; notBefore: Date; tbsSha256: Buffer }, where: string): PreparedIssuance {
  const prepared = assembleFor(ca, subject, intent.serial, intent.notBefore);
  if (!prepared.tbsSha256.equals(intent.tbsSha256)) {
    throw new FleetError('INTENT_MISMATCH', `${where}: the TBS rebuilt for serial ${intent.serial.toString('hex')} differs from its intent`);
  }
  return prepared;
}

/** Whole seconds: DER times carry no fraction, and a rebuilt TBS must equal the committed one. */
export function issuanceTime(now = Date.now()): Date {
  return new Date(Math.floor(now / 1000) * 1000);
}

function assembleFor(ca: IssuingCa, subject: IssuanceSubject, serial: Buffer, notBefore: Date): PreparedIssuance {
  const template = ca.template(subject.profileId, subject.keyRole);
  const crlShard = crlShardOf(serial, template.profile.crl?.shards ?? 1);
  const tbs = template.assemble({ serial, notBefore, eui64: subject.eui64, publicKeySpki: subject.publicKeySpki, crlShard });
  return { linted: lintDeviceTbs(tbs), serial, notBefore, notAfter: tbs.notAfter, crlShard, tbsSha256: createHash('sha256').update(tbs.der).digest() };
}
