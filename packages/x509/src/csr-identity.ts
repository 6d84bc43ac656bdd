import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { FleetError, eui64FromBytes, parseEui64, type Eui64 } from '@fleetpki/core';
import { OID } from './oids.js';

const SUBJECT_SERIAL_NUMBER = '2.5.4.5'; // X.520 serialNumber

function identityError(code: string, message: string): FleetError {
  return new FleetError(code, message, { httpStatus: 400 });
}

/**
 * The device a CSR names, for protocols that carry no separate device field (EST, CMP): the
 * hardwareModuleName (RFC 4108 5) in a subjectAltName of the extensionRequest, as device certificates
 * carry it, or the subject's serialNumber as 16 hex digits (what `pki --req --dn` and most factory
 * tools can set). Both present and different: refused, the CSR is ambiguous. Call after the CSR's
 * signature was checked (parseCsr): this reads the structure, it does not prove anything.
 */
export function readCsrDeviceId(der: Uint8Array): { eui64: Eui64; from: 'hardwareModuleName' | 'serialNumber' } {
  let request: pkijs.CertificationRequest;
  try {
    request = pkijs.CertificationRequest.fromBER(der);
  } catch (err) {
    throw identityError('CSR_MALFORMED', `the CSR cannot be read: ${(err as Error).message}`);
  }
  const fromModule = hardwareModuleSerial(request);
  const fromSubject = subjectSerialNumber(request);
  if (fromModule && fromSubject && fromModule !== fromSubject) {
    throw identityError('CSR_DEVICE_ID_CONFLICT', `the CSR names two devices: hardwareModuleName ${fromModule}, subject serialNumber ${fromSubject}`);
  }
  if (fromModule) return { eui64: fromModule, from: 'hardwareModuleName' };
  if (fromSubject) return { eui64: fromSubject, from: 'serialNumber' };
  throw identityError(
    'CSR_DEVICE_ID_MISSING',
    'the CSR does not name its device: put the EUI-64 in a hardwareModuleName subjectAltName (extensionRequest, RFC 4108) or in the subject as serialNumber=<16 hex digits>',
  );
}

function subjectSerialNumber(request: pkijs.CertificationRequest): Eui64 | undefined {
  const values = request.subject.typesAndValues.filter((tv) => tv.type === SUBJECT_SERIAL_NUMBER);
  if (values.length === 0) return undefined;
  if (values.length > 1) throw identityError('CSR_DEVICE_ID_CONFLICT', 'the CSR subject has more than one serialNumber');
  const text = String((values[0]!.value.valueBlock as { value?: unknown }).value ?? '');
  try {
    return parseEui64(text);
  } catch {
    throw identityError('CSR_DEVICE_ID_INVALID', `the subject serialNumber "${text.slice(0, 40)}" is not an EUI-64 (16 hex digits)`);
  }
}

/** hwSerialNum of an otherName hardwareModuleName in the requested subjectAltName, if any. */
function hardwareModuleSerial(request: pkijs.CertificationRequest): Eui64 | undefined {
  const found: Eui64[] = [];
  for (const attribute of request.attributes ?? []) {
    if (attribute.type !== OID.extensionRequest) continue;
    for (const value of attribute.values) {
      const extensions = new pkijs.Extensions({ schema: value });
      for (const extension of extensions.extensions) {
        if (extension.extnID !== OID.subjectAltName) continue;
        const names = asn1js.fromBER(extension.extnValue.valueBlock.valueHexView);
        if (names.offset === -1 || !(names.result instanceof asn1js.Sequence)) throw identityError('CSR_MALFORMED', 'the requested subjectAltName is not a GeneralNames sequence');
        for (const name of names.result.valueBlock.value) {
          // otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY } (RFC 5280 4.2.1.6)
          if (name.idBlock.tagClass !== 3 || name.idBlock.tagNumber !== 0) continue;
          const [typeId, wrapped] = (name as asn1js.Constructed).valueBlock.value;
          if (!(typeId instanceof asn1js.ObjectIdentifier) || typeId.valueBlock.toString() !== OID.hardwareModuleName) continue;
          const module = (wrapped as asn1js.Constructed | undefined)?.valueBlock.value?.[0];
          const serial = module instanceof asn1js.Sequence ? module.valueBlock.value[1] : undefined;
          if (!(serial instanceof asn1js.OctetString)) throw identityError('CSR_DEVICE_ID_INVALID', 'the hardwareModuleName is not SEQUENCE { hwType OID, hwSerialNum OCTET STRING }');
          const bytes = serial.valueBlock.valueHexView;
          if (bytes.length !== 8) throw identityError('CSR_DEVICE_ID_INVALID', `the hardwareModuleName's hwSerialNum must be the 8-byte EUI-64, got ${bytes.length} bytes`);
          found.push(eui64FromBytes(bytes));
        }
      }
    }
  }
  if (new Set(found).size > 1) throw identityError('CSR_DEVICE_ID_CONFLICT', `the CSR names more than one hardware module: ${[...new Set(found)].join(', ')}`);
  return found[0];
}
