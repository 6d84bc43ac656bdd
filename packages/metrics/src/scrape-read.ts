import type { Registry } from 'prom-client';
import { collectedGauge } from './collected-gauge.js';

/**
 * One read shared by every gauge of a scrape: the gauges' collect() run one after another, and each
 * would otherwise ask the database again. A read that fails leaves the gauges as they were (their
 * last values) and is retried at the next scrape; `failures` counts it so a scrape shows it.
 */
export function sharedRead<T>(read: () => Promise<T>, freshMs = 1_000): { get(): Promise<T | undefined>; readonly failures: number } {
  let last: { at: number; value: Promise<T | undefined> } | undefined;
  let failures = 0;
  return {
    get() {
      const now = Date.now();
      if (!last || now - last.at > freshMs) {
        last = {
          at: now,
          value: read().catch(() => {
            failures++;
            return undefined;
          }),
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
