import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputRuleError, assertStrictDer, readPemOrBase64, readStrictBase64, readStrictPem } from './strict-input.js';

const rule = (name: string) => (err: unknown) => err instanceof InputRuleError && err.rule === name;

describe('strict input (RFC 7468 strict PEM, canonical base64, DER throughout)', () => {
  const der = Buffer.from('3006020101020102', 'hex');

  it('accepts canonical forms', () => {
    assert.deepEqual(readStrictBase64(der.toString('base64'), 'x'), der);
    assert.deepEqual(readStrictPem(`-----BEGIN X-----\n${der.toString('base64')}\n-----END X-----\n`, ['X'], 'x'), der);
    assert.deepEqual(readPemOrBase64(`\r\n-----BEGIN X-----\r\n${der.toString('base64')}\r\n-----END X-----\r\n`, ['X'], 'x'), der);
    assertStrictDer(der, 'x');
  });

  for (const [what, text, name] of [
    ['a dropped final character', 'MAYCAQECAQI', 'base64-length'],
    ['base64url', 'MAYCAQ_CAQI-', 'base64-url-alphabet'],
    ['inner whitespace', 'MAYC AQECAQI=', 'base64-whitespace'],
    ['padding in the middle', 'MA==MAYCAQEC', 'base64-padding'],
    ['non-zero pad bits', 'MAYCAQECAQJ=', 'base64-non-canonical'],
    ['nothing', '', 'base64-empty'],
  ] as const) {
    it(`base64: refuses ${what}`, () => assert.throws(() => readStrictBase64(text, 'x'), rule(name)));
  }

  const b64 = Buffer.alloc(100, 7).toString('base64');
  const pem = (body: string, label = 'X') => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
  for (const [what, text, name] of [
    ['two blocks', pem(b64.slice(0, 64) + '\n' + b64.slice(64)) + pem('AAAA'), 'pem-several-blocks'],
    ['another label', pem('AAAA', 'Y'), 'pem-label'],
    ['text before', `hello\n${pem('AAAA')}`, 'pem-text-before'],
    ['text after', `${pem('AAAA')}bye`, 'pem-text-after'],
    ['a long line', pem(b64), 'pem-line-length'],
    ['a short line before the last', pem(`${b64.slice(0, 60)}\n${b64.slice(60)}`), 'pem-line-length'],
    ['no END', '-----BEGIN X-----\nAAAA\n', 'pem-no-end'],
  ] as const) {
    it(`PEM: refuses ${what}`, () => assert.throws(() => readStrictPem(text, ['X'], 'x'), rule(name)));
  }

  for (const [what, hex, name] of [
    ['a non-minimal length', '308106020101020102', 'der-non-minimal-length'],
    ['an indefinite length', '3080020101020102' + '0000', 'der-indefinite-length'],
    ['a nested non-minimal length', '30070281010102 0102'.replace(/ /g, ''), 'der-non-minimal-length'],
    ['a non-minimal INTEGER', '300702020001020102', 'der-integer'],
    ['a constructed OCTET STRING', '3004240204' + '00', 'der-constructed-primitive'],
    ['a bad BOOLEAN', '3003010101', 'der-boolean'],
    ['trailing bytes', '300602010102010200', 'der-trailing-bytes'],
    ['a BIT STRING with set unused bits', '3004030201ff', 'der-bit-string'],
  ] as const) {
    it(`DER: refuses ${what}`, () => assert.throws(() => assertStrictDer(Buffer.from(hex, 'hex'), 'x'), rule(name)));
  }
});
