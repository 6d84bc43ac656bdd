import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NOT_READ, compareFingerprints, describeChanges, isClusterPath } from './installation-fingerprint.js';

describe('installation fingerprint', () => {
  it('sees nothing when nothing changed', () => {
    const same = { 'file tls/site-a/server.pem': 'sha256=ab mode=644', 'database fleetpki: rows in cas': '3' };
    assert.deepEqual(compareFingerprints(same, { ...same }), { changes: [], notCompared: [] });
  });

  it('names what appeared, what disappeared and what changed, sorted', () => {
    const before = { 'file tls/site-a/server.pem': 'sha256=aa mode=644', 'file custodians/fleetpki-root.pin': 'sha256=bb mode=600', 'database fleetpki: rows in api_tokens': '4' };
    const after = { 'file tls/site-a/server.pem': 'sha256=cc mode=644', 'database fleetpki: rows in api_tokens': '5', 'file custodians/fleetpki-test-1a2b-root.pin': 'sha256=dd mode=600' };
    const { changes, notCompared } = compareFingerprints(before, after);
    assert.deepEqual(notCompared, []);
    assert.deepEqual(
      changes.map((c) => [c.kind, c.item]),
      [
        ['changed', 'database fleetpki: rows in api_tokens'],
        ['removed', 'file custodians/fleetpki-root.pin'],
        ['added', 'file custodians/fleetpki-test-1a2b-root.pin'],
        ['changed', 'file tls/site-a/server.pem'],
      ],
    );
    assert.deepEqual(describeChanges(changes), [
      'changed database fleetpki: rows in api_tokens: 4 -> 5',
      'removed file custodians/fleetpki-root.pin',
      'added   file custodians/fleetpki-test-1a2b-root.pin',
      'changed file tls/site-a/server.pem',
    ]);
  });

  it('a mode change alone is a change', () => {
    const { changes } = compareFingerprints({ 'file secrets/hsm-a.pin': 'sha256=aa mode=600' }, { 'file secrets/hsm-a.pin': 'sha256=aa mode=644' });
    assert.deepEqual(changes.map((c) => c.item), ['file secrets/hsm-a.pin']);
  });

  it('leaves out, and lists, what could not be read on either side', () => {
    const before = { 'database fleetpki': `${NOT_READ}site a's PostgreSQL is not running`, 'git README.md': ' M sha256=aa' };
    const after = { 'database fleetpki': 'present', 'database fleetpki: rows in cas': '3', 'git README.md': ' M sha256=aa' };
    const { changes, notCompared } = compareFingerprints(before, after);
    assert.deepEqual(notCompared, ["database fleetpki (site a's PostgreSQL is not running)"]);
    assert.deepEqual(changes.map((c) => [c.kind, c.item]), [['added', 'database fleetpki: rows in cas']]);
  });

  it('keeps the clusters data out and the installation own files in', () => {
    for (const path of ['site-a', 'site-a/pg/postmaster.pid', 'site-b/pg-log/postgresql.log', 'site-a/redis/redis.pid', 'site-a/etcd/data/member/wal/0.wal', 'site-b/agent.pid', 'site-a/agent.log', 'site-a/etcd-a.log', 'site-a/hsm', 'site-a/hsm/tokens/8a4f/token.object', 'site-b/hsm/softhsm2.conf', 'witness/etcd-witness.log', 'root-hsm/tokens/2c0f/generation', 'topology.json', 'tools', 'tools/node/bin/node']) {
      assert.equal(isClusterPath(path), true, path);
    }
    for (const path of ['tls/site-a/server.pem', 'tls/site-a/clients-ca.pem', 'custodians/fleetpki-root.pin', 'secrets/hsm-a.pin', 'root-hsm/softhsm2.conf', 'audit-checkpoints.ndjson', 'drill/console-drill.pid', 'site-a/pgdump.sql', 'site-ab', 'demo/root.pem', 'bench/manifest.ndjson', 'toolsx', 'site-a/tools']) {
      assert.equal(isClusterPath(path), false, path);
    }
  });
});
