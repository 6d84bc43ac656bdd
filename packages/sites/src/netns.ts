import { spawnSync } from 'node:child_process';
import { FleetError, NETNS_HOSTS, NETNS_ROOT_HOST, type EtcdMemberName } from '@fleetpki/core';

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
const address = (node: Node) => (node === 'host' ? NETNS_ROOT_HOST : NETNS_HOSTS[node]);

export function namespaceOf(node: EtcdMemberName): string {
  return `fleetpki-${node}`;
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
function linkName(from: Node, to: Node): string {
  return `fpk-${SHORT[from]}${SHORT[to]}`;
}

function nsOf(node: Node): string | undefined {
  return node === 'host' ? undefined : namespaceOf(node);
}

/** Brings the link between two nodes up, with each side's route to the other (idempotent). */
function linkUp(x: Node, y: Node): void {
  const [xi, yi] = [linkName(x, y), linkName(y, x)];
  const [xHas, yHas] = [ip(['link', 'show', xi], nsOf(x)).ok, ip(['link', 'show', yi], nsOf(y)).ok];
  if (!xHas || !yHas) {
    // Half a pair: its other end went with a namespace that a killed run left behind (a process still
    // in it keeps it alive after `ip netns del`). Deleting this end deletes the pair; then a new one.
    if (xHas) must(['link', 'del', xi], nsOf(x));
    if (yHas) must(['link', 'del', yi], nsOf(y));
    must(['link', 'add', xi, 'type', 'veth', 'peer', 'name', yi]);
    if (nsOf(x)) must(['link', 'set', xi, 'netns', nsOf(x)!]);
    if (nsOf(y)) must(['link', 'set', yi, 'netns', nsOf(y)!]);
  }
  for (const [node, iface, other] of [[x, xi, y], [y, yi, x]] as const) {
    must(['link', 'set', iface, 'up'], nsOf(node));
    must(['route', 'replace', `${address(other)}/32`, 'dev', iface, 'src', address(node)], nsOf(node));
  }
}

/** Creates the namespaces and links (a no-op for what exists). */
export function ensureNetns(): void {
  if (process.getuid?.() !== 0) throw new FleetError('SITES_NETNS_UNAVAILABLE', 'FLEETPKI_NETNS=on needs root (ip netns); run as root, or leave it off to run the sites on loopback');
  const existing = ip(['netns', 'list']).out;
  for (const node of NODES) {
    const ns = namespaceOf(node);
    if (!new RegExp(`^${ns}( |$)`, 'm').test(existing)) must(['netns', 'add', ns]);
    must(['link', 'set', 'lo', 'up'], ns);
    if (!ip(['addr', 'show', 'dev', 'lo'], ns).out.includes(`${address(node)}/32`)) must(['addr', 'add', `${address(node)}/32`, 'dev', 'lo'], ns);
  }
  if (!ip(['addr', 'show', 'dev', 'lo']).out.includes(`${NETNS_ROOT_HOST}/32`)) must(['addr', 'add', `${NETNS_ROOT_HOST}/32`, 'dev', 'lo']);
  for (const node of NODES) linkUp('host', node);
  for (const [x, y] of [['a', 'b'], ['a', 'witness'], ['b', 'witness']] as const) linkUp(x, y);
}

/** Cuts `site` off from the other site and the witness (its link to this machine stays): a partition. */
export function cutOff(site: EtcdMemberName): void {
  for (const other of NODES.filter((n) => n !== site)) must(['link', 'set', linkName(site, other), 'down'], namespaceOf(site));
}

/** Heals the partition made by cutOff. */
export function reconnect(site: EtcdMemberName): void {
  for (const other of NODES.filter((n) => n !== site)) linkUp(site, other);
}

/** Removes the namespaces and their links (`sites down --netns`); the processes in them must be stopped. */
export function removeNetns(): void {
  for (const node of NODES) ip(['netns', 'del', namespaceOf(node)]);
  ip(['addr', 'del', `${NETNS_ROOT_HOST}/32`, 'dev', 'lo']);
}

/** Whether this machine can run the sites in namespaces (root, iproute2 with netns). */
export function netnsAvailable(): boolean {
  return process.getuid?.() === 0 && ip(['netns', 'list']).ok;
}
