// Where the local simulation puts each member of the deployment when the file does not say.
import { NETNS_HOSTS, type EtcdMemberName } from './types.js';

/**
 * The host of a member in the local simulation: its network namespace's address on the private link
 * (FLEETPKI_NETNS=on, simulation.netns), else loopback.
 */
export function simulatedHost(name: EtcdMemberName, netns: boolean): string {
  return netns ? NETNS_HOSTS[name] : '127.0.0.1';
}

/** The network namespace a member's processes run in, in the simulation with namespaces. */
export function simulatedNetns(name: EtcdMemberName, netns: boolean): string | undefined {
  return netns ? `fleetpki-${name}` : undefined;
}
