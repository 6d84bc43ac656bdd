import { createHash } from 'node:crypto';
import { FleetError, eui64FromBytes, eui64PrefixRange, eui64ToBytes, type Eui64Range, type SiteId } from '@fleetpki/core';
import { syntheticEuiBlock } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { auditActor, type Principal } from './api-tokens.js';
import { accessStoreOf } from './postgres-store.js';
import type { ManufacturerStore } from './store.js';

const MANUFACTURER_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const unknown = (id: string) => new FleetError('MANUFACTURER_UNKNOWN', `manufacturer "${id.slice(0, 63)}" is not registered (pnpm fleetpki manufacturers add ...)`, { httpStatus: 404 });
const spkiSha256 = (spki: Buffer) => createHash('sha256').update(spki).digest('hex');
const show = (range: { first: Buffer; last: Buffer }) => `${eui64FromBytes(range.first)}..${eui64FromBytes(range.last)}`;

/**
 * What decides whose device ids and keys fleetpki trusts: manufacturers, their manifest-signing key
 * (raw public keys are accepted only under it), their transport key (device keys are wrapped for it)
 * and their EUI-64 ranges (the only device ids they may enrol). Each change is an administrator's,
 * recorded in the audit log with that person as the actor.
 */
export class ManufacturerRegistry {
  private readonly store: ManufacturerStore;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: ManufacturerStore | Pool,
    private readonly site: SiteId,
  ) {
    this.store = accessStoreOf(db);
  }

  private assertAdministrator(by: Principal, what: string): void {
    if (by.role !== 'administrator') throw new FleetError('ROLE_FORBIDDEN', `${what} is for an administrator; ${by.name} is ${by.role}`, { httpStatus: 403 });
  }

  /** Registers (or renames) a manufacturer. */
  async add(by: Principal, id: string, name: string): Promise<void> {
    this.assertAdministrator(by, 'registering a manufacturer');
    if (!MANUFACTURER_ID.test(id)) throw new FleetError('MANUFACTURER_ID_INVALID', `manufacturer id "${id.slice(0, 63)}" must be 1-63 lower-case letters, digits or dashes`, { httpStatus: 400 });
    await this.store.manufacturerTransaction(async (tx) => {
      await tx.upsertManufacturer(id, name);
      await tx.appendAuditEvents([{ site: this.site, actor: auditActor(by), action: 'manufacturer.upsert', subject: id, details: { name } }]);
    });
  }

  async setManifestKey(by: Principal, id: string, spki: Buffer): Promise<void> {
    this.assertAdministrator(by, "registering a manufacturer's manifest-signing key");
    await this.store.manufacturerTransaction(async (tx) => {
      if (!(await tx.setManufacturerManifestKey(id, spki))) throw unknown(id);
      await tx.appendAuditEvents([{ site: this.site, actor: auditActor(by), action: 'manufacturer.manifest-key', subject: id, details: { spkiSha256: spkiSha256(spki) } }]);
    });
  }

  async setTransportKey(by: Principal, id: string, spki: Buffer): Promise<void> {
    this.assertAdministrator(by, "registering a manufacturer's transport key");
    await this.store.manufacturerTransaction(async (tx) => {
      if (!(await tx.setManufacturerTransportKey(id, spki))) throw unknown(id);
      await tx.appendAuditEvents([{ site: this.site, actor: auditActor(by), action: 'manufacturer.transport-key', subject: id, details: { spkiSha256: spkiSha256(spki) } }]);
    });
  }

  /**
   * Gives a manufacturer a range of device ids. Refused when it shares an id with another registered
   * range (EUI64_RANGE_OVERLAP: one id, one manufacturer) or holds a device already registered to
   * another manufacturer (EUI64_RANGE_HOLDS_DEVICES). The same range again changes nothing ('exists').
   */
  async addRange(by: Principal, id: string, range: Eui64Range): Promise<'added' | 'exists'> {
    this.assertAdministrator(by, "registering a manufacturer's EUI-64 range");
    return addRange(this.store, this.site, auditActor(by), id, range);
  }

  async ranges(id?: string): Promise<{ manufacturerId: string; range: Eui64Range; createdBy: string; createdAt: Date }[]> {
    return (await this.store.listManufacturerRanges(id)).map((r) => ({ manufacturerId: r.manufacturerId, range: { first: eui64FromBytes(r.first), last: eui64FromBytes(r.last) }, createdBy: r.createdBy, createdAt: r.createdAt }));
  }
}

async function addRange(store: ManufacturerStore, site: SiteId, actor: string, id: string, range: Eui64Range): Promise<'added' | 'exists'> {
  const first = eui64ToBytes(range.first);
  const last = eui64ToBytes(range.last);
  const overlapError = (holder: { manufacturerId: string; first: Buffer; last: Buffer }) =>
    new FleetError('EUI64_RANGE_OVERLAP', `${show({ first, last })} overlaps ${show(holder)}, registered to manufacturer ${holder.manufacturerId}: one device id belongs to one manufacturer`, { httpStatus: 409 });
  try {
    return await store.manufacturerTransaction(async (tx) => {
      if (!(await tx.manufacturerExists(id))) throw unknown(id);
      const overlapping = await tx.findOverlappingRanges(first, last);
      if (overlapping.some((r) => r.manufacturerId === id && r.first.equals(first) && r.last.equals(last))) return 'exists';
      if (overlapping[0]) throw overlapError(overlapping[0]);
      const foreign = await tx.findForeignDeviceInRange(id, first, last);
      if (foreign) throw new FleetError('EUI64_RANGE_HOLDS_DEVICES', `${show({ first, last })} holds device ${eui64FromBytes(foreign.eui64)}, registered to manufacturer ${foreign.manufacturerId}`, { httpStatus: 409 });
      await tx.insertManufacturerRange({ manufacturerId: id, first, last, createdBy: actor });
      await tx.appendAuditEvents([{ site, actor, action: 'manufacturer.range', subject: id, details: { first: range.first, last: range.last } }]);
      return 'added';
    });
  } catch (err) {
    // Registered concurrently by someone else: the exclusion constraint refused it.
    if (store.isRangeConflict(err)) {
      const holder = (await store.findOverlappingRanges(first, last))[0];
      if (holder) throw overlapError(holder);
    }
    throw err;
  }
}

/**
 * A synthetic manufacturer of the demo, the benchmarks, the drills and the tests: registered with its
 * block of synthetic device ids (`syntheticEuiBlock`), so what it enrols follows the same rules as a
 * real factory's. Idempotent. Not for real manufacturers: their OUIs come from IEEE, through
 * `pnpm fleetpki manufacturers add-range`.
 */
export async function registerSyntheticManufacturer(db: ManufacturerStore | Pool, options: { site: SiteId; id: string; name: string; actor: string }): Promise<Eui64Range> {
  const store: ManufacturerStore = accessStoreOf(db);
  await store.upsertManufacturer(options.id, options.name);
  const range = eui64PrefixRange(syntheticEuiBlock(options.id));
  await addRange(store, options.site, options.actor, options.id, range);
  return range;
}
