import { createPublicKey, randomUUID } from 'node:crypto';
import { FleetError, eui64FromBytes, type DeviceKeyBundleHeader, type DeviceKeyLine, type SiteId } from '@fleetpki/core';
import { diversificationData, type DeviceKeyHsm, type DeviceKeyRole, type MasterKeyStore } from '@fleetpki/hsm';
import type { Pool } from '@fleetpki/store';
import { custodyStoreOf } from './postgres-store.js';
import type { DeviceKeyStore } from './store.js';

export const DEVICE_KEY_ROLES: readonly DeviceKeyRole[] = ['mac', 'enc'];

export interface DeviceKeyBundleRequest {
  readonly manufacturerId: string;
  readonly roles: readonly DeviceKeyRole[];
  readonly context?: string;
  readonly actor: string;
  /** Devices known up front: their ownership is checked before the HSM agrees a transport key. */
  readonly devices?: readonly Buffer[];
}

export interface DeviceKeyBundle {
  readonly header: DeviceKeyBundleHeader;
  readonly keys: DeviceKeyLine[];
}

export interface OpenBundle {
  readonly header: DeviceKeyBundle['header'];
  wrap(eui64s: readonly Buffer[]): Promise<DeviceKeyBundle['keys']>;
  /** Releases the bundle's HSM session and audits the bundle; safe to call more than once. */
  close(): Promise<void>;
}

export interface DeviceKeyBundleLimits {
  /** Bundles open at once (openBundle); each holds an HSM session until it closes. */
  readonly concurrency: number;
  /** A bundle still open this long after it opened is closed: its session released, further wraps refused. */
  readonly maxMs: number;
}

export const DEFAULT_DEVICE_KEY_BUNDLE_LIMITS: DeviceKeyBundleLimits = { concurrency: 2, maxMs: 600_000 };

/** The uncompressed P-256 point of a factory's registered transport key (SPKI DER). */
export function transportPoint(spki: Buffer): Buffer {
  const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  if (jwk.crv !== 'P-256') throw new FleetError('TRANSPORT_KEY_INVALID', `a factory transport key must be P-256 (got ${jwk.crv ?? jwk.kty})`, { httpStatus: 400 });
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** Does `role` have an active master key (then a new one is a rotation, under dual control)? */
export async function hasActiveMasterKey(store: Pick<DeviceKeyStore, 'listMasterKeys'>, role: DeviceKeyRole): Promise<boolean> {
  return (await store.listMasterKeys()).some((m) => m.role === role && m.status === 'active');
}

/**
 * Per-device symmetric keys: master keys per role and version live in the HSM; each device key is
 * diversified there and leaves wrapped under a transport key agreed with the factory (ephemeral-static
 * ECDH), with its check value stored here and nothing else.
 */
export class DeviceKeyService {
  private openBundles = 0;
  private readonly store: DeviceKeyStore;

  /** `source`: the port, or (transitional, for callers not moved yet) a pool it is built on. */
  constructor(
    source: DeviceKeyStore | Pool,
    private readonly keyStore: MasterKeyStore & DeviceKeyHsm,
    private readonly site: SiteId,
    private readonly limits: DeviceKeyBundleLimits = DEFAULT_DEVICE_KEY_BUNDLE_LIMITS,
  ) {
    this.store = custodyStoreOf(source);
  }


  /** A new master key version for `role`, generated in the HSM; earlier versions stay for existing devices. */
  async createMasterKey(role: DeviceKeyRole, actor: string): Promise<{ role: DeviceKeyRole; version: number; label: string }> {
    if (!DEVICE_KEY_ROLES.includes(role)) throw new FleetError('DEVICE_KEY_ROLE_INVALID', `device key role must be one of ${DEVICE_KEY_ROLES.join(', ')}`, { httpStatus: 400 });
    const version = Math.max(0, ...(await this.store.listMasterKeys()).filter((m) => m.role === role).map((m) => m.version)) + 1;
    const label = `dk-${role}-v${version}`;
    const { id } = await this.keyStore.generateMasterKey(label);
    await this.store.recordMasterKey(role, version, label, id, { site: this.site, actor, action: 'device-key.master.create', subject: label, details: { role, version } });
    return { role, version, label };
  }

  /**
   * Opens a bundle for one manufacturer's registered transport key: one ephemeral ECDH, then device
   * keys (of the manufacturer's own devices only: EUI64_OUTSIDE_RANGE otherwise) wrapped in as many calls as the caller likes (a million devices stream through in pages).
   * `context` names the bundle (a batch id) and is bound into the KEK. Diversification is deterministic,
   * so a bundle made again for the same devices carries the same keys (differently wrapped).
   *
   * A streamed bundle holds an HSM session for as long as its reader takes: at most
   * `limits.concurrency` are open at once (beyond: 429 DEVICE_KEY_BUNDLES_BUSY), and each is closed
   * after `limits.maxMs` however slowly it is read (`onExpired` is told, so the caller can end its
   * response; further wraps are refused with DEVICE_KEY_BUNDLE_EXPIRED).
   */
  async openBundle(request: DeviceKeyBundleRequest, options: { onExpired?: () => void } = {}): Promise<OpenBundle> {
    if (this.openBundles >= this.limits.concurrency) {
      throw new FleetError('DEVICE_KEY_BUNDLES_BUSY', `${this.openBundles} device-key bundles are being downloaded from this server, the most it serves at once (each holds an HSM session); try again shortly`, {
        httpStatus: 429,
        details: { limit: this.limits.concurrency, retryAfterSeconds: 10 },
      });
    }
    this.openBundles++;
    let counted = true;
    // The slot is the HSM session: free again as soon as the session is closed, whoever closed it.
    const uncount = () => {
      if (counted) this.openBundles--;
      counted = false;
    };
    try {
      return await this.makeBundle(request, { ...options, onSessionClosed: uncount });
    } catch (err) {
      uncount();
      throw err;
    }
  }

  private async makeBundle(request: DeviceKeyBundleRequest, events: { onExpired?: () => void; onSessionClosed?: () => void } = {}): Promise<OpenBundle> {
    const spki = await this.store.manufacturerTransportKey(request.manufacturerId);
    if (spki === undefined) throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${request.manufacturerId}`, { httpStatus: 404 });
    if (spki === null) throw new FleetError('TRANSPORT_KEY_MISSING', `manufacturer ${request.manufacturerId} has no registered transport key: \`pnpm fleetpki manufacturers set-transport-key\``, { httpStatus: 409 });
    if (request.roles.length === 0 || request.roles.some((r) => !DEVICE_KEY_ROLES.includes(r))) throw new FleetError('DEVICE_KEY_ROLE_INVALID', `device key roles must be among ${DEVICE_KEY_ROLES.join(', ')}`, { httpStatus: 400 });
    const active = new Map((await this.store.listMasterKeys()).filter((m) => m.status === 'active').map((m) => [m.role, m]));
    for (const role of request.roles) if (!active.has(role)) throw new FleetError('DEVICE_MASTER_KEY_MISSING', `no active ${role} master key: \`pnpm fleetpki keys master create --role ${role}\``, { httpStatus: 409 });
    // Devices known up front are refused before the HSM agrees a transport key, and before a bundle is audited as handed out.
    if (request.devices) await this.store.assertDevicesOwned(request.manufacturerId, request.devices);
    const context = request.context ?? randomUUID();
    const contextBytes = Buffer.from(`${request.manufacturerId}/${context}`);
    const transport = await this.keyStore.openDeviceKeyTransport(transportPoint(spki), contextBytes);
    const store = this.store;
    const maxMs = this.limits.maxMs;
    let devices = 0;
    let expired = false;
    // A wrap in progress finishes on its session before the session closes.
    let inFlight: Promise<unknown> = Promise.resolve();
    let closing: Promise<void> | undefined;
    const finish = (): Promise<void> =>
      (closing ??= (async () => {
        clearTimeout(deadline);
        await inFlight.catch(() => undefined);
        try {
          await transport.close();
        } finally {
          events.onSessionClosed?.();
          await store.appendAudit({ site: this.site, actor: request.actor, action: 'device-key.bundle', subject: context, details: { manufacturer: request.manufacturerId, devices, roles: request.roles, ...(expired ? { expired: true, maxSeconds: maxMs / 1000 } : {}) } });
        }
      })());
    const deadline = setTimeout(() => {
      expired = true;
      events.onExpired?.();
      // Whoever closes the bundle next gets this promise (and its failure, if the audit write failed).
      finish().catch(() => undefined);
    }, maxMs);
    deadline.unref();
    return {
      header: {
        type: 'device-key-transport',
        format: 'fleetpki-device-keys/1',
        diversification: 'fleetpki-div-aescbc-v1',
        kdf: 'fleetpki-ecdh-aescbc-v1',
        wrap: 'aes-key-wrap-rfc3394',
        ephemeralPublicKey: transport.ephemeralPoint.toString('base64'),
        context: contextBytes.toString('base64'),
        manufacturer: request.manufacturerId,
      },
      wrap(eui64s) {
        if (expired || closing) {
          return Promise.reject(
            new FleetError('DEVICE_KEY_BUNDLE_EXPIRED', expired ? `the device-key bundle was open for ${maxMs / 1000} s, the most one may take (FLEETPKI_DEVICE_KEY_BUNDLE_MAX_S); download it again: the same keys come back` : 'the device-key bundle is closed', { httpStatus: 408 }),
          );
        }
        const work = (async () => {
          // Only the manufacturer's own devices: inside its EUI-64 ranges, registered to nobody else (checked
          // already when these are the devices given up front).
          if (eui64s !== request.devices) await store.assertDevicesOwned(request.manufacturerId, eui64s);
          const items = eui64s.flatMap((eui64) => request.roles.map((role) => ({ eui64, role, master: active.get(role)! })));
          const wrapped = await transport.wrapDeviceKeys(items.map((i) => ({ masterLabel: i.master.keyLabel, data: diversificationData(i.eui64, i.role, i.master.version, 1) })));
          await store.saveDeviceKeyChecks(context, items.map((item, k) => ({ eui64: item.eui64, role: item.role, version: item.master.version, kcv: wrapped[k]!.kcv })));
          devices += eui64s.length;
          return items.map((item, k) => ({ type: 'device-key' as const, eui64: eui64FromBytes(item.eui64), role: item.role, version: item.master.version, wrapped: wrapped[k]!.wrapped.toString('base64'), kcv: wrapped[k]!.kcv.toString('hex') }));
        })();
        inFlight = work;
        return work;
      },
      close: finish,
    };
  }

  /** A whole bundle at once (online enrolment, CLI, tests): bounded work with no reader to wait for, so outside the streamed bundles' cap. */
  async issueBundle(request: DeviceKeyBundleRequest & { eui64s: readonly Buffer[] }): Promise<DeviceKeyBundle> {
    const bundle = await this.makeBundle({ ...request, devices: request.eui64s });
    try {
      return { header: bundle.header, keys: await bundle.wrap(request.eui64s) };
    } finally {
      await bundle.close();
    }
  }
}
