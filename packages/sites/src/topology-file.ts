import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, SITE_IDS, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';

/**
 * Which site's PostgreSQL the agents last made the primary, kept beside the clusters so `sites up`
 * restarts each in its current role. (Who is the CA site is etcd's decision; the CA's own record, with
 * epochs, is site_state in the database; this file only tells the local tooling how to start things.)
 */
export interface Topology {
  readonly primary: SiteId;
}

function topologyFile(config: FleetConfig): string {
  return join(config.stateDir, 'topology.json');
}

export function readTopology(config: FleetConfig): Topology {
  const file = topologyFile(config);
  if (!existsSync(file)) return { primary: 'a' };
  const value = JSON.parse(readFileSync(file, 'utf8')) as Partial<Topology>;
  if (!SITE_IDS.includes(value.primary as SiteId)) throw new FleetError('TOPOLOGY_INVALID', `${file}: "primary" must be one of ${SITE_IDS.join(', ')}`);
  return { primary: value.primary! };
}

export function writeTopology(config: FleetConfig, topology: Topology): void {
  writeFileSync(topologyFile(config), JSON.stringify(topology) + '\n');
}

/** The primary and standby sites in the current topology. */
export function currentRoles(config: FleetConfig): { primary: SiteConfig; standby: SiteConfig } {
  const { primary } = readTopology(config);
  return { primary: config.sites[primary], standby: config.sites[primary === 'a' ? 'b' : 'a'] };
}
