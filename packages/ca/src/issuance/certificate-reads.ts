import { FleetError, eui64ToBytes, type Eui64 } from '@fleetpki/core';
import type { Pool, StoredCertificate } from '@fleetpki/store';
import { postgresCertificateReadStore } from './postgres-store.js';
import { serialHex } from './serials.js';
import type { CertificateReadStore } from './store.js';

/** Issued certificates looked up by serial or by device, for whoever may see their manufacturer's. */
export class CertificateReads {
  constructor(private readonly store: CertificateReadStore) {}

  static forPool(pool: Pool): CertificateReads {
    return new CertificateReads(postgresCertificateReadStore(pool));
  }

  /** The certificate with this serial; CERTIFICATE_NOT_FOUND when there is none or `visible` refuses its manufacturer. */
  async get(serial: Buffer, visible: (manufacturerId: string) => boolean): Promise<StoredCertificate> {
    const cert = await this.store.getCertificate(serial);
    if (!cert || !visible(cert.manufacturerId)) throw new FleetError('CERTIFICATE_NOT_FOUND', `no certificate with serial ${serialHex(serial)}`, { httpStatus: 404 });
    return cert;
  }

  /** A device's certificates that `visible` lets the caller see; DEVICE_NOT_FOUND when none. */
  async forDevice(eui64: Eui64, visible: (manufacturerId: string) => boolean): Promise<StoredCertificate[]> {
    const certs = (await this.store.listDeviceCertificates(eui64ToBytes(eui64))).filter((c) => visible(c.manufacturerId));
    if (certs.length === 0) throw new FleetError('DEVICE_NOT_FOUND', `no certificates for device ${eui64}`, { httpStatus: 404 });
    return certs;
  }
}
