import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FleetError } from '@fleetpki/core';

/** uid/gid of a local OS user, read from /etc/passwd (node has no getpwnam). */
export function osUserIds(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new FleetError('SITES_PREREQUISITE_MISSING', `OS user ${name} does not exist (install the postgresql package: scripts/setup.sh)`);
}

/**
 * Writes a file for the postgres OS user (0600, its own) into a folder that user owns, without following
 * a link it may have planted there: `sites up` runs as root, and a copy, chmod or chown through a path
 * that user controls would hand it whatever file the link names (/etc/passwd). A new file, opened with
 * O_EXCL|O_NOFOLLOW, is written, given its mode and owner through its descriptor, then renamed over the
 * name (rename replaces a link; it does not follow it).
 */
export function writeFileForPgUser(path: string, data: string | Buffer, pgUser: string, asRoot: boolean): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fchmodSync(fd, 0o600);
    if (asRoot) {
      const { uid, gid } = osUserIds(pgUser);
      fchownSync(fd, uid, gid);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}
