import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FleetError } from '@fleetpki/core';
import { InputRuleError, c509ToPkcs10, c509ToX509, pkcs10ToC509, readStrictPem, toPem, x509ToC509 } from '@fleetpki/x509';

/** A file as bytes: binary, PEM, or hex/base64 text (what operators paste from tickets). */
function readInput(file: string, pemLabels: readonly string[]): Buffer {
  const raw = readFileSync(file);
  const text = raw.toString('latin1').trim();
  if (text.startsWith('-----BEGIN')) {
    try {
      return readStrictPem(raw.toString('latin1'), pemLabels, file);
    } catch (err) {
      if (err instanceof InputRuleError) throw new FleetError('INPUT_INVALID', `${err.message} [${err.rule}]`);
      throw err;
    }
  }
  if (/^[0-9a-fA-F\s]+$/.test(text) && text.replace(/\s/g, '').length % 2 === 0) return Buffer.from(text.replace(/\s/g, ''), 'hex');
  return raw;
}

const isRequestDer = (der: Buffer): boolean => {
  // A certificate's TBS starts with [0] version; a PKCS#10 CertificationRequestInfo with INTEGER 0.
  const inner = der.indexOf(0x30, 1);
  const first = der[inner + (der[inner + 1]! & 0x80 ? 2 + (der[inner + 1]! & 0x7f) : 2)];
  return first === 0x02;
};

function write(out: string | undefined, bytes: Buffer, text: string): void {
  if (out) writeFileSync(out, bytes);
  else process.stdout.write(text);
}

export function registerC509Commands(program: Command): void {
  const c509 = program.command('c509').description('CBOR-encoded certificates and requests (draft-ietf-cose-cbor-encoded-cert)');
  c509
    .command('encode <file>')
    .description('DER or PEM certificate or PKCS#10 request -> C509 type 3 (binary with --out, else hex on stdout)')
    .option('--out <file>', 'write the C509 bytes here')
    .option('--uncompressed', 'keep EC points uncompressed (0x04) instead of the 0xfe/0xfd form')
    .action((file: string, options: { out?: string; uncompressed?: boolean }) => {
      const der = readInput(file, ['CERTIFICATE', 'CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
      const request = isRequestDer(der);
      const encoded = request ? pkcs10ToC509(der, { compressPoints: !options.uncompressed }) : x509ToC509(der, { compressPoints: !options.uncompressed });
      write(options.out, encoded, `${encoded.toString('hex')}\n`);
      console.error(`${request ? 'request' : 'certificate'}: ${der.length} bytes DER -> ${encoded.length} bytes C509 (type 3)${options.out ? `, written to ${options.out}` : ''}`);
    });
  c509
    .command('decode <file>')
    .description('C509 type 3 certificate or request (binary or hex) -> the original DER (PEM with --pem)')
    .option('--out <file>', 'write here instead of stdout')
    .option('--pem', 'PEM instead of DER')
    .action((file: string, options: { out?: string; pem?: boolean }) => {
      const bytes = readInput(file, []);
      // The array header says which: 11 items for a certificate, 7 for a request.
      if (bytes[0] !== 0x8b && bytes[0] !== 0x87) throw new FleetError('C509_MALFORMED', `${file}: not a C509 certificate (CBOR array of 11) or request (array of 7); first byte 0x${(bytes[0] ?? 0).toString(16)}`, { httpStatus: 400 });
      const request = bytes[0] === 0x87;
      const der = request ? c509ToPkcs10(bytes) : c509ToX509(bytes);
      const pem = toPem(der, request ? 'CERTIFICATE REQUEST' : 'CERTIFICATE');
      if (options.out) writeFileSync(options.out, options.pem ? pem : der);
      else process.stdout.write(options.pem || process.stdout.isTTY ? pem : der);
      console.error(`${request ? 'request' : 'certificate'}: ${bytes.length} bytes C509 -> ${der.length} bytes DER${options.out ? `, written to ${options.out}` : ''}`);
    });
}
