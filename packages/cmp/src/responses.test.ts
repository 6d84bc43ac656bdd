import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildResponse, readPkiMessage, verifyMacProtection, type ResponseBody } from './index.js';

/**
 * Responses checked by the client that will read them: `openssl cmp` takes our response files with
 * -rspin (in place of a server) and must accept their structure and MAC, save the certificate, confirm
 * it and take the pkiconf; or report the refusal with its failInfo.
 */
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const SECRET = Buffer.from('s3cret');
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-cmp-'));
const issued = new X509Certificate(readFileSync(fixture('device-old.pem')));
const request = readPkiMessage(readFileSync(fixture('ir.der')));
// The responding CA's name: any Name does for the client; this is the request's recipient (NULL-DN's content aside).
const caName = readPkiMessage(readFileSync(fixture('cr.der'))).header.recipient.subarray(2);

async function response(name: string, body: ResponseBody): Promise<string> {
  const path = join(dir, `${name}.der`);
  writeFileSync(path, await buildResponse({ request, sender: Buffer.from(caName), protection: { kind: 'mac', secret: SECRET, senderKid: Buffer.from('fleetpki') } }, body));
  return path;
}

function opensslIr(rspin: readonly string[], extra: readonly string[] = []): Promise<{ code: number; out: string }> {
  const args = ['cmp', '-cmd', 'ir', '-rspin', rspin.join(' '), '-secret', 'pass:s3cret', '-ref', 'factory-1', '-newkey', fixture('device.key'), '-subject', '/serialNumber=0011223344556677', '-certout', join(dir, 'got.pem'), ...extra];
  return new Promise((resolve) => execFile('openssl', args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr })));
}

describe('CMP responses read by openssl cmp', () => {
  it('ip, MAC-protected with the shared secret: openssl saves the certificate, sends certConf and takes our pkiconf', async () => {
    const ip = await response('ip', { type: 'ip', certReqId: 0, certificate: issued.raw });
    await verifyMacProtection(readPkiMessage(readFileSync(ip)), SECRET);
    const conf = await response('pkiconf', { type: 'pkiconf' });
    const run = await opensslIr([ip, conf]);
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /received IP/);
    assert.match(run.out, /received PKICONF/);
    assert.ok(new X509Certificate(readFileSync(join(dir, 'got.pem'))).raw.equals(issued.raw), 'the certificate saved is the one answered');
  });

  it('a response MACed with another secret is refused by the client', async () => {
    const path = join(dir, 'wrong-mac.der');
    writeFileSync(path, await buildResponse({ request, sender: Buffer.from(caName), protection: { kind: 'mac', secret: Buffer.from('not-the-secret') } }, { type: 'ip', certReqId: 0, certificate: issued.raw }));
    const run = await opensslIr([path], ['-disable_confirm']);
    assert.notEqual(run.code, 0);
    assert.match(run.out, /error validating protection|wrong PBM value|validating protection/i);
  });

  it('an error message carries the failInfo openssl reports', async () => {
    const error = await response('error', { type: 'error', failInfo: 'badPOP', text: 'the proof of possession does not verify' });
    const run = await opensslIr([error], ['-disable_confirm']);
    assert.notEqual(run.code, 0);
    assert.match(run.out, /rejection/);
    assert.match(run.out, /badPOP/);
    assert.match(run.out, /the proof of possession does not verify/);
  });
});
