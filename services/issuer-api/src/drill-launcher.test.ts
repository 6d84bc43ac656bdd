import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { launchFailoverDrill } from './drill-launcher.js';

const configWith = (drills: 'on' | 'off') => {
  const deploymentDir = mkdtempSync(join(tmpdir(), 'fleetpki-drill-launcher-'));
  return loadConfig({ FLEETPKI_DEPLOYMENT_DIR: deploymentDir, FLEETPKI_CONSOLE_DRILLS: drills });
};

/** A stand-in for services/cli/src/main.ts: prints its arguments, then does what `body` says. */
function standIn(dir: string, body: string): string {
  const file = join(dir, `stand-in-${Math.random().toString(16).slice(2)}.ts`);
  writeFileSync(file, `console.log('drill arguments:', process.argv.slice(2).join(' '));\n${body}\n`);
  return file;
}

const options = { devices: 1_500, startedBy: 'person:alice (approval 1)' };

describe('drills started from the API (test deployments)', () => {
  it('are refused unless the deployment says it is a test deployment', async () => {
    await assert.rejects(launchFailoverDrill(configWith('off'), options), { code: 'DRILLS_DISABLED' });
  });

  it('runs the CLI drill as a process of its own, answers once it says it runs, with its output in a log file', async () => {
    const config = configWith('on');
    const started = await launchFailoverDrill(config, options, standIn(config.deploymentDir, "process.send({ drill: 'started', pid: process.pid }, () => process.disconnect());"));
    assert.ok(started.pid > 0);
    assert.match(readFileSync(started.log, 'utf8'), /drill arguments: drill failover --devices 1500 --started-by person:alice \(approval 1\)/);
  });

  it("a drill that is refused (one runs already) is this call's answer, with its code", async () => {
    const config = configWith('on');
    const refusing = standIn(config.deploymentDir, "process.send({ drill: 'refused', code: 'DRILL_RUNNING', message: 'a failover drill runs already', httpStatus: 409 }, () => process.exit(1));");
    await assert.rejects(launchFailoverDrill(config, options, refusing), { code: 'DRILL_RUNNING', httpStatus: 409 });
  });

  it('a drill process that ends without a word is a failed start naming its log', async () => {
    const config = configWith('on');
    const silent = standIn(config.deploymentDir, "console.error('cannot reach etcd'); process.exit(3);");
    await assert.rejects(launchFailoverDrill(config, options, silent), (err: Error & { code?: string }) => err.code === 'DRILL_START_FAILED' && /exit code 3/.test(err.message) && /cannot reach etcd/.test(err.message));
  });
});
