export { C509Error } from './errors.js';
export { C509_NATIVE, C509_REENCODED, C509_TBS_FIELDS, assembleNativeC509, c509ToX509, nativeC509Tbs, parseC509, verifyNativeC509, x509ToC509, type C509EncodeOptions, type ParsedC509 } from './certificate.js';
export { buildNativeC509RequestP256, c509ToPkcs10, parseC509Request, pkcs10ToC509, verifyNativeC509RequestP256, type ParsedC509Request } from './csr.js';
export { ecdsaDerToRaw, ecdsaRawToDer } from './fields.js';
