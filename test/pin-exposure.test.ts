import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { readPin } from '@fleetpki/hsm';
import { custodianPinFiles, dropDeployment, siteSoPinFile } from '@fleetpki/sites';
import { cli } from './support/cli.js';
import { ensureSites } from './support/sites.js';

/**
 * PINs never on a command line: every process's /proc/<pid>/cmdline is readable by every user. A
 * fresh deployment (its own database and tokens) is set up and taken through its first ceremonies
 * while another process records the command line of every process on the machine, and a shim records
 * every softhsm2-util invocation; afterwards no PIN of the deployment may appear in either.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let fresh: FleetConfig;
let env: NodeJS.ProcessEnv;
let dir: string;

before(async () => {
  config = await ensureSites();
  fresh = loadConfig({ ...process.env, FLEETPKI_SITE: 'a', FLEETPKI_PG_DATABASE: `${config.pgDatabase}1`, FLEETPKI_HSM_TOKEN_PREFIX: `${config.hsmTokenPrefix}1` });
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-pins-'));
  // softhsm2-util as the code calls it, logging its arguments first.
  const shims = join(dir, 'bin');
  mkdirSync(shims);
  writeFileSync(join(shims, 'softhsm2-util'), `#!/bin/sh\necho "$*" >> ${join(dir, 'softhsm2-util.log')}\nexec /usr/bin/softhsm2-util "$@"\n`);
  chmodSync(join(shims, 'softhsm2-util'), 0o755);
  writeFileSync(join(dir, 'softhsm2-util.log'), '');
  env = { FLEETPKI_PG_DATABASE: fresh.pgDatabase, FLEETPKI_HSM_TOKEN_PREFIX: fresh.hsmTokenPrefix, PATH: `${shims}:${process.env.PATH}` };
});

const recorders: ChildProcess[] = [];

after(async () => {
  for (const r of recorders) r.kill('SIGKILL');
  await dropDeployment(fresh).catch(() => undefined);
});

/** Records the command line of every process until stopped; returns them, one per line. */
function recordCommandLines(file: string): { stop(): Promise<string[]> } {
  const code = `
    const fs = require('fs');
    const seen = new Set();
    let running = true;
    process.on('SIGTERM', () => { running = false; });
    (async () => {
      while (running) {
        for (const d of fs.readdirSync('/proc')) {
          if (!/^[0-9]+$/.test(d)) continue;
          try { const c = fs.readFileSync('/proc/' + d + '/cmdline', 'utf8'); if (c) seen.add(c.split('\\0').join(' ')); } catch {}
        }
        await new Promise((r) => setImmediate(r));
      }
      fs.writeFileSync(process.argv[1], [...seen].join('\\n'));
      process.exit(0);
    })();`;
  const child = spawn(process.execPath, ['-e', code, file], { stdio: 'ignore' });
  // A failing step must not leave it running (or keep this test process alive).
  recorders.push(child);
  child.unref();
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve(readFileSync(file, 'utf8').split('\n')));
        // Referenced again while we wait for its exit, or this process may end with the wait unresolved.
        child.ref();
        child.kill('SIGTERM');
      }),
  };
}

describe('no PIN on any command line', () => {
  it('sites up (token initialisation), the key ceremony and a custody ceremony show no PIN in /proc/*/cmdline', async () => {
    const recorder = recordCommandLines(join(dir, 'cmdlines.txt'));
    const steps: string[][] = [['sites', 'up'], ['db', 'migrate']];
    for (const step of steps) {
      const r = await cli(step, env);
      assert.equal(r.code, 0, `${step.join(' ')}: ${r.stderr}`);
    }
    // The installation's bootstrap: two administrators and the ceremony's custodian.
    const people = await cli(['bootstrap', '--admin', 'pin-admin-1', '--admin', 'pin-admin-2', '--custodian', 'pin-custodian', '--out', join(dir, 'people')], env);
    assert.equal(people.code, 0, people.stderr);
    writeFileSync(join(dir, 'custodian.token'), readFileSync(join(dir, 'people', 'pin-custodian.token'), 'utf8'));
    for (const step of [
      ['ceremony', 'init', '--token-file', join(dir, 'custodian.token')],
      ['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', join(dir, 'shares'), '--token-file', join(dir, 'custodian.token')],
    ]) {
      const r = await cli(step, env);
      assert.equal(r.code, 0, `${step.join(' ')}: ${r.stderr}`);
    }
    const lines = await recorder.stop();
    const shimLog = readFileSync(join(dir, 'softhsm2-util.log'), 'utf8');

    const pins = [
      ['site a user PIN', readPin(`file:${fresh.sites.a.hsmPinFile}`)],
      ['site b user PIN', readPin(`file:${fresh.sites.b.hsmPinFile}`)],
      ['site a SO PIN', readPin(`file:${siteSoPinFile(fresh, fresh.sites.a)}`)],
      ['site b SO PIN', readPin(`file:${siteSoPinFile(fresh, fresh.sites.b)}`)],
      ['root user PIN', readPin(`file:${custodianPinFiles(fresh).rootPin}`)],
      ['root SO PIN', readPin(`file:${custodianPinFiles(fresh).rootSoPin}`)],
    ] as const;
    // The recording saw the steps (so its silence about PINs means something).
    assert.ok(lines.some((l) => l.includes('ceremony init')), 'the ceremony was recorded');
    assert.ok(lines.some((l) => l.includes('sites up')), 'sites up was recorded');
    assert.match(shimLog, /--show-slots/, 'softhsm2-util calls were recorded');
    for (const [what, pin] of pins) {
      assert.ok(pin.length >= 16, what);
      assert.deepEqual(lines.filter((l) => l.includes(pin)), [], `${what} on a command line`);
      assert.ok(!shimLog.includes(pin), `${what} given to softhsm2-util`);
    }
  });
});
