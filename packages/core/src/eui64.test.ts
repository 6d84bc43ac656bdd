import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetError } from './errors.js';
import { eui64FromBytes, eui64PrefixRange, eui64ToBytes, parseEui64, parseEui64Range } from './eui64.js';
import { parseKeyRole } from './key-role.js';

describe('EUI-64', () => {
  it('accepts separators and any case, and canonicalises', () => {
    assert.equal(parseEui64('00-1a:2B3c4d5e6f70'), '001A2B3C4D5E6F70');
    assert.equal(parseEui64(' 001a2b3c4d5e6f70 '), '001A2B3C4D5E6F70');
  });
  for (const bad of ['', '001A2B3C4D5E6F7', '001A2B3C4D5E6F7001', 'G01A2B3C4D5E6F70', '001A 2B3C4D5E6F70']) {
    it(`rejects ${JSON.stringify(bad)} with EUI64_INVALID`, () => {
      assert.throws(() => parseEui64(bad), (err: unknown) => isFleetError(err, 'EUI64_INVALID') && err.httpStatus === 400);
    });
  }
  it('round-trips through 8 bytes', () => {
    const eui = parseEui64('0011223344556677');
    assert.equal(eui64FromBytes(eui64ToBytes(eui)), eui);
    assert.throws(() => eui64FromBytes(Buffer.alloc(7)), (err: unknown) => isFleetError(err, 'EUI64_INVALID'));
  });
});

describe('EUI-64 ranges', () => {
  it('a prefix is the block IEEE assigns: an OUI, an MA-M or an MA-S block', () => {
    assert.deepEqual(eui64PrefixRange('00-1B-C5'), { first: '001BC50000000000', last: '001BC5FFFFFFFFFF' });
    assert.deepEqual(eui64PrefixRange('001bc50c0'), { first: '001BC50C00000000', last: '001BC50C0FFFFFFF' });
    for (const bad of ['', '0011223344556677', 'XY', '00 1B']) assert.throws(() => eui64PrefixRange(bad), (err: unknown) => isFleetError(err, 'EUI64_RANGE_INVALID'));
  });
  it('first..last must not run backwards', () => {
    assert.deepEqual(parseEui64Range('00-00-00-00-00-00-00-01', '0000000000000001'), { first: '0000000000000001', last: '0000000000000001' });
    assert.throws(() => parseEui64Range('0000000000000002', '0000000000000001'), (err: unknown) => isFleetError(err, 'EUI64_RANGE_INVALID'));
  });
});

describe('key roles', () => {
  it('knows the two device key roles and rejects others', () => {
    assert.equal(parseKeyRole('keyAgreement'), 'keyAgreement');
    assert.throws(() => parseKeyRole('keyEncipherment'), (err: unknown) => isFleetError(err, 'KEY_ROLE_UNKNOWN'));
  });
});
