import { createHash, randomBytes } from 'node:crypto';
import * as asn1js from 'asn1js';
import type { KeyRole } from '@fleetpki/core';
import { TAG, encodeTimeValue, timeTag } from './der.js';
import { OID } from './oids.js';
import { KEY_USAGE_BIT, crlShardName, crlShardUrl, type DeviceProfile } from './profiles.js';
import { P256_SPKI_LENGTH } from './public-key.js';

/** What a device template needs to know about its issuing CA. */
export interface IssuerInfo {
  readonly caId: string;
  /** DER of the issuing CA certificate's subject Name, copied byte for byte into issuer. */
  readonly subjectDer: Buffer;
  /** The issuing CA's subjectKeyIdentifier, used as authorityKeyIdentifier (8 bytes). */
  readonly keyId: Buffer;
  /** CRL distribution point base URL, for profiles with CRL shards. */
  readonly crlBaseUrl?: string;
}

/** The per-device values: everything else is fixed by profile, issuer and key role. */
export interface DeviceFields {
  /** 9 bytes: site prefix byte (0x01-0x7f) + 8 random bytes, so the INTEGER is always 9 bytes long. */
  readonly serial: Buffer;
  readonly notBefore: Date;
  /** 8 bytes. */
  readonly eui64: Buffer;
  /** 91-byte P-256 SubjectPublicKeyInfo, already validated. */
  readonly publicKeySpki: Buffer;
  readonly crlShard?: number;
}

export interface AssembledTbs {
  readonly der: Buffer;
  readonly profile: DeviceProfile;
  readonly keyRole: KeyRole;
  readonly caId: string;
  readonly fields: DeviceFields;
  readonly notAfter: Date;
  readonly subjectKeyId?: Buffer;
}

export const SERIAL_LENGTH = 9;
const FOREVER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

/** RFC 5280 4.2.1.2 method (2): 0100 followed by the 60 low bits of SHA-1(subjectPublicKey). */
export function subjectKeyIdMethod2(subjectPublicKey: Uint8Array): Buffer {
  const digest = createHash('sha1').update(subjectPublicKey).digest();
  const id = Buffer.from(digest.subarray(digest.length - 8));
  id[0] = (id[0]! & 0x0f) | 0x40;
  return id;
}

interface Slot {
  readonly offset: number;
  readonly length: number;
}

interface Compiled {
  readonly der: Buffer;
  readonly serial: Slot;
  readonly notBefore: Slot;
  readonly notAfter?: Slot;
  readonly spki: Slot;
  readonly eui64: Slot;
  readonly ski?: Slot;
  readonly shard?: Slot;
}

const context = (tagNumber: number, value: asn1js.AsnType[]) => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
const contextPrimitive = (tagNumber: number, valueHex: Uint8Array) => new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber }, valueHex });
const rawDer = (der: Uint8Array) => asn1js.fromBER(der).result;
const timePlaceholder = (tag: number, marker: string) => new asn1js.Primitive({ idBlock: { tagClass: 1, tagNumber: tag }, valueHex: Buffer.from(marker, 'ascii') });

function extension(oid: string, critical: boolean, value: asn1js.AsnType): asn1js.Sequence {
  const parts: asn1js.AsnType[] = [new asn1js.ObjectIdentifier({ value: oid })];
  if (critical) parts.push(new asn1js.Boolean({ value: true }));
  parts.push(new asn1js.OctetString({ valueHex: value.toBER(false) }));
  return new asn1js.Sequence({ value: parts });
}

function keyUsageBits(role: KeyRole): asn1js.BitString {
  // DER named bit list (X.690 11.2.2): drop trailing zero bits, so unusedBits = 7 - bit.
  const bit = KEY_USAGE_BIT[role];
  return new asn1js.BitString({ valueHex: Buffer.from([0x80 >> bit]), unusedBits: 7 - bit });
}

/**
 * A device profile compiled once (per issuer, key role and time encoding) into a DER TBSCertificate
 * with fixed-length slots; assemble() copies it and writes the device's values into the slots. The
 * template is built with asn1js from placeholder values, and the slots are found by their unique markers,
 * so the layout is asn1js's and never computed by hand.
 */
export class DeviceTemplate {
  private readonly compiled = new Map<string, Compiled>();

  constructor(
    readonly profile: DeviceProfile,
    readonly issuer: IssuerInfo,
    readonly keyRole: KeyRole,
  ) {
    if (issuer.keyId.length !== 8) throw new Error(`issuer key id must be 8 bytes (got ${issuer.keyId.length})`);
    if (profile.crl && !issuer.crlBaseUrl) throw new Error(`profile ${profile.id} uses CRL shards: the issuer needs a crlBaseUrl`);
  }

  notAfterFor(notBefore: Date): Date {
    if (this.profile.lifetimeDays === undefined) return FOREVER;
    return new Date(Math.floor(notBefore.getTime() / 1000) * 1000 + this.profile.lifetimeDays * 86_400_000);
  }

  assemble(fields: DeviceFields): AssembledTbs {
    if (fields.serial.length !== SERIAL_LENGTH) throw new Error(`serial must be ${SERIAL_LENGTH} bytes`);
    if (fields.eui64.length !== 8) throw new Error('EUI-64 must be 8 bytes');
    if (fields.publicKeySpki.length !== P256_SPKI_LENGTH) throw new Error('public key must be a 91-byte P-256 SPKI');
    const notAfter = this.notAfterFor(fields.notBefore);
    const template = this.templateFor(timeTag(fields.notBefore), timeTag(notAfter));
    const der = Buffer.from(template.der);
    fields.serial.copy(der, template.serial.offset);
    der.write(encodeTimeValue(fields.notBefore), template.notBefore.offset, 'ascii');
    if (template.notAfter) der.write(encodeTimeValue(notAfter), template.notAfter.offset, 'ascii');
    fields.publicKeySpki.copy(der, template.spki.offset);
    fields.eui64.copy(der, template.eui64.offset);
    let subjectKeyId: Buffer | undefined;
    if (template.ski) {
      subjectKeyId = subjectKeyIdMethod2(fields.publicKeySpki.subarray(P256_SPKI_LENGTH - 65));
      subjectKeyId.copy(der, template.ski.offset);
    }
    if (template.shard) {
      if (fields.crlShard === undefined || !this.profile.crl || fields.crlShard < 0 || fields.crlShard >= this.profile.crl.shards) {
        throw new Error(`profile ${this.profile.id} needs a CRL shard in [0, ${this.profile.crl?.shards ?? 0})`);
      }
      der.write(crlShardName(fields.crlShard).slice(1), template.shard.offset, 'ascii');
    }
    return { der, profile: this.profile, keyRole: this.keyRole, caId: this.issuer.caId, fields, notAfter, ...(subjectKeyId ? { subjectKeyId } : {}) };
  }

  private templateFor(notBeforeTag: number, notAfterTag: number): Compiled {
    const key = `${notBeforeTag}/${notAfterTag}`;
    let compiled = this.compiled.get(key);
    if (!compiled) this.compiled.set(key, (compiled = this.compile(notBeforeTag, notAfterTag)));
    return compiled;
  }

  private compile(notBeforeTag: number, notAfterTag: number): Compiled {
    const p = this.profile;
    const markers = {
      serial: Buffer.concat([Buffer.from([0x7f]), randomBytes(8)]),
      spkiPoint: Buffer.concat([Buffer.from([0x04]), randomBytes(64)]),
      eui64: randomBytes(8),
      ski: randomBytes(8),
      notBefore: (notBeforeTag === TAG.UTC_TIME ? 'NB~~~~~~~~~~' : 'NB~~~~~~~~~~~~') + 'Z',
      notAfter: (notAfterTag === TAG.UTC_TIME ? 'NA~~~~~~~~~~' : 'NA~~~~~~~~~~~~') + 'Z',
      shard: '@@@@',
    };
    const fixedNotAfter = p.lifetimeDays === undefined;
    const extensions: asn1js.Sequence[] = [
      extension(OID.keyUsage, true, keyUsageBits(this.keyRole)),
      // RFC 5280 4.2.1.6: subject is empty, so subjectAltName is critical. RFC 4108 5: hardwareModuleName.
      extension(
        OID.subjectAltName,
        true,
        new asn1js.Sequence({
          value: [
            context(0, [
              new asn1js.ObjectIdentifier({ value: OID.hardwareModuleName }),
              context(0, [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: p.deviceTypeOid }), new asn1js.OctetString({ valueHex: markers.eui64 })] })]),
            ]),
          ],
        }),
      ),
      // RFC 5280 4.2.1.1: keyIdentifier only.
      extension(OID.authorityKeyIdentifier, false, new asn1js.Sequence({ value: [contextPrimitive(0, this.issuer.keyId)] })),
    ];
    if (p.includeSubjectKeyId) extensions.push(extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: markers.ski })));
    if (p.policyOid) {
      extensions.push(extension(OID.certificatePolicies, true, new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: p.policyOid })] })] })));
    }
    if (p.crl) {
      const url = crlShardUrl(this.issuer.crlBaseUrl!, this.issuer.caId, 0).replace(/s0000\.crl$/, `s${markers.shard}.crl`);
      // DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } } }
      extensions.push(
        extension(OID.cRLDistributionPoints, false, new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [context(0, [context(0, [contextPrimitive(6, Buffer.from(url, 'ascii'))])])] })] })),
      );
    }
    const tbs = new asn1js.Sequence({
      value: [
        context(0, [new asn1js.Integer({ value: 2 })]),
        new asn1js.Integer({ valueHex: markers.serial }),
        new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.ecdsaWithSha256 })] }),
        rawDer(this.issuer.subjectDer),
        new asn1js.Sequence({
          value: [timePlaceholder(notBeforeTag, markers.notBefore), fixedNotAfter ? timePlaceholder(notAfterTag, encodeTimeValue(FOREVER)) : timePlaceholder(notAfterTag, markers.notAfter)],
        }),
        new asn1js.Sequence({ value: [] }),
        rawDer(Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), markers.spkiPoint])),
        context(3, [new asn1js.Sequence({ value: extensions })]),
      ],
    });
    const der = Buffer.from(tbs.toBER(false));
    const find = (marker: Buffer | string, length: number, back = 0): Slot => {
      const bytes = typeof marker === 'string' ? Buffer.from(marker, 'ascii') : marker;
      const offset = der.indexOf(bytes);
      if (offset < 0 || der.indexOf(bytes, offset + 1) >= 0) throw new Error(`template marker for a ${length}-byte slot is missing or not unique`);
      return { offset: offset - back, length };
    };
    return {
      der,
      serial: find(markers.serial, SERIAL_LENGTH),
      notBefore: find(markers.notBefore, markers.notBefore.length),
      ...(fixedNotAfter ? {} : { notAfter: find(markers.notAfter, markers.notAfter.length) }),
      // the SPKI slot starts at its SEQUENCE header, 26 bytes before the point
      spki: find(markers.spkiPoint, P256_SPKI_LENGTH, P256_SPKI_LENGTH - 65),
      eui64: find(markers.eui64, 8),
      ...(p.includeSubjectKeyId ? { ski: find(markers.ski, 8) } : {}),
      ...(p.crl ? { shard: find(markers.shard, 4) } : {}),
    };
  }
}
