// Issue 34, Redis: a throw-away Redis started by the sites' own ensureRedis with TLS and ACL users, on a
// port and folder of its own (the shared test sites stay open on loopback). The attacks come first:
// no password, a wrong password, a server certificate from another CA, a plaintext client, and the
// service user reaching past its queue's keys or for the admin commands.
// Attack test: not run again on the secure simulation: it starts parts of its own with TLS and authentication on.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FleetError, loadConfig, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { assertRedisLink, ChunkQueue, createRedisConnection, probeRedis, queuePrefix, REDIS_CLIENTS, redisLink, redisUser, startChunkWorker, type ChunkJob, type RedisLink } from '@fleetpki/queue';
import { ensureRedis, stopRedis } from '@fleetpki/sites';
import { freePort } from '../scripts/lib/free-port.js';
import { makeTestTlsCa, type TestTlsCa } from './support/tls-material.js';

let dir: string;
let site: SiteConfig;
let config: FleetConfig;
let link: RedisLink;
let password: string;
let ca: TestTlsCa;
let otherCa: TestTlsCa;

function withPassword(value: string): FleetConfig {
  const file = join(dir, `pw-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { ...config, secrets: { ...config.secrets, redis: file } };
}

function isFleetError(code: string, ...mustName: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof FleetError, `expected a FleetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const part of mustName) assert.ok(err.message.includes(part), `"${err.message}" should name ${part}`);
    assert.ok(!err.message.includes(password), 'the message must never carry the password');
    return true;
  };
}

before(async () => {
  const base = loadConfig();
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-redis-tls-'));
  const port = await freePort();
  site = { ...base.sites.a, dir, netns: undefined, host: '127.0.0.1', redisHost: '127.0.0.1', redisPort: port, redisUrl: `redis://127.0.0.1:${port}` };
  ca = makeTestTlsCa('fleetpki redis test CA', join(dir, 'ca'));
  otherCa = makeTestTlsCa('an unrelated CA', join(dir, 'other-ca'));
  const server = ca.server('redis', ['localhost', '127.0.0.1']);
  password = randomBytes(24).toString('base64url');
  config = { ...base, tls: { caBundle: ca.caPem, parts: { redis: server } }, secrets: base.secrets };
  config = withPassword(password);
  assert.equal(await ensureRedis(site, config), 'started');
  link = redisLink(config, site);
});

after(async () => {
  if (site) await stopRedis(site);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Redis with TLS and ACL users', () => {
  it('serves TLS only, from an ACL file of its own (0600, no password in clear)', async () => {
    assert.match(link.url, /^rediss:\/\/127\.0\.0\.1:\d+/);
    const acl = join(dir, 'redis', 'users.acl');
    assert.equal(statSync(acl).mode & 0o777, 0o600);
    const text = readFileSync(acl, 'utf8');
    assert.match(text, /^user default off/m);
    for (const client of REDIS_CLIENTS) assert.match(text, new RegExp(`^user ${redisUser(client)} `, 'm'));
    assert.ok(!text.includes(password));
    const health = await probeRedis(link);
    assert.equal(health.up, true, health.error);
  });

  it('refuses a plaintext client on the TLS port, clearly', async () => {
    const plain = await probeRedis(site.redisUrl, 1_000);
    assert.equal(plain.up, false);
    assert.equal(plain.failure?.code, 'REDIS_TLS_REQUIRED', plain.error);
    assert.ok(plain.error?.includes(`127.0.0.1:${site.redisPort}`));
  });

  it('refuses a client without a password (the default user is off)', async () => {
    const anonymous: RedisLink = { url: link.url, ...(link.tls ? { tls: link.tls } : {}) };
    await assert.rejects(assertRedisLink(anonymous), isFleetError('REDIS_AUTH_FAILED', 'default', `127.0.0.1:${site.redisPort}`));
  });

  it('refuses a wrong password, at a client and at a restart of the part', async () => {
    const wrong = withPassword(randomBytes(24).toString('base64url'));
    await assert.rejects(assertRedisLink(redisLink(wrong, site)), isFleetError('REDIS_AUTH_FAILED', `"${redisUser('operator')}"`, `127.0.0.1:${site.redisPort}`, 'secrets.redis'));
    await assert.rejects(ensureRedis(site, wrong), isFleetError('REDIS_AUTH_FAILED', `127.0.0.1:${site.redisPort}`));
  });

  it('refuses a server whose certificate is not from the configured CA', async () => {
    const untrusting = { ...config, tls: { ...config.tls, caBundle: otherCa.caPem } };
    await assert.rejects(assertRedisLink(redisLink(untrusting, site)), isFleetError('REDIS_TLS_UNTRUSTED', `127.0.0.1:${site.redisPort}`, 'tls.caBundle'));
    await assert.rejects(ensureRedis(site, untrusting), isFleetError('REDIS_TLS_UNTRUSTED'));
  });

  it('stops at start, with the reason Redis logged, when its TLS key does not match its certificate', async () => {
    const mismatched: FleetConfig = { ...config, tls: { ...config.tls, parts: { redis: { cert: config.tls.parts.redis!.cert, key: ca.server('other', ['127.0.0.1']).key } } } };
    const port = await freePort();
    const second = { ...site, dir: join(dir, 'second'), redisPort: port, redisUrl: `redis://127.0.0.1:${port}` };
    try {
      await assert.rejects(ensureRedis(second, mismatched), isFleetError('REDIS_NOT_STARTED', `127.0.0.1:${port}`, 'TLS'));
    } finally {
      await stopRedis(second);
    }
  });

  it('refuses half a configuration (TLS without the password file)', () => {
    const half = { ...config, secrets: { ...config.secrets, redis: undefined } };
    assert.throws(() => redisLink(half, site), isFleetError('CONFIG_INVALID', 'secrets.redis'));
  });

  it('lets the issuer API enqueue and a batch worker take the chunk through BullMQ over TLS, each as its own user', async () => {
    const queue = new ChunkQueue(redisLink(config, site, 'issuer-api'), config.pgDatabase);
    let taken: (job: ChunkJob) => void = () => undefined;
    const got = new Promise<ChunkJob>((resolve) => {
      taken = resolve;
    });
    const errors: Error[] = [];
    const worker = startChunkWorker(redisLink(config, site, 'batch-worker'), config.pgDatabase, async (job) => taken(job), { concurrency: 1, onError: (err) => errors.push(err) });
    try {
      await queue.enqueue([{ batchId: 'tls-batch', chunkNo: 7 }]);
      const job = await Promise.race([got, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no job taken; worker errors: ${errors.map((e) => e.message).join('; ')}`)), 15_000))]);
      assert.deepEqual(job, { batchId: 'tls-batch', chunkNo: 7 });
      assert.equal(await queue.workers(), 1);
      // Redis knows who is who: the worker's connections are the batch worker's user.
      const operator = createRedisConnection(link);
      const clients = String(await operator.call('CLIENT', 'LIST').finally(() => operator.disconnect()));
      assert.match(clients, new RegExp(`user=${redisUser('batch-worker')} `));
      assert.match(clients, new RegExp(`user=${redisUser('issuer-api')} `));
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it('keeps the service user to its queue keys, without admin commands', async () => {
    const redis = createRedisConnection(link);
    try {
      const own = `${queuePrefix(config.pgDatabase)}:probe`;
      // The control: the same connection may write its own prefix, so the refusals below are the ACL's.
      assert.equal(await redis.set(own, 'x'), 'OK');
      await redis.del(own);
      await assert.rejects(redis.flushall(), /NOPERM/);
      await assert.rejects(redis.flushdb(), /NOPERM/);
      await assert.rejects(redis.config('GET', '*'), /NOPERM/);
      await assert.rejects(redis.keys('*'), /NOPERM/);
      await assert.rejects(redis.call('ACL', 'LIST'), /NOPERM/);
      await assert.rejects(redis.set('elsewhere', 'x'), /NOPERM/);
      await assert.rejects(redis.get(`${queuePrefix('another_database')}:x`), /NOPERM/);
      await assert.rejects(redis.eval("return redis.call('SET', KEYS[1], 'x')", 1, 'elsewhere'), /NOPERM|No permissions/);
    } finally {
      redis.disconnect();
    }
  });
});
