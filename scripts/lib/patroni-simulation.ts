/**
 * The two-site simulation with Patroni running PostgreSQL (database.ha patroni, issue 35): one Patroni per
 * site on the pair's etcd, synchronous_mode_strict, pg_rewind. scripts/test-patroni.sh runs the failover
 * tests on it, so the invariants (RPO 0, no duplicate serial, a fenced site neither issues nor vouches)
 * are checked against Patroni's decisions, not only the site agent's own.
 *
 * Usage: patroni-simulation.ts DIR. Writes DIR/fleetpki.yaml (printed on stdout). Its own ports,
 * namespaces, token prefix and folder (the plain simulation's ports + 5000), so it runs beside the plain
 * and the secure simulation of the same checkout. Below 32768, where Linux's ephemeral range starts: a
 * listening port up there can be taken at any moment by an outgoing connection (SITES_PORT_IN_USE at random).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const site = (n: number) => ({ host: '127.0.0.1', postgres: { port: 20432 + n }, redis: { port: 21379 + n }, api: { port: 23080 + n }, status: { port: 23090 + n }, patroni: { port: 23008 + n }, metrics: { agent: 23102 + 10 * n } });
const member = (n: number) => ({ clientUrl: `http://127.0.0.1:${17379 + 2 * n}`, peerUrl: `http://127.0.0.1:${17380 + 2 * n}` });

const arg = process.argv[2];
if (!arg) {
  console.error('usage: patroni-simulation.ts DIR');
  process.exit(2);
}
const dir = resolve(arg);
// Patroni and PostgreSQL run as the postgres OS user, which must traverse the folder to its data.
mkdirSync(dir, { recursive: true });
chmodSync(dir, 0o755);
const doc = {
  this: { site: 'a' },
  paths: { state: join(dir, 'state'), deployment: join(dir, 'deployment') },
  database: { name: 'fleetpki', ha: 'patroni' },
  simulation: { netns: false, namespacePrefix: 'fppat', subnet: '10.80.0.0/24', linkPrefix: 'fpp' },
  sites: { a: site(0), b: site(1) },
  etcd: { members: { a: member(0), b: member(1), witness: member(2) } },
  hsm: { tokenPrefix: 'fppat' },
};
const file = join(dir, 'fleetpki.yaml');
// JSON is YAML: no YAML writer needed.
writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
console.log(file);
