import type { Etcd3 } from 'etcd3';
import type { FleetConfig, SiteId } from '@fleetpki/core';

/**
 * orders/<id>: the CLI asks a site agent to carry out a two-person decision it recorded in the database
 * first (site_orders, migrations/0040). Writing here proves nothing (the operator's credential may write
 * orders/): the agent acts only on the database's row, and answers in the same key. The key lives on the
 * writer's lease (ORDER_TTL_SECONDS), so orders do not pile up in etcd.
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

function parse(key: string, value: string): SiteOrderEntry | undefined {
  try {
    const v = JSON.parse(value) as { order?: SiteOrderRequest; answer?: SiteOrderAnswer };
    if (!v.order || typeof v.order.action !== 'string' || typeof v.order.database !== 'string') return undefined;
    return { id: key.slice('orders/'.length), order: v.order, ...(v.answer ? { answer: v.answer } : {}) };
  } catch {
    return undefined;
  }
}

export async function readSiteOrders(client: Etcd3, config: FleetConfig): Promise<SiteOrderEntry[]> {
  const all = await client.namespace(config.consensus.prefix).getAll().prefix('orders/').strings();
  return Object.entries(all).flatMap(([k, v]) => parse(k, v) ?? []);
}

export async function readSiteOrderEntry(client: Etcd3, config: FleetConfig, id: string): Promise<SiteOrderEntry | undefined> {
  const value = await client.namespace(config.consensus.prefix).get(`orders/${id}`).string();
  return value ? parse(`orders/${id}`, value) : undefined;
}

/** The agent's answer, in the same key and on the order's lease (it goes with the order). */
export async function answerSiteOrder(client: Etcd3, config: FleetConfig, entry: SiteOrderEntry, answer: SiteOrderAnswer): Promise<void> {
  await client.namespace(config.consensus.prefix).put(`orders/${entry.id}`).value(JSON.stringify({ order: entry.order, answer })).ignoreLease();
}
