import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { assembleSignedCertificate } from '../der.js';
import { DeviceTemplate } from '../device-template.js';
import { generateDeviceKeys } from '../device-keys.js';
import { buildCaTbs, parseCaCertificate } from '../ca-certificate.js';
import { lintDeviceTbs } from '../lint.js';
import { DEVICE_PROFILES, getProfile } from '../profiles.js';
import { parseCsr } from '../csr.js';
import { decodeStrict, encodeItem } from './cbor.js';
import { children, parseElement, seq } from './der-walk.js';
import { derTlv } from '../der.js';
import { C509Error } from './errors.js';
import { assembleNativeC509, c509ToX509, nativeC509Tbs, parseC509, verifyNativeC509, x509ToC509 } from './certificate.js';
import { c509ToPkcs10, parseC509Request, pkcs10ToC509, verifyNativeC509RequestP256 } from './csr.js';
import { ecdsaDerToRaw } from './fields.js';

// ../shared/vectors/c509 beside the repository (README there: provenance, sizes, what was checked).
const repo = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const VECTORS = join(repo, '../shared/vectors/c509');
const hex = (path: string): Buffer => Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');

/** Vectors the codec does not claim, by name, with the reason. */
const NOT_CLAIMED: Record<string, string> = {
  'cert-selfsign-brainpoolp512r1': 'uses C509 extension 24 (subjectDirectoryAttributes), which PR #408 removed from the registry; fleetpki follows the current registry',
};

interface Vector {
  readonly name: string;
  readonly der: Buffer;
  readonly c509: Buffer;
  readonly request: boolean;
}

function vectors(): Vector[] {
  const out: Vector[] = [];
  for (const file of readdirSync(VECTORS).filter((f) => f.endsWith('-der.hex'))) {
    const name = file.replace('-der.hex', '');
    out.push({ name, der: hex(join(VECTORS, file)), c509: hex(join(VECTORS, `${name}-c509.hex`)), request: false });
  }
  for (const file of readdirSync(join(VECTORS, 'tv03')).filter((f) => f.endsWith('-der.hex'))) {
    const name = file.replace('-der.hex', '');
    out.push({ name, der: hex(join(VECTORS, 'tv03', file)), c509: hex(join(VECTORS, 'tv03', `${name}-c509-t3.hex`)), request: name.startsWith('csr-') });
  }
  // The compressed-key vector re-encodes the same DER as cert-selfsign-secp256r1 (README, tv03 table).
  out.push({ name: 'cert-selfsign-compress-secp256r1', der: hex(join(VECTORS, 'tv03/cert-selfsign-secp256r1-der.hex')), c509: hex(join(VECTORS, 'tv03/cert-selfsign-compress-secp256r1-c509-t3.hex')), request: false });
  return out;
}

/** The draft allows an uncompressed point in type 3 too; a vector shows which form it took. */
const compressedIn = (v: Vector): boolean => {
  const spkiItem = v.request ? 4 : 8;
  const value = (decodeStrict(v.c509, 'vector') as unknown[])[spkiItem];
  return Buffer.isBuffer(value) && (value[0] === 0xfe || value[0] === 0xfd);
};

describe('C509 published vectors (type 3): byte-exact in both directions', () => {
  const all = vectors();
  it('finds the vectors', () => assert.ok(all.length >= 30, `only ${all.length} vectors under ${VECTORS}`));
  for (const v of all) {
    const skip = NOT_CLAIMED[v.name];
    it(`${v.name}: C509 -> DER -> C509`, { skip }, () => {
      const der = v.request ? c509ToPkcs10(v.c509) : c509ToX509(v.c509);
      assert.equal(der.toString('hex'), v.der.toString('hex'));
      const options = { compressPoints: compressedIn(v) };
      const c509 = v.request ? pkcs10ToC509(v.der, options) : x509ToC509(v.der, options);
      assert.equal(c509.toString('hex'), v.c509.toString('hex'));
    });
  }
  it('the unclaimed brainpoolP512r1 vector gets a clear error naming extension 24, not a crash', () => {
    assert.throws(() => c509ToX509(hex(join(VECTORS, 'tv03/cert-selfsign-brainpoolp512r1-c509-t3.hex'))), (err: unknown) => err instanceof C509Error && err.code === 'C509_MALFORMED' && /unknown extension id 24/.test(err.message));
  });
  it('published sizes: RFC 7925 316 -> 141 bytes, 802.1AR 577 -> 276 bytes', () => {
    assert.equal(x509ToC509(hex(join(VECTORS, 'rfc7925-der.hex'))).length, 141);
    assert.equal(x509ToC509(hex(join(VECTORS, 'ieee8021ar-der.hex'))).length, 276);
  });
  it('the re-encoded ECDSA signature is the DER one as r || s', () => {
    const der = hex(join(VECTORS, 'rfc7925-der.hex'));
    const items = decodeStrict(x509ToC509(der), 'c509') as unknown[];
    const [, , signatureBits] = children(parseElement(der, 'certificate'), 'certificate');
    assert.equal((items[10] as Buffer).toString('hex'), ecdsaDerToRaw(signatureBits!.content.subarray(1), 'sig', 32).toString('hex'));
  });
});

/** Type-2 vectors whose signature can be checked here, with the issuer key; the rest by name, with why. */
describe('C509 published vectors (type 2): natively signed', () => {
  const tv = (name: string) => hex(join(VECTORS, 'tv03', name));
  const caKey = parseC509(tv('cert-ca-c509-t2.hex')).subjectPublicKeyInfo;
  const UNCHECKABLE: Record<string, string> = {
    'cert-ca': 'signed with id-alg-unsigned: there is no signature to check',
    'cert-selfsign-frp256v1': 'OpenSSL has no FRP256v1 curve',
    'cert-selfsign-brainpoolp256r1': 'ECDSA with SHAKE128 is not in node:crypto verify',
    'cert-selfsign-sm2p256v1': 'SM2 with SM3 is not in node:crypto verify',
    'cert-selfsign-rsassa-pss-shake128': 'RSASSA-PSS with SHAKE is not in node:crypto verify',
    'cert-selfsign-rsassa-pss-shake256': 'RSASSA-PSS with SHAKE is not in node:crypto verify',
    'cert-selfsign-brainpoolp512r1': NOT_CLAIMED['cert-selfsign-brainpoolp512r1']!,
  };
  const files = readdirSync(join(VECTORS, 'tv03')).filter((f) => f.startsWith('cert-') && f.endsWith('-c509-t2.hex'));
  it('finds the type-2 vectors', () => assert.ok(files.length >= 20));
  for (const file of files) {
    const name = file.replace('-c509-t2.hex', '');
    it(`${name}: signature over the CBOR TBS verifies with the issuer key`, { skip: UNCHECKABLE[name] }, () => {
      const parsed = parseC509(tv(file));
      assert.equal(parsed.type, 2);
      const issuerKey = name.startsWith('cert-ee-') ? caKey : parsed.subjectPublicKeyInfo;
      assert.equal(verifyNativeC509(parsed, createPublicKey({ key: issuerKey, format: 'der', type: 'spki' })), true);
      // One flipped bit in the TBS and the signature no longer verifies.
      const tampered = Buffer.from(tv(file));
      tampered[5] = tampered[5]! ^ 0x01;
      let verified = false;
      try { verified = verifyNativeC509(tampered, createPublicKey({ key: issuerKey, format: 'der', type: 'spki' })); } catch (err) { assert.ok(err instanceof C509Error); }
      assert.equal(verified, false);
      assert.throws(() => c509ToX509(tv(file)), (err: unknown) => err instanceof C509Error && err.code === 'C509_UNCONVERTIBLE');
    });
  }
  it('RFC 7925 natively signed example verifies with the published issuer key', () => {
    const issuerPoint = hex(join(VECTORS, 'rfc7925-issuer-pubkey.hex'));
    const spki = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), issuerPoint]);
    assert.equal(verifyNativeC509(hex(join(VECTORS, 'rfc7925-native-c509.hex')), createPublicKey({ key: spki, format: 'der', type: 'spki' })), true);
  });
  it('type-2 CSR (ECDSA P-256) proves possession over its CBOR', () => {
    const request = parseC509Request(tv('csr-ecdsa-p256-c509-t2.hex'));
    assert.equal(verifyNativeC509RequestP256(request), true);
    const tampered = Buffer.from(tv('csr-ecdsa-p256-c509-t2.hex'));
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0x01;
    assert.equal(verifyNativeC509RequestP256(parseC509Request(tampered)), false);
  });
  it('type-3 CSR gives back a PKCS#10 that fleetpki accepts (signature checked)', () => {
    const request = parseC509Request(tv('csr-ecdsa-p256-c509-t3.hex'));
    assert.ok(request.pkcs10);
    assert.equal(parseCsr(request.pkcs10).spki.toString('hex'), request.subjectPublicKeyInfo.toString('hex'));
  });
});

// A software CA for the profile checks; the HSM path is covered by the integration tests.
const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caTbs = buildCaTbs({ subject: { commonName: 'FPD1' }, serial: Buffer.from('0a0102030405060708', 'hex'), notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), publicKeySpki: caKeys.publicKey.export({ format: 'der', type: 'spki' }), pathLength: 0 });
const caCert = assembleSignedCertificate(caTbs.der, sign('sha256', caTbs.der, caKeys.privateKey));
const caParsed = parseCaCertificate(caCert);
const issuer = { caId: 'device-issuing-1', subjectDer: caParsed.subjectDer, keyId: caParsed.keyId, crlBaseUrl: 'http://crl.example/crl/' };

describe('C509 and the fleetpki profiles', () => {
  for (const profileId of Object.keys(DEVICE_PROFILES)) {
    for (const keyRole of ['digitalSignature', 'keyAgreement'] as const) {
      it(`${profileId}/${keyRole}: type 3 round-trips byte-exactly and the DER signature still verifies`, () => {
        const template = new DeviceTemplate(getProfile(profileId), issuer, keyRole);
        const tbs = lintDeviceTbs(template.assemble({ serial: Buffer.concat([Buffer.from([0x41]), randomBytes(8)]), notBefore: new Date(Math.floor(Date.now() / 1000) * 1000), eui64: randomBytes(8), publicKeySpki: generateDeviceKeys(1)[0]!.publicKeySpki, crlShard: 7 })).redeem();
        const der = assembleSignedCertificate(tbs.der, sign('sha256', tbs.der, caKeys.privateKey));
        const c509 = x509ToC509(der);
        assert.equal(c509ToX509(c509).toString('hex'), der.toString('hex'));
        assert.ok(c509.length < der.length * 0.55, `${profileId}: C509 ${c509.length} bytes for ${der.length} DER`);
        // Natively signed: the same content, the signature over the CBOR.
        const tbsCbor = nativeC509Tbs(tbs.der);
        const native = assembleNativeC509(tbsCbor, ecdsaDerToRaw(sign('sha256', tbsCbor, caKeys.privateKey), 'sig', 32));
        assert.equal(verifyNativeC509(native, caKeys.publicKey), true);
        assert.equal(parseC509(native).type, 2);
        assert.equal(native.length, c509.length);
      });
    }
  }
});

describe('C509 malformed input gets a clear error, never a crash', () => {
  const good = hex(join(VECTORS, 'rfc7925-c509.hex'));
  const rejects = (bytes: Buffer, pattern: RegExp) =>
    assert.throws(() => c509ToX509(bytes), (err: unknown) => err instanceof C509Error && /^C509_/.test(err.code) && pattern.test(err.message), `expected ${pattern} for ${bytes.toString('hex').slice(0, 40)}`);
  const items = () => decodeStrict(good, 'good') as unknown[];
  const withItem = (index: number, value: unknown) => { const arr = items(); arr[index] = value; return encodeItem(arr as never); };

  it('every truncation of a valid certificate', () => {
    for (let n = 0; n < good.length; n++) rejects(good.subarray(0, n), /not a single well-formed CBOR item/);
  });
  it('trailing bytes', () => rejects(Buffer.concat([good, Buffer.from([0])]), /not a single well-formed CBOR item/));
  it('wrong array length', () => {
    rejects(encodeItem(items().slice(0, 10) as never), /at least 11 elements, found 10/);
    rejects(encodeItem([...items(), 0] as never), /at most 11 elements, found 12/);
    rejects(Buffer.from('a0', 'hex'), /expected an array/);
  });
  it('unknown certificate type, algorithms and extension ids', () => {
    rejects(withItem(0, 7), /unknown C509 certificate type 7/);
    rejects(withItem(2, 99), /signatureAlgorithm: unknown signature algorithm 99/);
    rejects(withItem(7, 99), /subjectPublicKeyAlgorithm: unknown public key algorithm 99/);
    rejects(withItem(9, [77, Buffer.from([1])]), /unknown extension id 77/);
    rejects(withItem(6, [99, 'x']), /unknown RDN attribute 99/);
  });
  it('huge integers and wrong types', () => {
    rejects(withItem(4, 2n ** 63n), /notBefore: expected an integer, found an integer too large/);
    rejects(withItem(4, 253402300800), /notBefore: (253402300800 is out of range|expected an integer, found an integer too large)/);
    rejects(withItem(4, -5), /notBefore: -5 is out of range/);
    rejects(withItem(1, 5), /serialNumber: expected a byte string/);
    rejects(withItem(3, 12), /issuer RDN 1: expected text, bytes or a tag 48/);
    rejects(withItem(10, 'sig'), /signatureValue: expected a byte string, found string/);
    rejects(withItem(10, Buffer.alloc(3)), /r \|\| s of equal lengths/);
    rejects(withItem(8, Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(32, 0xff)])), /not on the curve/);
  });
  it('non-deterministic CBOR (a non-shortest integer) is refused', () => {
    const loose = Buffer.concat([good.subarray(0, 1), Buffer.from([0x18, 0x03]), good.subarray(2)]);
    rejects(loose, /not deterministically encoded/);
  });
  it('a map, a float, undefined', () => {
    rejects(Buffer.from('a10102', 'hex'), /map|array/);
    rejects(withItem(4, undefined), /notBefore: expected an integer, found undefined/);
  });
  it('5,000 random mutations: each decodes to DER or throws a C509 error, nothing else', () => {
    let decoded = 0;
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(good);
      const flips = 1 + (i % 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(Math.random() * bytes.length)] = Math.floor(Math.random() * 256);
      try {
        c509ToX509(bytes);
        decoded++;
      } catch (err) {
        assert.ok(err instanceof C509Error, `mutation ${bytes.toString('hex')} threw ${(err as Error).stack}`);
      }
    }
    assert.ok(decoded < 5000);
  });
});

describe('DER that C509 cannot express names the field', () => {
  const rfc7925 = hex(join(VECTORS, 'rfc7925-der.hex'));
  const unconvertible = (der: Buffer, field: RegExp) => assert.throws(() => x509ToC509(der), (err: unknown) => err instanceof C509Error && err.code === 'C509_UNCONVERTIBLE' && field.test(err.message));
  /** Rebuilds the certificate with tbsCertificate field `index` replaced (DER lengths recomputed). */
  const withTbsField = (index: number, replace: (field: Buffer) => Buffer): Buffer => {
    const [tbs, alg, sig] = children(parseElement(rfc7925, 'certificate'), 'certificate');
    const fields = children(tbs!, 'tbs').map((f, i) => (i === index ? replace(f.der) : f.der));
    return seq(seq(...fields), alg!.der, sig!.der);
  };
  it('a GeneralizedTime before 2050 (RFC 5280 says UTCTime)', () => {
    const patched = withTbsField(4, (validity) => {
      const [notBefore, notAfter] = children(parseElement(validity, 'validity'), 'validity');
      return seq(derTlv(0x18, Buffer.from(`20${notBefore!.content.toString('latin1')}`, 'latin1')), notAfter!.der);
    });
    unconvertible(patched, /^notBefore: /);
  });
  it('a multi-valued RDN', () => {
    const cn = seq(derTlv(0x06, Buffer.from('550403', 'hex')), derTlv(0x0c, Buffer.from('a')));
    const o = seq(derTlv(0x06, Buffer.from('55040a', 'hex')), derTlv(0x0c, Buffer.from('b')));
    unconvertible(withTbsField(5, () => seq(derTlv(0x31, Buffer.concat([cn, o])))), /^subject RDN 1: a RelativeDistinguishedName with 2 attributes/);
  });
  it('an issuerUniqueID', () => {
    const [tbs, alg, sig] = children(parseElement(rfc7925, 'certificate'), 'certificate');
    const fields = children(tbs!, 'tbs').map((f) => f.der);
    fields.splice(7, 0, derTlv(0x81, Buffer.from([0, 1])));
    unconvertible(seq(seq(...fields), alg!.der, sig!.der), /^issuerUniqueID: not supported/);
  });
  it('a version 1 certificate', () => {
    const noVersion = Buffer.from(rfc7925);
    noVersion[rfc7925.indexOf(Buffer.from('a003020102', 'hex')) + 4] = 0x01; // v2
    unconvertible(noVersion, /^version: only X\.509 v3/);
  });
});

