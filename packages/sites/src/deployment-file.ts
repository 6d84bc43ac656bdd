// `sites up` as one generator of the deployment's configuration file: the local topology written as the
// file an operator writes for real hosts (infra/fleetpki.example.yaml), which the processes it starts
// read (FLEETPKI_CONFIG). The code is then not the only place the topology is known.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SITE_IDS, renderConfigFile, type DeploymentInput, type FleetConfig, type SiteId } from '@fleetpki/core';

/** Where the deployment's generated file lives: its own folder (a test run's is its temporary folder). */
export function deploymentFile(config: FleetConfig): string {
  return join(config.deploymentDir, 'fleetpki.yaml');
}

/**
 * The local topology as a configuration file's document: hosts, ports, etcd members, the HSM module and
 * token prefix, the folders. What is derived from these (each site's folder, token labels, PIN files,
 * SoftHSM's files, the CRL URL) is left to the defaults, so a variable that moves its base (a test
 * run's FLEETPKI_DEPLOYMENT_DIR, FLEETPKI_STATUS_PORT_A) moves it too, as without a file.
 */
export function localDeployment(config: FleetConfig): DeploymentInput {
  const site = (id: SiteId) => {
    const s = config.sites[id];
    const status = { port: s.statusPort, ...(s.statusHttpPort !== undefined ? { httpPort: s.statusHttpPort } : {}) };
    return { host: s.host, postgres: { port: s.pgPort }, redis: { port: s.redisPort }, api: { port: s.apiPort }, status, patroni: { port: s.patroniPort } };
  };
  return {
    paths: { state: config.stateDir, deployment: config.deploymentDir },
    database: { name: config.pgDatabase, owner: config.pgUser, ha: config.databaseHa },
    simulation: { netns: config.simulation.netns, namespacePrefix: config.simulation.namespaces.a.replace(/-a$/, ''), subnet: config.simulation.subnet, linkPrefix: config.simulation.linkPrefix },
    sites: { a: site('a'), b: site('b') },
    etcd: { members: Object.fromEntries(config.consensus.members.map((m) => [m.name, { clientUrl: m.clientUrl, peerUrl: m.peerUrl }])), prefix: config.consensus.prefix },
    hsm: { tokenPrefix: config.hsmTokenPrefix, a: { modulePath: config.sites.a.hsm.modulePath }, b: { modulePath: config.sites.b.hsm.modulePath } },
    // The processes `sites up` starts reach the parts as it does: https etcd URLs without the client pair
    // would leave them no way in (no plaintext fallback). Keys as the resolved files, never their content.
    ...(config.tls.caBundle || Object.keys(config.tls.parts).length > 0 ? { tls: { ...(config.tls.caBundle ? { caBundle: config.tls.caBundle } : {}), ...config.tls.parts } } : {}),
  };
}

/** Writes the file when its text changed; its path, and whether it was written. */
export function writeDeploymentFile(config: FleetConfig): { path: string; written: boolean } {
  const path = deploymentFile(config);
  const text = renderConfigFile(localDeployment(config), [
    'fleetpki: the local two-site simulation, written by `fleetpki sites up` (do not edit: it is written again).',
    `Sites ${SITE_IDS.join(' and ')} and the witness on this machine; for real hosts see infra/fleetpki.example.yaml.`,
    'Processes started by `sites up` read it (FLEETPKI_CONFIG), each told its site by FLEETPKI_SITE; a FLEETPKI_* variable overrides its key.',
  ]);
  const written = !existsSync(path) || readFileSync(path, 'utf8') !== text;
  if (written) writeFileSync(path, text, { mode: 0o644 });
  return { path, written };
}

/**
 * The file the processes `sites up` starts read: the one this process was configured from when that is
 * a host's own (FLEETPKI_CONFIG: an installed layout, one file per host), else the generated one
 * (undefined when it was not written yet). A host's own file carries what the generated one never does
 * (secrets.*), so a process started from it must not be pointed at the generated one.
 */
export function hostOwnFile(config: FleetConfig): string | undefined {
  return config.configFile !== undefined && config.configFile !== deploymentFile(config) ? config.configFile : undefined;
}
