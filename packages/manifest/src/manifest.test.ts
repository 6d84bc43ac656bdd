import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CsvManifestReader, parseNdjsonLine } from './entries.js';
import { readLines, type ManifestLine } from './lines.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
const limits = { maxLineBytes: 64 * 1024, maxBytes: 1024 * 1024 };

async function collect(source: Iterable<Buffer | string>, l = limits): Promise<ManifestLine[]> {
  const out: ManifestLine[] = [];
  for await (const line of readLines(source, l)) out.push(line);
  return out;
}

describe('manifest lines', () => {
  it('splits across chunk boundaries, accepts CRLF, skips blank lines, keeps line numbers', async () => {
    const lines = await collect(['ab', 'c\r\n\nde', 'f\ngh']);
    assert.deepEqual(lines, [
      { lineNo: 1, text: 'abc' },
      { lineNo: 3, text: 'def' },
      { lineNo: 4, text: 'gh' },
    ]);
  });

  it('refuses a line over the limit as soon as it passes it, naming the line', async () => {
    await assert.rejects(collect(['ok\n', 'x'.repeat(10), 'x'.repeat(10)], { maxLineBytes: 15, maxBytes: 1000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'MANIFEST_LINE_TOO_LONG');
      assert.match(err.message, /line 2/);
      return true;
    });
  });

  it('refuses a manifest over the byte limit', async () => {
    await assert.rejects(collect(['a\n'.repeat(600)], { maxLineBytes: 100, maxBytes: 1000 }), { code: 'MANIFEST_TOO_LARGE' });
  });
});

describe('the README example manifests', () => {
  it('NDJSON: 2 devices, 3 keys, EUI-64 with separators accepted', async () => {
    const keys = [];
    for await (const line of readLines(createReadStream(fixture('manifest-example.ndjson')), limits)) keys.push(...parseNdjsonLine(line.lineNo, line.text));
    assert.deepEqual(keys.map((k) => [k.lineNo, k.eui64.toString('hex'), k.keyRole, k.deviceType, k.csr !== null]), [
      [1, '001bc50c00000001', 'digitalSignature', 'electricity-meter', true],
      [1, '001bc50c00000001', 'keyAgreement', 'electricity-meter', true],
      [2, '001bc50c00000002', 'digitalSignature', 'gas-meter', true],
    ]);
  });

  it('CSV: header then one key a row', async () => {
    const reader = new CsvManifestReader();
    const keys = [];
    for await (const line of readLines(createReadStream(fixture('manifest-example.csv')), limits)) keys.push(...reader.parse(line.lineNo, line.text));
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.lineNo, 2);
    assert.equal(keys[0]!.publicKey.length, 91);
  });

  it('names what is wrong on a line', () => {
    assert.throws(() => parseNdjsonLine(7, '{"eui64":"001BC50C00000009","keys":[{"role":"digitalSignature"}]}'), { code: 'KEY_SOURCE_INVALID' });
    assert.throws(() => parseNdjsonLine(7, '{"eui64":"001BC50C00000009","colour":"red","keys":[]}'), /unknown field "colour"/);
    assert.throws(() => new CsvManifestReader().parse(1, 'eui64,deviceType'), { code: 'MANIFEST_HEADER_INVALID' });
  });
});
