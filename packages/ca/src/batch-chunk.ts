import { createHash } from 'node:crypto';
import { FleetError, isFleetError, type KeyRole, type SiteId } from '@fleetpki/core';
import { completeChunk, loadChunkWork, recordChunkIntents, type ChunkCertificate, type ChunkIntent, type Pool } from '@fleetpki/store';
import { lintDeviceTbs, verifyCsrPossession, type LintedTbs } from '@fleetpki/x509';
import { signCertificate, type IssuingCa } from './issuing-ca.js';
import { CaStatusGuard } from './site-guard.js';
import { crlShardOf, newSerial } from './serials.js';

export interface ChunkOutcome {
  readonly issued: number;
  readonly refused: number;
  /** Another worker had finished this chunk already (a duplicate job): nothing was stored twice. */
  readonly alreadyDone: boolean;
}

/**
 * Issues one chunk of a batch, idempotently: verify proofs of possession, assemble and lint each TBS,
 * commit the intents (replicated) before signing, sign through the HSM session pool, store the
 * certificates and mark the chunk done in one transaction. A retry after a crash finds the intents it
 * committed and re-signs exactly those TBSs (same serial, same notBefore), so each (device, role) ends
 * with one certificate whatever happens in between.
 */
export class ChunkIssuer {
  constructor(
    private readonly pool: Pool,
    private readonly ca: IssuingCa,
    private readonly site: SiteId,
    private readonly serialPrefix: number,
    private readonly actor = `batch-worker:${site}`,
    private readonly caGuard = new CaStatusGuard(pool),
  ) {}

  async issue(batchId: string, chunkNo: number): Promise<ChunkOutcome> {
    // A revoked CA signs nothing more; the chunk fails and stays in the outbox.
    await this.caGuard.assertActive(this.ca.record.id);
    const work = await loadChunkWork(this.pool, batchId, chunkNo);
    if (!work) throw new FleetError('CHUNK_NOT_FOUND', `batch ${batchId} has no chunk ${chunkNo}`, { httpStatus: 404 });
    if (work.done) return { issued: 0, refused: 0, alreadyDone: true };
    const { batch } = work;
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
    const fresh: ChunkIntent[] = [];
    const refused: { seq: number; code: string }[] = [];
    const toSign = new Map<number, { linted: LintedTbs; intent: ChunkIntent; notAfter: Date; crlShard: number }>();

    for (const item of work.items) {
      if (item.errorCode) continue;
      const template = this.ca.template(batch.profile, item.keyRole as KeyRole);
      if (item.intent) {
        // Retry: rebuild the TBS the intent committed to and check it is byte for byte the same.
        const crlShard = crlShardOf(item.intent.serial, template.profile.crl?.shards ?? 1);
        const tbs = template.assemble({ serial: item.intent.serial, notBefore: item.intent.notBefore, eui64: item.eui64, publicKeySpki: item.publicKey, crlShard });
        if (!createHash('sha256').update(tbs.der).digest().equals(item.intent.tbsSha256)) {
          throw new FleetError('INTENT_MISMATCH', `batch ${batchId} chunk ${chunkNo}: the TBS rebuilt for serial ${item.intent.serial.toString('hex')} differs from its intent`);
        }
        const intent: ChunkIntent = { seq: item.seq, serial: item.intent.serial, caId: this.ca.record.id, eui64: item.eui64, keyRole: item.keyRole, deviceType: item.deviceType, notBefore: item.intent.notBefore, tbsSha256: item.intent.tbsSha256 };
        toSign.set(item.seq, { linted: lintDeviceTbs(tbs), intent, notAfter: tbs.notAfter, crlShard });
        continue;
      }
      if (item.csr) {
        try {
          const key = verifyCsrPossession(item.csr);
          if (!key.spki.equals(item.publicKey)) throw new FleetError('CSR_MALFORMED', 'the CSR key differs from the stored key');
        } catch (err) {
          if (!isFleetError(err)) throw err;
          refused.push({ seq: item.seq, code: err.code });
          continue;
        }
      }
      const serial = newSerial(this.serialPrefix);
      const crlShard = crlShardOf(serial, template.profile.crl?.shards ?? 1);
      const tbs = template.assemble({ serial, notBefore, eui64: item.eui64, publicKeySpki: item.publicKey, crlShard });
      const linted = lintDeviceTbs(tbs);
      const intent: ChunkIntent = { seq: item.seq, serial, caId: this.ca.record.id, eui64: item.eui64, keyRole: item.keyRole, deviceType: item.deviceType, notBefore, tbsSha256: createHash('sha256').update(tbs.der).digest() };
      fresh.push(intent);
      toSign.set(item.seq, { linted, intent, notAfter: tbs.notAfter, crlShard });
    }

    const ctx = { batchId, chunkNo, manufacturerId: batch.manufacturerId, profile: batch.profile, site: this.site, actor: this.actor };
    if (fresh.length > 0 || refused.length > 0) {
      const recorded = await recordChunkIntents(this.pool, ctx, fresh, refused);
      // An intent that was not recorded lost either to another certificate (its item is now marked) or to
      // a duplicate job of this same chunk; either way this attempt's view is stale: start over from the store.
      if (fresh.some((i) => !recorded.has(i.seq))) {
        throw new FleetError('CHUNK_CONTENDED', `batch ${batchId} chunk ${chunkNo}: another attempt recorded intents meanwhile; retrying`, { httpStatus: 409 });
      }
    }

    const certificates: ChunkCertificate[] = await Promise.all(
      [...toSign.values()].map(async ({ linted, intent, notAfter, crlShard }) => ({
        serial: intent.serial,
        caId: intent.caId,
        eui64: intent.eui64,
        keyRole: intent.keyRole,
        der: await signCertificate(this.ca, linted),
        notBefore: intent.notBefore,
        notAfter,
        crlShard,
      })),
    );
    const stored = await completeChunk(this.pool, { ...ctx, chunkSize: batch.chunkSize }, certificates);
    return { issued: stored ? certificates.length : 0, refused: refused.length, alreadyDone: !stored };
  }
}
