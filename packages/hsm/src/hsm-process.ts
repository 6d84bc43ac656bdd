import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { moduleNodeFlags } from '@fleetpki/core';
import { HsmError } from './errors.js';
import type { HsmChildOperations } from './hsm-process-child.js';

/** Where a SoftHSM (or other PKCS#11) instance lives: its library and, for SoftHSM, its token directory. */
export interface HsmInstance {
  readonly modulePath: string;
  readonly softhsmConf?: string;
}

type Operation = keyof HsmChildOperations;
type Args<K extends Operation> = Parameters<HsmChildOperations[K]>;
type Result<K extends Operation> = Awaited<ReturnType<HsmChildOperations[K]>>;

/**
 * One PKCS#11 module instance in a process of its own. PKCS#11 fixes a module's configuration, and its
 * login state, per process (C_Initialize reads SOFTHSM2_CONF once; one login per token per
 * application), so work on another HSM than the process's own runs here: the offline root's HSM during
 * a ceremony, the security officer's steps (token initialisation, the trusted key-encryption key),
 * each site's tokens from one `sites up`. PINs reach the child over the IPC channel, never on a command
 * line or in the environment (both are readable by every user through /proc).
 */
export class HsmProcess {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Error | undefined;

  private constructor(child: ChildProcess) {
    this.child = child;
    child.on('message', (message: { id: number; ok: boolean; result?: unknown; error?: { code: string; message: string } }) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new HsmError((message.error?.code ?? 'HSM_OPERATION_FAILED') as never, message.error?.message ?? 'HSM process failed'));
    });
    child.on('exit', (code, signal) => {
      this.exited = new HsmError('HSM_OPERATION_FAILED', `the HSM process exited (${signal ?? `code ${code}`})`);
      for (const waiter of this.pending.values()) waiter.reject(this.exited);
      this.pending.clear();
    });
  }

  static async start(instance: HsmInstance): Promise<HsmProcess> {
    const here = fileURLToPath(import.meta.url);
    const child = fork(here.replace(/hsm-process\.(ts|js)$/, `hsm-process-child.$1`), [], {
      // Sources run through tsx, as the parent does; a build runs the emitted JavaScript.
      execArgv: moduleNodeFlags(here),
      // Only what the module needs: no PIN variable, no other site's configuration.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(instance.softhsmConf ? { SOFTHSM2_CONF: instance.softhsmConf } : {}) },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const hsm = new HsmProcess(child);
    await hsm.call('load', instance.modulePath);
    return hsm;
  }

  call<K extends Operation>(op: K, ...args: Args<K>): Promise<Result<K>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<Result<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args });
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.call('close').catch(() => undefined);
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000).unref())]);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}
