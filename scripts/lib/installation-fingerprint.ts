/**
 * What the test runner's guard (scripts/lib/installation-guard.ts) compares before and after a run: a
 * fingerprint of the installation, one entry per thing observed (a file of the state folder, a table's
 * row count, an object of one of the installation's tokens, a tracked file), each with a value that
 * changes when the thing does. Pure: collecting the entries is the guard's job.
 */

/** Observed thing -> its value ("sha256=... mode=600", "25 rows", ...). */
export type Fingerprint = Readonly<Record<string, string>>;

/**
 * A value that could not be read (a cluster down, a token folder unreadable): the entry is not compared,
 * only mentioned, since "unreadable" before and a value after says nothing about what a test did.
 */
export const NOT_READ = 'not read: ';

export interface FingerprintChange {
  readonly item: string;
  readonly kind: 'added' | 'removed' | 'changed';
  readonly before?: string;
  readonly after?: string;
}

export interface FingerprintComparison {
  readonly changes: readonly FingerprintChange[];
  /** Entries left out because one side could not be read, with the reason. */
  readonly notCompared: readonly string[];
}

/**
 * Paths under the state folder (relative, '/'-separated) that belong to the shared local clusters rather
 * than to the installation's own deployment: they change while the clusters run, whoever uses them.
 * The sites' folders themselves (a first run on a fresh machine makes them), PostgreSQL's data and log,
 * Redis, the etcd members and their logs, the site agents' pid files and logs, which site is primary, and
 * the SoftHSM token directories (every deployment's tokens live side by side
 * there, and SoftHSM rewrites a token's files on mere reading: the installation's own tokens are
 * fingerprinted by their objects instead). The backup repository and each site's pgBackRest folder (WAL
 * from every deployment's writes is archived there) and a restore drill's scratch cluster, but not the
 * repository's passphrase. Also the Node.js runtime setup installs (tools/: 190 MB of
 * a registry package, not the installation's data; hashing it cost every run seconds).
 */
const CLUSTER_PATHS: readonly RegExp[] = [
  /^site-[ab]$/,
  /^site-[ab]\/(pg|pg-log|redis|etcd|hsm)(\/|$)/,
  /^site-[ab]\/pgbackrest(\/|$)/,
  /^(backup-repo|restore-scratch)(\/|$)/,
  /^site-[ab]\/(agent\.pid|agent\.log|etcd-[a-z]+\.log)$/,
  /^witness(\/|$)/,
  /^root-hsm\/tokens(\/|$)/,
  /^topology\.json$/,
  /^tools(\/|$)/,
];

export function isClusterPath(relativePath: string): boolean {
  return CLUSTER_PATHS.some((pattern) => pattern.test(relativePath));
}

/** Every entry that appeared, disappeared or changed its value, sorted by name; unreadable ones aside. */
export function compareFingerprints(before: Fingerprint, after: Fingerprint): FingerprintComparison {
  const changes: FingerprintChange[] = [];
  const notCompared: string[] = [];
  const items = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  for (const item of items) {
    const was = before[item];
    const is = after[item];
    if (was === is) continue;
    const unreadable = [was, is].find((v) => v?.startsWith(NOT_READ));
    if (unreadable !== undefined) {
      notCompared.push(`${item} (${unreadable.slice(NOT_READ.length)})`);
      continue;
    }
    if (was === undefined) changes.push({ item, kind: 'added', after: is! });
    else if (is === undefined) changes.push({ item, kind: 'removed', before: was });
    else changes.push({ item, kind: 'changed', before: was, after: is });
  }
  return { changes, notCompared };
}

/** Values worth printing: counts and short states, not content hashes. */
function shown(value: string | undefined): string | undefined {
  return value !== undefined && value.length <= 40 && !value.includes('sha256=') ? value : undefined;
}

/** One line per change, naming the thing (and its values where they say something). */
export function describeChanges(changes: readonly FingerprintChange[]): string[] {
  return changes.map((c) => {
    const values = c.kind === 'changed' && shown(c.before) && shown(c.after) ? `: ${c.before} -> ${c.after}` : c.kind !== 'changed' && shown(c.before ?? c.after) ? ` (${c.before ?? c.after})` : '';
    return `${c.kind.padEnd(7)} ${c.item}${values}`;
  });
}
