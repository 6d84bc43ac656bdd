import { createHash, randomUUID } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import { CsvManifestReader, ManifestSignatureCheck, parseNdjsonLine, readLines, toLineError, type LineError, type ManifestFormat, type ManifestKey } from '@fleetpki/manifest';
import type { BatchItemRow, BatchRecord, ItemConflict } from '@fleetpki/store';
import { DEFAULT_PROFILE_ID, getProfile } from '@fleetpki/x509';
import type { EnrolmentLabel } from './enrolment-labels.js';
import type { BatchIntakeStore } from './store.js';

export interface BatchLimits {
  readonly maxBytes: number;
  readonly maxDevices: number;
  readonly maxLineBytes: number;
  /** How many bad lines a report lists. */
  readonly reportLines: number;
  readonly chunkSize: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxBytes: 4 * 1024 ** 3,
  maxDevices: 5_000_000,
  // Two CSRs of a few hundred bytes fit many times over; a 10 MB line is refused at 64 KiB.
  maxLineBytes: 64 * 1024,
  reportLines: 100,
  chunkSize: 1_000,
};

export interface BatchUpload {
  readonly manufacturerId: string;
  readonly actor: string;
  readonly format: ManifestFormat;
  readonly body: AsyncIterable<Buffer | string>;
  readonly profile?: string;
  /** The client's key; without one, the manifest's SHA-256 makes resubmission idempotent. */
  readonly idempotencyKey?: string;
  /** base64 DER ECDSA signature over the manifest by the manufacturer's registered key. */
  readonly signature?: string;
  /** 'reject' (default): any bad line refuses the whole manifest. 'skip': bad lines are left out and reported. */
  readonly onInvalid?: 'reject' | 'skip';
}

export interface BatchAccepted {
  readonly batch: BatchRecord;
  /** false when this manifest (or idempotency key) had already been accepted: the same batch comes back. */
  readonly created: boolean;
}

interface Report {
  errors: LineError[];
  count: number;
}

function addToReport(report: Report, error: LineError, limit: number): void {
  report.count++;
  if (report.errors.length < limit) report.errors.push(error);
}

function conflictError(c: ItemConflict, manufacturerId: string): LineError {
  const eui = c.eui64.toString('hex').toUpperCase();
  const message =
    c.code === 'DUPLICATE_IN_BATCH'
      ? `device ${eui} ${c.keyRole} already appears on line ${c.firstLine}`
      : c.code === 'EUI64_OUTSIDE_RANGE'
        ? `device ${eui} is outside the EUI-64 ranges registered to manufacturer ${manufacturerId}`
        : c.code === 'DEVICE_FOREIGN'
          ? `device ${eui} is registered to another manufacturer`
          : `device ${eui} already has (or is waiting for) a ${c.keyRole} certificate`;
  return { line: c.line, code: c.code, message };
}

class Rejected extends Error {
  constructor(readonly error: FleetError) {
    super(error.message);
  }
}

class AlreadyAccepted extends Error {
  constructor(readonly batch: BatchRecord) {
    super('already accepted');
  }
}

/**
 * Takes a factory manifest as it streams in: every line is parsed and checked (syntax, EUI-64, key
 * type, point on the curve) and COPYed into batch_items inside one transaction; duplicates, devices
 * outside the manufacturer's EUI-64 ranges and conflicts with enrolled devices are found by SQL over what was copied (memory stays flat whatever the
 * batch size). A refused manifest rolls back: nothing of it remains. Proofs of possession are verified
 * by the workers, in parallel. `store` is over the uploads' own pool: a transaction here lasts as long as the
 * client takes to send its manifest (the caller bounds that), and must never hold a connection that
 * anything else needs.
 */
export class BatchIntake {
  constructor(
    private readonly store: BatchIntakeStore,
    private readonly site: SiteId,
    private readonly limits: BatchLimits = DEFAULT_BATCH_LIMITS,
    /** Labels held for an administrator's approval per device key (FLEETPKI_APPROVAL_LABELS): a batch cannot carry their keys. */
    private readonly heldLabels: readonly EnrolmentLabel[] = [],
  ) {}

  async accept(upload: BatchUpload): Promise<BatchAccepted> {
    const profile = getProfile(upload.profile ?? DEFAULT_PROFILE_ID);
    const heldLabels = this.heldLabels.filter((l) => l.profileId === profile.id);
    const mode = upload.onInvalid ?? 'reject';
    if (upload.idempotencyKey !== undefined) {
      if (!/^[\x21-\x7e]{8,128}$/.test(upload.idempotencyKey)) throw new FleetError('IDEMPOTENCY_KEY_INVALID', 'Idempotency-Key must be 8-128 printable ASCII characters', { httpStatus: 400 });
      const existing = await this.store.findBatchByIdempotencyKey(upload.manufacturerId, upload.idempotencyKey);
      if (existing) return { batch: existing, created: false };
    }
    let signatureCheck: ManifestSignatureCheck | undefined;
    if (upload.signature !== undefined) {
      const key = await this.store.getManufacturerManifestKey(upload.manufacturerId);
      if (!key) throw new FleetError('MANIFEST_KEY_MISSING', `manufacturer ${upload.manufacturerId} has no registered manifest-signing key (pnpm fleetpki manufacturers set-key)`, { httpStatus: 400 });
      signatureCheck = new ManifestSignatureCheck(key, upload.signature);
    }

    const batchId = randomUUID();
    const hash = createHash('sha256');
    const report: Report = { errors: [], count: 0 };
    const rawKeyLines: Report = { errors: [], count: 0 };
    let devices = 0;
    let lines = 0;
    let items = 0;
    let digestHex: string | undefined;
    const limits = this.limits;

    const parseAll = async function* (): AsyncGenerator<BatchItemRow> {
      const csv = new CsvManifestReader();
      for await (const line of readLines(upload.body, limits, (chunk) => {
        hash.update(chunk);
        signatureCheck?.update(chunk);
      })) {
        lines++;
        let keys: ManifestKey[];
        try {
          keys = upload.format === 'csv' ? csv.parse(line.lineNo, line.text) : parseNdjsonLine(line.lineNo, line.text);
        } catch (err) {
          addToReport(report, toLineError(line.lineNo, err), limits.reportLines);
          // Rejecting: stop at a full report; the rest of the upload is not read.
          if (mode === 'reject' && report.errors.length >= limits.reportLines) return;
          continue;
        }
        if (keys.length === 0) continue; // CSV header
        if (++devices > limits.maxDevices) throw new FleetError('MANIFEST_TOO_MANY_DEVICES', `the manifest has more than ${limits.maxDevices} devices`, { httpStatus: 413 });
        for (const key of keys) {
          // A held label's keys are approved one by one, online; a batch would issue them unseen.
          const held = heldLabels.find((l) => l.keyRole === key.keyRole);
          if (held) {
            addToReport(report, { line: key.lineNo, code: 'ENROLMENT_APPROVAL_REQUIRED', message: `${key.keyRole} keys under profile ${profile.id} (label ${held.label}) wait for an administrator's approval one by one: enrol them online (JSON API, EST or CMP)` }, limits.reportLines);
            continue;
          }
          if (!key.csr) addToReport(rawKeyLines, { line: key.lineNo, code: 'MANIFEST_UNSIGNED', message: 'a raw public key needs a manifest signed by the factory (or a CSR)' }, limits.reportLines);
          // Rejecting: after the first bad line only validate, copy nothing more.
          if (mode === 'reject' && report.count > 0) continue;
          yield { seq: items++, lineNo: key.lineNo, eui64: key.eui64, keyRole: key.keyRole, deviceType: key.deviceType, publicKey: key.publicKey, csr: key.csr };
        }
      }
    };

    // The body is read up to its first good line (or its end) before a connection is taken: a client
    // that opens an upload and sends nothing holds no connection and no transaction.
    const parsed = parseAll();
    const first = await parsed.next();
    const rows = async function* (): AsyncGenerator<BatchItemRow> {
      if (first.done) return;
      yield first.value;
      yield* parsed;
    };

    try {
      const batch = await this.store.inTransaction(async (tx) => {
        await tx.insertBatchDraft({ id: batchId, manufacturerId: upload.manufacturerId, idempotencyKey: upload.idempotencyKey ?? `upload:${batchId}`, profile: profile.id, chunkSize: limits.chunkSize, createdBy: upload.actor });
        await tx.copyBatchItems(batchId, rows());
        // The same manifest again (hash known only now that it has streamed past): the same batch.
        const digest = hash.digest();
        digestHex = digest.toString('hex');
        const idempotencyKey = upload.idempotencyKey ?? `sha256:${digestHex}`;
        if (upload.idempotencyKey === undefined) {
          const existing = await tx.findBatchByIdempotencyKey(upload.manufacturerId, idempotencyKey);
          if (existing) throw new AlreadyAccepted(existing);
        }
        if (lines === 0 && report.count === 0) throw new Rejected(new FleetError('MANIFEST_EMPTY', 'the manifest has no device lines', { httpStatus: 400 }));
        const reject = (code: string, message: string, r: Report) =>
          new Rejected(new FleetError(code, message, { httpStatus: 422, details: { errorCount: r.count, linesRead: lines, errors: r.errors } }));
        if (mode === 'reject' && report.count > 0) throw reject('MANIFEST_REJECTED', `${report.count === 1 ? 'a line' : `${report.count}${report.errors.length >= limits.reportLines ? '+' : ''} lines`} of the manifest are invalid; nothing was accepted (the first ${report.errors.length} are listed)`, report);
        if (rawKeyLines.count > 0 && !signatureCheck) throw reject('MANIFEST_UNSIGNED', `${rawKeyLines.count} keys are raw public keys: send CSRs, or sign the manifest with the factory's registered key (X-Manifest-Signature)`, rawKeyLines);
        if (signatureCheck && !signatureCheck.verify()) throw new Rejected(new FleetError('MANIFEST_SIGNATURE_INVALID', "the manifest signature does not verify with the manufacturer's registered key", { httpStatus: 422 }));

        // Conflicts, found over what was copied.
        if (mode === 'reject') {
          const conflicts = await tx.findItemConflicts(batchId, upload.manufacturerId, profile.id, limits.reportLines);
          if (conflicts.length > 0) {
            for (const c of conflicts) addToReport(report, conflictError(c, upload.manufacturerId), limits.reportLines);
            throw reject('MANIFEST_REJECTED', `lines of the manifest conflict with each other or with enrolled devices; nothing was accepted (the first ${report.errors.length} are listed)`, report);
          }
        } else {
          for (;;) {
            const conflicts = await tx.findItemConflicts(batchId, upload.manufacturerId, profile.id, 10_000);
            if (conflicts.length === 0) break;
            for (const c of conflicts) addToReport(report, conflictError(c, upload.manufacturerId), limits.reportLines);
            await tx.deleteBatchLines(batchId, [...new Set(conflicts.map((c) => c.line))]);
          }
        }
        const record = await tx.finaliseBatch({
          id: batchId,
          manifestSha256: digest,
          idempotencyKey,
          skipReport: report.errors,
          skippedLines: report.count,
          signed: signatureCheck !== undefined,
          site: this.site,
          actor: upload.actor,
        });
        if (record.itemCount === 0) throw new Rejected(new FleetError('MANIFEST_EMPTY', 'no valid device lines remain after skipping the invalid ones', { httpStatus: 422, details: { errorCount: report.count, errors: report.errors } }));
        return record;
      });
      return { batch, created: true };
    } catch (err) {
      if (err instanceof Rejected) throw err.error;
      if (err instanceof AlreadyAccepted) return { batch: err.batch, created: false };
      if (this.store.isDuplicate(err)) {
        // The same manifest (or key) committed concurrently: answer with that batch.
        const key = upload.idempotencyKey ?? `sha256:${digestHex}`;
        const existing = await this.store.findBatchByIdempotencyKey(upload.manufacturerId, key);
        if (existing) return { batch: existing, created: false };
      }
      throw err;
    }
  }
}
