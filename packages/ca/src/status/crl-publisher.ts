import { FleetError } from '@fleetpki/core';
import { assembleSignedCertificate, buildCrlTbs, crlShardUrl, getProfile, readCrlSerials, DEFAULT_PROFILE_ID } from '@fleetpki/x509';
import type { IssuingCa } from '../issuance/issuing-ca.js';
import type { CrlPublicationStore, CrlSnapshotPort as CrlSnapshot } from './store.js';

export interface CrlPublisherOptions {
  /** nextUpdate - thisUpdate of every CRL. */
  readonly validityMs?: number;
  /** A full CRL is republished when less than this is left before its nextUpdate. */
  readonly refreshBeforeMs?: number;
  readonly shards?: number;
}

/** What a scheduled pass (the crl-publisher daemon) may defer. */
export interface PublishDueOptions {
  /**
   * While the status responder re-signs recent revocations for OCSP, dirty shards wait, at most this
   * long after they were first dirtied (then they are published whatever OCSP does: a responder that
   * is down must not hold CRLs back). 0 or absent: publish at once.
   */
  readonly yieldToOcspMs?: number;
}

export interface PublishReport {
  readonly shards: number[];
  readonly entries: number;
  readonly bytes: number;
  readonly deltas: number;
}

/** URL of a shard's delta CRL, next to the full one. */
/** A serial as readCrlSerials gives it back: big-endian without leading zero bytes. */
function unsignedHex(serial: Buffer): string {
  let start = 0;
  while (start < serial.length - 1 && serial[start] === 0) start++;
  return serial.subarray(start).toString('hex');
}

export function deltaCrlUrl(baseUrl: string, caId: string, shard: number): string {
  return crlShardUrl(baseUrl, caId, shard).replace(/\.crl$/, '-delta.crl');
}

/**
 * Publishes the issuing CA's sharded CRLs: a full CRL per shard (critical issuingDistributionPoint equal
 * to the certificates' CRL DP, freshestCRL pointing at the delta) and a delta CRL against the previous
 * full one, each signed in the HSM. Shards are republished when a revocation dirties them, when they
 * near nextUpdate, or when missing. Before anything is stored, the CRL is read back and must list
 * exactly the shard's revoked serials (completeness guard).
 */
export class CrlPublisher {
  private readonly validityMs: number;
  private readonly refreshBeforeMs: number;
  readonly shards: number;

  constructor(
    private readonly store: CrlPublicationStore,
    private readonly ca: IssuingCa,
    private readonly crlBaseUrl: string,
    options: CrlPublisherOptions = {},
  ) {
    this.validityMs = options.validityMs ?? 24 * 3_600_000;
    this.refreshBeforeMs = options.refreshBeforeMs ?? 12 * 3_600_000;
    this.shards = options.shards ?? getProfile(DEFAULT_PROFILE_ID).crl?.shards ?? 1;
  }

  /**
   * Shards that need publishing now: dirty, missing, or near nextUpdate. With `yieldToOcspMs`, dirty
   * shards wait while revocations are being re-signed for OCSP, as when the publisher ran in the
   * responder's process: OCSP is the channel relying parties see within seconds, a CRL within its
   * publication interval, and republishing 64 shards (128 signatures, each CRL built and read back)
   * every pass of a revocation burst took the HSM and the cores from the re-signing (issue 37).
   */
  async dueShards(now = new Date(), options: PublishDueOptions = {}): Promise<number[]> {
    const caId = this.ca.record.id;
    const dirty = await this.store.dirtyShards(caId);
    const wait = options.yieldToOcspMs ?? 0;
    const overdue = dirty.filter((d) => now.getTime() - d.since.getTime() >= wait);
    const yielding = overdue.length < dirty.length && (await this.store.revocationsAwaitingOcsp(caId));
    const due = new Set((yielding ? overdue : dirty).map((d) => d.shard));
    const published = new Map((await this.store.fullCrls(caId)).map((c) => [c.shard, c]));
    for (let s = 0; s < this.shards; s++) {
      const crl = published.get(s);
      if (!crl || crl.nextUpdate.getTime() - now.getTime() < this.refreshBeforeMs) due.add(s);
    }
    return [...due].sort((a, b) => a - b);
  }

  async publishDue(options: PublishDueOptions = {}): Promise<PublishReport> {
    const shards = await this.dueShards(new Date(), options);
    return shards.length > 0 ? this.publish(shards) : { shards: [], entries: 0, bytes: 0, deltas: 0 };
  }

  async publishAll(): Promise<PublishReport> {
    return this.publish(Array.from({ length: this.shards }, (_, s) => s));
  }

  async publish(shards: readonly number[]): Promise<PublishReport> {
    return this.store.withCrlSnapshot(async (snapshot) => {
      const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000);
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      // One after another: they share the snapshot's single connection, which runs one query at a time.
      const results = [];
      for (const shard of shards) results.push(await this.publishShard(snapshot, shard, thisUpdate, nextUpdate));
      await snapshot.clearDirty(this.ca.record.id, shards);
      return {
        shards: [...shards],
        entries: results.reduce((n, r) => n + r.entries, 0),
        bytes: results.reduce((n, r) => n + r.bytes, 0),
        deltas: results.filter((r) => r.delta).length,
      };
    });
  }

  private async publishShard(snapshot: CrlSnapshot, shard: number, thisUpdate: Date, nextUpdate: Date): Promise<{ entries: number; bytes: number; delta: boolean }> {
    const caId = this.ca.record.id;
    const url = crlShardUrl(this.crlBaseUrl, caId, shard);
    const base = { issuerSubjectDer: this.ca.certificate.subjectDer, issuerKeyId: this.ca.certificate.keyId, thisUpdate, nextUpdate, scope: { userCertsAt: url } };
    const previous = await snapshot.previousFull(caId, shard);
    const entries = await snapshot.revokedInShard(caId, shard);
    const fullNumber = await snapshot.nextCrlNumber(caId);
    const full = await this.sign(buildCrlTbs({ ...base, crlNumber: fullNumber, entries, freshestUrl: deltaCrlUrl(this.crlBaseUrl, caId, shard) }));
    await this.assertComplete(snapshot, shard, full, 'full');
    let bytes = full.length;
    let delta = false;
    if (previous) {
      // The delta completes the previous full CRL: what a relying party holding it has not seen yet.
      const fresh = await snapshot.revokedInShard(caId, shard, previous.coversUntil);
      const deltaNumber = await snapshot.nextCrlNumber(caId);
      const deltaDer = await this.sign(buildCrlTbs({ ...base, crlNumber: deltaNumber, entries: fresh, baseCrlNumber: previous.crlNumber }));
      await this.assertComplete(snapshot, shard, deltaDer, 'delta', previous.coversUntil);
      await snapshot.saveCrl({ caId, shard, kind: 'delta', crlNumber: deltaNumber, baseNumber: previous.crlNumber, thisUpdate, nextUpdate, coversUntil: snapshot.coversUntil, entries: fresh.length, der: deltaDer });
      bytes += deltaDer.length;
      delta = true;
    }
    await snapshot.saveCrl({ caId, shard, kind: 'full', crlNumber: fullNumber, baseNumber: null, thisUpdate, nextUpdate, coversUntil: snapshot.coversUntil, entries: entries.length, der: full });
    return { entries: entries.length, bytes, delta };
  }

  private async sign(tbs: Buffer): Promise<Buffer> {
    return assembleSignedCertificate(tbs, await this.ca.signer.sign(tbs));
  }

  /**
   * The completeness guard: the signed CRL, read back, lists exactly the serials the snapshot has
   * revoked in the shard (full), or revoked since the base CRL (delta), as sets read independently of
   * what the CRL was built from: a serial missing, extra or listed twice stops the publication.
   */
  private async assertComplete(snapshot: CrlSnapshot, shard: number, der: Buffer, kind: 'full' | 'delta', since?: Date): Promise<void> {
    const listed = readCrlSerials(der).map((s) => s.toString('hex'));
    const inCrl = new Set(listed);
    const inStore = new Set((await snapshot.revokedInShard(this.ca.record.id, shard, since)).map((r) => unsignedHex(r.serial)));
    const missing = [...inStore].filter((s) => !inCrl.has(s));
    const extra = [...inCrl].filter((s) => !inStore.has(s));
    if (missing.length > 0 || extra.length > 0 || inCrl.size !== listed.length) {
      throw new FleetError(
        'CRL_INCOMPLETE',
        `shard ${shard} (${kind}): the signed CRL lists ${listed.length} serials (${inCrl.size} distinct), the store ${inStore.size}; missing ${missing.length}${missing[0] ? ` (e.g. ${missing[0]})` : ''}, extra ${extra.length}${extra[0] ? ` (e.g. ${extra[0]})` : ''}; not published`,
      );
    }
  }
}
