import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newSerial } from './serials.js';

describe('serials', () => {
  it('are 9 bytes, the site prefix then 64 random bits, and never repeat across many blocks of the random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) {
      const serial = newSerial(0x0a);
      assert.equal(serial.length, 9);
      assert.equal(serial[0], 0x0a);
      seen.add(serial.toString('hex'));
    }
    assert.equal(seen.size, 50_000);
    // Not a constant tail: the random part's bytes take many values.
    const lastBytes = new Set([...seen].map((hex) => hex.slice(-2)));
    assert.ok(lastBytes.size > 200, `${lastBytes.size} distinct last bytes`);
    assert.throws(() => newSerial(0x80), /1-127/);
  });
});
