import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { progressBar } from '../progress.js';
import { FleetError } from '@fleetpki/core';
import type { BatchView, ResultLine } from '@fleetpki/client';
import { apiClient, withApiOptions, type ApiOptions } from '../api.js';

export function printBatch(batch: BatchView): void {
  console.log(`batch ${batch.id}: ${batch.status}`);
  console.log(`  profile ${batch.profile}; ${batch.devices} devices, ${batch.certificatesRequested} certificates requested`);
  console.log(`  issued ${batch.issued}, refused ${batch.failed}; chunks ${batch.chunks.done}/${batch.chunks.total}`);
  if (batch.certificatesPerSecond) console.log(`  ${batch.certificatesPerSecond} certificates/s${batch.etaSeconds ? `, ETA ${batch.etaSeconds} s` : ''}`);
  if (batch.skippedLines) console.log(`  ${batch.skippedLines} manifest lines skipped; first: ${batch.skipped.slice(0, 5).map((s) => `line ${s.line} ${s.code}`).join('; ')}`);
  for (const e of batch.errors.slice(0, 10)) console.log(`  refused: line ${e.line} ${e.eui64} ${e.keyRole}: ${e.code}`);
}

function printRejection(err: FleetError): void {
  console.error(`fleetpki: ${err.code}: ${err.message}`);
  const errors = (err.details?.errors ?? []) as { line: number; code: string; message: string }[];
  for (const e of errors.slice(0, 20)) console.error(`  line ${e.line}: ${e.code}: ${e.message}`);
  if (errors.length > 20) console.error(`  ... ${errors.length - 20} more in the report`);
}

/** Writes result lines as NDJSON (appending when resuming); counts the certificates, keeps the end line. */
async function writeResults(lines: AsyncIterable<ResultLine>, path: string, append: boolean): Promise<{ certificates: number; end: Extract<ResultLine, { type: 'end' }> | undefined }> {
  const out = createWriteStream(path, { flags: append ? 'a' : 'w' });
  let certificates = 0;
  let end: Extract<ResultLine, { type: 'end' }> | undefined;
  for await (const line of lines) {
    if (line.type === 'certificate') certificates++;
    if (line.type === 'end') end = line;
    if (!out.write(JSON.stringify(line) + '\n')) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { certificates, end };
}

export function registerBatchCommands(program: Command): void {
  const batch = program.command('batch').description('factory batch enrolment through the issuer API');

  withApiOptions(batch.command('submit <manifest>'))
    .description('upload a manifest (.ndjson or .csv), streamed; --wait follows issuance with a progress bar')
    .option('--wait', 'wait until every certificate is issued')
    .option('-o, --out <file>', 'with --wait: download the certificates (NDJSON, as `batch results`) while the batch issues')
    .option('--profile <id>', 'certificate profile')
    .option('--skip-invalid', 'leave out invalid lines (reported) instead of refusing the manifest')
    .option('--signature-file <file>', 'base64 manifest signature (for raw public keys; `manifest sign`)')
    .option('--idempotency-key <key>', 'resubmitting with the same key returns the same batch')
    .option('--json', 'print the final batch as JSON')
    .action(async (manifest: string, options: ApiOptions & { wait?: boolean; out?: string; profile?: string; skipInvalid?: boolean; signatureFile?: string; idempotencyKey?: string; json?: boolean }) => {
      if (options.out && !options.wait) throw new FleetError('OPTION_INVALID', '--out downloads while waiting: give --wait too');
      const client = apiClient(options);
      const upload = progressBar('upload  [{bar}] {percentage}% {value}/{total} MB');
      let started = false;
      let result;
      try {
        result = await client.submitBatch(manifest, {
          ...(options.profile ? { profile: options.profile } : {}),
          ...(options.skipInvalid ? { onInvalid: 'skip' as const } : {}),
          ...(options.signatureFile ? { signature: readFileSync(options.signatureFile, 'utf8').trim() } : {}),
          ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
          onUploadProgress: (sent, total) => {
            if (!started) {
              upload.start(Math.ceil(total / 1e6), 0);
              started = true;
            }
            if (started) upload.update(Math.floor(sent / 1e6));
          },
        });
      } catch (err) {
        if (started) upload.stop();
        if (err instanceof FleetError && err.details) {
          printRejection(err);
          process.exitCode = 1;
          return;
        }
        throw err;
      }
      if (started) upload.stop();
      console.error(result.created ? `batch ${result.batch.id} accepted` : `this manifest was already accepted as batch ${result.batch.id}`);
      let final = result.batch;
      if (options.wait) {
        const bar = progressBar('issuing [{bar}] {percentage}% {value}/{total} certificates | {rate}/s | ETA {eta_s}s');
        bar.start(final.certificatesRequested, final.issued + final.failed, { rate: 0, eta_s: '?' });
        // The download runs beside the issuance: a million certificates are on disk when the last is signed.
        const [done, downloaded] = await Promise.all([
          client.waitForBatch(final.id, (b) => bar.update(b.issued + b.failed, { rate: b.certificatesPerSecond, eta_s: b.etaSeconds ?? '?' })),
          options.out ? writeResults(client.followBatchResults(final.id), options.out, false) : undefined,
        ]);
        final = done;
        bar.stop();
        if (downloaded) console.error(`${downloaded.certificates} certificates written to ${options.out}`);
      }
      if (options.json) console.log(JSON.stringify(final));
      else printBatch(final);
    });

  withApiOptions(batch.command('status <id>'))
    .description("a batch's progress")
    .option('--json', 'as JSON')
    .action(async (id: string, options: ApiOptions & { json?: boolean }) => {
      const view = await apiClient(options).getBatch(id);
      if (options.json) console.log(JSON.stringify(view));
      else printBatch(view);
    });

  withApiOptions(batch.command('results <id>'))
    .description('download the certificates as NDJSON (chain first, then one line per certificate); --after resumes')
    .requiredOption('-o, --out <file>', 'where to write (appends when resuming with --after)')
    .option('--after <cursor>', 'resume after this cursor (the last line written says it)', (v) => Number(v))
    .option('--format <format>', 'certificate encoding: der (base64, default), pem or c509 (base64 CBOR)')
    .option('--follow', 'keep downloading as the batch issues, until it is complete')
    .action(async (id: string, options: ApiOptions & { out: string; after?: number; format?: 'der' | 'pem' | 'c509'; follow?: boolean }) => {
      const client = apiClient(options);
      const request = { ...(options.after !== undefined ? { after: options.after } : {}), ...(options.format ? { format: options.format } : {}) };
      const lines = options.follow ? client.followBatchResults(id, request) : client.batchResults(id, options.after, options.format);
      const { certificates, end } = await writeResults(lines, options.out, options.after !== undefined);
      console.log(`${certificates} certificates written to ${options.out}; cursor ${end?.cursor}${end?.complete ? ' (batch complete)' : ' (batch still issuing: resume with --after, or --follow)'}`);
    });
  withApiOptions(batch.command('device-keys <id>'))
    .description("download the batch's symmetric device keys, wrapped for the factory's transport key (open with `keys unwrap`)")
    .requiredOption('-o, --out <file>', 'where to write the bundle')
    .option('--roles <roles>', 'comma-separated key roles', 'mac,enc')
    .action(async (id: string, options: ApiOptions & { out: string; roles: string }) => {
      const client = apiClient(options);
      const out = createWriteStream(options.out);
      let keys = 0;
      for await (const line of client.batchDeviceKeys(id, options.roles.split(','))) {
        if (line.type === 'device-key') keys++;
        if (!out.write(JSON.stringify(line) + '\n')) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
      console.log(`${keys} device keys written to ${options.out}`);
    });
}

