import { readFileSync } from 'node:fs';
import { FleetError } from '@fleetpki/core';

/** uid/gid of a local OS user, read from /etc/passwd (node has no getpwnam). */
export function osUserIds(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new FleetError('SITES_PREREQUISITE_MISSING', `OS user ${name} does not exist (install the postgresql package: scripts/setup.sh)`);
}
