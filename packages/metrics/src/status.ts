import { Counter, Gauge, type Registry } from 'prom-client';
import { readFailures, sharedRead } from './scrape-read.js';

export interface StatusFigures {
  readonly crls: readonly { caId: string; shard: number; kind: string; crlNumber: bigint; thisUpdate: Date; nextUpdate: Date }[];
  readonly unsigned: readonly { caId: string; count: number; oldestSeconds: number }[];
  /** The CAs the responder answers for: a CA with nothing unsigned shows 0, not nothing. */
  readonly caIds: readonly string[];
}

/**
 * The status service's figures (docs/metrics.md, Status): per CA and shard the CRL this site serves,
 * revocations not yet re-signed, and OCSP responses by result (the counter the routes increment).
 */
export function statusMetrics(registry: Registry, read: () => Promise<StatusFigures>): { responses: Counter<'kind'> } {
  const registers = [registry];
  const figures = sharedRead(read);
  // The CRLs last read: when a read fails, the CRLs served have not changed, but they go on ageing, so
  // their time left is worked out again at every scrape (a CRL expiring during an outage still alerts).
  let lastCrls: StatusFigures['crls'] = [];
  const crlGauge = (name: string, help: string, value: (c: StatusFigures['crls'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['ca', 'shard', 'kind'] as const,
      registers,
      async collect() {
        const f = await figures.get();
        if (f) lastCrls = f.crls;
        this.reset();
        for (const c of lastCrls) this.set({ ca: c.caId, shard: String(c.shard), kind: c.kind }, value(c));
      },
    });
  crlGauge('fleetpki_crl_number', 'CRL number of the CRL this site serves', (c) => Number(c.crlNumber));
  crlGauge('fleetpki_crl_this_update_timestamp_seconds', 'thisUpdate of the CRL this site serves (Unix time)', (c) => c.thisUpdate.getTime() / 1000);
  crlGauge('fleetpki_crl_next_update_timestamp_seconds', 'nextUpdate of the CRL this site serves (Unix time)', (c) => c.nextUpdate.getTime() / 1000);
  crlGauge('fleetpki_crl_next_update_seconds_left', 'Seconds until the nextUpdate of the CRL this site serves (negative: relying parties refuse it)', (c) => (c.nextUpdate.getTime() - Date.now()) / 1000);
  const unsignedGauge = (name: string, help: string, value: (u: { count: number; oldestSeconds: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['ca'] as const,
      registers,
      async collect() {
        const f = await figures.get();
        this.reset();
        if (!f) return;
        for (const ca of f.caIds) this.set({ ca }, value(f.unsigned.find((u) => u.caId === ca) ?? { count: 0, oldestSeconds: 0 }));
      },
    });
  unsignedGauge('fleetpki_revocations_unsigned', 'Revocations of the last 10 minutes with no stored revoked OCSP response yet', (u) => u.count);
  unsignedGauge('fleetpki_revocations_unsigned_oldest_seconds', 'Age of the oldest revocation not yet re-signed (0 when none)', (u) => u.oldestSeconds);
  readFailures(registry, figures);
  const responses = new Counter({ name: 'fleetpki_ocsp_responses_total', help: 'OCSP responses by result', labelNames: ['kind'] as const, registers });
  return { responses };
}
