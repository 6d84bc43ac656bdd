import type { Registry } from 'prom-client';
import { collectedGauge } from './collected-gauge.js';

/** How long a scrape waits for its read (Prometheus's default scrape timeout is 10 s). */
export const SCRAPE_READ_TIMEOUT_MS = 3_000;

/**
 * One read shared by every gauge of a scrape: the gauges collect at once, and each would otherwise ask
 * the database again. A read still running is shared, never started twice (a slow database is not
 * sent a second query per scrape); one that takes over `timeoutMs` counts as failed for this scrape,
 * so a Redis or PostgreSQL that hangs never hangs /metrics, whose other figures (the HSM's, the
 * process's) still go out. `failures` counts the failed reads.
 */
export function sharedRead<T>(read: () => Promise<T>, freshMs = 1_000, timeoutMs = SCRAPE_READ_TIMEOUT_MS): { get(): Promise<T | undefined>; readonly failures: number } {
  let last: { at: number; value: Promise<T | undefined> } | undefined;
  let running: Promise<T> | undefined;
  let failures = 0;
  return {
    get() {
      const now = Date.now();
      if (!last || now - last.at > freshMs) {
        running ??= read().finally(() => (running = undefined));
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('read timed out')), timeoutMs);
          timer.unref();
        });
        last = {
          at: now,
          value: Promise.race([running, timeout])
            .catch(() => {
              failures++;
              return undefined;
            })
            .finally(() => clearTimeout(timer)),
        };
      }
      return last.value;
    },
    get failures() {
      return failures;
    },
  };
}

/**
 * fleetpki_metrics_read_failures: the scrapes whose shared read failed. It waits for this scrape's read
 * (the gauges collect at once, not one after another), so the count includes it.
 */
export function readFailures(registry: Registry, figures: ReturnType<typeof sharedRead<unknown>>): void {
  collectedGauge(registry, 'fleetpki_metrics_read_failures', 'Scrapes whose read of the database or the queue failed (the gauges read from it show no values then)', [], async (set) => {
    await figures.get();
    set({}, figures.failures);
  });
}
