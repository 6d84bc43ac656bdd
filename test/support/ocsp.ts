import { buildCertId, buildOcspRequest } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { listCas, type Pool } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, type OcspIssuerHashes } from '@fleetpki/x509';
import { localUrl } from './sites.js';

export type Verdict = 'good' | 'revoked' | 'other';

/** The certStatus that follows the CertID in a response: [0] good, [1] revoked; anything else (tryLater, unknown) is neither. */
export function verdictOf(der: Buffer, certId: Buffer): Verdict {
  const at = der.indexOf(certId);
  if (at < 0) return 'other';
  const tag = der[at + certId.length];
  return tag === 0x80 ? 'good' : tag === 0xa1 ? 'revoked' : 'other';
}

/** Asks a responder about device certificates of the issuing CA fpd1, by GET or POST, SHA-1 or SHA-256 CertIDs. */
export class OcspAsker {
  private constructor(private readonly hashes: OcspIssuerHashes) {}

  static async forIssuingCa(pool: Pool): Promise<OcspAsker> {
    const issuing = parseCaCertificate((await listCas(pool)).find((c) => c.id === 'fpd1')!.certificate);
    return new OcspAsker(ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki));
  }

  /** The CertID of one of the issuing CA's serials (what a request names, and what the answer repeats). */
  certId(serial: Buffer, alg: 'sha1' | 'sha256' = 'sha256'): Buffer {
    return buildCertId(alg, this.hashes, serial);
  }

  async ask(baseUrl: string, serial: Buffer, alg: 'sha1' | 'sha256' = 'sha256', method: 'GET' | 'POST' = 'POST'): Promise<Verdict> {
    const certId = buildCertId(alg, this.hashes, serial);
    const body = buildOcspRequest(certId);
    const res =
      method === 'POST'
        ? await fetch(`${baseUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body, signal: AbortSignal.timeout(10_000) })
        : await fetch(`${baseUrl}/ocsp/${encodeURIComponent(body.toString('base64'))}`, { signal: AbortSignal.timeout(10_000) });
    return verdictOf(Buffer.from(await res.arrayBuffer()), certId);
  }
}

export function statusUrl(config: FleetConfig, site: 'a' | 'b', offset: number): string {
  return localUrl(config, 'status', config.sites[site].statusPort + offset, config.sites[site].host);
}
