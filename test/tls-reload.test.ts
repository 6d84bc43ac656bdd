import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { FleetApiClient } from '@fleetpki/client';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { startService, stopProcess } from '@fleetpki/sites';
import { freePort } from '../scripts/lib/free-port.js';
import { ensureCa, siteAPool } from './support/ca.js';
import { cli } from './support/cli.js';
import { ensureSites, waitFor } from './support/sites.js';
import { makeTestTlsCa, type TestTlsCa, type TestTlsPair } from './support/tls-material.js';

/**
 * A rotated server certificate is served without a restart: SIGHUP (`systemctl reload`, ExecReload= in
 * the units) makes the issuer API and the status responder read tls.api / tls.status again and give the
 * new pair to new connections. A pair that is not usable (a key that is not the certificate's) is
 * refused, named, and the service goes on serving the previous one: a bad rotation must not take the
 * CA's HTTPS down. Both services as processes, against the real database and HSM.
 */
let config: FleetConfig;
let tlsCa: TestTlsCa;
const children: ChildProcess[] = [];

interface Served {
  readonly name: string;
  readonly child: ChildProcess;
  readonly port: number;
  readonly files: TestTlsPair;
  output: string;
}
const services: Served[] = [];
let env: Record<string, string>;
let bundle: string;

/** The serial of the certificate a new TLS connection to `port` is given (not checked: this asks what is served). */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(normalSerial(serial));
    });
    socket.on('error', reject);
  });
}

/** Hex, upper case, no leading zeros: Node and OpenSSL differ on the zeros. */
function normalSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+/, '');
}

/** A pair's certificate serial, as servedSerial gives it. */
function serialOf(pair: TestTlsPair): string {
  return normalSerial(execFileSync('openssl', ['x509', '-in', pair.cert, '-noout', '-serial'], { encoding: 'utf8' }).trim().replace(/^serial=/, ''));
}

function install(pair: TestTlsPair, into: TestTlsPair): void {
  copyFileSync(pair.cert, into.cert);
  copyFileSync(pair.key, into.key);
}

before(async () => {
  config = await ensureSites();
  const pool = siteAPool(config);
  await ensureCa(config, pool);
  await pool.end();
  tlsCa = makeTestTlsCa('fleetpki tls-reload test CA');
  bundle = join(tlsCa.dir, 'bundle.pem');
  writeFileSync(bundle, readFileSync(tlsCa.caPem, 'utf8') + (config.tls.caBundle ? readFileSync(config.tls.caBundle, 'utf8') : ''));
  // The files the configuration names, which a rotation overwrites in place.
  const apiFiles = { cert: join(tlsCa.dir, 'api-served.pem'), key: join(tlsCa.dir, 'api-served.key') };
  const statusFiles = { cert: join(tlsCa.dir, 'status-served.pem'), key: join(tlsCa.dir, 'status-served.key') };
  install(tlsCa.server('api-1', ['localhost', '127.0.0.1']), apiFiles);
  install(tlsCa.server('status-1', ['localhost', '127.0.0.1']), statusFiles);
  const [apiPort, statusPort] = [await freePort(), await freePort()];
  env = {
    FLEETPKI_SITE: 'a',
    FLEETPKI_TLS_CA_BUNDLE: bundle,
    FLEETPKI_TLS_API_CERT: apiFiles.cert,
    FLEETPKI_TLS_API_KEY: apiFiles.key,
    FLEETPKI_TLS_STATUS_CERT: statusFiles.cert,
    FLEETPKI_TLS_STATUS_KEY: statusFiles.key,
    FLEETPKI_API_PORT_A: String(apiPort),
    FLEETPKI_STATUS_PORT_A: String(statusPort),
  };
  for (const [name, port, files] of [['issuer-api', apiPort, apiFiles], ['status-responder', statusPort, statusFiles]] as const) {
    const child = startService(config, name, env, { output: 'pipe' });
    children.push(child);
    const served: Served = { name, child, port, files, output: '' };
    child.stdout!.on('data', (c: Buffer) => (served.output += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (served.output += c.toString('utf8')));
    services.push(served);
  }
  for (const s of services) await waitFor(`${s.name} serving HTTPS`, () => servedSerial(s.port).catch(() => undefined), 90_000, 250);
});

after(async () => {
  await Promise.all(children.map(stopProcess));
});

describe('rotating the HTTPS pairs of the issuer API and the status responder', () => {
  it('SIGHUP serves the rotated pair to new connections, without a restart', async () => {
    for (const s of services) {
      const first = await servedSerial(s.port);
      const second = tlsCa.server(`${s.name}-2`, ['localhost', '127.0.0.1']);
      assert.notEqual(serialOf(second), first);
      install(second, s.files);
      assert.equal(await servedSerial(s.port), first, `${s.name}: nothing changes before the signal`);
      s.child.kill('SIGHUP');
      await waitFor(`${s.name} serving the rotated certificate`, async () => ((await servedSerial(s.port)) === serialOf(second) ? true : undefined), 30_000, 100).catch(async (err: Error) => {
        throw new Error(`${err.message}; it said: ${s.output}; served ${await servedSerial(s.port)}, expected ${serialOf(second)}`);
      });
      assert.match(s.output, new RegExp(`${s.name}: TLS material reloaded`));
      assert.equal(s.child.exitCode, null, `${s.name} still runs`);
    }
  });

  it('a rotated key that is not the certificate\'s is refused, named, and the previous pair goes on being served', async () => {
    for (const s of services) {
      const serving = await servedSerial(s.port);
      const other = tlsCa.server(`${s.name}-3`, ['localhost', '127.0.0.1']);
      const part = s.name === 'issuer-api' ? 'api' : 'status';
      assert.equal((await cli(['config', 'check', '--pair', part], env)).code, 0, `the unit's ExecReload= check passes the pair in place (${part})`);
      copyFileSync(other.cert, s.files.cert); // the new certificate, but the old key left in place
      const code = s.name === 'issuer-api' ? 'API_TLS_MATERIAL' : 'STATUS_TLS_MATERIAL';
      // The unit's ExecReload= runs this first: `systemctl reload` fails, naming what is wrong.
      const check = await cli(['config', 'check', '--pair', part], env);
      assert.equal(check.code, 1);
      assert.match(check.stderr, new RegExp(`fleetpki: ${code}: tls\\.${part}: the key .* does not go with the certificate`));
      s.child.kill('SIGHUP');
      await waitFor(`${s.name} refusing the pair`, async () => (s.output.includes('reload refused') ? true : undefined), 30_000, 100);
      assert.match(s.output, new RegExp(`${s.name}: reload refused, still serving the previous certificate: ${code}: .*does not go with the certificate`));
      assert.equal(await servedSerial(s.port), serving, `${s.name} serves the previous certificate`);
      assert.equal(s.child.exitCode, null, `${s.name} still runs`);
    }
  });

  it('after a reload the API still checks client certificates against tls.caBundle', async () => {
    const api = services.find((s) => s.name === 'issuer-api')!;
    // The reload builds a new context: its client CAs must be there too, or every person's certificate
    // would stop chaining (and dropping them would go unseen by the tests above, which only ask what is served).
    const rotated = tlsCa.server('issuer-api-4', ['localhost', '127.0.0.1']);
    install(rotated, api.files);
    api.child.kill('SIGHUP');
    await waitFor('the API serving the pair of this test', async () => ((await servedSerial(api.port)) === serialOf(rotated) ? true : undefined), 30_000, 100);
    const stranger = makeTestTlsCa('fleetpki tls-reload stranger CA');
    const asking = async (pair: TestTlsPair) => {
      const client = new FleetApiClient(`https://localhost:${api.port}`, undefined, { cert: readFileSync(pair.cert), key: readFileSync(pair.key), ca: readFileSync(bundle) });
      try {
        await client.approvals();
        return 'admitted';
      } catch (err) {
        return `${(err as { code?: string }).code}: ${(err as Error).message}`;
      } finally {
        await client.close();
      }
    };
    // Chains (the bundle's CA) but names nobody: past TLS, refused by who it is.
    assert.match(await asking(tlsCa.client('reload-client', 'reload-person')), /^CLIENT_CERT_INVALID: the client certificate is not one fleetpki issued/);
    // From a CA outside the bundle: refused because it does not chain.
    assert.match(await asking(stranger.client('stranger-client', 'stranger')), /^CLIENT_CERT_INVALID: the client certificate does not chain to the organisation CA/);
  });

  it('a service serving plain HTTP says a reload has nothing to read, and goes on running', async () => {
    const port = await freePort();
    const plain = startService(config, 'status-responder', { FLEETPKI_SITE: 'a', FLEETPKI_STATUS_PORT_A: String(port) }, { output: 'pipe' });
    children.push(plain);
    let output = '';
    plain.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    plain.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    await waitFor('the plain responder up', async () => ((await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) ? true : undefined), 90_000, 250);
    plain.kill('SIGHUP');
    await waitFor('its answer to SIGHUP', async () => (output.includes('SIGHUP') ? true : undefined), 30_000, 100);
    assert.match(output, /status-responder: SIGHUP: nothing to reload \(this service serves plain HTTP\)/);
    assert.doesNotMatch(output, /TLS material reloaded/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).ok, true, 'it still answers');
  });
});
