import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputRuleError, assertStrictDer, readPemOrBase64, readStrictBase64, readStrictPem } from './strict-input.js';

const rule = (name: string) => (err: unknown) => err instanceof InputRuleError && err.rule === name;

describe('strict input (RFC 7468 lax PEM whitespace, one block, canonical base64, DER throughout)', () => {
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
  const wrap = (text: string, columns: number, eol = '\n') => text.replace(new RegExp(`.{1,${columns}}`, 'g'), `$&${eol}`).slice(0, -eol.length);

  // RFC 7468 3: parsers accept the lax form (laxtextualmsg: whitespace and line ends anywhere between
  // the base64 characters, any line length); the strict form is what generators write. Each of these is
  // what a real tool writes.
  const laxForms: [string, string][] = [
    ['76-column lines (MIME base64, coreutils base64)', pem(wrap(b64, 76))],
    ['72-column lines', pem(wrap(b64, 72))],
    ['16-column lines', pem(wrap(b64, 16))],
    ['the whole body on one line', pem(b64)],
    ['trailing spaces after every line and boundary', pem(wrap(b64, 64, '   \n')).replace(/-----\n/g, '-----  \n')],
    ['trailing tabs after every line and boundary', pem(wrap(b64, 64, '\t\n')).replace(/-----\n/g, '-----\t\n')],
    ['CRLF with trailing spaces', `-----BEGIN X----- \r\n${wrap(b64, 64, ' \r\n')} \r\n-----END X----- \r\n`],
    ['a short line before the last', pem(`${b64.slice(0, 60)}\n${b64.slice(60)}`)],
    ['blank lines and indented lines inside', pem(`\n  ${b64.slice(0, 40)}\n\n\t${b64.slice(40)}\n`)],
  ];
  for (const [what, text] of laxForms) {
    it(`PEM: accepts ${what}`, () => assert.deepEqual(readStrictPem(text, ['X'], 'x'), Buffer.alloc(100, 7)));
  }

  for (const [what, text, name] of [
    ['two blocks', pem(b64.slice(0, 64) + '\n' + b64.slice(64)) + pem('AAAA'), 'pem-several-blocks'],
    ['two blocks, the second one-line', `${pem(b64)}-----BEGIN X-----\nAAAA\n-----END X-----`, 'pem-several-blocks'],
    ['another label', pem('AAAA', 'Y'), 'pem-label'],
    ['an END label unlike the BEGIN label', '-----BEGIN X-----\nAAAA\n-----END Y-----\n', 'pem-no-end'],
    ['text before', `hello\n${pem('AAAA')}`, 'pem-text-before'],
    ['text after', `${pem('AAAA')}bye`, 'pem-text-after'],
    ['no END', '-----BEGIN X-----\nAAAA\n', 'pem-no-end'],
    ['the body on the BEGIN line', `-----BEGIN X-----${b64}\n-----END X-----\n`, 'pem-line'],
    ['the END boundary after base64 on its line', `-----BEGIN X-----\n${b64}-----END X-----\n`, 'pem-line'],
    ['an empty block', '-----BEGIN X-----\n  \n-----END X-----\n', 'base64-empty'],
    ['a character outside base64 and whitespace', pem(`${b64.slice(0, 30)}.${b64.slice(30)}`), 'base64-alphabet'],
    ['a no-break space (not RFC 7468 whitespace)', pem(`${b64.slice(0, 30)}\u00a0${b64.slice(30)}`), 'base64-alphabet'],
    ['base64url', pem(`${b64.slice(0, 30)}-_${b64.slice(32)}`), 'base64-url-alphabet'],
    ['a dropped character', pem(wrap(b64.slice(0, -1), 76)), 'base64-length'],
    ['padding in the middle', pem(`AAA=\nAAAA`), 'base64-padding'],
    ['non-zero pad bits', pem(wrap('MAYCAQECAQJ=', 4)), 'base64-non-canonical'],
  ] as const) {
    it(`PEM: refuses ${what}`, () => assert.throws(() => readStrictPem(text, ['X'], 'x'), rule(name)));
  }

  it('PEM: names where a refused character is in the text, whitespace and all', () => {
    const text = pem(`${wrap(b64.slice(0, 40), 20)}\n  ${b64.slice(40, 50)}!${b64.slice(51)}`);
    assert.throws(() => readStrictPem(text, ['X'], 'x'), (err: unknown) => err instanceof InputRuleError && err.offset === text.indexOf('!'));
  });

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
