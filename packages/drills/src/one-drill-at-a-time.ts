import { userInfo } from 'node:os';
import { acquireDrillLock, openConsensus } from '@fleetpki/consensus';
import { type DrillStartMessage, type FleetConfig, isFleetError } from '@fleetpki/core';
import type { DrillKind } from '@fleetpki/store';

/** Who starts a drill at the command line, when nobody said (the API's launcher names the people). */
export function commandLineStarter(): string {
  return `${userInfo().username} (CLI, process ${process.pid})`;
}

function tellLauncher(message: DrillStartMessage): void {
  if (!process.send || !process.connected) return;
  // Once said, the channel goes: the drill outlives the API that started it (it may kill it).
  process.send(message, () => process.disconnect());
}

/**
 * Runs a drill under the drill lock in etcd (packages/consensus drill-lock.ts): one drill at a time on
 * the pair of sites, whoever starts it (CLI or API), held for the drill's whole life and gone if its
 * process dies. A second drill is refused with 409 DRILL_RUNNING naming the first.
 */
export async function withDrillLock<T>(config: FleetConfig, kind: DrillKind, startedBy: string, run: () => Promise<T>, log: (line: string) => void = () => undefined): Promise<T> {
  // The CLI's etcd credential: it may write `drill` (and orders/), nothing the agents decide.
  const client = openConsensus(config, 'operator');
  let lock;
  try {
    lock = await acquireDrillLock(client, config, { kind, pid: process.pid, by: startedBy });
  } catch (err) {
    client.close();
    if (isFleetError(err)) tellLauncher({ drill: 'refused', code: err.code, message: err.message, httpStatus: err.httpStatus });
    else tellLauncher({ drill: 'refused', code: 'DRILL_START_FAILED', message: (err as Error).message, httpStatus: 500 });
    throw err;
  }
  lock.onLost((err) => log(`WARNING: the drill lock in etcd is lost (${err.message}); another drill could start beside this one`));
  tellLauncher({ drill: 'started', pid: process.pid });
  try {
    return await run();
  } finally {
    await lock.release();
    client.close();
  }
}
