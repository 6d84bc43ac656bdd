/**
 * One thread of PossessionThreads: checks each message's proofs of possession (verifyP256Point) and
 * answers 1 or 0 for each, in order. A check that throws is a refusal, as on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { verifyP256Point } from './p256-verify.js';

export interface PossessionRequest {
  readonly id: number;
  readonly checks: readonly { readonly point: Uint8Array; readonly data: Uint8Array; readonly signature: Uint8Array }[];
}

export interface PossessionReply {
  readonly id: number;
  readonly ok: Uint8Array;
}

parentPort?.on('message', ({ id, checks }: PossessionRequest) => {
  const ok = new Uint8Array(checks.length);
  checks.forEach(({ point, data, signature }, i) => {
    ok[i] = verifyP256Point(point, data, signature) ? 1 : 0;
  });
  const reply: PossessionReply = { id, ok };
  parentPort?.postMessage(reply, [ok.buffer]);
});
