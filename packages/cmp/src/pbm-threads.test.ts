import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PbmThreads } from './pbm-threads.js';
import { MAX_PBM_ITERATIONS, passwordBasedMac, type PbmParameters } from './protection.js';

describe('PbmThreads', () => {
  it('computes the same MACs as the main thread would, for every one-way function and MAC, concurrently', async () => {
    const pool = PbmThreads.start(1);
    try {
      const cases: { secret: Buffer; parameters: PbmParameters; data: Buffer }[] = [];
      for (const owf of ['sha1', 'sha256', 'sha512']) {
        for (const mac of ['sha1', 'sha256']) {
          for (const iterations of [1, 500, MAX_PBM_ITERATIONS]) cases.push({ secret: randomBytes(32), parameters: { salt: randomBytes(16), owf, iterations, mac }, data: randomBytes(200) });
        }
      }
      const macs = await Promise.all(cases.map((c) => pool.mac(c.secret, c.parameters, c.data)));
      cases.forEach((c, i) => assert.ok(macs[i]!.equals(passwordBasedMac(c.secret, c.parameters, c.data)), `${c.parameters.owf}/${c.parameters.mac}/${c.parameters.iterations}`));
    } finally {
      await pool.close();
    }
  });

  it('what waits when the pool closes is computed, not dropped; after that it refuses', async () => {
    const pool = PbmThreads.start(1);
    const parameters = { salt: randomBytes(16), owf: 'sha256', iterations: MAX_PBM_ITERATIONS, mac: 'sha256' };
    const secret = randomBytes(16);
    const pending = Array.from({ length: 4 }, (_, i) => pool.mac(secret, parameters, Buffer.from([i])));
    await pool.close();
    const macs = await Promise.all(pending);
    macs.forEach((m, i) => assert.ok(m.equals(passwordBasedMac(secret, parameters, Buffer.from([i])))));
    await assert.rejects(pool.mac(secret, parameters, Buffer.alloc(1)), /closed/);
  });
});
