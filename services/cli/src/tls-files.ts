// Where `fleetpki tls internal` writes a part's pair, and how: atomically (a temporary file in the same
// folder, fsync, rename), so a process that starts meanwhile reads the old pair or the new one, never half.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, fchownSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FleetError, type Deployment, type EtcdMemberName, type TlsPart } from '@fleetpki/core';

export interface PairDestination {
  readonly cert: string;
  readonly key: string;
  /** Where the CA bundle goes: tls.caBundle, or the --out folder's ca.pem. */
  readonly bundle: string | undefined;
  /** Written to --out, for the operator to put in place (a credential, another host, an unconfigured part). */
  readonly out: boolean;
  /** The key's configured source when it is a systemd credential (credential:<name>). */
  readonly credential: string | undefined;
}

/**
 * The part's files: --out when given; else the configuration's tls.<part> when its key is a file on this
 * host. A key that is a systemd credential, or a part the file does not name, needs --out: the CLI does
 * not write into a unit's credentials (systemd copies them at start from a file of the operator's
 * choosing). The certificate goes to --out with its key, not to tls.<part>.cert, so the pair is swapped
 * together: a service restarted between the two would present a certificate for another key.
 */
export function pairDestination(deployment: Deployment, part: TlsPart, host: EtcdMemberName, thisHost: EtcdMemberName, out: string | undefined): PairDestination {
  const pair = deployment.tls[part];
  const credential = pair?.key.startsWith('credential:') ? pair.key : undefined;
  if (out) return { cert: join(out, `${part}.pem`), key: join(out, `${part}.key`), bundle: join(out, 'ca.pem'), out: true, credential };
  const why =
    host !== thisHost ? `the ${part} pair is for host ${host} and this is host ${thisHost}`
    : !pair ? `tls.${part} is not in the configuration`
    : credential ? `tls.${part}.key is the systemd credential "${credential.slice('credential:'.length)}", which the unit loads from a file of yours`
    : undefined;
  if (why) throw new FleetError('INTERNAL_TLS_OUT_REQUIRED', `${why}: give --out DIR, then put the files in place as printed`);
  return { cert: pair!.cert, key: pair!.key.replace(/^file:/, ''), bundle: deployment.tls.caBundle, out: false, credential: undefined };
}

interface PendingFile {
  readonly path: string;
  readonly temp: string;
}

/** A temporary file beside `path` with `content`, mode `mode`, the owner of the file it replaces (as root), synced. */
function stage(path: string, content: string, mode: number, folderMode: number): PendingFile {
  mkdirSync(dirname(path), { recursive: true, mode: folderMode });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const previous = existsSync(path) ? statSync(path) : undefined;
  const fd = openSync(temp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    // A key's reader is often another user (postgres, etcd): keep the replaced file's owner when we can.
    if (previous && process.getuid?.() === 0) fchownSync(fd, previous.uid, previous.gid);
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  return { path, temp };
}

/**
 * Writes every file atomically, all staged before any is renamed, so the renames of a pair follow each
 * other as closely as the file system allows. Keys are 0600, certificates and bundles 0644; a missing
 * folder is made with `folderMode` (0700 for --out, which holds a key until the operator moves it).
 */
export function writeFilesAtomically(files: readonly { path: string; content: string; secret: boolean }[], folderMode: number): void {
  const staged: PendingFile[] = [];
  try {
    for (const f of files) staged.push(stage(f.path, f.content, f.secret ? 0o600 : 0o644, folderMode));
  } catch (err) {
    for (const s of staged) rmSync(s.temp, { force: true });
    throw new FleetError('INTERNAL_TLS_WRITE_FAILED', `cannot write ${files[staged.length]?.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; nothing was replaced`);
  }
  for (const s of staged) renameSync(s.temp, s.path);
  for (const folder of new Set(staged.map((s) => dirname(s.path)))) {
    const fd = openSync(folder, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

const pemBodies = (text: string): string[] => (text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((b) => b.replace(/\s+/g, ''));

/**
 * The CA bundle (organisation CA + root) at `path`: written when missing, rewritten when it lacks either,
 * kept when it holds both, even with more (another CA the operator trusts during a CA change).
 */
export function bundleUpdate(path: string, org: string, root: string): { content: string; action: 'write' | 'replace' } | undefined {
  if (!existsSync(path)) return { content: org + root, action: 'write' };
  const held = pemBodies(readFileSync(path, 'utf8'));
  const needed = [...pemBodies(org), ...pemBodies(root)];
  return needed.every((b) => held.includes(b)) ? undefined : { content: org + root, action: 'replace' };
}
