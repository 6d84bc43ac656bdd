import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * Ends this process at once with SIGKILL, after writing `message` to stderr. For a process whose work
 * is stuck where nothing can cancel it: process.exit() would wait for a libuv thread inside a native
 * call that never returns (a C_Sign the HSM does not answer) and never end, keeping its sessions open.
 * SIGKILL ends every thread; the kernel closes the sockets, so PostgreSQL ends the sessions and their
 * advisory locks; systemd's Restart=on-failure starts the unit again (SIGKILL is not a clean exit).
 */
export function killSelf(message: string): void {
  try {
    writeSync(2, `${message}\n`);
  } catch {
    // stderr gone: the kill matters more than the message
  }
  process.kill(process.pid, 'SIGKILL');
}

// Runs on its own thread (eval): it must work while the main thread is blocked. getBuiltinModule, not
// require or import: an eval thread is CommonJS or ESM depending on how the process was started.
const WATCHDOG = `
const { workerData } = process.getBuiltinModule('node:worker_threads');
const { writeSync } = process.getBuiltinModule('node:fs');
const beat = new BigInt64Array(workerData.beat);
const sleep = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  Atomics.wait(sleep, 0, 0, workerData.checkMs);
  const stalled = Date.now() - Number(Atomics.load(beat, 0));
  if (stalled > workerData.stallMs) {
    try { writeSync(2, workerData.message + ' (the event loop has not turned for ' + stalled + ' ms)\\n'); } catch {}
    process.kill(process.pid, 'SIGKILL');
  }
}`;

/**
 * Kills the process (killSelf) when its event loop has not turned for `stallMs`: a synchronous native
 * call on the main thread that never returns (graphene runs C_SignInit, C_FindObjects and C_Login there)
 * blocks every timer, so no deadline kept by the event loop itself would fire. The main thread stamps
 * the time every second into shared memory; a thread of its own reads it.
 */
export function watchEventLoop(stallMs: number, message: string): { stop(): void } {
  const beat = new BigInt64Array(new SharedArrayBuffer(8));
  const stamp = () => Atomics.store(beat, 0, BigInt(Date.now()));
  stamp();
  const timer = setInterval(stamp, 1_000);
  timer.unref();
  const worker = new Worker(WATCHDOG, { eval: true, workerData: { beat: beat.buffer, stallMs, checkMs: Math.min(1_000, stallMs), message } });
  worker.unref();
  return {
    stop() {
      clearInterval(timer);
      void worker.terminate();
    },
  };
}
