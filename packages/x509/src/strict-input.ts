import { DerError, readTlv } from './der-reader.js';

/**
 * One strict reader for what devices and factories send (CSRs, public keys): a CA parses exactly one
 * thing one way. PEM as RFC 7468 section 3 asks parsers to read it (its lax grammar: whitespace and
 * line length free), but exactly one block, the right label, nothing but whitespace around it and
 * canonical base64 inside; base64 per RFC 4648 section 4 canonical form (the standard alphabet, exact
 * padding, zero pad bits), and DER per X.690 section 10
 * throughout the structure, not only at the levels a parser happens to read: definite minimal lengths,
 * primitive encodings of primitive types, minimal INTEGERs, canonical BOOLEANs and BIT STRINGs,
 * and nothing after the last byte. Hand-written because no library here offers a strict mode: pkijs
 * and asn1js accept BER, and Buffer.from(..., 'base64') accepts almost anything.
 *
 * A refusal is an InputRuleError naming the rule broken and, where there is one, the offset.
 */
export class InputRuleError extends Error {
  constructor(
    /** A stable name of the rule, e.g. 'pem-several-blocks', 'base64-alphabet', 'der-non-minimal-length'. */
    readonly rule: string,
    message: string,
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** Canonical base64 (RFC 4648 4): only the standard alphabet, length a multiple of 4, exact padding, zero pad bits. */
export function readStrictBase64(text: string, what: string): Buffer {
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  if (bad) {
    const rule = bad[0] === '-' || bad[0] === '_' ? 'base64-url-alphabet' : /\s/.test(bad[0]) ? 'base64-whitespace' : 'base64-alphabet';
    throw new InputRuleError(rule, `${what}: character ${JSON.stringify(bad[0])} at offset ${bad.index} is not in the base64 alphabet (RFC 4648 4${rule === 'base64-url-alphabet' ? '; this looks like base64url' : ''})`, bad.index);
  }
  if (text.length === 0) throw new InputRuleError('base64-empty', `${what}: empty`);
  if (text.length % 4 !== 0) throw new InputRuleError('base64-length', `${what}: ${text.length} base64 characters is not a multiple of 4 (a character missing or extra?)`, text.length);
  const pad = /=*$/.exec(text)![0].length;
  if (pad > 2 || text.slice(0, text.length - pad).includes('=')) throw new InputRuleError('base64-padding', `${what}: '=' only as the last one or two characters`, text.indexOf('='));
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new InputRuleError('base64-non-canonical', `${what}: the last character carries bits that are not zero (not canonical base64)`, text.length - pad - 1);
  return bytes;
}

/** RFC 7468 3 laxtextualmsg's W: the whitespace (WSP, CR, LF, VT, FF) a parser skips in the base64 text. */
const PEM_WHITESPACE = new Set([' ', '\t', '\r', '\n', '\v', '\f']);

/**
 * Exactly one PEM block with one of `labels`, whitespace only around it. Inside, RFC 7468 3 asks
 * parsers for the lax grammar (the strict one is for generators): whitespace and line ends anywhere
 * between the base64 characters, lines of any length, trailing whitespace after the boundaries; real
 * tools write 76-column MIME lines, one long line, trailing blanks. The boundaries stand on lines of
 * their own, and what the whitespace leaves is canonical base64 (RFC 4648 4).
 */
export function readStrictPem(text: string, labels: readonly string[], what: string): Buffer {
  const begins = [...text.matchAll(/-----BEGIN ([^-]*)-----/g)];
  if (begins.length === 0) throw new InputRuleError('pem-no-block', `${what}: no "-----BEGIN ...-----" line`);
  if (begins.length > 1) throw new InputRuleError('pem-several-blocks', `${what}: ${begins.length} PEM blocks; exactly one is accepted (the second begins at offset ${begins[1]!.index})`, begins[1]!.index);
  const label = begins[0]![1]!;
  if (!labels.includes(label)) throw new InputRuleError('pem-label', `${what}: PEM label "${label}" is not ${labels.join(' or ')}`, begins[0]!.index);
  const lead = text.slice(0, begins[0]!.index);
  if (/\S/.test(lead)) throw new InputRuleError('pem-text-before', `${what}: text before the PEM block (offset ${lead.search(/\S/)})`, lead.search(/\S/));
  const endLine = `-----END ${label}-----`;
  const end = text.indexOf(endLine);
  if (end < 0) throw new InputRuleError('pem-no-end', `${what}: no "${endLine}" line`);
  const tail = text.slice(end + endLine.length);
  if (/\S/.test(tail)) throw new InputRuleError('pem-text-after', `${what}: text after the PEM block (offset ${end + endLine.length + tail.search(/\S/)})`, end + endLine.length + tail.search(/\S/));
  const bodyStart = begins[0]!.index + begins[0]![0].length;
  // The base64 characters and where each stands in `text`, so a refusal names the offset the sender sees.
  const chars: string[] = [];
  const offsets: number[] = [];
  for (let at = bodyStart; at < end; at++) {
    const c = text[at]!;
    if (PEM_WHITESPACE.has(c)) continue;
    if (!/[A-Za-z0-9+/=]/.test(c)) {
      const rule = c === '-' || c === '_' ? 'base64-url-alphabet' : 'base64-alphabet';
      throw new InputRuleError(rule, `${what}: character ${JSON.stringify(c)} at offset ${at} is neither base64 (RFC 4648 4${rule === 'base64-url-alphabet' ? '; this looks like base64url' : ''}) nor whitespace`, at);
    }
    if (chars.length === 0 && !/[\r\n]/.test(text.slice(bodyStart, at))) throw new InputRuleError('pem-line', `${what}: the BEGIN line must end after its boundary (spaces or tabs at most)`, bodyStart);
    chars.push(c);
    offsets.push(at);
  }
  if (chars.length > 0 && !/[\r\n]/.test(text.slice(offsets[offsets.length - 1]! + 1, end))) throw new InputRuleError('pem-line', `${what}: the END line must start a line`, end);
  if (chars.length === 0) {
    if (!/[\r\n]/.test(text.slice(bodyStart, end))) throw new InputRuleError('pem-line', `${what}: the BEGIN and END lines must be lines of their own`, bodyStart);
    throw new InputRuleError('base64-empty', `${what}: the PEM block is empty`, bodyStart);
  }
  try {
    return readStrictBase64(chars.join(''), what);
  } catch (err) {
    if (!(err instanceof InputRuleError)) throw err;
    // The base64 reader counts in the text without whitespace; an offset past its end is the END line.
    throw new InputRuleError(err.rule, err.message.replace(/ at offset \d+/, ''), err.offset === undefined ? undefined : (offsets[err.offset] ?? end));
  }
}

/** Input as APIs and manifests carry it: one PEM block (whitespace lax, base64 canonical), or canonical base64 of the DER. */
export function readPemOrBase64(text: string, labels: readonly string[], what: string): Buffer {
  return text.includes('-----BEGIN') ? readStrictPem(text, labels, what) : readStrictBase64(text, what);
}

const MAX_DEPTH = 32;

/**
 * X.690 10 (DER) for a whole structure: one element spanning all of `der`, every nested element with a
 * definite, minimal length; universal primitive types in primitive form with their DER content rules.
 */
export function assertStrictDer(der: Uint8Array, what: string): void {
  if (der.length === 0) throw new InputRuleError('der-empty', `${what}: no bytes`);
  const top = tlvAt(der, 0, der.length, what);
  if (top.end !== der.length) throw new InputRuleError('der-trailing-bytes', `${what}: ${der.length - top.end} byte(s) after the last element (offset ${top.end})`, top.end);
  walk(der, 0, der.length, 0, what);
}

function tlvAt(der: Uint8Array, at: number, end: number, what: string) {
  try {
    return readTlv(der, at, end);
  } catch (err) {
    if (!(err instanceof DerError)) throw err;
    const rule = /indefinite/.test(err.message) ? 'der-indefinite-length' : /non-minimal/.test(err.message) ? 'der-non-minimal-length' : /multi-byte tag/.test(err.message) ? 'der-tag' : 'der-truncated';
    throw new InputRuleError(rule, `${what}: ${err.message}`, at);
  }
}

function walk(der: Uint8Array, start: number, end: number, depth: number, what: string): void {
  if (depth > MAX_DEPTH) throw new InputRuleError('der-depth', `${what}: nested more than ${MAX_DEPTH} levels deep (offset ${start})`, start);
  for (let at = start; at < end; ) {
    const tlv = tlvAt(der, at, end, what);
    const constructed = (tlv.tag & 0x20) !== 0;
    const universal = (tlv.tag & 0xc0) === 0;
    const number = tlv.tag & 0x1f;
    if (constructed) {
      // X.690 10.2: strings and other primitive types are never in constructed form in DER.
      if (universal && number !== 0x10 && number !== 0x11) throw new InputRuleError('der-constructed-primitive', `${what}: universal type ${number} in constructed form at offset ${at} (BER, not DER)`, at);
      walk(der, tlv.contentStart, tlv.end, depth + 1, what);
    } else if (universal) {
      checkPrimitive(number, der.subarray(tlv.contentStart, tlv.end), at, what);
    }
    at = tlv.end;
  }
}

function checkPrimitive(type: number, value: Uint8Array, at: number, what: string): void {
  const fail = (rule: string, message: string) => {
    throw new InputRuleError(rule, `${what}: ${message} at offset ${at}`, at);
  };
  switch (type) {
    case 0x01: // BOOLEAN: X.690 11.1
      if (value.length !== 1 || (value[0] !== 0x00 && value[0] !== 0xff)) fail('der-boolean', 'BOOLEAN not encoded as one octet 00 or FF');
      break;
    case 0x02: // INTEGER: X.690 8.3.2, minimal two's complement
    case 0x0a: // ENUMERATED
      if (value.length === 0) fail('der-integer', 'INTEGER with no content');
      if (value.length > 1 && ((value[0] === 0x00 && value[1]! < 0x80) || (value[0] === 0xff && value[1]! >= 0x80))) fail('der-integer', 'INTEGER not in its shortest form');
      break;
    case 0x03: {
      // BIT STRING: X.690 11.2, unused bits 0-7 and zero
      if (value.length === 0 || value[0]! > 7 || (value.length === 1 && value[0] !== 0)) fail('der-bit-string', 'BIT STRING with a bad unused-bits octet');
      if (value.length > 1 && value[0]! > 0 && (value[value.length - 1]! & ((1 << value[0]!) - 1)) !== 0) fail('der-bit-string', 'BIT STRING whose unused bits are not zero');
      break;
    }
    case 0x05: // NULL
      if (value.length !== 0) fail('der-null', 'NULL with content');
      break;
    case 0x06: {
      // OBJECT IDENTIFIER: X.690 8.19, no leading 0x80 in a subidentifier, the last octet ends one
      if (value.length === 0 || (value[value.length - 1]! & 0x80) !== 0) fail('der-oid', 'OBJECT IDENTIFIER truncated');
      for (let i = 0; i < value.length; i++) if (value[i] === 0x80 && (i === 0 || (value[i - 1]! & 0x80) === 0)) fail('der-oid', 'OBJECT IDENTIFIER subidentifier with a leading 0x80 (not minimal)');
      break;
    }
    default:
      break;
  }
}
