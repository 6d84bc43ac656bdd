import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { freePort } from '../../scripts/lib/free-port.js';

let n = 0;

/**
 * The configuration of a throw-away etcd cluster of its own (test/etcd-tls.test.ts, tls-internal.test.ts):
 * `yaml` through a configuration file and loadConfig, as a service reads it, with its state under `dir`.
 * The file places the cluster's members; the shared sites' etcd ports must not.
 */
export function etcdTlsConfig(dir: string, yaml: string): FleetConfig {
  const file = join(dir, `fleetpki-${process.pid}-${n++}.yaml`);
  writeFileSync(file, yaml);
  const env: NodeJS.ProcessEnv = { ...process.env, FLEETPKI_CONFIG: file, FLEETPKI_STATE_DIR: join(dir, 'state') };
  for (const v of ['FLEETPKI_ETCD_PORT_A', 'FLEETPKI_ETCD_PORT_B', 'FLEETPKI_ETCD_PORT_WITNESS', 'FLEETPKI_NETNS']) delete env[v];
  return loadConfig(env);
}

/** `members:` of three https members (a, b, witness) on free loopback ports, for etcdTlsConfig's YAML. */
export async function etcdTlsMembers(): Promise<string> {
  const ports: number[] = [];
  while (ports.length < 6) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const member = (i: number) => `{ clientUrl: 'https://127.0.0.1:${ports[2 * i]}', peerUrl: 'https://127.0.0.1:${ports[2 * i + 1]}' }`;
  return `members: { a: ${member(0)}, b: ${member(1)}, witness: ${member(2)} }`;
}
