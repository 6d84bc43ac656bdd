import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * What the HSM layer reports (packages/hsm's HsmObserver has this shape; hsm does not import
 * prom-client, and this package does not import graphene).
 */
export interface HsmMetrics {
  operation(event: { key: string; kind: 'sign' | 'wrap'; seconds: number }): void;
  failure(event: { key: string; kind: 'sign' | 'wrap'; code: string }): void;
  relogin(): void;
  token(event: { token: string; up: boolean }): void;
}

/** HSM operations, errors, latency, re-logins and token health (docs/metrics.md, HSM). */
export function hsmMetrics(registry: Registry): HsmMetrics {
  const registers = [registry];
  const operations = new Counter({ name: 'fleetpki_hsm_operations_total', help: 'HSM operations that succeeded, by key and kind (sign, wrap)', labelNames: ['key', 'kind'] as const, registers });
  const errors = new Counter({ name: 'fleetpki_hsm_errors_total', help: 'HSM operations that failed, by key, kind and stable error code', labelNames: ['key', 'kind', 'code'] as const, registers });
  const duration = new Histogram({
    name: 'fleetpki_hsm_operation_duration_seconds',
    help: 'Time of one HSM operation as its caller waited for it',
    labelNames: ['kind'] as const,
    // SoftHSM signs in ~0.1 ms of CPU; a network HSM in 1-10 ms; a queue behind a saturated token in 100s.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const relogins = new Counter({ name: 'fleetpki_hsm_relogins_total', help: 'HSM sessions logged in again after the token dropped a login', registers });
  const tokenUp = new Gauge({ name: 'fleetpki_hsm_token_up', help: '1 when the last check of the token succeeded, else 0', labelNames: ['token'] as const, registers });
  return {
    operation: ({ key, kind, seconds }) => {
      operations.inc({ key, kind });
      duration.observe({ kind }, seconds);
    },
    failure: ({ key, kind, code }) => errors.inc({ key, kind, code }),
    relogin: () => relogins.inc(),
    token: ({ token, up }) => tokenUp.set({ token }, up ? 1 : 0),
  };
}
