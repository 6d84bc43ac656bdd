import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { FleetError } from '@fleetpki/core';
import { isRoot, pgUserCanTraverse } from './exec.js';

/**
 * Creates the git-ignored state folder. When we run as root, PostgreSQL runs as the `postgres` user,
 * which must be able to walk into it; a checkout under a private home (e.g. /root) would block it, so
 * the folder is then placed under /var/lib/fleetpki and linked from the checkout.
 */
export function ensureStateDir(stateDir: string): string {
  if (existsSync(stateDir)) {
    if (lstatSync(stateDir).isSymbolicLink() || pgUserCanTraverse(stateDir)) return stateDir;
    if (readdirSync(stateDir).length > 0) {
      throw new FleetError('SITES_STATE_DIR_UNREACHABLE', `the postgres user cannot reach ${stateDir}; set FLEETPKI_STATE_DIR to a folder it can reach`);
    }
    rmdirSync(stateDir);
  }
  mkdirSync(dirname(stateDir), { recursive: true });
  if (!isRoot || pgUserCanTraverse(dirname(stateDir))) {
    mkdirSync(stateDir, { recursive: true, mode: 0o755 });
    return stateDir;
  }
  const target = `/var/lib/fleetpki/${createHash('sha256').update(stateDir).digest('hex').slice(0, 16)}`;
  mkdirSync(target, { recursive: true, mode: 0o755 });
  symlinkSync(target, stateDir);
  return stateDir;
}
