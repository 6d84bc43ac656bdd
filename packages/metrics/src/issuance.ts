import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type EnrolmentProtocol = 'json' | 'est' | 'cmp';

export interface IssuanceMetrics {
  intentsRecorded(channel: 'online' | 'batch', count: number): void;
  certificatesStored(channel: 'online' | 'batch', count: number): void;
  issued(profile: string, keyRole: string): void;
  enrolment(protocol: EnrolmentProtocol, seconds: number, refusal: string | undefined): void;
}

/** Issuance counters and online enrolment latency (docs/metrics.md, Issuance). */
export function issuanceMetrics(registry: Registry): IssuanceMetrics {
  const registers = [registry];
  const intents = new Counter({ name: 'fleetpki_intents_recorded_total', help: 'Issuance intents committed before signing, by channel (online, batch)', labelNames: ['channel'] as const, registers });
  const stored = new Counter({ name: 'fleetpki_certificates_stored_total', help: 'Certificates stored, by channel (online, batch)', labelNames: ['channel'] as const, registers });
  const issued = new Counter({ name: 'fleetpki_certificates_issued_total', help: 'Online certificates issued, by profile and key role', labelNames: ['profile', 'key_role'] as const, registers });
  const refusals = new Counter({ name: 'fleetpki_enrolment_refusals_total', help: 'Online enrolments refused, by protocol and stable error code', labelNames: ['protocol', 'code'] as const, registers });
  const duration = new Histogram({
    name: 'fleetpki_enrolment_duration_seconds',
    help: 'Online enrolment latency, request to answer, by protocol (json, est, cmp)',
    labelNames: ['protocol'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  // Every protocol's series exists from the start, so a rate over it is 0 rather than absent.
  for (const protocol of ['json', 'est', 'cmp'] as const) duration.zero({ protocol });
  for (const channel of ['online', 'batch'] as const) {
    intents.inc({ channel }, 0);
    stored.inc({ channel }, 0);
  }
  return {
    intentsRecorded: (channel, count) => intents.inc({ channel }, count),
    certificatesStored: (channel, count) => stored.inc({ channel }, count),
    issued: (profile, keyRole) => issued.inc({ profile, key_role: keyRole }),
    enrolment: (protocol, seconds, refusal) => {
      duration.observe({ protocol }, seconds);
      if (refusal !== undefined) refusals.inc({ protocol, code: refusal });
    },
  };
}

/** 1 while the site's writes are blocked (the issuer API, whose site guard blocks them). */
export function writesBlockedMetric(registry: Registry): (blocked: boolean) => void {
  const gauge = new Gauge({ name: 'fleetpki_writes_blocked', help: '1 while writes are blocked because the synchronous standby is unreachable', registers: [registry] });
  return (blocked) => gauge.set(blocked ? 1 : 0);
}

/** HTTP requests by route and status, and their latency: what every HTTP service exports. */
export function httpMetrics(registry: Registry): { request(method: string, route: string, status: number, seconds: number): void } {
  const registers = [registry];
  const requests = new Counter({ name: 'fleetpki_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'] as const, registers });
  const latency = new Histogram({ name: 'fleetpki_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['route'] as const, buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
  return {
    request(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      latency.observe({ route }, seconds);
    },
  };
}
