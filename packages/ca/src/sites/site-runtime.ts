import { isFleetError, type DatabaseClient, type FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore, type KeyStore } from '@fleetpki/hsm';
import type { Pool, SessionWaits } from '@fleetpki/store';
import { loadSiteIssuer, type SiteIssuer } from '../issuance/site-issuer.js';
import { openSitePool } from './postgres-store.js';
import { SiteGuard } from './site-guard.js';
import { SiteLease } from './site-lease.js';

/** One pool of a service process: its size and, beside the main pool, what it is for. */
export interface SitePoolSpec {
  readonly max: number;
  readonly idleInTransactionTimeoutMs?: number;
  /** Bounds on lock waits and statements (the daemons' pools: a pass must fail, not hang, behind a lock). */
  readonly waits?: SessionWaits;
}

export interface SiteRuntimeSpec<P extends string = never> {
  /** Whose database role the pools and the lease connect as. */
  readonly service: Exclude<DatabaseClient, 'operator'>;
  /** The main pool (loading the issuer reads through it), then any others, opened in this order. */
  readonly pool: SitePoolSpec;
  readonly pools?: Readonly<Record<P, SitePoolSpec>>;
  /** Which pool the site guard asks (default the main one): the issuer API keeps a reserved one for it. */
  readonly guardPool?: NoInfer<P>;
  readonly hsm: { readonly sessions: number; readonly signingThreads?: number };
  /** Which pool gets this name in PostgreSQL's application_name (the main one's purpose). */
  readonly purpose?: string;
}

/**
 * What every service process of a site opens before it serves, in this order: its pools, the site
 * lease (started: the first read of etcd is awaited), the site guard, the HSM key store and the
 * device issuing CA (its key checked against its certificate). close() ends them in reverse.
 */
export interface SiteRuntime<P extends string = never> {
  readonly config: FleetConfig;
  readonly pool: Pool;
  readonly pools: Readonly<Record<P, Pool>>;
  readonly lease: SiteLease;
  readonly guard: SiteGuard;
  readonly keyStore: KeyStore;
  readonly issuer: SiteIssuer;
  close(): Promise<void>;
}

/**
 * A site runtime that serves without the CA key: the status responder and the daemons of a standby
 * whose HSM has no clone yet serve what is stored. keyStore and issuer are undefined then.
 */
export interface KeyOptionalSiteRuntime<P extends string = never> extends Omit<SiteRuntime<P>, 'keyStore' | 'issuer'> {
  readonly keyStore: KeyStore | undefined;
  readonly issuer: SiteIssuer | undefined;
}

/**
 * A site runtime without the HSM: one role's pool, the site lease and the guard. The daemons' reconcilers
 * (no signature) open one per database role their jobs work as, and ask its guard before each pass.
 */
export type RoleSiteRuntime = Omit<SiteRuntime, 'keyStore' | 'issuer' | 'pools'>;

/** How the parts are opened; tests give their own (the defaults open PostgreSQL, etcd and the HSM). */
export interface SiteRuntimeSeams {
  openPool?(spec: SitePoolSpec, purpose: string | undefined): Promise<Pool>;
  openLease?(): SiteLease;
  openKeyStore?(): Promise<KeyStore>;
  loadIssuer?(pool: Pool, keyStore: KeyStore): Promise<SiteIssuer>;
}

/** Runs the closers in reverse order of opening; every one runs, the first failure is rethrown. */
async function closeAll(closers: readonly (() => Promise<unknown>)[]): Promise<void> {
  let failure: unknown;
  for (const close of [...closers].reverse()) {
    try {
      await close();
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
}

/**
 * Opens a service's site runtime (SiteRuntime); on a failure part way, closes what was opened, in
 * reverse, and rethrows the failure.
 */
export async function openSiteRuntime<P extends string = never>(config: FleetConfig, spec: SiteRuntimeSpec<P>, seams: SiteRuntimeSeams = {}): Promise<SiteRuntime<P>> {
  return (await open(config, spec, seams, 'required')) as SiteRuntime<P>;
}

/**
 * As openSiteRuntime, but a site whose HSM cannot give the CA key (a FleetError or an HSM_ error while
 * opening the key store or loading the issuer) still opens, without keyStore and issuer; any other
 * failure is thrown as there.
 */
export async function openSiteRuntimeKeyOptional<P extends string = never>(config: FleetConfig, spec: SiteRuntimeSpec<P>, seams: SiteRuntimeSeams = {}): Promise<KeyOptionalSiteRuntime<P>> {
  return open(config, spec, seams, 'optional');
}

/**
 * As openSiteRuntime for a job that signs nothing: `service`'s pool, the lease and the guard; no HSM
 * session is opened (RoleSiteRuntime).
 */
export async function openRoleSiteRuntime(config: FleetConfig, spec: Omit<SiteRuntimeSpec, 'hsm' | 'pools' | 'guardPool'>, seams: SiteRuntimeSeams = {}): Promise<RoleSiteRuntime> {
  const { keyStore: _keyStore, issuer: _issuer, pools: _pools, ...runtime } = await open(config, { ...spec, hsm: { sessions: 0 } }, seams, 'none');
  return runtime;
}

/** pkcs11js sets a numeric code on its errors: only a string code can name an HSM_ error. */
function isKeyUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return isFleetError(err) || (typeof code === 'string' && code.startsWith('HSM_'));
}

/** required: no site without the CA key; optional: without it when the HSM cannot give it; none: no HSM at all. */
type KeyMode = 'required' | 'optional' | 'none';

async function open<P extends string>(config: FleetConfig, spec: SiteRuntimeSpec<P>, seams: SiteRuntimeSeams, key: KeyMode): Promise<KeyOptionalSiteRuntime<P>> {
  const site = config.sites[config.site];
  const closers: (() => Promise<unknown>)[] = [];
  const openPool = async (s: SitePoolSpec, purpose?: string): Promise<Pool> => {
    const pool = seams.openPool
      ? await seams.openPool(s, purpose)
      : await openSitePool(config, spec.service, s.max, { ...(purpose ? { purpose } : {}), ...(s.idleInTransactionTimeoutMs !== undefined ? { idleInTransactionTimeoutMs: s.idleInTransactionTimeoutMs } : {}), ...(s.waits ? { waits: s.waits } : {}) });
    closers.push(() => pool.end());
    return pool;
  };
  try {
    const pool = await openPool(spec.pool, spec.purpose);
    const pools = {} as Record<P, Pool>;
    for (const [purpose, s] of Object.entries(spec.pools ?? {}) as [P, SitePoolSpec][]) pools[purpose] = await openPool(s, purpose);
    const lease = seams.openLease ? seams.openLease() : new SiteLease(config, site.id, site.serviceDatabaseUrls[spec.service]);
    closers.push(() => lease.close());
    await lease.start();
    const guard = new SiteGuard(spec.guardPool !== undefined ? pools[spec.guardPool] : pool, config, lease);
    let keyStore: KeyStore | undefined;
    let issuer: SiteIssuer | undefined;
    // A job that signs nothing opens no HSM session at all.
    if (key !== 'none') {
      try {
        keyStore = seams.openKeyStore ? await seams.openKeyStore() : await openSiteKeyStore(config, site, { sessions: spec.hsm.sessions, ...(spec.hsm.signingThreads !== undefined ? { signingThreads: spec.hsm.signingThreads } : {}) });
        const opened = keyStore;
        closers.push(() => opened.close());
        issuer = seams.loadIssuer ? await seams.loadIssuer(pool, keyStore) : await loadSiteIssuer(config, pool, keyStore);
      } catch (err) {
        if (key !== 'optional' || !isKeyUnavailable(err)) throw err;
        // No usable key here: serve what is stored. The key store, if it opened, closes now.
        if (keyStore) await closers.pop()!();
        keyStore = undefined;
        issuer = undefined;
      }
    }
    return { config, pool, pools, lease, guard, keyStore, issuer, close: () => closeAll(closers) };
  } catch (err) {
    await closeAll(closers).catch(() => undefined);
    throw err;
  }
}
