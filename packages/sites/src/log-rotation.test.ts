import assert from 'node:assert/strict';
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { logRotationConfig, rotateLogs } from './log-rotation.js';
import { osUserIds } from './os-user.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-log-rotation-'));
// As the state folder is: the postgres user must reach its PostgreSQL folders through it.
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

describe("rotating the simulation's logs", () => {
  it("copies and empties each file in place, so a writer with the file open goes on writing into it; PostgreSQL's as postgres", async () => {
    const config = loadConfig({ FLEETPKI_STATE_DIR: join(dir, 'state') });
    const agentLog = join(config.sites.a.dir, 'agent.log');
    const pgLogDir = join(config.sites.b.dir, 'pg-log');
    for (const d of [config.stateDir, config.sites.a.dir, config.sites.b.dir]) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, 0o755);
    }
    mkdirSync(pgLogDir, { mode: 0o700 });
    const pgLog = join(pgLogDir, 'postgresql.log');
    writeFileSync(pgLog, 'LOG:  checkpoint\n'.repeat(100), { mode: 0o600 });
    if (process.getuid?.() === 0) {
      const { uid, gid } = osUserIds('postgres');
      chownSync(pgLogDir, uid, gid);
      chownSync(pgLog, uid, gid);
    }
    // The agent's stdout as sites up opens it: appending.
    const writer = openSync(agentLog, 'a');
    try {
      writeSync(writer, '{"msg":"before"}\n'.repeat(100));
      const report = await rotateLogs(config, { force: true });
      assert.match(report, /truncating .*agent\.log/);
      assert.match(readFileSync(`${agentLog}.1`, 'utf8'), /before/);
      assert.equal(readFileSync(agentLog, 'utf8'), '', 'emptied in place');
      writeSync(writer, '{"msg":"after"}\n');
      assert.equal(readFileSync(agentLog, 'utf8'), '{"msg":"after"}\n', 'the open file takes the next line at its start (O_APPEND), no hole');
      assert.ok(existsSync(`${pgLog}.1`), "PostgreSQL's log rotated too");
      // Below the size limit nothing is rotated again.
      assert.doesNotMatch(await rotateLogs(config), /truncating/);
    } finally {
      closeSync(writer);
    }
  });

  it('names only plain paths (logrotate reads a space as the next file)', () => {
    const config = loadConfig({ FLEETPKI_STATE_DIR: join(dir, 'a state') });
    assert.throws(() => logRotationConfig(config), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /a state/.test(err.message));
  });
});
