import { Agent, fetch as undiciFetch } from 'undici';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { FleetError, httpsPartError, httpsTrustFile, type FleetConfig, type SiteId } from '@fleetpki/core';

/** The batch as GET /v1/batches/:id describes it. */
export interface BatchView {
  readonly id: string;
  readonly status: 'accepted' | 'issuing' | 'complete' | 'failed' | 'cancelled';
  readonly profile: string;
  readonly devices: number;
  readonly certificatesRequested: number;
  readonly issued: number;
  readonly failed: number;
  readonly chunks: { total: number; done: number; size: number };
  readonly skippedLines: number;
  readonly skipped: { line: number; code: string; message: string }[];
  readonly errors: { line: number; eui64: string; keyRole: string; code: string }[];
  readonly certificatesPerSecond: number;
  readonly etaSeconds: number | null;
  readonly createdAt: string;
  readonly completedAt: string | null;
  /** Certificates issued by each moment (up to 60 points): the throughput over time. */
  readonly issuedOverTime?: readonly { at: string; issued: number }[];
}

export interface RevocationView {
  readonly revoked: number;
  readonly alreadyRevoked: number;
  readonly notFound: number;
  readonly notFoundFirst: string[];
  readonly crlShards: number[];
  readonly reason: number;
}

export type ResultLine =
  | { type: 'chain'; batch: string; certificates: string[] }
  | { type: 'certificate'; cursor: number; eui64: string; keyRole: string; serial: string; certificate: string }
  | { type: 'end'; cursor: number; complete: boolean };

export interface ApprovalView {
  readonly id: string;
  readonly action: string;
  readonly status: 'pending' | 'approved' | 'executed' | 'expired';
  readonly summary: string;
  /** The people, and the credential each step used ('token:<id>' or 'cert:<serial>'). */
  readonly requestedBy: string;
  readonly requestedWith: string;
  readonly requestedAt: string;
  readonly expiresAt: string;
  readonly approvedBy?: string;
  readonly approvedWith?: string;
  readonly executedBy?: string;
  readonly executedWith?: string;
  readonly executedAt?: string;
  readonly outcome?: Record<string, unknown>;
}

export interface ApprovalRequiredView {
  readonly approvalRequired: true;
  readonly threshold: number;
  /** Certificates this request would newly revoke, and those its person revoked without approval in the window. */
  readonly wouldRevoke?: number;
  readonly recentWithoutApproval?: number;
  readonly windowMinutes?: number;
  readonly approval: ApprovalView;
}

export interface SubmitOptions {
  readonly format?: 'ndjson' | 'csv';
  readonly profile?: string;
  readonly onInvalid?: 'reject' | 'skip';
  readonly idempotencyKey?: string;
  readonly signature?: string;
  readonly onUploadProgress?: (bytesSent: number, totalBytes: number) => void;
}

/**
 * A small client of the fleetpki HTTP API, as a factory's tooling would use it: the CLI, the demo,
 * benchmarks and tests all speak to the service through it. API errors come back as FleetErrors with
 * the server's code and details.
 */
export class FleetApiClient {
  private readonly dispatcher: Agent | undefined;

  /**
   * `token` authenticates with a bearer token; `tls` (over https) with a client certificate from the
   * organisation CA instead, and `tls.ca` is what the server's certificate must chain to.
   */
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    tls?: { key?: string | Buffer; cert?: string | Buffer; ca?: string | Buffer },
    /** Where tls.ca came from, for the error that says it does not vouch for the server. */
    private readonly trustFile?: string,
  ) {
    // rejectUnauthorized written out: NODE_TLS_REJECT_UNAUTHORIZED=0 only changes the default.
    this.dispatcher = tls ? new Agent({ connect: { rejectUnauthorized: true, ...(tls.key ? { key: tls.key } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.ca ? { ca: tls.ca } : {}) } }) : undefined;
  }

  /**
   * A site's API as the configuration names it (sites.<id>.api.url, or `baseUrl`), its server checked
   * against the configured bundle when the URL is https (httpsTrustFile): the client of the CLI, drills
   * and daemons. A certificate the bundle does not vouch for is API_TLS_UNTRUSTED, never a plain retry.
   */
  static forSite(config: Pick<FleetConfig, 'sites' | 'tls' | 'api'>, site: SiteId, token: string | undefined, baseUrl = config.sites[site].apiUrl): FleetApiClient {
    const trustFile = baseUrl.startsWith('https:') ? httpsTrustFile(config, 'api') : undefined;
    if (!trustFile) return new FleetApiClient(baseUrl, token);
    let ca: Buffer;
    try {
      ca = readFileSync(trustFile);
    } catch (err) {
      throw new FleetError('API_TLS_MATERIAL', `cannot read ${trustFile}, the bundle the issuer API's certificate is checked against: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return new FleetApiClient(baseUrl, token, { ca }, trustFile);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  /** fetch through the TLS agent when there is one; a TLS failure becomes API_TLS_UNTRUSTED / _UNAVAILABLE. */
  private async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await (this.dispatcher ? (undiciFetch(url, { ...(init as object), dispatcher: this.dispatcher }) as unknown as Promise<Response>) : fetch(url, init));
    } catch (err) {
      throw httpsPartError('api', url, err, this.trustFile ?? (this.dispatcher ? 'the CA given to the client' : undefined)) ?? err;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async parse<T>(res: Response): Promise<T> {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new FleetError('API_RESPONSE_INVALID', `${res.status} from the API, not JSON: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const e = body as { code?: string; message?: string; details?: Record<string, unknown> };
      throw new FleetError(e.code ?? `HTTP_${res.status}`, e.message ?? `HTTP ${res.status}`, { httpStatus: res.status, ...(e.details ? { details: e.details } : {}) });
    }
    return body as T;
  }

  /** Streams a manifest file to POST /v1/batches (never read whole into memory). */
  async submitBatch(file: string, options: SubmitOptions = {}): Promise<{ batch: BatchView; created: boolean }> {
    const format = options.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
    const total = statSync(file).size;
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length;
        options.onUploadProgress?.(sent, total);
        done(null, chunk);
      },
    });
    const body = Readable.toWeb(createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(counter)) as ReadableStream;
    const query = new URLSearchParams();
    if (options.profile) query.set('profile', options.profile);
    if (options.onInvalid) query.set('onInvalid', options.onInvalid);
    const res = await this.fetch(`${this.baseUrl}/v1/batches${query.size ? `?${query}` : ''}`, {
      method: 'POST',
      headers: this.headers({
        'content-type': format === 'csv' ? 'text/csv' : 'application/x-ndjson',
        ...(options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {}),
        ...(options.signature ? { 'x-manifest-signature': options.signature } : {}),
      }),
      body,
      duplex: 'half',
    } as RequestInit);
    const batch = await this.parse<BatchView>(res);
    return { batch, created: res.status === 201 };
  }

  async getBatch(id: string): Promise<BatchView> {
    return this.parse<BatchView>(await this.fetch(`${this.baseUrl}/v1/batches/${encodeURIComponent(id)}`, { headers: this.headers() }));
  }

  /** The batch's results, line by line, from `after` (a cursor of an earlier read) on; format der (default), pem or c509. */
  async *batchResults(id: string, after?: number, format?: 'der' | 'pem' | 'c509'): AsyncGenerator<ResultLine> {
    const query = new URLSearchParams({ ...(after !== undefined ? { after: String(after) } : {}), ...(format ? { format } : {}) }).toString();
    const res = await this.fetch(`${this.baseUrl}/v1/batches/${encodeURIComponent(id)}/results${query ? `?${query}` : ''}`, { headers: this.headers() });
    if (!res.ok || !res.body) {
      await this.parse(res);
      return;
    }
    let pending = '';
    for await (const chunk of Readable.fromWeb(res.body as WebReadableStream<Uint8Array>)) {
      pending += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line) yield JSON.parse(line) as ResultLine;
      }
    }
    if (pending.trim()) yield JSON.parse(pending) as ResultLine;
  }

  /**
   * A revocation. Above the dual-control threshold the API answers 202 with an approval request
   * instead: that comes back as FleetError APPROVAL_REQUIRED with the request in `details.approval`.
   */
  async revoke(target: { serials: string[] } | { devices: string[] } | { batch: string }, reason?: string | number): Promise<RevocationView> {
    const res = await this.fetch(`${this.baseUrl}/v1/revocations`, {
      method: 'POST',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({ ...target, ...(reason !== undefined ? { reason } : {}) }),
    });
    const body = await this.parse<RevocationView | ApprovalRequiredView>(res);
    if ('approvalRequired' in body) {
      throw new FleetError('APPROVAL_REQUIRED', `more than ${body.threshold} certificates: a second officer must approve request ${body.approval.id} (${body.approval.summary})`, { httpStatus: 202, details: { ...body } });
    }
    return body;
  }

  /** The issuing CA and root certificates (PEM). */
  async ca(): Promise<string> {
    const res = await this.fetch(`${this.baseUrl}/v1/ca/chain`);
    if (!res.ok) await this.parse(res);
    return res.text();
  }

  /** One device key's certificate (online enrolment). */
  async enrol(body: { eui64: string; keyRole: string; csr?: string; c509Csr?: string; publicKey?: string; publicKeySignature?: string; profile?: string; format?: 'pem' | 'der' | 'c509' }): Promise<{ serial: string; certificate: string; format: string }> {
    return this.parse(await this.fetch(`${this.baseUrl}/v1/enrolments`, { method: 'POST', headers: this.headers({ 'content-type': 'application/json' }), body: JSON.stringify(body) }));
  }

  async approvals(): Promise<ApprovalView[]> {
    return (await this.parse<{ approvals: ApprovalView[] }>(await this.fetch(`${this.baseUrl}/v1/approvals`, { headers: this.headers() }))).approvals;
  }

  async approval(id: string): Promise<ApprovalView> {
    return this.parse<ApprovalView>(await this.fetch(`${this.baseUrl}/v1/approvals/${encodeURIComponent(id)}`, { headers: this.headers() }));
  }

  async requestApproval(body: { action: 'ca.revoke' | 'master-key.rotate' | 'site.switchover' | 'drill.failover' | 'person.create' | 'person.rescope' | 'credential.create' | 'ca.root-rollover' | 'ca.root-custody'; caId?: string; role?: string; reason?: string; name?: string }): Promise<ApprovalView> {
    return this.parse<ApprovalView>(await this.fetch(`${this.baseUrl}/v1/approvals`, { method: 'POST', headers: this.headers({ 'content-type': 'application/json' }), body: JSON.stringify(body) }));
  }

  async approve(id: string): Promise<ApprovalView> {
    return this.parse<ApprovalView>(await this.fetch(`${this.baseUrl}/v1/approvals/${encodeURIComponent(id)}/approve`, { method: 'POST', headers: this.headers() }));
  }

  async executeApproval(id: string): Promise<ApprovalView> {
    return this.parse<ApprovalView>(await this.fetch(`${this.baseUrl}/v1/approvals/${encodeURIComponent(id)}/execute`, { method: 'POST', headers: this.headers() }));
  }

  /** The batch's device-key bundle (header line, then one line per device and role), streamed. */
  async *batchDeviceKeys(id: string, roles: readonly string[] = ['mac', 'enc']): AsyncGenerator<Record<string, unknown>> {
    const res = await this.fetch(`${this.baseUrl}/v1/batches/${encodeURIComponent(id)}/device-keys?roles=${roles.join(',')}`, { headers: this.headers() });
    if (!res.ok || !res.body) {
      await this.parse(res);
      return;
    }
    let pending = '';
    for await (const chunk of Readable.fromWeb(res.body as WebReadableStream<Uint8Array>)) {
      pending += Buffer.from(chunk as Uint8Array).toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line) yield JSON.parse(line) as Record<string, unknown>;
    }
    if (pending) yield JSON.parse(pending) as Record<string, unknown>;
  }

  /** Polls until the batch is complete (or failed), reporting each view. */
  /**
   * A batch's results as it issues them: every certificate once, in order, until the batch is
   * complete (or failed or cancelled), asking again with the last cursor every `intervalMs`. The chain
   * comes first unless resuming (`after`); the last line is the final {"type":"end"}.
   */
  async *followBatchResults(id: string, options: { after?: number; format?: 'der' | 'pem' | 'c509'; intervalMs?: number } = {}): AsyncGenerator<ResultLine> {
    let cursor = options.after;
    let first = true;
    for (;;) {
      let end: Extract<ResultLine, { type: 'end' }> | undefined;
      for await (const line of this.batchResults(id, cursor, options.format)) {
        if (line.type === 'end') end = line;
        else if (line.type !== 'chain' || first) yield line;
      }
      first = false;
      if (!end) throw new FleetError('RESULTS_TRUNCATED', `the results of batch ${id} ended without their end line; resume with --after ${cursor ?? -1}`);
      cursor = end.cursor;
      if (end.complete) return yield end;
      const batch = await this.getBatch(id);
      if (batch.status === 'failed' || batch.status === 'cancelled') return yield end;
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 1_000));
    }
  }

  async waitForBatch(id: string, onProgress?: (batch: BatchView) => void, intervalMs = 500): Promise<BatchView> {
    for (;;) {
      const batch = await this.getBatch(id);
      onProgress?.(batch);
      if (batch.status === 'complete' || batch.status === 'failed' || batch.status === 'cancelled') return batch;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
export * from './device-key-bundle.js';
export * from './root-update.js';

/**
 * A revocation of any size, as two officers carry it out: the requester asks, the approver approves
 * (when the size needs it), the requester executes. For scripts, benchmarks and tests.
 */
export async function revokeUnderDualControl(
  requester: FleetApiClient,
  approver: FleetApiClient,
  target: Parameters<FleetApiClient['revoke']>[0],
  reason?: string | number,
  hooks: { beforeExecute?: () => void } = {},
): Promise<RevocationView & { approvalId?: string }> {
  try {
    return await requester.revoke(target, reason);
  } catch (err) {
    const approval = (err as FleetError).details?.approval as ApprovalView | undefined;
    if ((err as FleetError).code !== 'APPROVAL_REQUIRED' || !approval) throw err;
    await approver.approve(approval.id);
    hooks.beforeExecute?.();
    const done = await requester.executeApproval(approval.id);
    return { ...(done.outcome as unknown as RevocationView), approvalId: approval.id };
  }
}
