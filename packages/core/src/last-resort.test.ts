import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { moduleNodeFlags } from './runtime.js';

const here = fileURLToPath(new URL('./last-resort.ts', import.meta.url));

/** Runs `body` in a child process with this module loaded as `lastResort`; its end and stderr. */
function child(body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
  const code = `const lastResort = await import(${JSON.stringify(here)});\n${body}`;
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [...moduleNodeFlags(here), '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const timer = setTimeout(() => c.kill('SIGTERM'), 30_000);
    c.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, stdout });
    });
  });
}

describe('last resorts of a stuck process', () => {
  it('the watchdog kills a process whose main thread is blocked (no timer of its own would fire), naming why', async () => {
    const end = await child(`lastResort.watchEventLoop(1500, 'test: STUCK');\nconst until = Date.now() + 20000;\nwhile (Date.now() < until) {}\nconsole.log('the loop ended by itself');`);
    assert.equal(end.signal, 'SIGKILL', `killed, not ended: ${end.stderr}${end.stdout}`);
    assert.match(end.stderr, /test: STUCK \(the event loop has not turned for \d+ ms\)/);
    assert.doesNotMatch(end.stdout, /ended by itself/);
  });

  it('the watchdog leaves a process whose loop turns alone, and does not keep it alive', async () => {
    const end = await child(`lastResort.watchEventLoop(1500, 'test: STUCK');\nawait new Promise((r) => setTimeout(r, 3000));\nconsole.log('done');`);
    assert.deepEqual([end.code, end.signal], [0, null], end.stderr);
    assert.match(end.stdout, /done/);
  });

  it('killSelf writes its message and ends the process with SIGKILL at once', async () => {
    const end = await child(`lastResort.killSelf('test: GIVING UP');\nconsole.log('still here');`);
    assert.equal(end.signal, 'SIGKILL');
    assert.match(end.stderr, /test: GIVING UP/);
    assert.doesNotMatch(end.stdout, /still here/);
  });
});
