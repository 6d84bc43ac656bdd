import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, sign, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * A CA parses exactly one thing one way: CSRs that are not DER (even with a valid signature over the
 * non-DER bytes), PEM that RFC 7468's lax grammar refuses (whitespace and line length are free, as
 * section 3 asks of parsers; the base64 is canonical), and several PEM blocks in one text are
 * refused with 400, a stable code and the rule broken, and write nothing; the valid forms still pass.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let token: string;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  token = await createToken(pool, 'factory', 'strict-maker', `strict-factory-${randomBytes(3).toString('hex')}`);
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

// --- building CSRs byte by byte ---------------------------------------------------------------------

function len(n: number): Buffer {
  return n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
}
function tlv(tag: number, value: Buffer, lengthBytes?: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes ?? len(value.length), value]);
}
const ALG = Buffer.from('300a06082a8648ce3d040302', 'hex');

/** A CSR over `cri` signed by `key`: whatever the bytes, the signature verifies. */
function csrOver(cri: Buffer, key: KeyObject): Buffer {
  return tlv(0x30, Buffer.concat([cri, ALG, tlv(0x03, Buffer.concat([Buffer.from([0]), sign('sha256', cri, key)]))]));
}

/** The content of a certificationRequestInfo (RFC 2986), each part as given. */
function criBody(parts: { version?: Buffer; subject?: Buffer; spki: Buffer; attributes?: Buffer }): Buffer {
  return Buffer.concat([parts.version ?? Buffer.from('020100', 'hex'), parts.subject ?? Buffer.from('3000', 'hex'), parts.spki, parts.attributes ?? Buffer.from('a000', 'hex')]);
}
const cri = (parts: Parameters<typeof criBody>[0]) => tlv(0x30, criBody(parts));

function pemLines(der: Buffer, label = 'CERTIFICATE REQUEST', eol = '\n'): string {
  return `-----BEGIN ${label}-----${eol}${der.toString('base64').replace(/.{1,64}/g, `$&${eol}`)}-----END ${label}-----${eol}`;
}

async function enrol(csr: string): Promise<{ status: number; body: { code?: string; message?: string } }> {
  const res = await runtime.app.inject({ method: 'POST', url: '/v1/enrolments', headers: { authorization: `Bearer ${token}` }, payload: { eui64: syntheticEui64('strict-maker'), keyRole: 'digitalSignature', csr } });
  return { status: res.statusCode, body: res.json() };
}

async function intents(): Promise<number> {
  return (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM issuance_intents')).rows[0]!.n;
}

describe('one strict reader for CSRs and PEM', () => {
  const [device] = generateDeviceKeys(1);
  const key = device!.privateKey;
  const spki = device!.publicKeySpki;
  const good = csrOver(cri({ spki }), key);
  const b64 = good.toString('base64');
  // base64url's own characters in place of '+' and '/', or one put in when the encoding happens to have
  // neither (a CSR with random key and signature does, about once in a few hundred runs).
  const inBase64url = (text: string): string => (/[+/]/.test(text) ? text.replace(/\+/g, '-').replace(/\//g, '_') : `${text.slice(0, 10)}-${text.slice(11)}`);

  const refused: [string, () => string, RegExp][] = [
    ['a non-minimal length on the outer SEQUENCE', () => Buffer.concat([Buffer.from([0x30, 0x82, 0x00, good[1]!]), good.subarray(2)]).toString('base64'), /non-minimal length/],
    ['a non-minimal length inside the signed request info (signature valid)', () => csrOver(cri({ spki, subject: Buffer.from('308100', 'hex') }), key).toString('base64'), /non-minimal length/],
    ['an indefinite length (BER) inside the signed request info (signature valid)', () => csrOver(Buffer.concat([Buffer.from([0x30, 0x80]), criBody({ spki }), Buffer.from([0, 0])]), key).toString('base64'), /indefinite length/],
    ['a version INTEGER not in its shortest form (signature valid)', () => csrOver(cri({ spki, version: Buffer.from('02020000', 'hex') }), key).toString('base64'), /shortest form|INTEGER/],
    ['a constructed OCTET STRING (BER) in the attributes (signature valid)', () => csrOver(cri({ spki, attributes: Buffer.from('a00d300b0603551d0f310424020400', 'hex') }), key).toString('base64'), /constructed form/],
    ['bytes after the request', () => Buffer.concat([good, Buffer.from([0x00])]).toString('base64'), /after the|trailing/],
    ['base64 with its last character dropped', () => b64.slice(0, -1), /multiple of 4|base64/],
    ['the base64url alphabet', () => inBase64url(b64).replace(/=+$/, ''), /base64url|base64 alphabet|multiple of 4/],
    ['base64 with whitespace inside', () => `${b64.slice(0, 20)} ${b64.slice(20)}`, /base64 alphabet/],
    ['PEM with a dropped final character', () => pemLines(good).replace(/(.)\n-----END/, '\n-----END'), /multiple of 4|line/],
    ['PEM with the base64url alphabet', () => `-----BEGIN CERTIFICATE REQUEST-----\n${inBase64url(b64).replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`, /base64url|alphabet/],
    ['two PEM blocks (the first is used by lax readers)', () => pemLines(good) + pemLines(csrOver(cri({ spki }), key)), /2 PEM blocks/],
    ['a PEM block followed by other text', () => `${pemLines(good)}and something else\n`, /text after/],
    ['a PEM block with another label', () => pemLines(good, 'CERTIFICATE'), /label "CERTIFICATE"/],
    ['PEM whose base64 is not canonical once its whitespace is gone (a dropped character)', () => `-----BEGIN CERTIFICATE REQUEST-----\n${b64.slice(0, -1).replace(/.{1,76}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`, /multiple of 4/],
    ['PEM with a character that is neither base64 nor whitespace', () => `-----BEGIN CERTIFICATE REQUEST-----\n${b64.slice(0, 30)}.${b64.slice(30).replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`, /neither base64 .* nor whitespace/],
  ];

  for (const [what, input, rule] of refused) {
    it(`refuses ${what}: 400 with a stable code and the rule, nothing written`, async () => {
      const before = await intents();
      const { status, body } = await enrol(input());
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.code, 'CSR_MALFORMED', JSON.stringify(body));
      assert.match(body.message ?? '', rule);
      assert.equal(await intents(), before, 'no intent recorded');
    });
  }

  for (const [what, input] of [
    ['base64 DER', () => b64],
    ['PEM with LF', () => pemLines(good)],
    ['PEM with CRLF', () => pemLines(good, 'CERTIFICATE REQUEST', '\r\n')],
    ['PEM with surrounding whitespace', () => `\n  ${pemLines(good)}\n\n`],
    ['NEW CERTIFICATE REQUEST', () => pemLines(good, 'NEW CERTIFICATE REQUEST')],
    ['PEM with the whole body on one line', () => `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`],
    ['PEM with 72-column lines', () => `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/.{1,72}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`],
    ['PEM with 16-column lines', () => `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/.{1,16}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`],
    ['PEM with trailing spaces and tabs', () => `-----BEGIN CERTIFICATE REQUEST----- \t\n${b64.replace(/.{1,64}/g, '$& \t\n')}-----END CERTIFICATE REQUEST-----\t \n`],
    ['PEM with CRLF and trailing spaces', () => `-----BEGIN CERTIFICATE REQUEST-----  \r\n${b64.replace(/.{1,64}/g, '$&  \r\n')}-----END CERTIFICATE REQUEST-----  \r\n`],
  ] as const) {
    it(`still accepts ${what}`, async () => {
      const { status, body } = await enrol(input());
      assert.equal(status, 201, JSON.stringify(body));
    });
  }

  // RFC 7468 3: a parser accepts whitespace and line ends anywhere in the base64 text, at any line
  // length. coreutils `base64` wraps at 76 columns (MIME); this goes over a real HTTP connection.
  it('accepts a PEM CSR with 76-column lines, as coreutils base64 writes it, over HTTP', async () => {
    const wrapped = spawnSync('base64', { input: good, encoding: 'utf8' });
    assert.equal(wrapped.status, 0, wrapped.stderr);
    assert.match(wrapped.stdout, /^[A-Za-z0-9+/]{76}\n/, 'coreutils base64 wraps at 76 columns');
    const csr = `-----BEGIN CERTIFICATE REQUEST-----\n${wrapped.stdout}-----END CERTIFICATE REQUEST-----\n`;
    await runtime.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `${localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port)}/v1/enrolments`;
    const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ eui64: syntheticEui64('strict-maker'), keyRole: 'digitalSignature', csr }) });
    const body = (await res.json()) as { code?: string; message?: string; certificate?: string };
    assert.equal(res.status, 201, JSON.stringify(body));
  });

  it('the reference CSR, built the same way, verifies with openssl req -verify (so the refusals above are about encoding)', () => {
    const r = spawnSync('openssl', ['req', '-noout', '-verify'], { input: toPem(good, 'CERTIFICATE REQUEST'), encoding: 'utf8' });
    assert.match(`${r.stdout}${r.stderr}`, /verify OK/i);
  });
});
