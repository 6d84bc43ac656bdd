// The configuration file: found (FLEETPKI_CONFIG, else /etc/fleetpki/fleetpki.yaml if present), read as
// YAML, and checked against the one schema, each problem named by its key path.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { FleetError } from '../errors.js';

export const DEFAULT_CONFIG_FILE = '/etc/fleetpki/fleetpki.yaml';

/** The file to read: FLEETPKI_CONFIG (which must exist), else the default path if it exists, else none. */
export function configFilePath(env: Record<string, string | undefined>): string | undefined {
  const named = env.FLEETPKI_CONFIG;
  if (named) return resolve(named);
  return existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined;
}

/** Reads a configuration file into a plain document (an empty file is an empty document). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: cannot read ${path} (FLEETPKI_CONFIG): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const problems = doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
    throw new FleetError('CONFIG_INVALID', `invalid configuration in ${path}: not valid YAML: ${problems.join('; ')}`, { details: { problems } });
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new FleetError('CONFIG_INVALID', `invalid configuration in ${path}: expected a mapping of keys (sites, etcd, hsm, ...) at the top`);
  return value as Record<string, unknown>;
}

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let at = doc;
  for (const key of path) at = typeof at === 'object' && at !== null ? (at as Record<PropertyKey, unknown>)[key] : undefined;
  return at;
}

/**
 * One line per problem: the key path (and the variable, when one set it), what is expected, and what
 * was found, e.g. `sites.b.postgres.port: expected a port 1-65535, got "abc"`.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], doc: unknown, fromEnv: ReadonlyMap<string, string>): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
      return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''} (a misspelling?)`;
    }
    const variable = fromEnv.get(path);
    const value = valueAt(doc, issue.path);
    const got = value === undefined ? 'nothing' : JSON.stringify(value);
    return `${path || '(top)'}${variable ? ` (from ${variable})` : ''}: ${issue.message}, got ${got}`;
  });
}
