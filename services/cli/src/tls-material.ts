import { generateKeyPairSync } from 'node:crypto';
import { CA_IDS, caCertificate, postgresCustodyStore } from '@fleetpki/ca';
import type { Pool } from '@fleetpki/store';
import { toPem } from '@fleetpki/x509';

/** A fresh P-256 key for a TLS endpoint (software: Node's TLS stack cannot use a PKCS#11 key). */
export function newKey(): { privatePem: string; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, spki: publicKey.export({ format: 'der', type: 'spki' }) };
}

/** The organisation CA's and its root's certificates, PEM: a leaf's chain, and the bundle its peers trust. */
export async function chainPems(pool: Pool): Promise<{ org: string; root: string }> {
  const store = postgresCustodyStore(pool);
  const org = (await store.listCas()).find((c) => c.id === CA_IDS.organisation);
  // After a root rollover and `renew-ca --ca org1`, the organisation CA is under the new root.
  return { org: toPem(await caCertificate(store, CA_IDS.organisation)), root: toPem(await caCertificate(store, org?.parentId ?? CA_IDS.root)) };
}
