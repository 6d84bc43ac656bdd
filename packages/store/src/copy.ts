import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import copyStreams from 'pg-copy-streams';
import type { PoolClient } from './pool.js';

export type CopyValue = string | number | bigint | boolean | Buffer | Date | null;

/**
 * Bulk-writes rows with COPY ... FROM STDIN (text format): one round trip for thousands of rows, ~10x
 * faster than multi-row INSERT. Runs on the caller's client so it joins the caller's transaction.
 */
export async function copyRows(client: PoolClient, table: string, columns: readonly string[], rows: Iterable<readonly CopyValue[]> | AsyncIterable<readonly CopyValue[]>): Promise<void> {
  const sql = `COPY ${quoteIdent(table)} (${columns.map(quoteIdent).join(', ')}) FROM STDIN`;
  const sink = client.query(copyStreams.from(sql));
  async function* lines(): AsyncGenerator<string> {
    let buffered = '';
    for await (const row of rows as AsyncIterable<readonly CopyValue[]>) {
      buffered += row.map(encodeCopyValue).join('\t') + '\n';
      if (buffered.length >= 64 * 1024) {
        yield buffered;
        buffered = '';
      }
    }
    if (buffered) yield buffered;
  }
  await pipeline(Readable.from(lines()), sink);
}

/** COPY text format (PostgreSQL docs, "COPY", File Formats): \N is NULL, bytea as \\x hex, escapes for tab/newline/backslash. */
export function encodeCopyValue(value: CopyValue): string {
  if (value === null) return '\\N';
  if (Buffer.isBuffer(value)) return '\\\\x' + value.toString('hex');
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

function quoteIdent(name: string): string {
  // Table and column names here are ours, never user input; quoting still keeps reserved words safe.
  return name
    .split('.')
    .map((part) => '"' + part.replace(/"/g, '""') + '"')
    .join('.');
}
