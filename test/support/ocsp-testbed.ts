import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './ca.js';
import { ensureSites, localUrl } from './sites.js';
import { createStatusSite, type StatusSiteRuntime } from './status.js';

/** A device certificate a test enrolled: its serial (hex) and its PEM file in the test CA's folder. */
export interface EnrolledDevice {
  readonly serial: string;
  readonly path: string;
}

/**
 * What the OCSP tests share: site A's issuer API (listening), its status side with nothing running by
 * itself (tickEveryMs 0; the responder listening), a factory that enrols one device at a time and a
 * revocation officer. `name` keeps each file's manufacturer and people apart.
 */
export interface OcspTestbed {
  readonly config: FleetConfig;
  readonly pool: Pool;
  readonly ca: TestCa;
  readonly issuer: IssuerRuntime;
  readonly status: StatusSiteRuntime;
  /** The status responder's base URL (http://127.0.0.1:<port>). */
  readonly statusUrl: string;
  readonly officer: FleetApiClient;
  enrolDevice(): Promise<EnrolledDevice>;
  close(): Promise<void>;
}

export async function openOcspTestbed(name: string): Promise<OcspTestbed> {
  const config = await ensureSites();
  const pool = siteAPool(config);
  const ca = await ensureCa(config, pool);
  const issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await issuer.app.listen({ host: '127.0.0.1', port: 0 });
  const apiUrl = localUrl(config, 'api', (issuer.app.server.address() as AddressInfo).port);
  const maker = `${name}-maker`;
  const factoryToken = await createToken(pool, 'factory', maker);
  const officer = new FleetApiClient(apiUrl, await createToken(pool, 'revocation-officer', null, `${name}-officer`));
  const status = await createStatusSite({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
  await status.app.listen({ host: '127.0.0.1', port: 0 });
  const statusUrl = localUrl(config, 'status', (status.app.server.address() as AddressInfo).port);
  return {
    config,
    pool,
    ca,
    issuer,
    status,
    statusUrl,
    officer,
    async enrolDevice() {
      const [key] = generateDeviceKeys(1);
      const res = await issuer.app.inject({
        method: 'POST',
        url: '/v1/enrolments',
        headers: { authorization: `Bearer ${factoryToken}` },
        payload: { eui64: syntheticEui64(maker), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') },
      });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json<{ certificate: string; serial: string }>();
      return { serial: body.serial, path: writeCaFile(ca, `${body.serial}.pem`, body.certificate) };
    },
    async close() {
      await status.close();
      await issuer.close();
      await pool.end();
    },
  };
}
