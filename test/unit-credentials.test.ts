// The systemd units (infra/systemd) and the example configuration (infra/fleetpki.example.yaml) agree:
// every credential the example names for what a service reads is loaded by that service's unit, under
// the same name, and a unit loads nothing its service does not read (each unit holds only its own
// secrets). The example's links are also complete as the packages that open them see it: a Redis or
// PostgreSQL configuration missing half its TLS would stop every service at its first connection.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EXAMPLE_CONFIG, SECRET_READING_SERVICES, credentialNameOf, findRepoRoot, loadConfig, serviceSecretFiles, type SecretReadingService } from '@fleetpki/core';
import { redisSecurity } from '@fleetpki/queue';
import { pgLinkSecurity } from '@fleetpki/store';

const units = join(findRepoRoot(), 'infra', 'systemd');
const unitFile = (service: SecretReadingService) => join(units, service === 'batch-worker' ? 'fleetpki-batch-worker@.service' : `fleetpki-${service}.service`);

/** The credential names a unit loads (LoadCredential=NAME:PATH). */
function loadedCredentials(service: SecretReadingService): string[] {
  return [...readFileSync(unitFile(service), 'utf8').matchAll(/^LoadCredential=([^:\n]+):/gm)].map((m) => m[1]!).sort();
}

/** The example for host `site`, as a unit of `service` would load it. */
function exampleFor(service: SecretReadingService, site: 'a' | 'b') {
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-example-'));
  try {
    const path = join(dir, 'fleetpki.yaml');
    const text = site === 'a' ? EXAMPLE_CONFIG : EXAMPLE_CONFIG.replace('site: a ', 'site: b ').replace('host: 10.0.1.10             #', 'host: 10.0.2.10             #');
    writeFileSync(path, text);
    return loadConfig({ FLEETPKI_CONFIG: path, CREDENTIALS_DIRECTORY: `/run/credentials/fleetpki-${service}.service` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('systemd units and the example configuration', () => {
  for (const service of SECRET_READING_SERVICES) {
    it(`${service}: its unit loads exactly the credentials the example names for what it reads`, () => {
      for (const site of ['a', 'b'] as const) {
        const config = exampleFor(service, site);
        const env = { CREDENTIALS_DIRECTORY: `/run/credentials/fleetpki-${service}.service` };
        const needed = serviceSecretFiles(config, service).flatMap(({ key, file }) => {
          const name = credentialNameOf(file, env);
          return name === undefined ? [] : [`${name} (${key})`];
        });
        const loaded = loadedCredentials(service);
        const missing = needed.filter((n) => !loaded.includes(n.split(' ')[0]!));
        assert.deepEqual(missing, [], `site ${site}: ${unitFile(service)} lacks LoadCredential= for ${missing.join(', ')}`);
        const names = needed.map((n) => n.split(' ')[0]!);
        const extra = loaded.filter((n) => !names.includes(n));
        if (site === 'a') assert.deepEqual(extra, [], `${unitFile(service)} loads credentials ${service} never reads: ${extra.join(', ')}`);
      }
    });
  }

  it('the example\'s PostgreSQL and Redis links are complete for every service role', () => {
    const config = exampleFor('daemons', 'a');
    for (const role of ['owner', 'issuer', 'worker', 'status', 'operator'] as const) assert.ok(pgLinkSecurity(config, role)?.passwordFile, `secrets.postgres.${role}`);
    assert.ok(redisSecurity(config)?.passwordFile, 'secrets.redis with tls.redis');
  });
});
