import { FleetError, eui64FromBytes } from '@fleetpki/core';
import type { DeviceRefusal, Queryable } from '@fleetpki/store';
import { postgresDeviceOwnershipStore } from './postgres-store.js';

/**
 * A device id is a manufacturer's when its registered EUI-64 ranges hold it (migrations/0036): the rule
 * of every enrolment protocol and of device-key bundles. The refusal names the device and the
 * manufacturer asking; a device registered to another manufacturer (possible only for devices enrolled
 * before ranges existed) is EUI64_NOT_AVAILABLE, without saying whose.
 */
export function deviceRefusalError(eui64: string, manufacturerId: string, refusal: DeviceRefusal): FleetError {
  switch (refusal) {
    case 'no-ranges':
      return new FleetError('EUI64_OUTSIDE_RANGE', `EUI-64 ${eui64} is not manufacturer ${manufacturerId}'s: no EUI-64 range is registered to ${manufacturerId} yet (an administrator registers its OUI: pnpm fleetpki manufacturers add-range ${manufacturerId} --prefix <OUI>)`, { httpStatus: 403 });
    case 'outside-range':
      return new FleetError('EUI64_OUTSIDE_RANGE', `EUI-64 ${eui64} is outside the EUI-64 ranges registered to manufacturer ${manufacturerId}`, { httpStatus: 403 });
    case 'foreign-device':
      return new FleetError('EUI64_NOT_AVAILABLE', `EUI-64 ${eui64} is registered to another manufacturer`, { httpStatus: 409 });
  }
}

/** Refuses, naming the first, when any of `eui64s` is not `manufacturerId`'s. */
export async function assertDevicesOwned(db: Queryable, manufacturerId: string, eui64s: readonly Buffer[]): Promise<void> {
  const refused = await postgresDeviceOwnershipStore(db).findDeviceNotOwned(manufacturerId, eui64s);
  if (refused) throw deviceRefusalError(eui64FromBytes(refused.eui64), manufacturerId, refused.refusal);
}
