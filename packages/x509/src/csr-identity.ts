import { FleetError, eui64FromBytes, parseEui64, type Eui64 } from '@fleetpki/core';
import { TAG } from './der.js';
import { DerError, childrenOf, expectTlv, readTlv, type Tlv } from './der-reader.js';

// DER of the object identifiers compared below (tag, length, content).
const OID_SERIAL_NUMBER = Buffer.from('0603550405', 'hex'); // 2.5.4.5, X.520 serialNumber
const OID_EXTENSION_REQUEST = Buffer.from('06092a864886f70d01090e', 'hex'); // 1.2.840.113549.1.9.14 (RFC 2985)
const OID_SUBJECT_ALT_NAME = Buffer.from('0603551d11', 'hex'); // 2.5.29.17
const OID_HARDWARE_MODULE_NAME = Buffer.from('06082b06010505070804', 'hex'); // 1.3.6.1.5.5.7.8.4 (RFC 4108 5)
const CONTEXT_0 = 0xa0;
const SET = 0x31;

function identityError(code: string, message: string): FleetError {
  return new FleetError(code, message, { httpStatus: 400 });
}

const children = childrenOf;

const bytesOf = (der: Buffer, tlv: Tlv) => der.subarray(tlv.start, tlv.end);
const contentOf = (der: Buffer, tlv: Tlv) => der.subarray(tlv.contentStart, tlv.end);

/**
 * The device a CSR names, for protocols that carry no separate device field (EST, CMP): the
 * hardwareModuleName (RFC 4108 5) in a subjectAltName of the extensionRequest, as device certificates
 * carry it, or the subject's serialNumber as 16 hex digits (what `pki --req --dn` and most factory
 * tools can set). Both present and different: refused, the CSR is ambiguous. Call after the CSR's
 * signature was checked (parseCsr): this reads the structure, it does not prove anything.
 * Walked with the DER reader, not pkijs: pkijs took ~700 us per CSR here (measured), on every EST request.
 */
export function readCsrDeviceId(csr: Uint8Array): { eui64: Eui64; from: 'hardwareModuleName' | 'serialNumber' } {
  const der = Buffer.from(csr.buffer, csr.byteOffset, csr.byteLength);
  let fromModule: Eui64 | undefined;
  let fromSubject: Eui64 | undefined;
  try {
    const outer = expectTlv(der, 0, TAG.SEQUENCE, 'CertificationRequest');
    const info = expectTlv(der, outer.contentStart, TAG.SEQUENCE, 'certificationRequestInfo', outer.end);
    const [, subject, , attributes] = children(der, info);
    if (!subject || subject.tag !== TAG.SEQUENCE || !attributes || attributes.tag !== CONTEXT_0) throw new DerError('certificationRequestInfo is not { version, subject, subjectPKInfo, attributes [0] }');
    fromSubject = subjectSerialNumber(der, subject);
    fromModule = hardwareModuleSerial(der, attributes);
  } catch (err) {
    if (err instanceof DerError) throw identityError('CSR_MALFORMED', `the CSR cannot be read: ${err.message}`);
    throw err;
  }
  return oneDevice(fromModule, fromSubject, 'the CSR', 'put the EUI-64 in a hardwareModuleName subjectAltName (extensionRequest, RFC 4108) or in the subject as serialNumber=<16 hex digits>');
}

/** The device named by a hardwareModuleName and/or a subject serialNumber: both and different is a conflict, neither is missing. */
function oneDevice(fromModule: Eui64 | undefined, fromSubject: Eui64 | undefined, what: string, how: string): { eui64: Eui64; from: 'hardwareModuleName' | 'serialNumber' } {
  if (fromModule && fromSubject && fromModule !== fromSubject) {
    throw identityError('CSR_DEVICE_ID_CONFLICT', `${what} names two devices: hardwareModuleName ${fromModule}, subject serialNumber ${fromSubject}`);
  }
  if (fromModule) return { eui64: fromModule, from: 'hardwareModuleName' };
  if (fromSubject) return { eui64: fromSubject, from: 'serialNumber' };
  throw identityError('CSR_DEVICE_ID_MISSING', `${what} does not name its device: ${how}`);
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue { type, value }). */
function subjectSerialNumber(der: Buffer, subject: Tlv): Eui64 | undefined {
  const values: string[] = [];
  for (const rdn of children(der, subject)) {
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (type && value && bytesOf(der, type).equals(OID_SERIAL_NUMBER)) values.push(contentOf(der, value).toString('latin1'));
    }
  }
  if (values.length === 0) return undefined;
  if (values.length > 1) throw identityError('CSR_DEVICE_ID_CONFLICT', 'the CSR subject has more than one serialNumber');
  try {
    return parseEui64(values[0]!);
  } catch {
    throw identityError('CSR_DEVICE_ID_INVALID', `the subject serialNumber "${values[0]!.slice(0, 40)}" is not an EUI-64 (16 hex digits)`);
  }
}

/** hwSerialNum of an otherName hardwareModuleName in a subjectAltName the CSR requests, if any. */
function hardwareModuleSerial(der: Buffer, attributes: Tlv): Eui64 | undefined {
  const found = new Set<Eui64>();
  for (const attribute of children(der, attributes)) {
    const [type, values] = children(der, attribute);
    if (!type || !values || values.tag !== SET || !bytesOf(der, type).equals(OID_EXTENSION_REQUEST)) continue;
    for (const extensions of children(der, values)) moduleSerialsIn(der, extensions, found);
  }
  if (found.size > 1) throw identityError('CSR_DEVICE_ID_CONFLICT', `the CSR names more than one hardware module: ${[...found].join(', ')}`);
  return found.values().next().value;
}

/** Adds the hwSerialNum of every hardwareModuleName in a subjectAltName of `extensions` (Extensions) to `found`. */
function moduleSerialsIn(der: Buffer, extensions: Tlv, found: Set<Eui64>): void {
  for (const extension of children(der, extensions)) {
    const parts = children(der, extension);
    const value = parts[parts.length - 1];
    if (!parts[0] || !value || value.tag !== TAG.OCTET_STRING || !bytesOf(der, parts[0]).equals(OID_SUBJECT_ALT_NAME)) continue;
    const names = readTlv(der, value.contentStart, value.end);
    if (names.tag !== TAG.SEQUENCE || names.end !== value.end) throw identityError('CSR_MALFORMED', 'the requested subjectAltName is not a GeneralNames sequence');
    for (const name of children(der, names)) {
      // otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY } (RFC 5280 4.2.1.6)
      if (name.tag !== CONTEXT_0) continue;
      const [typeId, wrapped] = children(der, name);
      if (!typeId || !bytesOf(der, typeId).equals(OID_HARDWARE_MODULE_NAME)) continue;
      const module = wrapped?.tag === CONTEXT_0 ? children(der, wrapped)[0] : undefined;
      const serial = module?.tag === TAG.SEQUENCE ? children(der, module)[1] : undefined;
      if (!serial || serial.tag !== TAG.OCTET_STRING) throw identityError('CSR_DEVICE_ID_INVALID', 'the hardwareModuleName is not SEQUENCE { hwType OID, hwSerialNum OCTET STRING }');
      const bytes = contentOf(der, serial);
      if (bytes.length !== 8) throw identityError('CSR_DEVICE_ID_INVALID', `the hardwareModuleName's hwSerialNum must be the 8-byte EUI-64, got ${bytes.length} bytes`);
      found.add(eui64FromBytes(bytes));
    }
  }
}

/**
 * The device a CMP certificate template names (RFC 4211 CertTemplate: the subject Name's DER and the
 * Extensions' DER, either absent), by the same rules as readCsrDeviceId: hardwareModuleName in a
 * subjectAltName, or the subject's serialNumber; both and different is a conflict.
 */
export function readTemplateDeviceId(subject: Buffer | undefined, extensions: Buffer | undefined): { eui64: Eui64; from: 'hardwareModuleName' | 'serialNumber' } {
  let fromSubject: Eui64 | undefined;
  const modules = new Set<Eui64>();
  try {
    if (subject) fromSubject = subjectSerialNumber(subject, expectTlv(subject, 0, TAG.SEQUENCE, 'subject'));
    if (extensions) moduleSerialsIn(extensions, expectTlv(extensions, 0, TAG.SEQUENCE, 'extensions'), modules);
  } catch (err) {
    if (err instanceof DerError) throw identityError('CSR_MALFORMED', `the certificate template cannot be read: ${err.message}`);
    throw err;
  }
  if (modules.size > 1) throw identityError('CSR_DEVICE_ID_CONFLICT', `the template names more than one hardware module: ${[...modules].join(', ')}`);
  return oneDevice(modules.values().next().value, fromSubject, 'the certificate template', 'give the subject serialNumber=<16 hex digits> (openssl cmp -subject /serialNumber=...) or a hardwareModuleName subjectAltName');
}

/** The device an X.509 device certificate names (subject serialNumber or hardwareModuleName), read as a template's. */
export function readCertificateDeviceId(certificate: Uint8Array): { eui64: Eui64; from: 'hardwareModuleName' | 'serialNumber' } {
  const der = Buffer.from(certificate.buffer, certificate.byteOffset, certificate.byteLength);
  let subject: Buffer | undefined;
  let extensions: Buffer | undefined;
  try {
    const outer = expectTlv(der, 0, TAG.SEQUENCE, 'Certificate');
    const tbs = expectTlv(der, outer.contentStart, TAG.SEQUENCE, 'tbsCertificate', outer.end);
    const fields = children(der, tbs);
    const first = fields[0]?.tag === CONTEXT_0 ? 1 : 0; // version [0] is optional
    const subjectTlv = fields[first + 4];
    if (!subjectTlv || subjectTlv.tag !== TAG.SEQUENCE) throw new DerError('tbsCertificate has no subject');
    subject = bytesOf(der, subjectTlv);
    const wrapped = fields.find((f) => f.tag === 0xa3);
    const inner = wrapped ? children(der, wrapped)[0] : undefined;
    extensions = inner ? bytesOf(der, inner) : undefined;
  } catch (err) {
    if (err instanceof DerError) throw identityError('CERTIFICATE_MALFORMED', `the certificate cannot be read: ${err.message}`);
    throw err;
  }
  return readTemplateDeviceId(subject, extensions);
}
