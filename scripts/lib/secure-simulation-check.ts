/**
 * Before the attack tests run on the secure simulation (scripts/test-secure.sh): each link admits a client
 * configured from the file and refuses one without TLS or without credentials, on both sites and every
 * etcd member. Without the positive checks a refusal could be anything (a wrong port, a missing
 * program); without the negative ones the run would prove nothing about TLS and authentication.
 * Reads the configuration FLEETPKI_CONFIG names; exits 1 naming the first link that does not behave.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig, programEnvironment, SITE_IDS } from '@fleetpki/core';
import { assertRedisLink, redisLink } from '@fleetpki/queue';
import { createPool, pgLinkSecurity } from '@fleetpki/store';

const config = loadConfig();
const failures: string[] = [];

async function expect(what: string, admitted: boolean, attempt: () => Promise<unknown>): Promise<void> {
  let error: string | undefined;
  try {
    await attempt();
  } catch (err) {
    error = (err as Error).message;
  }
  if (admitted && error !== undefined) failures.push(`${what}: refused (${error})`);
  if (!admitted && error === undefined) failures.push(`${what}: admitted`);
}

// libpq's variables stay out of it, as out of every program (programEnvironment): this checks what the
// servers take, not the shell's settings.
const clean = programEnvironment();
for (const k of Object.keys(process.env)) if (!(k in clean)) delete process.env[k];

async function query(url: string, security: ReturnType<typeof pgLinkSecurity>): Promise<void> {
  const pool = createPool(url, { max: 1, connectionTimeoutMillis: 5_000, ...(security ? { security } : {}) });
  try {
    await pool.query('SELECT 1');
  } finally {
    await pool.end();
  }
}

function curl(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      execFileSync('curl', ['-sf', '--max-time', '5', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      resolve();
    } catch (err) {
      reject(err as Error);
    }
  });
}

const wrongPassword = join(mkdtempSync(join(tmpdir(), 'fleetpki-secure-check-')), 'wrong');
writeFileSync(wrongPassword, 'not-the-password', { mode: 0o600 });
const owner = pgLinkSecurity(config, 'owner');
if (!owner || !config.tls.caBundle) throw new Error('secure-simulation-check: the configuration has no tls.postgres or tls.caBundle');
for (const id of SITE_IDS) {
  const site = config.sites[id];
  await expect(`PostgreSQL ${id} (${site.host}:${site.pgPort}) with TLS and the owner's password`, true, () => query(site.databaseUrl, owner));
  await expect(`PostgreSQL ${id} without TLS or password`, false, () => query(site.databaseUrl, undefined));
  await expect(`PostgreSQL ${id} with TLS and a wrong password`, false, () => query(site.databaseUrl, { ...owner, passwordFile: wrongPassword }));
  await expect(`Redis ${id} with TLS and its ACL user`, true, () => assertRedisLink(redisLink(config, site, 'operator'), 5_000));
  await expect(`Redis ${id} without TLS or user`, false, () => assertRedisLink({ url: site.redisUrl }, 5_000));
}
const client = config.tls.parts.etcdClient;
if (!client) throw new Error('secure-simulation-check: the configuration has no tls.etcdClient');
for (const member of config.consensus.members) {
  const url = new URL(member.clientUrl);
  await expect(`etcd ${member.name} (${url.host}) over TLS with the host's client pair`, true, () => curl(['--cacert', config.tls.caBundle!, '--cert', client.cert, '--key', client.key, `https://${url.host}/health`]));
  await expect(`etcd ${member.name} over plain HTTP`, false, () => curl([`http://${url.host}/health`]));
  // The client certificate gets through TLS; a read still needs an etcd user.
  await expect(`etcd ${member.name}: a read without a user`, false, () => curl(['--cacert', config.tls.caBundle!, '--cert', client.cert, '--key', client.key, '-X', 'POST', '-d', '{"key":"Lw=="}', `https://${url.host}/v3/kv/range`]));
}
rmSync(dirname(wrongPassword), { recursive: true, force: true });
if (failures.length > 0) {
  console.error(`secure simulation: ${failures.length} link(s) not as they must be:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`secure simulation: PostgreSQL and Redis on both sites and ${config.consensus.members.length} etcd members admit the configured clients and refuse the others`);
