import { createHash } from 'node:crypto';
import { FleetError, eui64ToBytes, type Eui64, type KeyRole, type SiteId } from '@fleetpki/core';
import { explainRefusedIntent, recordIntents, storeCertificates, type CertificateRow, type IntentRow, type Pool } from '@fleetpki/store';
import { lintDeviceTbs, type DevicePublicKey } from '@fleetpki/x509';
import { GroupCommitter } from './group-commit.js';
import { signCertificate, type IssuingCa } from './issuing-ca.js';
import { crlShardOf, newSerial } from './serials.js';

export interface EnrolmentRequest {
  readonly eui64: Eui64;
  readonly keyRole: KeyRole;
  readonly profileId: string;
  readonly deviceType: string;
  readonly publicKey: DevicePublicKey;
  readonly manufacturerId: string;
  /** Who asked (token name), for the audit log. */
  readonly actor: string;
}

export interface IssuedCertificate {
  readonly serial: Buffer;
  readonly der: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
}

/** The store calls enrolment needs, and nothing more (Boulder: narrow storage interfaces per caller). */
export interface EnrolmentStore {
  recordIntents(site: SiteId, actor: string, intents: readonly IntentRow[]): Promise<Set<string>>;
  storeCertificates(site: SiteId, actor: string, certificates: readonly CertificateRow[]): Promise<void>;
  explainRefusedIntent(eui64: Buffer, manufacturerId: string): Promise<'foreign-device' | 'already-enrolled'>;
}

export function postgresEnrolmentStore(pool: Pool): EnrolmentStore {
  return {
    recordIntents: (site, actor, intents) => recordIntents(pool, site, actor, intents),
    storeCertificates: (site, actor, certificates) => storeCertificates(pool, site, actor, certificates),
    explainRefusedIntent: (eui64, manufacturerId) => explainRefusedIntent(pool, eui64, manufacturerId),
  };
}

interface Pending<T> {
  readonly actor: string;
  readonly row: T;
}

/**
 * Online enrolment: assemble the TBS from the profile's template, lint it, commit the intent (and its
 * replication to the standby) before the HSM signs, sign, check the signature, store the certificate.
 * Intents and certificates of concurrent requests are group-committed.
 */
export class EnrolmentService {
  private readonly intents: GroupCommitter<Pending<IntentRow>, boolean>;
  private readonly certificates: GroupCommitter<Pending<CertificateRow>, undefined>;

  constructor(
    private readonly ca: IssuingCa,
    private readonly store: EnrolmentStore,
    private readonly site: SiteId,
    private readonly serialPrefix: number,
    options: { maxBatch?: number; maxConcurrent?: number } = {},
  ) {
    const batching = { maxBatch: options.maxBatch ?? 256, maxConcurrent: options.maxConcurrent ?? 3 };
    // One transaction per batch; its audit rows carry each request's own actor.
    this.intents = new GroupCommitter(async (items) => {
      const byActor = groupByActor(items);
      const recorded = new Set<string>();
      for (const [actor, rows] of byActor) for (const serial of await store.recordIntents(site, actor, rows)) recorded.add(serial);
      return items.map((i) => recorded.has(i.row.serial.toString('hex')));
    }, batching);
    this.certificates = new GroupCommitter(async (items) => {
      for (const [actor, rows] of groupByActor(items)) await store.storeCertificates(site, actor, rows);
      return items.map(() => undefined);
    }, batching);
  }

  async enrol(request: EnrolmentRequest): Promise<IssuedCertificate> {
    const template = this.ca.template(request.profileId, request.keyRole);
    const serial = newSerial(this.serialPrefix);
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
    const eui64 = eui64ToBytes(request.eui64);
    const crlShard = crlShardOf(serial, template.profile.crl?.shards ?? 1);
    const tbs = template.assemble({ serial, notBefore, eui64, publicKeySpki: request.publicKey.spki, crlShard });
    const linted = lintDeviceTbs(tbs);

    const recorded = await this.intents.submit({
      actor: request.actor,
      row: {
        serial,
        caId: this.ca.record.id,
        eui64,
        keyRole: request.keyRole,
        profile: request.profileId,
        tbsSha256: createHash('sha256').update(tbs.der).digest(),
        manufacturerId: request.manufacturerId,
        deviceType: request.deviceType,
      },
    });
    if (!recorded) {
      const why = await this.store.explainRefusedIntent(eui64, request.manufacturerId);
      throw why === 'foreign-device'
        ? new FleetError('EUI64_NOT_AVAILABLE', `EUI-64 ${request.eui64} is registered to another manufacturer`, { httpStatus: 409 })
        : new FleetError('CERTIFICATE_EXISTS', `device ${request.eui64} already has a ${request.keyRole} certificate under profile ${request.profileId}`, { httpStatus: 409 });
    }

    const der = await signCertificate(this.ca, linted);
    await this.certificates.submit({
      actor: request.actor,
      row: { serial, caId: this.ca.record.id, eui64, keyRole: request.keyRole, profile: request.profileId, der, notBefore, notAfter: tbs.notAfter, crlShard },
    });
    return { serial, der, notBefore, notAfter: tbs.notAfter, crlShard };
  }
}

function groupByActor<T>(items: readonly Pending<T>[]): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const item of items) {
    const list = map.get(item.actor);
    if (list) list.push(item.row);
    else map.set(item.actor, [item.row]);
  }
  return map;
}
