import { createPublicKey, randomUUID } from 'node:crypto';
import { FleetError, eui64FromBytes, type SiteId } from '@fleetpki/core';
import { diversificationData, type DeviceKeyRole, type KeyStore } from '@fleetpki/hsm';
import { appendAuditEvents, getManufacturerTransportKey, insertMasterKey, listMasterKeys, saveDeviceKeyChecks, withTransaction, type Pool } from '@fleetpki/store';

export const DEVICE_KEY_ROLES: readonly DeviceKeyRole[] = ['mac', 'enc'];

export interface DeviceKeyBundle {
  readonly header: {
    readonly type: 'device-key-transport';
    readonly format: 'fleetpki-device-keys/1';
    readonly diversification: 'fleetpki-div-aescbc-v1';
    readonly kdf: 'fleetpki-ecdh-aescbc-v1';
    readonly wrap: 'aes-key-wrap-rfc3394';
    readonly ephemeralPublicKey: string;
    readonly context: string;
    readonly manufacturer: string;
  };
  readonly keys: { type: 'device-key'; eui64: string; role: DeviceKeyRole; version: number; wrapped: string; kcv: string }[];
}

/** The uncompressed P-256 point of a factory's registered transport key (SPKI DER). */
export function transportPoint(spki: Buffer): Buffer {
  const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  if (jwk.crv !== 'P-256') throw new FleetError('TRANSPORT_KEY_INVALID', `a factory transport key must be P-256 (got ${jwk.crv ?? jwk.kty})`, { httpStatus: 400 });
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/**
 * Per-device symmetric keys: master keys per role and version live in the HSM; each device key is
 * diversified there and leaves wrapped under a transport key agreed with the factory (ephemeral-static
 * ECDH), with its check value stored here and nothing else.
 */
export class DeviceKeyService {
  constructor(
    private readonly pool: Pool,
    private readonly keyStore: KeyStore,
    private readonly site: SiteId,
  ) {}

  /** A new master key version for `role`, generated in the HSM; earlier versions stay for existing devices. */
  async createMasterKey(role: DeviceKeyRole, actor: string): Promise<{ role: DeviceKeyRole; version: number; label: string }> {
    if (!DEVICE_KEY_ROLES.includes(role)) throw new FleetError('DEVICE_KEY_ROLE_INVALID', `device key role must be one of ${DEVICE_KEY_ROLES.join(', ')}`, { httpStatus: 400 });
    const version = Math.max(0, ...(await listMasterKeys(this.pool)).filter((m) => m.role === role).map((m) => m.version)) + 1;
    const label = `dk-${role}-v${version}`;
    await this.keyStore.generateMasterKey(label);
    await withTransaction(this.pool, async (client) => {
      await insertMasterKey(client, role, version, label);
      await appendAuditEvents(client, [{ site: this.site, actor, action: 'device-key.master.create', subject: label, details: { role, version } }]);
    });
    return { role, version, label };
  }

  /**
   * Diversifies and wraps the active version of each role's key for each device, for one manufacturer's
   * registered transport key. `context` names the bundle (a batch id); it is bound into the KEK.
   */
  async issueBundle(request: { manufacturerId: string; eui64s: readonly Buffer[]; roles: readonly DeviceKeyRole[]; context?: string; actor: string }): Promise<DeviceKeyBundle> {
    const spki = await getManufacturerTransportKey(this.pool, request.manufacturerId);
    if (spki === undefined) throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${request.manufacturerId}`, { httpStatus: 404 });
    if (spki === null) throw new FleetError('TRANSPORT_KEY_MISSING', `manufacturer ${request.manufacturerId} has no registered transport key: \`pnpm fleetpki manufacturers set-transport-key\``, { httpStatus: 409 });
    const active = new Map((await listMasterKeys(this.pool)).filter((m) => m.status === 'active').map((m) => [m.role, m]));
    for (const role of request.roles) if (!active.has(role)) throw new FleetError('DEVICE_MASTER_KEY_MISSING', `no active ${role} master key: \`pnpm fleetpki keys master create --role ${role}\``, { httpStatus: 409 });
    const context = request.context ?? randomUUID();
    const contextBytes = Buffer.from(`${request.manufacturerId}/${context}`);
    const transport = await this.keyStore.openDeviceKeyTransport(transportPoint(spki), contextBytes);
    try {
      const items = request.eui64s.flatMap((eui64) => request.roles.map((role) => ({ eui64, role, master: active.get(role)! })));
      const wrapped = await transport.wrapDeviceKeys(items.map((i) => ({ masterLabel: i.master.keyLabel, data: diversificationData(i.eui64, i.role, i.master.version, 1) })));
      const keys = items.map((item, k) => ({ type: 'device-key' as const, eui64: eui64FromBytes(item.eui64), role: item.role, version: item.master.version, wrapped: wrapped[k]!.wrapped.toString('base64'), kcv: wrapped[k]!.kcv.toString('hex') }));
      await withTransaction(this.pool, async (client) => {
        await saveDeviceKeyChecks(client, context, items.map((item, k) => ({ eui64: item.eui64, role: item.role, version: item.master.version, kcv: wrapped[k]!.kcv })));
        await appendAuditEvents(client, [{ site: this.site, actor: request.actor, action: 'device-key.bundle', subject: context, details: { manufacturer: request.manufacturerId, devices: request.eui64s.length, roles: request.roles } }]);
      });
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
        keys,
      };
    } finally {
      await transport.close();
    }
  }
}
