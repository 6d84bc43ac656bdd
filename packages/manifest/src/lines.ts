import { FleetError } from '@fleetpki/core';

export interface LineLimits {
  /** Longest line accepted, in bytes (a line is refused as soon as it grows past this). */
  readonly maxLineBytes: number;
  /** Largest manifest accepted, in bytes. */
  readonly maxBytes: number;
}

export interface ManifestLine {
  readonly lineNo: number;
  readonly text: string;
}

/**
 * Splits a byte stream into lines without ever holding more than one line (node:readline has no line
 * length limit, so a 10 MB line with no newline would be buffered whole). `onChunk` sees every byte, for
 * the manifest hash and signature. Blank lines are skipped; CRLF is accepted.
 */
export async function* readLines(source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, limits: LineLimits, onChunk?: (chunk: Buffer) => void): AsyncGenerator<ManifestLine> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  let lineNo = 0;
  const lineOf = (parts: Buffer[]): string => {
    let text = Buffer.concat(parts).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return text;
  };
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    total += chunk.length;
    if (total > limits.maxBytes) throw new FleetError('MANIFEST_TOO_LARGE', `the manifest is larger than ${limits.maxBytes} bytes`, { httpStatus: 413 });
    onChunk?.(chunk);
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      lineNo++;
      const piece = chunk.subarray(start, nl);
      if (pendingBytes + piece.length > limits.maxLineBytes) throw lineTooLong(lineNo, limits);
      pending.push(piece);
      const text = lineOf(pending);
      pending = [];
      pendingBytes = 0;
      start = nl + 1;
      if (text.trim() !== '') yield { lineNo, text };
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      pendingBytes += rest.length;
      if (pendingBytes > limits.maxLineBytes) throw lineTooLong(lineNo + 1, limits);
      // Copy: the source may reuse its buffer.
      pending.push(Buffer.from(rest));
    }
  }
  if (pendingBytes > 0) {
    const text = lineOf(pending);
    if (text.trim() !== '') yield { lineNo: lineNo + 1, text };
  }
}

function lineTooLong(lineNo: number, limits: LineLimits): FleetError {
  return new FleetError('MANIFEST_LINE_TOO_LONG', `line ${lineNo} is longer than ${limits.maxLineBytes} bytes`, { httpStatus: 413, details: { line: lineNo } });
}
