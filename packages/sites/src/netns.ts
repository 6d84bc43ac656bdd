import { spawnSync } from 'node:child_process';
import { FleetError, type EtcdMemberName, type SimulationNet } from '@fleetpki/core';

/**
 * Two hosts (and a witness) on one machine: with FLEETPKI_NETNS=on, site A, site B and the witness each
 * run in a network namespace of their own, so replication, etcd, the API and a failover cross real
 * links that a test can cut. This machine's own namespace (the CLI, tests, drills) is the fourth node.
 *
 * The nodes are joined point to point, one veth pair per pair of nodes, rather than through a bridge:
 * cutting a site off from the others is then just taking its links to them down, while its link to
 * this machine stays up (so a test still watches it). tc filters would do the same on a bridge, but the
 * kernels here have no tc classifiers. Each node's address is a /32 on its loopback, routed over the
 * pair's link; with a link down its route goes, and nothing else leads there (no default routes).
 * Requires root (`ip netns`); without it the sites run on loopback ports.
 */
type Node = EtcdMemberName | 'host';
const NODES: readonly EtcdMemberName[] = ['a', 'b', 'witness'];
const SHORT: Readonly<Record<Node, string>> = { a: 'a', b: 'b', witness: 'w', host: 'h' };

/**
 * Everything here is named by the configuration's simulation block (namespaces, addresses, veth
 * prefix), so two simulations on one machine (the partition test's and the installed-layout test's,
 * from two checkouts at once) never touch each other's namespaces or links.
 */
type Net = SimulationNet;
const address = (net: Net, node: Node) => (node === 'host' ? net.rootHost : net.hosts[node]);

export function namespaceOf(net: Net, node: EtcdMemberName): string {
  return net.namespaces[node];
}

function ip(args: readonly string[], netns?: string): { ok: boolean; out: string } {
  const r = spawnSync('ip', netns ? ['-n', netns, ...args] : [...args], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function must(args: readonly string[], netns?: string): void {
  const r = ip(args, netns);
  if (!r.ok) throw new FleetError('SITES_NETNS_FAILED', `ip ${netns ? `-n ${netns} ` : ''}${args.join(' ')} failed: ${r.out}`);
}

/** The interface on `from`'s side of the link between `from` and `to` (names fit IFNAMSIZ). */
function linkName(net: Net, from: Node, to: Node): string {
  return `${net.linkPrefix}-${SHORT[from]}${SHORT[to]}`;
}

function nsOf(net: Net, node: Node): string | undefined {
  return node === 'host' ? undefined : namespaceOf(net, node);
}

/** Brings the link between two nodes up, with each side's route to the other (idempotent). */
function linkUp(net: Net, x: Node, y: Node): void {
  const [xi, yi] = [linkName(net, x, y), linkName(net, y, x)];
  const [xNs, yNs] = [nsOf(net, x), nsOf(net, y)];
  const [xHas, yHas] = [ip(['link', 'show', xi], xNs).ok, ip(['link', 'show', yi], yNs).ok];
  if (!xHas || !yHas) {
    // Half a pair: its other end went with a namespace that a killed run left behind (a process still
    // in it keeps it alive after `ip netns del`). Deleting this end deletes the pair; then a new one.
    if (xHas) must(['link', 'del', xi], xNs);
    if (yHas) must(['link', 'del', yi], yNs);
    must(['link', 'add', xi, 'type', 'veth', 'peer', 'name', yi]);
    if (xNs) must(['link', 'set', xi, 'netns', xNs]);
    if (yNs) must(['link', 'set', yi, 'netns', yNs]);
  }
  for (const [node, iface, other] of [[x, xi, y], [y, yi, x]] as const) {
    must(['link', 'set', iface, 'up'], nsOf(net, node));
    must(['route', 'replace', `${address(net, other)}/32`, 'dev', iface, 'src', address(net, node)], nsOf(net, node));
  }
}

/** Creates the namespaces and links (a no-op for what exists). */
export function ensureNetns(net: Net): void {
  if (process.getuid?.() !== 0) throw new FleetError('SITES_NETNS_UNAVAILABLE', 'FLEETPKI_NETNS=on needs root (ip netns); run as root, or leave it off to run the sites on loopback');
  const existing = ip(['netns', 'list']).out;
  for (const node of NODES) {
    const ns = namespaceOf(net, node);
    if (!new RegExp(`^${ns}( |$)`, 'm').test(existing)) must(['netns', 'add', ns]);
    must(['link', 'set', 'lo', 'up'], ns);
    if (!ip(['addr', 'show', 'dev', 'lo'], ns).out.includes(`${address(net, node)}/32`)) must(['addr', 'add', `${address(net, node)}/32`, 'dev', 'lo'], ns);
  }
  if (!ip(['addr', 'show', 'dev', 'lo']).out.includes(`${net.rootHost}/32`)) must(['addr', 'add', `${net.rootHost}/32`, 'dev', 'lo']);
  for (const node of NODES) linkUp(net, 'host', node);
  for (const [x, y] of [['a', 'b'], ['a', 'witness'], ['b', 'witness']] as const) linkUp(net, x, y);
}

/** Cuts `site` off from the other site and the witness (its link to this machine stays): a partition. */
export function cutOff(net: Net, site: EtcdMemberName): void {
  for (const other of NODES.filter((n) => n !== site)) must(['link', 'set', linkName(net, site, other), 'down'], namespaceOf(net, site));
}

/** Heals the partition made by cutOff. */
export function reconnect(net: Net, site: EtcdMemberName): void {
  for (const other of NODES.filter((n) => n !== site)) linkUp(net, site, other);
}

/**
 * Removes the namespaces and their links (`sites down --netns`); the processes in them must be stopped.
 * Deleting a namespace deletes the veth ends in it, and with them their peers (this machine's ends too).
 */
export function removeNetns(net: Net): void {
  for (const node of NODES) ip(['netns', 'del', namespaceOf(net, node)]);
  for (const node of NODES) ip(['link', 'del', linkName(net, 'host', node)]);
  ip(['addr', 'del', `${net.rootHost}/32`, 'dev', 'lo']);
}

/** Whether this machine can run the sites in namespaces (root, iproute2 with netns). */
export function netnsAvailable(): boolean {
  return process.getuid?.() === 0 && ip(['netns', 'list']).ok;
}
