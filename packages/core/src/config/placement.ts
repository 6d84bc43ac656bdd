// Where the local simulation puts each member of the deployment when the file does not say.
import { NETNS_HOSTS, NETNS_SUBNET, type EtcdMemberName, type SimulationNet } from './types.js';

/** The simulation block as the file writes it (schema.ts), before it is resolved. */
export interface SimulationInput {
  readonly netns: boolean;
  readonly namespacePrefix?: string | undefined;
  readonly subnet?: string | undefined;
  readonly linkPrefix?: string | undefined;
}

const OCTET: Readonly<Record<EtcdMemberName | 'host', number>> = { a: 1, b: 2, witness: 3, host: 254 };

/** An address of the simulation's /24: `.1` a, `.2` b, `.3` the witness, `.254` this machine. */
function inSubnet(subnet: string | undefined, node: EtcdMemberName | 'host'): string {
  const base = (subnet ?? NETNS_SUBNET).replace(/\.0\/24$/, '');
  return `${base}.${OCTET[node]}`;
}

/**
 * The host of a member in the local simulation: its network namespace's address on the private link
 * (FLEETPKI_NETNS=on, simulation.netns), else loopback.
 */
export function simulatedHost(name: EtcdMemberName, sim: SimulationInput): string {
  if (!sim.netns) return '127.0.0.1';
  return sim.subnet === undefined ? NETNS_HOSTS[name] : inSubnet(sim.subnet, name);
}

/** The network namespace a member's processes run in, in the simulation with namespaces. */
export function simulatedNetns(name: EtcdMemberName, sim: SimulationInput): string | undefined {
  return sim.netns ? `${sim.namespacePrefix ?? 'fleetpki'}-${name}` : undefined;
}

/** The whole simulation block resolved (FleetConfig.simulation). */
export function resolveSimulation(sim: SimulationInput): SimulationNet {
  const members = ['a', 'b', 'witness'] as const;
  const on = { ...sim, netns: true };
  return {
    netns: sim.netns,
    namespaces: Object.fromEntries(members.map((m) => [m, simulatedNetns(m, on)!])) as Record<EtcdMemberName, string>,
    hosts: Object.fromEntries(members.map((m) => [m, simulatedHost(m, on)])) as Record<EtcdMemberName, string>,
    rootHost: inSubnet(sim.subnet, 'host'),
    subnet: sim.subnet ?? NETNS_SUBNET,
    linkPrefix: sim.linkPrefix ?? 'fpk',
  };
}
