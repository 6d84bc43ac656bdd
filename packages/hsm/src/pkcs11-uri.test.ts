import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HsmError } from './errors.js';
import { formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri.js';

describe('RFC 7512 PKCS#11 URIs', () => {
  it('parses token, object, type and the pin-source query attribute', () => {
    const key = parsePkcs11Uri('pkcs11:token=fleetpki-a;object=device%20ca;type=private?pin-source=file:/run/pin&module-path=/usr/lib/x.so');
    assert.deepEqual(key, { token: 'fleetpki-a', object: 'device ca', type: 'private', pinSource: 'file:/run/pin', modulePath: '/usr/lib/x.so' });
    assert.deepEqual(parsePkcs11Uri(formatPkcs11Uri(key)), key);
  });
  it('carries a binary CKA_ID as percent-encoded bytes (RFC 7512 id=)', () => {
    const id = Buffer.from('00ff7f80e9a1b2c3', 'hex');
    const uri = formatPkcs11Uri({ token: 'fleetpki-a', object: 'fpd1', id, type: 'private' });
    assert.equal(uri, 'pkcs11:token=fleetpki-a;object=fpd1;id=%00%ff%7f%80%e9%a1%b2%c3;type=private');
    assert.deepEqual(parsePkcs11Uri(uri).id, id);
    assert.deepEqual(parsePkcs11Uri('pkcs11:token=a;object=b;id=A%01').id, Buffer.from([0x41, 0x01]));
  });
  for (const bad of ['file:/x', 'pkcs11:token=a;object=b;id=%z1', 'pkcs11:token=a', 'pkcs11:object=b', 'pkcs11:token=a;object=b;type=weird', 'pkcs11:token=a;object=%zz', 'pkcs11:token=a;junk']) {
    it(`rejects ${bad}`, () => {
      assert.throws(() => parsePkcs11Uri(bad), (err: unknown) => err instanceof HsmError && err.code === 'HSM_URI_INVALID');
    });
  }
});
