import { Agent, request } from 'node:http';
import { issueApiToken } from '@fleetpki/ca';
import { FleetApiClient, revokeUnderDualControl } from '@fleetpki/client';
import type { Pool } from '@fleetpki/store';
import type { BenchRun } from './bench-run.js';

export interface RevocationToOcsp {
  readonly devices: number;
  /** From sending the request (dual control: request, approve, execute) to its answer. */
  readonly request_s: number;
  /** Of which the second officer's execute call: the revocation itself (one transaction). */
  readonly execute_s: number;
  /** From sending the request until the responder said "revoked" for every one of the devices. */
  readonly all_revoked_in_ocsp_s: number;
  /** From sending the execute call (the revocation proper, after both officers agreed) to the same. */
  readonly all_revoked_after_execute_s: number;
  readonly ocsp_passes: number;
}

/** Did this OCSP response say "revoked" ([1], 0xa1) for the CertID of this request? */
function saysRevoked(response: Buffer, request: Buffer): boolean {
  // The request is OCSPRequest { TBSRequest { requestList { Request { CertID ... } } } }: 8 bytes of
  // headers for a one-CertID request without extensions, as buildOcspRequest makes.
  const certId = request.subarray(8);
  const at = response.indexOf(certId);
  return at >= 0 && response[at + certId.length] === 0xa1;
}

/**
 * Revokes `devices` in one request to the issuer API (under dual control, two officers made for the
 * run) and polls the responder over OCSP, 64 requests at a time, until every one of them is reported
 * revoked, as relying parties would see it. Every device must be reported not revoked before.
 */
export async function revokeAndPollOcsp(
  run: BenchRun,
  options: { apiUrl: string; ocspUrl: string; pool: Pool; devices: readonly string[]; ocspRequests: readonly Buffer[]; label: string },
): Promise<RevocationToOcsp> {
  const { devices, ocspRequests } = options;
  // node:http with a keep-alive agent, not fetch: fetch cost the poller more CPU per request than the
  // responder spent answering (a 10,000-device pass took 13 s), so the figure measured the poller.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL(options.ocspUrl);
  const post = (body: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, timeout: 30_000, headers: { 'content-type': 'application/ocsp-request', 'content-length': body.length } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`OCSP request to ${options.ocspUrl} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  const pass = async (pending: number[]): Promise<number[]> => {
    const still: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let k = next++; k < pending.length; k = next++) {
          const i = pending[k]!;
          if (!saysRevoked(await post(ocspRequests[i]!), ocspRequests[i]!)) still.push(i);
        }
      }),
    );
    return still;
  };
  run.begin(`${options.label}: checking that none of ${devices.length} devices is revoked before the request`);
  const checkStart = performance.now();
  const before = await pass(devices.map((_, i) => i));
  run.log(`  ${devices.length} OCSP requests answered "not revoked" in ${run.seconds(checkStart)} s (the polling rate before the revocation)`);
  if (before.length !== devices.length) run.fail('BENCH_PRECONDITION', `${devices.length - before.length} devices reported revoked before the request`);

  const suffix = Math.random().toString(36).slice(2, 8);
  const token = (n: number) => issueApiToken(options.pool, { site: 'a', actor: 'bench', name: `bench-officer-${n}-${suffix}`, role: 'revocation-officer', manufacturerId: null, expiresDays: 1 });
  const officer = new FleetApiClient(options.apiUrl, await token(1));
  const approver = new FleetApiClient(options.apiUrl, await token(2));
  run.begin(`${options.label}: revoking ${devices.length} devices (dual control: request, approve, execute)`);
  // The three steps of dual control one by one (what revokeUnderDualControl does), so the revocation
  // proper (the execute call) is timed apart from the asking and approving, which take people minutes.
  const t = performance.now();
  let executeStart = t;
  const outcome = await revokeUnderDualControl(officer, approver, { devices: [...devices] }, 'keyCompromise', {
    beforeExecute: () => {
      executeStart = performance.now();
    },
  });
  const requestSeconds = run.seconds(t);
  const executeSeconds = run.seconds(executeStart);
  if (outcome.revoked !== devices.length) run.fail('BENCH_PRECONDITION', `the request revoked ${outcome.revoked} of ${devices.length}`);
  run.log(`  request answered in ${requestSeconds} s (of which the execute call ${executeSeconds} s): ${outcome.revoked} revoked in ${outcome.crlShards.length} shards`);
  // Relying parties ask in no particular order: the devices in a fixed shuffle (the same every run), not
  // in the order the officer listed them, which favoured a re-signer working through the list in order.
  let pending = shuffled(devices.map((_, i) => i));
  let passes = 0;
  await run.waitUntil(
    `OCSP to report all ${devices.length} devices revoked`,
    async () => {
      pending = await pass(pending);
      passes++;
      return { done: pending.length === 0, progress: `${devices.length - pending.length}/${devices.length} reported revoked after ${passes} passes` };
    },
    { intervalMs: 0 },
  );
  const allRevokedSeconds = run.seconds(t);
  const afterExecuteSeconds = run.seconds(executeStart);
  run.log(`  every device revoked in OCSP ${allRevokedSeconds} s after the request was sent, ${afterExecuteSeconds} s after the execute call was (${passes} polling passes)`);
  agent.destroy();
  return { devices: devices.length, request_s: requestSeconds, execute_s: executeSeconds, all_revoked_in_ocsp_s: allRevokedSeconds, all_revoked_after_execute_s: afterExecuteSeconds, ocsp_passes: passes };
}

/**
 * A Fisher-Yates shuffle driven by a fixed linear congruential sequence: the same order in every run. The
 * index comes from the sequence's high bits (scaled), not `seed % n`: an LCG's low bits repeat quickly.
 */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 0x2545f491;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    const j = Math.floor((seed / 2 ** 32) * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
