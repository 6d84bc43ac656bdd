import type { Etcd3 } from 'etcd3';
import type { FleetConfig, SiteId } from '@fleetpki/core';

/**
 * orders/<id>: the CLI asks a site agent to carry out a two-person decision it recorded in the database
 * first (site_orders, migrations/0040). Writing here proves nothing (the operator's credential may write
 * orders/): the agent acts only on the database's row, and answers under answers/<id>, which only the
 * agents may write. Both keys live on leases of ORDER_TTL_SECONDS, so orders do not pile up in etcd.
 */
export type SiteOrderKind = 'site.unprotect' | 'site.protect' | 'site.failover';

export interface SiteOrderRequest {
  readonly action: SiteOrderKind;
  /** The CA database holding the row (the installation's, or a test deployment's on the same clusters). */
  readonly database: string;
  /** site.failover: the site to take over. */
  readonly to?: SiteId;
  readonly at: string;
}

export interface SiteOrderAnswer {
  readonly by: SiteId;
  readonly at: string;
  readonly done?: Record<string, unknown>;
  readonly refused?: { readonly code: string; readonly message: string };
}

export interface SiteOrderEntry {
  readonly id: string;
  readonly order: SiteOrderRequest;
  readonly answer?: SiteOrderAnswer;
}

/** Longer than an agent needs to act on an order (the row's freshness limit, then a failover's wait). */
export const ORDER_TTL_SECONDS = 600;

export async function putSiteOrder(client: Etcd3, config: FleetConfig, id: string, order: SiteOrderRequest): Promise<void> {
  const ns = client.namespace(config.consensus.prefix);
  const lease = ns.lease(ORDER_TTL_SECONDS, { autoKeepAlive: false });
  await lease.put(`orders/${id}`).value(JSON.stringify({ order }));
  // The lease keeps its TTL without us: nothing else to hold.
  lease.release();
}

function parse(key: string, value: string, answer: string | undefined): SiteOrderEntry | undefined {
  try {
    // Only the order part of orders/<id>: an answer there would be the writer's own (see answerSiteOrder).
    const v = JSON.parse(value) as { order?: SiteOrderRequest };
    if (!v.order || typeof v.order.action !== 'string' || typeof v.order.database !== 'string') return undefined;
    const a = answer ? (JSON.parse(answer) as SiteOrderAnswer) : undefined;
    return { id: key.slice('orders/'.length), order: v.order, ...(a ? { answer: a } : {}) };
  } catch {
    return undefined;
  }
}

export async function readSiteOrders(client: Etcd3, config: FleetConfig): Promise<SiteOrderEntry[]> {
  const ns = client.namespace(config.consensus.prefix);
  const [orders, answers] = await Promise.all([ns.getAll().prefix('orders/').strings(), ns.getAll().prefix('answers/').strings()]);
  return Object.entries(orders).flatMap(([k, v]) => parse(k, v, answers[`answers/${k.slice('orders/'.length)}`]) ?? []);
}

export async function readSiteOrderEntry(client: Etcd3, config: FleetConfig, id: string): Promise<SiteOrderEntry | undefined> {
  const ns = client.namespace(config.consensus.prefix);
  const [value, answer] = await Promise.all([ns.get(`orders/${id}`).string(), ns.get(`answers/${id}`).string()]);
  return value ? parse(`orders/${id}`, value, answer ?? undefined) : undefined;
}

/**
 * The agent's answer, under answers/<id>: a key only the agents may write (etcd-auth.ts), so whoever may
 * put orders (the operator's credential) can neither answer an order in an agent's name ("protected
 * again" while nothing happened) nor keep an agent from answering. It lives as long as an order does.
 */
export async function answerSiteOrder(client: Etcd3, config: FleetConfig, entry: SiteOrderEntry, answer: SiteOrderAnswer): Promise<void> {
  const lease = client.namespace(config.consensus.prefix).lease(ORDER_TTL_SECONDS, { autoKeepAlive: false });
  await lease.put(`answers/${entry.id}`).value(JSON.stringify(answer));
  lease.release();
}
