import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { hasTestDeploymentDir, removeTestDeploymentDir } from './deployments.js';
import { custodianPinFiles, legacySoPinFile, siteSoPinFile } from './hsm-tokens.js';

const test = loadConfig({ FLEETPKI_STATE_DIR: '/srv/sites', FLEETPKI_DEPLOYMENT_DIR: '/tmp/fleetpki-test-1a2b.Xy12', FLEETPKI_HSM_TOKEN_PREFIX: 'fleetpki-test-1a2b' });

describe("a test deployment's own files", () => {
  it("custodians' PIN files and SO PINs are in its folder, not in the installation's", () => {
    const pins = custodianPinFiles(test);
    assert.deepEqual([pins.dir, pins.rootPin, pins.rootSoPin, pins.soPin(test.sites.b)], [
      '/tmp/fleetpki-test-1a2b.Xy12/custodians',
      '/tmp/fleetpki-test-1a2b.Xy12/custodians/fleetpki-test-1a2b-root.pin',
      '/tmp/fleetpki-test-1a2b.Xy12/custodians/fleetpki-test-1a2b-root.so-pin',
      '/tmp/fleetpki-test-1a2b.Xy12/custodians/fleetpki-test-1a2b-b.so-pin',
    ]);
    assert.equal(siteSoPinFile(test, test.sites.a), '/tmp/fleetpki-test-1a2b.Xy12/custodians/fleetpki-test-1a2b-a.so-pin');
    assert.equal(legacySoPinFile(test, test.sites.a), '/tmp/fleetpki-test-1a2b.Xy12/secrets/hsm-a.so-pin');
  });

  it("only a test run's own folder is removed with it, never the installation's state folder", () => {
    assert.equal(hasTestDeploymentDir(test), true);
    for (const env of [{ FLEETPKI_STATE_DIR: '/srv/sites' }, { FLEETPKI_STATE_DIR: '/srv/sites', FLEETPKI_DEPLOYMENT_DIR: '/srv/sites' }, { FLEETPKI_STATE_DIR: '/srv/sites', FLEETPKI_DEPLOYMENT_DIR: '/home/op/ca' }, { FLEETPKI_STATE_DIR: '/tmp/fleetpki-test-1a2b.Xy12', FLEETPKI_DEPLOYMENT_DIR: '/tmp/fleetpki-test-1a2b.Xy12' }]) {
      const config = loadConfig(env);
      assert.equal(hasTestDeploymentDir(config), false, JSON.stringify(env));
      assert.throws(() => removeTestDeploymentDir(config), { code: 'DEPLOYMENT_PROTECTED' });
    }
  });
});
