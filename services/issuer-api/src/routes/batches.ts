import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { FleetError, ProgressDeadline, eui64FromBytes, type FleetConfig } from '@fleetpki/core';
import { DEVICE_KEY_ROLES, serialHex, type BatchIntake, type BatchReads, type DeviceKeyService, type Principal, type SiteGuard, type UploadAdmission, auditActor } from '@fleetpki/ca';
import { MANIFEST_SIGNATURE_HEADER } from '@fleetpki/manifest';
import type { ChunkQueue } from '@fleetpki/queue';
import type { DeviceKeyRole } from '@fleetpki/hsm';
import { CERTIFICATE_FORMATS, encodeIssuedCertificate, getProfile, parseCertificateFormat } from '@fleetpki/x509';
import { type ApiAccess, requireRole, visibleTo } from '../auth.js';

const MANIFEST_TYPES = { 'application/x-ndjson': 'ndjson', 'application/ndjson': 'ndjson', 'text/csv': 'csv' } as const;

export interface BatchRouteDeps {
  /** The batches' progress, results and device pages. */
  readonly reads: BatchReads;
  readonly intake: BatchIntake;
  readonly queue: ChunkQueue;
  readonly authenticator: ApiAccess;
  readonly guard: SiteGuard;
  readonly chainPem: readonly string[];
  readonly deviceKeys: DeviceKeyService;
  /** Who may start an upload now (per manufacturer, and the uploads' pool). */
  readonly admission: UploadAdmission;
  /** How slowly an upload may send, and for how long. */
  readonly uploads: Pick<FleetConfig['uploads'], 'idleSeconds' | 'progressBytes' | 'maxSeconds'>;
}

/** A manifest body read with the upload deadlines; a client that cannot keep to them is cut with 408. */
function readWithDeadlines(body: AsyncIterable<Buffer>, limits: BatchRouteDeps['uploads'], maxMs = limits.maxSeconds * 1000): ProgressDeadline<Buffer> {
  return new ProgressDeadline(body, {
    idleMs: limits.idleSeconds * 1000,
    progressBytes: limits.progressBytes,
    totalMs: maxMs,
    stalled: () => new FleetError('UPLOAD_STALLED', `the upload sent less than ${limits.progressBytes} bytes in ${limits.idleSeconds} s (FLEETPKI_UPLOAD_IDLE_S); it was cut and nothing of it was kept: send the manifest again at a steady pace`, { httpStatus: 408 }),
    overdue: () => new FleetError('UPLOAD_TOO_SLOW', `the upload was still sending after ${limits.maxSeconds} s, the most an upload may take (FLEETPKI_UPLOAD_MAX_S); it was cut and nothing of it was kept`, { httpStatus: 408 }),
  });
}

/** The connection closes once the answer is out, whatever of the body is still coming: it is never read. */
function closeAfterAnswer(reply: FastifyReply): void {
  void reply.header('connection', 'close');
}

/**
 * A refused upload stops reading mid-body. Most HTTP clients cannot read a response while they are still
 * sending, so the rest of the body is read and discarded (up to 64 MiB, and within the upload deadlines;
 * past either the connection closes after the answer) before the error goes out. An upload cut by a
 * deadline is not drained: its connection closes.
 */
async function drainOnError<T>(body: Readable, read: ProgressDeadline<Buffer>, reply: FastifyReply, limits: BatchRouteDeps['uploads'], startedAt: number, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (read.expired) {
      closeAfterAnswer(reply);
      throw err;
    }
    if (!body.readableEnded && !body.destroyed) {
      let discarded = 0;
      try {
        for await (const chunk of readWithDeadlines(body.iterator({ destroyOnReturn: false }), limits, limits.maxSeconds * 1000 - (Date.now() - startedAt))) {
          discarded += (chunk as Buffer).length;
          if (discarded > 64 * 1024 * 1024) break;
        }
      } catch {
        // a deadline: the connection closes instead
      }
      if (!body.readableEnded) closeAfterAnswer(reply);
    }
    throw err;
  }
}

export function registerBatchRoutes(app: FastifyInstance, deps: BatchRouteDeps): void {
  // The manifest is handed to the route as the raw request stream: it is never buffered whole.
  app.addContentTypeParser(Object.keys(MANIFEST_TYPES), (_request, payload, done) => done(null, payload));

  app.post<{ Querystring: { profile?: string; onInvalid?: 'reject' | 'skip' } }>(
    '/v1/batches',
    {
      preParsing: requireRole(deps.authenticator, ['factory']),
      schema: {
        summary: 'Upload a factory manifest (NDJSON or CSV), streamed; returns the batch',
        description:
          'Body: application/x-ndjson (one device a line: {"eui64","deviceType","keys":[{"role","csr"|"publicKey"}]}) or text/csv (header eui64,deviceType,keyRole,csr,publicKey). ' +
          'Raw public keys need X-Manifest-Signature (base64 DER ECDSA P-256/SHA-256 over the body, by the manufacturer\'s registered key). ' +
          'Idempotency-Key (or, without it, the manifest hash) makes a resubmission return the same batch (200). A refused manifest (422) lists the first bad lines and writes nothing.',
        tags: ['batches'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { profile: { type: 'string', maxLength: 40 }, onInvalid: { type: 'string', enum: ['reject', 'skip'] } } },
      },
    },
    async (request, reply) => {
      await deps.guard.assertWritable();
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() as keyof typeof MANIFEST_TYPES;
      const format = MANIFEST_TYPES[type];
      if (!format) throw new FleetError('MEDIA_TYPE_UNSUPPORTED', 'send the manifest as application/x-ndjson or text/csv', { httpStatus: 415 });
      const header = (name: string) => {
        const v = request.headers[name];
        return typeof v === 'string' ? v : undefined;
      };
      const principal = request.principal!;
      const idempotencyKey = header('idempotency-key');
      const signature = header(MANIFEST_SIGNATURE_HEADER);
      // Admitted, or refused before a byte of the body is read (the body is never read then).
      let release: () => void;
      try {
        release = deps.admission.admit(principal.manufacturerId!);
      } catch (err) {
        closeAfterAnswer(reply);
        throw err;
      }
      let accepted: Awaited<ReturnType<BatchIntake['accept']>>;
      try {
        const startedAt = Date.now();
        // Not destroyed when the intake stops reading early: drainOnError still has to read the rest.
        const body = readWithDeadlines((request.body as Readable).iterator({ destroyOnReturn: false }), deps.uploads);
        accepted = await drainOnError(request.raw, body, reply, deps.uploads, startedAt, deps.intake.accept({
          manufacturerId: principal.manufacturerId!,
          actor: auditActor(principal),
          format,
          body,
          ...(request.query.profile ? { profile: request.query.profile } : {}),
          ...(request.query.onInvalid ? { onInvalid: request.query.onInvalid } : {}),
          ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
          ...(signature !== undefined ? { signature } : {}),
        }));
      } finally {
        release();
      }
      const { batch, created } = accepted;
      if (created) {
        // Fast path; the reconciler queues them anyway if Redis is down right now.
        await deps.queue.enqueue(Array.from({ length: batch.chunkCount }, (_, chunkNo) => ({ batchId: batch.id, chunkNo }))).catch((err: Error) => request.log.warn({ err }, 'chunks not queued; the reconciler will'));
      }
      return reply
        .status(created ? 201 : 200)
        .header('location', `/v1/batches/${batch.id}`)
        .send(await deps.reads.describe(batch));
    },
  );

  const readers = requireRole(deps.authenticator, ['factory', 'auditor', 'administrator']);
  const findBatch = (id: string, principal: Principal) => deps.reads.find(id, (manufacturerId) => visibleTo(principal, manufacturerId));

  app.get<{ Querystring: { limit?: number } }>(
    '/v1/batches',
    {
      preParsing: readers,
      schema: {
        summary: 'The newest batches (a factory sees its own)',
        tags: ['batches'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 } } },
      },
    },
    async (request) => {
      const principal = request.principal!;
      return { batches: await deps.reads.list({ manufacturerId: principal.role === 'factory' ? principal.manufacturerId : null, limit: request.query.limit ?? 50 }) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/batches/:id',
    { preParsing: readers, schema: { summary: 'Batch progress: counts, rate, ETA, refused lines', tags: ['batches'], security: [{ bearer: [] }] } },
    async (request) => deps.reads.describe(await findBatch(request.params.id, request.principal!)),
  );

  app.get<{ Params: { id: string }; Querystring: { after?: number; format?: string } }>(
    '/v1/batches/:id/results',
    {
      preParsing: readers,
      schema: {
        summary: 'Issued certificates as NDJSON, resumable',
        description:
          'Lines: {"type":"chain",...} first (unless resuming), then {"type":"certificate","cursor","eui64","keyRole","serial","certificate"} (base64 DER by default; ?format=pem or ?format=c509 for base64 C509), then {"type":"end","cursor","complete"}. While the batch issues, only the chunks finished in order are listed, so resuming with ?after=<cursor> never skips a certificate; follow a running batch by asking again with the last cursor until complete.',
        tags: ['batches'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { after: { type: 'integer', minimum: -1 }, format: { type: 'string', enum: CERTIFICATE_FORMATS } } },
      },
    },
    async (request, reply) => {
      const batch = await findBatch(request.params.id, request.principal!);
      const reads = deps.reads;
      const chain = deps.chainPem;
      const start = request.query.after ?? -1;
      const profile = getProfile(batch.profile);
      // DER by default here (the results were base64 DER before formats existed); native C509 profiles give C509.
      const format = parseCertificateFormat(request.query.format ?? (profile.nativeC509 ? 'c509' : 'der'), profile);
      if (profile.nativeC509 && format !== 'c509') encodeIssuedCertificate(Buffer.alloc(0), profile, format);
      async function* lines(): AsyncGenerator<string> {
        if (start < 0) yield JSON.stringify({ type: 'chain', batch: batch.id, certificates: chain }) + '\n';
        for await (const part of reads.results(batch.id, start)) {
          if ('end' in part) {
            yield JSON.stringify({ type: 'end', cursor: part.end.cursor, complete: part.end.complete }) + '\n';
            continue;
          }
          let text = '';
          for (const r of part.page) {
            text += JSON.stringify({ type: 'certificate', cursor: r.seq, eui64: eui64FromBytes(r.eui64), keyRole: r.keyRole, serial: serialHex(r.serial), certificate: encodeIssuedCertificate(r.der, profile, format) }) + '\n';
          }
          yield text;
        }
      }
      return reply.type('application/x-ndjson').send(Readable.from(lines()));
    },
  );

  app.get<{ Params: { id: string }; Querystring: { roles?: string } }>(
    '/v1/batches/:id/device-keys',
    {
      // Key material, even wrapped, goes to the factory that injects it and to nobody else.
      preParsing: requireRole(deps.authenticator, ['factory']),
      schema: {
        summary: "The batch's symmetric device keys, wrapped for the manufacturer's transport key (NDJSON)",
        description:
          'First line {"type":"device-key-transport", ephemeralPublicKey, context, kdf, ...}, then {"type":"device-key", eui64, role, version, wrapped, kcv} per device and role, for every device of the batch with an issued certificate. Keys are diversified deterministically: downloading again gives the same keys, wrapped under a fresh transport key.',
        tags: ['batches'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { roles: { type: 'string', maxLength: 20, description: 'comma-separated: mac,enc (default both)' } } },
      },
    },
    async (request, reply) => {
      // Key check values are recorded as keys go out: the active site only.
      await deps.guard.assertWritable();
      const batch = await findBatch(request.params.id, request.principal!);
      const allowed = getProfile(batch.profile).hybridKeys ?? [];
      if (allowed.length === 0) throw new FleetError('HYBRID_KEYS_OFF', `profile ${batch.profile} delivers no device keys`, { httpStatus: 409 });
      const roles = (request.query.roles?.split(',').map((r) => r.trim()) ?? [...allowed]) as DeviceKeyRole[];
      if (roles.some((r) => !DEVICE_KEY_ROLES.includes(r) || !allowed.includes(r))) throw new FleetError('DEVICE_KEY_ROLE_INVALID', `profile ${batch.profile} delivers device keys ${allowed.join(', ')}`, { httpStatus: 400 });
      // Past its deadline the bundle releases its HSM session; the download ends there, unfinished
      // (the client sees the connection cut; downloading again gives the same keys).
      const bundle = await deps.deviceKeys.openBundle({ manufacturerId: batch.manufacturerId, roles, context: batch.id, actor: auditActor(request.principal!) }, { onExpired: () => reply.raw.destroy() });
      const reads = deps.reads;
      async function* lines(): AsyncGenerator<string> {
        try {
          yield JSON.stringify(bundle.header) + '\n';
          for await (const page of reads.devicePages(batch.id)) yield (await bundle.wrap(page)).map((k) => JSON.stringify(k)).join('\n') + '\n';
        } finally {
          await bundle.close();
        }
      }
      return reply.type('application/x-ndjson').send(Readable.from(lines()));
    },
  );
}

