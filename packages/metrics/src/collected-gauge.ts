import { Gauge, type Registry } from 'prom-client';

/** Sets one series of a collected gauge. */
export type SetSeries<L extends string> = (labels: Partial<Record<L, string>>, value: number) => void;

/**
 * A gauge whose values are read when Prometheus scrapes (a process's own state: a cache's size, a
 * daemon's passes), so nothing has to remember to update it. Series not set in a collect are dropped:
 * what no longer exists (a finished daemon, a removed shard) is not reported with its last value. A
 * gauge without labels always has its one series (prom-client), so when a collect does not set it (its
 * read failed, or the figure means nothing here) it is NaN: never 0, which would look healthy, and no
 * comparison in an alert holds for it.
 */
export function collectedGauge<L extends string = never>(registry: Registry, name: string, help: string, labelNames: readonly L[], collect: (set: SetSeries<L>) => void | Promise<void>): void {
  new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      let set = false;
      await collect((labels, value) => {
        set = true;
        this.set(labels as Partial<Record<L, string | number>>, value);
      });
      if (!set && labelNames.length === 0) this.set(NaN);
    },
  });
}
