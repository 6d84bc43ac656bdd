import type { Signer } from './key-store.js';

/** What the HSM layer tells a process's metrics (packages/metrics' hsmMetrics has this shape). */
export interface HsmObserver {
  operation(event: { key: string; kind: 'sign' | 'wrap'; seconds: number }): void;
  failure(event: { key: string; kind: 'sign' | 'wrap'; code: string }): void;
  relogin(): void;
  token(event: { token: string; up: boolean }): void;
}

// One per process, like the process's metrics registry: every key store of the process reports to it,
// without each constructor and caller carrying it (the HSM is opened in a dozen places).
let observer: HsmObserver | undefined;

/** Reports this process's HSM operations to `o` from now on (a service's metrics). */
export function observeHsm(o: HsmObserver | undefined): void {
  observer = o;
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : 'HSM_UNKNOWN_ERROR';
}

/** Failures of one key or one signature, not of the token: they leave its health as it was. */
const KEY_FAILURES = new Set(['HSM_KEY_NOT_FOUND', 'HSM_KEY_AMBIGUOUS', 'HSM_SIGNATURE_INVALID']);

/** Metrics never change what signing does: an observer that throws is ignored. */
function report(fn: () => void): void {
  try {
    fn();
  } catch {
    // a metrics fault must not fail (or, after the fact, un-succeed) an HSM operation
  }
}

/**
 * Runs one HSM operation, reporting its time or its failure by code, and the token's health by its
 * outcome: up after a success, down after a failure of the token or its sessions (not of one key).
 */
export async function observed<T>(token: string, key: string, kind: 'sign' | 'wrap', run: () => Promise<T>): Promise<T> {
  const o = observer;
  if (!o) return run();
  const started = process.hrtime.bigint();
  let result: T;
  try {
    result = await run();
  } catch (err) {
    const code = codeOf(err);
    report(() => o.failure({ key, kind, code }));
    if (!KEY_FAILURES.has(code)) report(() => o.token({ token, up: false }));
    throw err;
  }
  report(() => {
    o.operation({ key, kind, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    o.token({ token, up: true });
  });
  return result;
}

/** A signer whose signatures are reported (observed). */
export function observedSigner(signer: Signer, token: string, key: string): Signer {
  return {
    algorithm: signer.algorithm,
    publicKeySpki: signer.publicKeySpki,
    sign: (data) => observed(token, key, 'sign', () => signer.sign(data)),
  };
}

/** A session logged in again (the token dropped its login, or the session broke). */
export function reportRelogin(): void {
  const o = observer;
  if (o) report(() => o.relogin());
}

/** How often a key store asks its token whether it is there (C_GetTokenInfo), for fleetpki_hsm_token_up. */
export const TOKEN_HEALTH_EVERY_MS = 15_000;

/**
 * Asks the token every TOKEN_HEALTH_EVERY_MS whether it is there, while a process reports to an
 * observer: a process that signs nothing for hours (a standby's responders) still says its token is
 * gone before a failover needs it. The timer never keeps the process alive.
 */
export function watchTokenHealth(token: string, probe: () => void): NodeJS.Timeout {
  const timer = setInterval(() => {
    const o = observer;
    if (!o) return;
    let up = true;
    try {
      probe();
    } catch {
      up = false;
    }
    report(() => o.token({ token, up }));
  }, TOKEN_HEALTH_EVERY_MS);
  timer.unref();
  return timer;
}
