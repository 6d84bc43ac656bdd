import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createStatusRuntime } from '@fleetpki/status-responder';
import type { Pool } from '@fleetpki/store';
import { opensslAsync, writeCaFile, type TestCa } from './support/ca.js';
import { openOcspTestbed, type EnrolledDevice, type OcspTestbed } from './support/ocsp-testbed.js';
import { localUrl, waitFor } from './support/sites.js';
import { type StatusSiteRuntime, preProduceFor } from './support/status.js';

/**
 * Issue 40.1: a request's CertID bytes must never reach a response that others are served. The
 * responder used to echo the requester's CertID (junk hash parameters, a serial padded with zero
 * octets) into the response it then stored and cached for everyone, so `openssl ocsp` failed to parse
 * the answer ("c2i_ibuf:illegal padding") and a soft-failing relying party never saw "revoked".
 *
 * The poisoning requests are built by hand from OpenSSL's own request for the certificate (OpenSSL's
 * CertID is the canonical one the tests compare against). The responder runs in this process without
 * its background loop, so the windows an attacker aims at (before a revocation is re-signed, before a
 * certificate's response is pre-produced) are held open for as long as the test needs.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */

let bed: OcspTestbed;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let status: StatusSiteRuntime;
let statusUrl: string;
let officer: FleetApiClient;

before(async () => {
  bed = await openOcspTestbed('certid');
  ({ config, pool, ca, status, officer } = bed);
  statusUrl = bed.statusUrl;
});

after(async () => {
  await bed?.close();
});

type Alg = 'sha1' | 'sha256';
type Device = EnrolledDevice;

const enrolDevice = (): Promise<EnrolledDevice> => bed.enrolDevice();

// --- DER by hand: the poisoning requests must not come from the code under test --------------------

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const content = Buffer.concat(parts);
  assert.ok(content.length < 128, 'short-form lengths are enough here');
  return Buffer.concat([Buffer.from([tag, content.length]), content]);
}

/** The elements inside one TLV (short-form lengths only: OCSP requests of one CertID are small). */
function children(der: Buffer): Buffer[] {
  assert.ok(der[1]! < 0x80);
  const content = der.subarray(2, 2 + der[1]!);
  const out: Buffer[] = [];
  for (let at = 0; at < content.length; ) {
    assert.ok(content[at + 1]! < 0x80);
    const end = at + 2 + content[at + 1]!;
    out.push(content.subarray(at, end));
    at = end;
  }
  return out;
}

/** OpenSSL's own CertID for the certificate: OCSPRequest > TBSRequest > requestList > Request > CertID. */
async function opensslCertId(device: Device, alg: Alg): Promise<Buffer> {
  const reqPath = join(ca.dir, `${device.serial}-${alg}.req`);
  await opensslAsync(['ocsp', '-issuer', ca.issuingPem, `-${alg}`, '-cert', device.path, '-reqout', reqPath, '-no_nonce']);
  let element: Buffer = readFileSync(reqPath);
  for (let depth = 0; depth < 4; depth++) {
    const inner = children(element);
    assert.equal(inner.length, 1, 'one element at each level of a nonce-free request of one CertID');
    element = inner[0]!;
  }
  return Buffer.from(element);
}

const request = (certId: Buffer) => tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, certId))));

/** Variants of a canonical CertID: the poisoning ones, and one a client may legitimately send. */
function variants(canonical: Buffer): { poisoned: Record<string, Buffer>; absentParameters: Buffer } {
  const [algorithm, nameHash, keyHash, serial] = children(canonical) as [Buffer, Buffer, Buffer, Buffer];
  const [oid] = children(algorithm) as [Buffer];
  const junkAlgorithm = tlv(0x30, oid, tlv(0x04, Buffer.from('deadbeef', 'hex')));
  const paddedSerial = tlv(0x02, Buffer.from([0, 0]), serial.subarray(2));
  return {
    poisoned: {
      'padded serial and junk parameters': tlv(0x30, junkAlgorithm, nameHash, keyHash, paddedSerial),
      'padded serial': tlv(0x30, algorithm, nameHash, keyHash, paddedSerial),
      'junk parameters': tlv(0x30, junkAlgorithm, nameHash, keyHash, serial),
      'NULL parameters with content': tlv(0x30, tlv(0x30, oid, tlv(0x05, Buffer.from([0]))), nameHash, keyHash, serial),
    },
    absentParameters: tlv(0x30, tlv(0x30, oid), nameHash, keyHash, serial),
  };
}

async function post(body: Buffer): Promise<Buffer> {
  const res = await fetch(`${statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

async function get(body: Buffer): Promise<Buffer> {
  const res = await fetch(`${statusUrl}/ocsp/${encodeURIComponent(body.toString('base64'))}`);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

const MALFORMED = '30030a0101';

/**
 * Sends every poisoning variant for both hash algorithms over POST and GET; returns what each got, to
 * be asserted only after the relying parties' checks (those are what the attack breaks).
 */
async function poison(device: Device): Promise<{ name: string; answer: string }[]> {
  const answers: { name: string; answer: string }[] = [];
  for (const alg of ['sha1', 'sha256'] as const) {
    const { poisoned } = variants(await opensslCertId(device, alg));
    for (const [name, certId] of Object.entries(poisoned)) {
      answers.push({ name: `${alg} ${name} POST`, answer: (await post(request(certId))).toString('hex') });
      answers.push({ name: `${alg} ${name} GET`, answer: (await get(request(certId))).toString('hex') });
    }
  }
  return answers;
}

/** `openssl ocsp` as a relying party runs it, over HTTP: it must parse, verify and give the status. */
async function relyingParty(device: Device, alg: Alg): Promise<string> {
  return opensslAsync(['ocsp', '-issuer', ca.issuingPem, `-${alg}`, '-cert', device.path, '-url', `${statusUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
}

/** A response read back by OpenSSL from a file (GET answers, stored rows). */
async function opensslReads(der: Buffer, device: Device, alg: Alg, name: string): Promise<string> {
  const path = writeCaFile(ca, `${device.serial}-${name}.ocsp`, der);
  return opensslAsync(['ocsp', '-respin', path, '-issuer', ca.issuingPem, `-${alg}`, '-cert', device.path, '-CAfile', ca.rootPem, '-no_nonce']);
}

/** The checks after the attack: OpenSSL over POST, a GET of OpenSSL's request, and every stored row. */
async function assertEveryoneSees(device: Device, expected: 'good' | 'revoked'): Promise<void> {
  const status = new RegExp(`: ${expected}\\b`);
  for (const alg of ['sha1', 'sha256'] as const) {
    const text = await relyingParty(device, alg);
    assert.match(text, /Response verify OK/, `openssl ocsp -${alg}`);
    assert.match(text, status, `openssl ocsp -${alg}`);
    const canonical = await opensslCertId(device, alg);
    const viaGet = await get(request(canonical));
    assert.ok(viaGet.includes(canonical), `the GET answer (${alg}) carries OpenSSL's CertID byte for byte`);
    assert.match(await opensslReads(viaGet, device, alg, `${alg}-get`), status, `GET, ${alg}`);
  }
  // What the standby serves and what a responder with a cold cache starts from.
  const { rows } = await pool.query<{ hash_alg: Alg; status: string; der: Buffer }>('SELECT hash_alg, status, der FROM ocsp_responses WHERE serial = $1 ORDER BY hash_alg', [Buffer.from(device.serial, 'hex')]);
  assert.ok(rows.length > 0, 'a stored response');
  for (const row of rows) {
    assert.equal(row.status, expected);
    assert.ok(row.der.includes(await opensslCertId(device, row.hash_alg)), `the stored ${row.hash_alg} response carries OpenSSL's CertID byte for byte`);
    const text = await opensslReads(row.der, device, row.hash_alg, `${row.hash_alg}-stored`);
    assert.match(text, /Response verify OK/, `stored ${row.hash_alg}`);
    assert.match(text, status, `stored ${row.hash_alg}`);
  }
}

function assertRefused(answers: readonly { name: string; answer: string }[]): void {
  for (const { name, answer } of answers) assert.equal(answer, MALFORMED, `${name}: malformedRequest`);
}

describe('OCSP CertIDs are canonical: no request decides what others are answered', () => {
  it('a revoked meter: poisoning requests before and after the revocation is re-signed leave SHA-1 and SHA-256 answers revoked for everyone', async () => {
    const device = await enrolDevice();
    await preProduceFor(status, pool, [device.serial]);
    const outcome = await officer.revoke({ serials: [device.serial] }, 'keyCompromise');
    assert.equal(outcome.revoked, 1);
    // The revocation has committed; the responder has not picked it up yet.
    const early = await poison(device);
    await status.revocations.applyAllNewRevocations();
    const late = await poison(device);
    await assertEveryoneSees(device, 'revoked');
    assertRefused([...early, ...late]);
  });

  it('a good certificate, before its response is pre-produced: poisoning requests leave SHA-1 and SHA-256 answers good and parseable', async () => {
    const device = await enrolDevice();
    const answers = await poison(device);
    await preProduceFor(status, pool, [device.serial]);
    await assertEveryoneSees(device, 'good');
    assertRefused(answers);
  });

  it('a good certificate after pre-production, then revoked: poisoning between the two changes nothing', async () => {
    const device = await enrolDevice();
    await preProduceFor(status, pool, [device.serial]);
    const answers = await poison(device);
    await assertEveryoneSees(device, 'good');
    await officer.revoke({ serials: [device.serial] }, 'superseded');
    await status.revocations.applyAllNewRevocations();
    await assertEveryoneSees(device, 'revoked');
    assertRefused(answers);
  });

  it('absent hash parameters are legitimate: answered, with the canonical CertID (NULL parameters), and nothing stored differs', async () => {
    const device = await enrolDevice();
    for (const alg of ['sha1', 'sha256'] as const) {
      const canonical = await opensslCertId(device, alg);
      const answer = await post(request(variants(canonical).absentParameters));
      assert.ok(answer.includes(canonical), `${alg}: the answer names the certificate by the canonical CertID`);
      assert.match(await opensslReads(answer, device, alg, `${alg}-absent`), /: good\b/);
    }
    await preProduceFor(status, pool, [device.serial]);
    await assertEveryoneSees(device, 'good');
  });

  it('a stored response that does not name its certificate by the canonical CertID (stored before this fix) is not served, and is replaced', async () => {
    const [device, other] = [await enrolDevice(), await enrolDevice()];
    await preProduceFor(status, pool, [device.serial, other.serial]);
    // The row a poisoning request left behind, as far as this responder can tell: a signed response
    // whose CertID is not this certificate's canonical one (here: another certificate's).
    await pool.query(
      `UPDATE ocsp_responses SET der = (SELECT der FROM ocsp_responses WHERE serial = $2 AND hash_alg = 'sha1') WHERE serial = $1 AND hash_alg = 'sha1'`,
      [Buffer.from(device.serial, 'hex'), Buffer.from(other.serial, 'hex')],
    );
    // A responder with a cold cache (a restarted process, the standby's) starts from the store.
    const cold = await createStatusRuntime({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
    try {
      await cold.app.listen({ host: '127.0.0.1', port: 0 });
      const coldUrl = localUrl(config, 'status', (cold.app.server.address() as AddressInfo).port);
      const text = await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-sha1', '-cert', device.path, '-url', `${coldUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
      assert.match(text, /Response verify OK/);
      assert.match(text, /: good\b/);
      const canonical = await opensslCertId(device, 'sha1');
      await waitFor('the stored row replaced by the canonical response', async () => {
        const { rows } = await pool.query<{ der: Buffer }>("SELECT der FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'", [Buffer.from(device.serial, 'hex')]);
        return rows[0]!.der.includes(canonical) ? true : undefined;
      }, 10_000, 100);
    } finally {
      await cold.close();
    }
  });
});
