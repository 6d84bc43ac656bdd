import { derTlv } from '../der.js';
import type { CborValue } from './cbor.js';
import { children, parseElement, seq, type Element } from './der-walk.js';
import { NotExpressible } from './errors.js';
import { decodeName, encodeName } from './name.js';
import { OTHER_NAME } from './registry.js';
import { asArray, asBytes, asInt, asText, malformed, pairs } from './values.js';

/** C509 General Names registry codes. */
const GN = { macAddress: -3, smtpUtf8Mailbox: -2, hardwareModuleName: -1, otherName: 0, rfc822Name: 1, dNSName: 2, directoryName: 4, uri: 6, iPAddress: 7, registeredID: 8 } as const;

const ascii = (bytes: Buffer): string => {
  if (bytes.some((b) => b > 0x7f)) throw new NotExpressible('an IA5String with non-ASCII octets');
  return bytes.toString('latin1');
};

/** One GeneralName (RFC 5280 4.2.1.6) as a (type, value) pair; NotExpressible for x400Address, ediPartyName. */
export function encodeGeneralName(gn: Element, path: string): [number, CborValue] {
  switch (gn.tag) {
    case 0xa0: {
      const [typeId, explicit, extra] = children(gn, path);
      if (!typeId || typeId.tag !== 0x06 || !explicit || explicit.tag !== 0xa0 || extra) throw new NotExpressible('malformed otherName');
      const [value, more] = children(explicit, path);
      if (!value || more) throw new NotExpressible('malformed otherName value');
      const oid = typeId.content.toString('hex');
      if (oid === OTHER_NAME.hardwareModuleName && value.tag === 0x30) {
        const [hwType, hwSerial, rest] = children(value, path);
        if (hwType?.tag === 0x06 && hwSerial?.tag === 0x04 && !rest) return [GN.hardwareModuleName, [hwType.content, hwSerial.content]];
      }
      if (oid === OTHER_NAME.smtpUtf8Mailbox && value.tag === 0x0c) return [GN.smtpUtf8Mailbox, value.content.toString('utf8')];
      if (oid === OTHER_NAME.macAddress && value.tag === 0x04) return [GN.macAddress, value.content];
      return [GN.otherName, [typeId.content, value.der]];
    }
    case 0x81: return [GN.rfc822Name, ascii(gn.content)];
    case 0x82: return [GN.dNSName, ascii(gn.content)];
    case 0xa4: {
      const [name, extra] = children(gn, path);
      if (!name || extra) throw new NotExpressible('malformed directoryName');
      return [GN.directoryName, encodeName(name, `${path} directoryName`)];
    }
    case 0x86: return [GN.uri, ascii(gn.content)];
    case 0x87: return [GN.iPAddress, gn.content];
    case 0x88: return [GN.registeredID, gn.content];
    default: throw new NotExpressible(`GeneralName with tag 0x${gn.tag.toString(16)} (x400Address or ediPartyName)`);
  }
}

const explicit0 = (inner: Buffer) => derTlv(0xa0, inner);

export function decodeGeneralName(type: unknown, value: unknown, path: string): Buffer {
  const code = asInt(type, `${path} type`);
  switch (code) {
    case GN.hardwareModuleName: {
      const [hwType, hwSerial] = asArray(value, path, { min: 2, max: 2 });
      const hwModule = seq(derTlv(0x06, asBytes(hwType, `${path} hwType`)), derTlv(0x04, asBytes(hwSerial, `${path} hwSerialNum`)));
      return derTlv(0xa0, Buffer.concat([derTlv(0x06, Buffer.from(OTHER_NAME.hardwareModuleName, 'hex')), explicit0(hwModule)]));
    }
    case GN.smtpUtf8Mailbox:
      return derTlv(0xa0, Buffer.concat([derTlv(0x06, Buffer.from(OTHER_NAME.smtpUtf8Mailbox, 'hex')), explicit0(derTlv(0x0c, Buffer.from(asText(value, path), 'utf8')))]));
    case GN.macAddress:
      return derTlv(0xa0, Buffer.concat([derTlv(0x06, Buffer.from(OTHER_NAME.macAddress, 'hex')), explicit0(derTlv(0x04, asBytes(value, path)))]));
    case GN.otherName: {
      const [typeId, inner] = asArray(value, path, { min: 2, max: 2 });
      return derTlv(0xa0, Buffer.concat([derTlv(0x06, asBytes(typeId, `${path} type-id`)), explicit0(parseElement(asBytes(inner, path), path).der)]));
    }
    case GN.rfc822Name: return derTlv(0x81, Buffer.from(asText(value, path), 'latin1'));
    case GN.dNSName: return derTlv(0x82, Buffer.from(asText(value, path), 'latin1'));
    case GN.directoryName: return derTlv(0xa4, decodeName(value, `${path} directoryName`));
    case GN.uri: return derTlv(0x86, Buffer.from(asText(value, path), 'latin1'));
    case GN.iPAddress: return derTlv(0x87, asBytes(value, path));
    case GN.registeredID: return derTlv(0x88, asBytes(value, path));
    default: throw malformed(path, `unknown general name type ${code}`);
  }
}

/** GeneralNames as the flat array [type, value, type, value, ...]. */
export function encodeGeneralNames(names: Element, path: string): CborValue[] {
  return children(names, path).flatMap((gn, i) => encodeGeneralName(gn, `${path} name ${i + 1}`));
}

/** The GeneralName TLVs of a flat array (the caller wraps them in SEQUENCE or an implicit tag). */
export function decodeGeneralNameList(v: unknown, path: string): Buffer[] {
  return pairs(v, path).map(([type, value], i) => decodeGeneralName(type, value, `${path} name ${i + 1}`));
}

export const GENERAL_NAME_CODES = GN;
