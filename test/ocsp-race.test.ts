import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { OcspAsker, type Verdict } from './support/ocsp.js';
import { ensureSites } from './support/sites.js';

/**
 * The OCSP invariant: once POST /v1/revocations has answered, no OCSP answer from any site says "good"
 * for those serials. 64 clients poll both sites' responders (SHA-1 and SHA-256 CertIDs, GET and POST)
 * for a set of serials while the set is revoked in one request; every answer to a request sent after
 * the revocation returned is counted, for 20 rounds. Requests sent before it returned may say "good"
 * (they were answered about the past); none sent after may.
 */
const ROUNDS = 20;
const DEVICES = 30;
const CLIENTS = 64;

let config: FleetConfig;
let pool: Pool;
let issuer: IssuerRuntime;
let factoryToken: string;
let asker: OcspAsker;
const responders: ChildProcess[] = [];
const statusUrl = (site: 'a' | 'b') => `http://127.0.0.1:${config.sites[site].statusPort + 600}`;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', 'race-maker', `race-factory-${randomBytes(3).toString('hex')}`);
  issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 2, poolSize: 6 });
  asker = await OcspAsker.forIssuingCa(pool);
  // Responders on ports of their own publish CRLs under the deployment's CRL URL, not one made from their port.
  for (const site of ['a', 'b'] as const) {
    responders.push(startService(config, 'status-responder', { FLEETPKI_SITE: site, FLEETPKI_CRL_BASE_URL: config.crlBaseUrl, FLEETPKI_STATUS_PORT_A: String(config.sites.a.statusPort + 600), FLEETPKI_STATUS_PORT_B: String(config.sites.b.statusPort + 600) }));
    await waitForHttp(`${statusUrl(site)}/healthz`);
  }
});

after(async () => {
  await Promise.all(responders.map(stopProcess));
  await issuer?.close();
  await pool?.end();
});

async function enrolSome(n: number): Promise<Buffer[]> {
  const serials: Buffer[] = [];
  for (const key of generateDeviceKeys(n)) {
    const res = await issuer.app.inject({ method: 'POST', url: '/v1/enrolments', headers: { authorization: `Bearer ${factoryToken}` }, payload: { eui64: syntheticEui64('race-maker'), keyRole: 'digitalSignature', csr: key.csr.toString('base64') } });
    assert.equal(res.statusCode, 201, res.body);
    serials.push(Buffer.from(res.json<{ serial: string }>().serial, 'hex'));
  }
  return serials;
}

describe('OCSP never says "good" after a revocation returned', () => {
  it(`${ROUNDS} rounds, ${CLIENTS} clients, both sites, SHA-1 and SHA-256 CertIDs, GET and POST: zero "good" after the revocation`, async () => {
    let goodAfter = 0;
    let revokedAfter = 0;
    let goodBefore = 0;
    const bySite = { a: 0, b: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const serials = await enrolSome(DEVICES);
      // Warm the caches and the stored responses on both sites, both hash algorithms.
      for (const serial of serials) for (const site of ['a', 'b'] as const) for (const alg of ['sha1', 'sha256'] as const) await asker.ask(statusUrl(site), serial, alg, 'POST');
      let revokedAt = Infinity;
      let stop = false;
      const clients = Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; !stop; i++) {
          const site = (c + i) % 2 === 0 ? 'a' : 'b';
          const alg = (c >> 1) % 2 === 0 ? 'sha1' : 'sha256';
          const method = (c >> 2) % 2 === 0 ? 'POST' : 'GET';
          const sentAt = performance.now();
          const verdict = await asker.ask(statusUrl(site), serials[(c * 7 + i) % serials.length]!, alg, method).catch((): Verdict => 'other');
          if (sentAt > revokedAt) {
            if (verdict === 'good') goodAfter++;
            if (verdict === 'revoked') {
              revokedAfter++;
              bySite[site]++;
            }
          } else if (verdict === 'good') goodBefore++;
        }
      });
      await new Promise((r) => setTimeout(r, 300));
      // A fresh officer per round: 20 rounds of 30 would pass one person's cumulative dual-control threshold.
      const officerToken = await createToken(pool, 'revocation-officer', null, `race-officer-${round}-${randomBytes(3).toString('hex')}`);
      const revocation = await issuer.app.inject({ method: 'POST', url: '/v1/revocations', headers: { authorization: `Bearer ${officerToken}` }, payload: { serials: serials.map((s) => s.toString('hex')), reason: 'keyCompromise' } });
      revokedAt = performance.now();
      assert.equal(revocation.statusCode, 200, revocation.body);
      assert.equal(revocation.json<{ revoked: number }>().revoked, DEVICES);
      await new Promise((r) => setTimeout(r, 1_200));
      stop = true;
      await Promise.all(clients);
    }
    assert.equal(goodAfter, 0, `"good" answers to requests sent after the revocation returned: ${goodAfter}`);
    assert.ok(goodBefore > 0, 'the serials were "good" before (the test saw both states)');
    assert.ok(bySite.a > 0 && bySite.b > 0, `both sites answered "revoked" afterwards (a ${bySite.a}, b ${bySite.b})`);
    assert.ok(revokedAfter > ROUNDS * 100, `revoked answers afterwards: ${revokedAfter}`);
  });
});
