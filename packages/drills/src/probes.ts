import type { ChildProcess } from 'node:child_process';
import { buildCertId, buildOcspRequest } from '@fleetpki/ca';
import type { HttpsPart, InternalHttps, SiteConfig } from '@fleetpki/core';
import type { OcspIssuerHashes } from '@fleetpki/x509';

/**
 * One POST to a site's part at its configured URL: through fleetpki's internal client when given (https
 * checked against the configured bundle; an untrusted certificate is <PART>_TLS_UNTRUSTED), else fetch.
 */
async function post(https: InternalHttps | undefined, part: HttpsPart, url: string, headers: Record<string, string>, body: Buffer | string, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  if (https) return https.request(part, url, { method: 'POST', headers, body, timeoutMs });
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/**
 * Why a request got no answer, as a short key: a stable code (a TLS failure, not its cause's), a
 * connection error's (node:http puts it on the error, fetch on its cause), or the error's name.
 */
function failureOf(err: unknown): string {
  const e = err as { code?: string; name?: string; cause?: { code?: string } };
  return e.code ?? e.cause?.code ?? e.name ?? 'Error';
}

/** One acknowledged online enrolment: what the factory was told, and by which site. */
export interface Acknowledged {
  readonly serial: string;
  readonly eui64: string;
  readonly site: string;
  readonly at: number;
}

/**
 * A factory's online enrolment traffic during a drill: `clients` loops enrol new devices on the active
 * site and, when it stops answering (connection refused, 503), on the other site, as a client with both
 * addresses does. Every 201 is recorded; nothing else counts as acknowledged.
 */
export class EnrolmentTraffic {
  readonly acknowledged: Acknowledged[] = [];
  failures = 0;
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private next = 0;

  constructor(
    private readonly sites: readonly SiteConfig[],
    private readonly token: string,
    private readonly csrs: readonly Buffer[],
    private readonly euiPrefix: string,
    /** Pause after each acknowledged enrolment, per client (a steady rate that lasts through long runs). */
    private readonly paceMs = 0,
    /** The deployment's internal client (InternalHttps): needed once the API serves HTTPS. */
    private readonly https?: InternalHttps,
  ) {}

  start(clients: number): void {
    for (let c = 0; c < clients; c++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** What the sites answered instead of a certificate, counted per "site: answer" (for reports and diagnosis). */
  readonly refusals = new Map<string, number>();

  private refused(site: string, what: string): void {
    const key = `${site}: ${what}`;
    this.refusals.set(key, (this.refusals.get(key) ?? 0) + 1);
  }

  private async loop(): Promise<void> {
    let siteIndex = 0;
    while (!this.stopped && this.next < this.csrs.length) {
      const i = this.next++;
      const eui64 = `${this.euiPrefix}${i.toString(16).toUpperCase().padStart(16 - this.euiPrefix.length, '0')}`;
      for (;;) {
        if (this.stopped) return;
        const site = this.sites[siteIndex]!;
        try {
          const res = await post(this.https, 'api', `${site.apiUrl}/v1/enrolments`, { 'content-type': 'application/json', authorization: `Bearer ${this.token}` }, JSON.stringify({ eui64, keyRole: 'digitalSignature', csr: this.csrs[i]!.toString('base64') }), 5_000);
          const body = JSON.parse(res.body.toString('utf8')) as { serial?: string; code?: string };
          // 200: a retry after a lost answer (same key) is given the certificate already issued.
          if (res.status === 201 || res.status === 200) {
            this.acknowledged.push({ serial: body.serial!, eui64, site: site.id, at: Date.now() });
            if (this.paceMs > 0) await new Promise((r) => setTimeout(r, this.paceMs));
            break;
          }
          this.refused(site.id, `${res.status} ${body.code ?? ''}`.trim());
        } catch (err) {
          // connection refused or timed out: the site is gone (or, named by its code, not trusted)
          this.refused(site.id, failureOf(err));
        }
        this.failures++;
        siteIndex = (siteIndex + 1) % this.sites.length;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** OCSP requests for one certificate to a site's status responder, every `everyMs`, counting answers. */
export class OcspProbe {
  answered = 0;
  /**
   * Answered tryLater: a signed-off OCSP answer, not a failure. The standby says it while it declines to
   * vouch for "good" (behind the primary's last published WAL position, issue 33 §4), which a busy
   * primary can cause for a moment; a relying party asks again.
   */
  tryLater = 0;
  failed = 0;
  /** Why the first failures failed (at most 10, with the time): a timeout, an HTTP status, an OCSP status. */
  readonly failures: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly request: Buffer;

  constructor(
    private readonly site: SiteConfig,
    issuer: OcspIssuerHashes,
    serial: Buffer,
    /** The deployment's internal client (InternalHttps): needed once the status responder serves HTTPS. */
    private readonly https?: InternalHttps,
  ) {
    this.request = buildOcspRequest(buildCertId('sha1', issuer, serial));
  }

  start(everyMs = 100): void {
    const tick = async () => {
      try {
        const res = await post(this.https, 'status', `${this.site.statusUrl}/ocsp`, { 'content-type': 'application/ocsp-request' }, this.request, 2_000);
        const der = res.body;
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED (0 = successful), ... }
        const off = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
        // responseStatus 0 successful, 3 tryLater (RFC 6960 4.2.1).
        if (res.status === 200 && der[off] === 0x0a && der[off + 2] === 0) this.answered++;
        else if (res.status === 200 && der[off] === 0x0a && der[off + 2] === 3) this.tryLater++;
        else this.fail(`HTTP ${res.status}, responseStatus ${der[off] === 0x0a ? der[off + 2] : 'unreadable'}`);
      } catch (err) {
        this.fail((err as Error).message);
      }
      this.timer = setTimeout(tick, everyMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private fail(why: string): void {
    this.failed++;
    if (this.failures.length < 10) this.failures.push(`${new Date().toISOString()} ${why}`);
  }
}

export function killProcesses(children: readonly ChildProcess[]): void {
  for (const child of children) child.kill('SIGKILL');
}
