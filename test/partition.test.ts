import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { approvedSwitchoverForDrill, runFailback } from '@fleetpki/drills';
import { promoteStandby, readTopology, startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createPool, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureStandbyKeys } from './support/custody.js';
import { OcspAsker, statusUrl, type Verdict } from './support/ocsp.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * A partition between the sites (site B's replication cut, both sites' processes still running) and the
 * failover that follows. Site A cannot renew its lease (a renewal commits only once B applied it), so
 * within the lease time it stops issuing and stops answering "good"; B keeps answering (it has every
 * commit A acknowledged). B is then promoted (after A's lease lapsed) and a meter is revoked there: site A, still
 * running on its own stale data, never calls that meter "good". Failback restores A as the active site.
 */
const OFFSET = 700;
let config: FleetConfig;
let pool: Pool;
let asker: OcspAsker;
let factoryToken: string;
let officerToken: string;
const children: ChildProcess[] = [];
const apiUrl = (site: 'a' | 'b') => `http://127.0.0.1:${config.sites[site].apiPort + OFFSET}`;
const ports = () => ({
  FLEETPKI_API_PORT_A: String(config.sites.a.apiPort + OFFSET),
  FLEETPKI_API_PORT_B: String(config.sites.b.apiPort + OFFSET),
  FLEETPKI_STATUS_PORT_A: String(config.sites.a.statusPort + OFFSET),
  FLEETPKI_STATUS_PORT_B: String(config.sites.b.statusPort + OFFSET),
  // CRLs these processes publish (and certificates they issue) name the deployment's CRL URL, not one made from these ports.
  FLEETPKI_CRL_BASE_URL: config.crlBaseUrl,
});

function start(name: string, site: 'a' | 'b'): ChildProcess {
  const child = startService(config, name, { FLEETPKI_SITE: site, ...ports() });
  children.push(child);
  return child;
}

/** Cuts (or restores) site B's replication from A: B's WAL receiver is pointed at a port nobody listens on. */
async function setStandbyConnection(cut: boolean): Promise<void> {
  const b = createPool(`postgres://${config.pgUser}@127.0.0.1:${config.sites.b.pgPort}/${config.pgDatabase}`, { max: 1 });
  try {
    if (cut) await b.query(`ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1 connect_timeout=1'`);
    else await b.query('ALTER SYSTEM RESET primary_conninfo');
    await b.query('SELECT pg_reload_conf()');
  } finally {
    await b.end();
  }
}

async function enrol(eui64: string, csr: Buffer): Promise<{ status: number; body: { serial?: string; code?: string } }> {
  const res = await fetch(`${apiUrl('a')}/v1/enrolments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ eui64, keyRole: 'digitalSignature', csr: csr.toString('base64') }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as { serial?: string; code?: string } };
}

const started = Date.now();
/** Where the minutes go (the failback copies a cluster): printed as test comments. */
const step = (what: string) => console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

const ask = (site: 'a' | 'b', serial: Buffer): Promise<Verdict> => asker.ask(statusUrl(config, site, OFFSET), serial).catch((): Verdict => 'other');

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  await ensureStandbyKeys(pool);
  asker = await OcspAsker.forIssuingCa(pool);
  factoryToken = await createToken(pool, 'factory', 'partition-maker', `partition-factory-${randomBytes(3).toString('hex')}`);
  officerToken = await createToken(pool, 'revocation-officer', null, `partition-officer-${randomBytes(3).toString('hex')}`);
});

after(async () => {
  await Promise.all(children.map(stopProcess));
  // Whatever happened above, B streams from its configured primary again and A is the active site.
  await setStandbyConnection(false).catch(() => undefined);
  if (readTopology(config).rebuild) await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config) });
  await pool?.end();
});

describe('a partition between the sites', () => {
  it('A loses its lease and stops vouching, B promoted after the lease lapsed, a meter revoked on B is never "good" at A; failback restores A', async () => {
    start('issuer-api', 'a');
    start('status-responder', 'a');
    start('status-responder', 'b');
    await waitForHttp(`${apiUrl('a')}/readyz`, 60_000);
    for (const site of ['a', 'b'] as const) await waitForHttp(`${statusUrl(config, site, OFFSET)}/healthz`, 60_000);

    const [k1, k2, k3] = generateDeviceKeys(3);
    const meters: Buffer[] = [];
    for (const key of [k1!, k2!]) {
      const res = await enrol(`EE${randomBytes(7).toString('hex')}`, key.csr);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      meters.push(Buffer.from(res.body.serial!, 'hex'));
    }
    const [compromised, healthy] = meters as [Buffer, Buffer];
    await waitFor('both sites to say "good" before the partition', async () => ((await ask('a', compromised)) === 'good' && (await ask('b', compromised)) === 'good' ? true : undefined), 20_000, 200);

    step('both sites say good; cutting the replication to B');
    // The partition.
    const cutAt = Date.now();
    await setStandbyConnection(true);
    const lost = await waitFor(
      'site A to lose its lease',
      async () => {
        const res = await fetch(`${apiUrl('a')}/readyz`, { signal: AbortSignal.timeout(5_000) });
        return res.status === 503 ? ((await res.json()) as { code: string; message: string }) : undefined;
      },
      config.siteLease.leaseMs * 4,
      100,
    );
    assert.equal(lost.code, 'SITE_NOT_LEASED');
    assert.match(lost.message, /lease ran out/);
    console.log(`# site A's /readyz said SITE_NOT_LEASED ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut (lease ${config.siteLease.leaseMs} ms)`);
    await waitFor('site A to stop saying "good"', async () => ((await ask('a', healthy)) !== 'good' ? true : undefined), config.siteLease.leaseMs * 4, 100);
    // B, cut off, still vouches: A cannot commit a revocation B has not applied (synchronous remote_apply).
    assert.equal(await ask('b', healthy), 'good', 'the synchronous standby keeps answering "good" from data that has every acknowledged revocation');
    const refused = await enrol(`EE${randomBytes(7).toString('hex')}`, k3!.csr);
    assert.deepEqual([refused.status, refused.body.code], [503, 'SITE_NOT_LEASED'], 'no issuance without the lease');

    step('site A lost its lease; promoting B');
    // Failover: B is promoted once A's lease (as B last saw it) has lapsed, and a meter is revoked there.
    const promoted = await promoteStandby(config, config.sites.b, 'partition test');
    // B is a primary now; its WAL receiver setting must not follow it into later rebuilds (pg_rewind copies it).
    await setStandbyConnection(false);
    assert.ok(promoted.epoch > 0);
    start('issuer-api', 'b');
    await waitForHttp(`${apiUrl('b')}/readyz`, 60_000);
    const revoked = await fetch(`${apiUrl('b')}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${officerToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ serials: [compromised.toString('hex')], reason: 'keyCompromise' }),
    });
    assert.equal(revoked.status, 200, await revoked.text());
    await waitFor('site B to say "revoked"', async () => ((await ask('b', compromised)) === 'revoked' ? true : undefined), 20_000, 100);
    await waitFor('site B, now active, to vouch for the healthy meter', async () => ((await ask('b', healthy)) === 'good' ? true : undefined), 20_000, 100);

    step('revoked on B');
    // Site A, cut off with its old data, is asked about the revoked meter for a while: never "good".
    const seenAtA = new Map<Verdict, number>();
    for (let i = 0; i < 50; i++) {
      const v = await ask('a', compromised);
      seenAtA.set(v, (seenAtA.get(v) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(seenAtA.get('good') ?? 0, 0, `site A answered ${JSON.stringify(Object.fromEntries(seenAtA))}`);
    const readyA = await fetch(`${apiUrl('a')}/readyz`);
    assert.equal(readyA.status, 503);

    step('site A never said good; failback');
    // Failback: A's processes stop, A is rebuilt as B's standby and switched back under an approval.
    await Promise.all(children.splice(0).map(stopProcess));
    const back = await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config) });
    assert.deepEqual([back.rebuilt, back.active, back.switched_back], ['a', 'a', true]);
    assert.deepEqual(readTopology(config), { primary: 'a' });
    step('failback done');
    start('status-responder', 'a');
    await waitForHttp(`${statusUrl(config, 'a', OFFSET)}/healthz`, 60_000);
    await waitFor('site A, active again, to say "revoked" for the meter revoked on B', async () => ((await ask('a', compromised)) === 'revoked' ? true : undefined), 20_000, 100);
    await waitFor('site A to vouch for the healthy meter again', async () => ((await ask('a', healthy)) === 'good' ? true : undefined), 20_000, 100);
  });
});
