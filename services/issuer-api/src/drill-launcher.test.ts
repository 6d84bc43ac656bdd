import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { launchFailoverDrill } from './drill-launcher.js';

const configWith = (drills: 'on' | 'off') => {
  const deploymentDir = mkdtempSync(join(tmpdir(), 'fleetpki-drill-launcher-'));
  return loadConfig({ FLEETPKI_DEPLOYMENT_DIR: deploymentDir, FLEETPKI_CONSOLE_DRILLS: drills });
};

async function until(what: string, probe: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(probe(), what);
}

describe('drills started from the API (test deployments)', () => {
  it('are refused unless the deployment says it is a test deployment', () => {
    assert.throws(() => launchFailoverDrill(configWith('off'), 1_000), { code: 'DRILLS_DISABLED' });
  });

  it('one at a time: a drill whose process still runs refuses a second', () => {
    const config = configWith('on');
    mkdirSync(join(config.deploymentDir, 'drill'), { recursive: true });
    writeFileSync(join(config.deploymentDir, 'drill', 'console-drill.pid'), String(process.pid));
    assert.throws(() => launchFailoverDrill(config, 1_000), { code: 'DRILL_RUNNING' });
  });

  it('runs the CLI drill as a process of its own, with its output in a log file and its pid recorded', async () => {
    const config = configWith('on');
    // A stand-in for services/cli/src/main.ts: it writes the arguments it was given to its output.
    const fake = join(config.deploymentDir, 'fake-cli.ts');
    writeFileSync(fake, "console.log('drill arguments:', process.argv.slice(2).join(' '));\n");
    const started = launchFailoverDrill(config, 1_500, fake);
    assert.equal(readFileSync(join(config.deploymentDir, 'drill', 'console-drill.pid'), 'utf8'), String(started.pid));
    await until('the drill process wrote its log', () => existsSync(started.log) && readFileSync(started.log, 'utf8').includes('drill arguments'));
    assert.match(readFileSync(started.log, 'utf8'), /drill arguments: drill failover --devices 1500/);
  });
});
