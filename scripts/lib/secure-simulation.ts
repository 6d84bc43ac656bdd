/**
 * The two-site simulation with TLS and authentication on every link (issue 34): PostgreSQL takes only
 * scram-sha-256 over TLS (clients and replication), Redis only its ACL users over TLS, etcd only TLS
 * with its users, the API and the status responders HTTPS. scripts/test-secure.sh runs the attack tests on it, so each attack is tried
 * against parts that authenticate, not only against the trusting loopback simulation.
 *
 * Usage: secure-simulation.ts DIR [--ha patroni]. With --ha patroni, Patroni runs PostgreSQL (issue 35) on
 * ports of its own (the plain simulation's + 7000), so it runs beside the agent-run secure simulation. Writes DIR/fleetpki.yaml (printed on stdout) and DIR/pgpass. Its
 * own ports, namespaces, token prefix and folder, so it runs beside the plain simulation of the same
 * checkout. The passwords are kept from an earlier run (the clusters in DIR/state were made with them);
 * the TLS material is made anew each time (a throw-away CA valid two days, from openssl: a run must not
 * depend on a ceremony), so the parts must be started after this ran (test-secure.sh stops them first).
 *
 * The issuer API and the status responders serve HTTPS too (tls.api, tls.status): the tests build their
 * URLs with localUrl (test/support/sites.ts), which follows the configuration.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATABASE_ROLES } from '@fleetpki/core';
import { makeTestTlsCa } from '../../test/support/tls-material.js';

const PG_ROLES = ['owner', 'issuer', 'worker', 'status', 'operator'] as const;
const TLS_PARTS = ['api', 'status', 'postgres', 'redis', 'etcd', 'etcdPeer', 'etcdClient'] as const;
const arg = process.argv[2];
const ha = process.argv[3] === '--ha' ? process.argv[4] : 'agent';
if (!arg || (ha !== 'agent' && ha !== 'patroni')) {
  console.error('usage: secure-simulation.ts DIR [--ha patroni]');
  process.exit(2);
}
/**
 * The plain simulation's ports + 10000 (PostgreSQL 25432/25433, Redis 26379/26380, etcd 22379..22384); + 7000
 * under Patroni. All below 32768, where Linux's ephemeral range starts: a listening port up there can be
 * taken at any moment by some process's outgoing connection (SITES_PORT_IN_USE at random).
 */
const offset = ha === 'patroni' ? 7_000 : 10_000;
const site = (n: number) => ({ host: '127.0.0.1', postgres: { port: 15432 + offset + n }, redis: { port: 16379 + offset + n }, api: { port: 18080 + offset + n }, status: { port: 18090 + offset + n }, patroni: { port: 18008 + offset + n }, metrics: { agent: 18102 + offset + 10 * n } });
const member = (n: number) => ({ clientUrl: `https://127.0.0.1:${12379 + offset + 2 * n}`, peerUrl: `https://127.0.0.1:${12380 + offset + 2 * n}` });
const prefix = ha === 'patroni' ? 'fpsp' : 'fpsec';
const dir = resolve(arg);
// The clusters run as the postgres OS user, which must traverse the folder to its data and key.
mkdirSync(dir, { recursive: true });
chmodSync(dir, 0o755);
const secretsDir = join(dir, 'secrets');
mkdirSync(secretsDir, { recursive: true, mode: 0o700 });

/** A password file, kept when there is one: the clusters and etcd of DIR/state were made with it. */
function secret(name: string): string {
  const file = join(secretsDir, name);
  if (!existsSync(file)) writeFileSync(file, randomBytes(18).toString('base64url'), { mode: 0o600 });
  return file;
}

const ca = makeTestTlsCa('fleetpki secure simulation CA', join(dir, 'tls'));
const pairs = Object.fromEntries(
  TLS_PARTS.map((part) => {
    // The etcd client certificate has no CN, as `fleetpki tls internal` issues it: etcd's JSON gateway
    // (Patroni's way in) refuses a client certificate with one, and a CN naming an etcd user would be its login.
    const pair = part === 'etcdClient' ? ca.client(part, undefined) : ca.server(part, ['127.0.0.1', 'localhost']);
    return [part, { cert: pair.cert, key: pair.key }];
  }),
);
const postgres = Object.fromEntries(PG_ROLES.map((role) => [role, secret(`pg-${role}`)])) as Record<(typeof PG_ROLES)[number], string>;
const doc = {
  this: { site: 'a' },
  paths: { state: join(dir, 'state'), deployment: join(dir, 'deployment') },
  database: { name: 'fleetpki', ha },
  simulation: { netns: false, namespacePrefix: prefix, subnet: ha === 'patroni' ? '10.81.0.0/24' : '10.79.0.0/24', linkPrefix: ha === 'patroni' ? 'fpq' : 'fps' },
  sites: { a: site(0), b: site(1) },
  etcd: { members: { a: member(0), b: member(1), witness: member(2) } },
  hsm: { tokenPrefix: prefix },
  secrets: { postgres, redis: secret('redis') },
  tls: { caBundle: ca.caPem, ...pairs },
};
// The CA's key is not needed once the pairs are issued: no key that could sign for the links stays behind.
rmSync(join(dir, 'tls', 'ca.key'), { force: true });
const file = join(dir, 'fleetpki.yaml');
// JSON is YAML: no YAML writer needed.
writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);

// The test harness's own connections (pools the tests open on a URL, the installation guard) are not
// configured from the file: libpq's variables give them TLS (PGSSLMODE, NODE_EXTRA_CA_CERTS) and the
// passwords (PGPASSFILE), one line per role.
const user = (role: (typeof PG_ROLES)[number]) => (role === 'owner' ? 'fleetpki' : DATABASE_ROLES[role]);
writeFileSync(join(dir, 'pgpass'), PG_ROLES.map((role) => `*:*:*:${user(role)}:${readFileSync(postgres[role], 'utf8').trim()}\n`).join(''), { mode: 0o600 });
console.log(file);
