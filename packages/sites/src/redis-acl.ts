// The ACL file of a site's Redis when TLS and passwords are on (issue 34): `default` off, and one user
// for the services with only what BullMQ needs, on the configured CA database's queue keys only.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { queuePrefix, readRedisPassword, REDIS_CLIENTS, redisUser } from '@fleetpki/queue';

/** Glob characters are escaped so a key pattern means the prefix and nothing wider. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * The service user's rules. BullMQ runs Lua scripts, and Redis checks every command and key a script
 * touches against the calling user, so the key pattern holds inside scripts too. Everything @dangerous
 * and @admin goes (FLUSHALL, FLUSHDB, CONFIG, ACL, KEYS, DEBUG, SHUTDOWN among them, named again so a
 * reader need not know the categories); back come only INFO (BullMQ reads the version and the eviction
 * policy) and CLIENT SETNAME/GETNAME/LIST (BullMQ names worker connections and counts them).
 */
export function serviceUserRules(database: string): string[] {
  return [
    'reset', 'on',
    `~${globEscape(queuePrefix(database))}:*`,
    'resetchannels',
    '+@all', '-@dangerous', '-@admin',
    '-flushall', '-flushdb', '-config', '-acl', '-keys', '-debug', '-shutdown', '-function', '-script|flush', '-script|kill',
    '+info', '+client|setname', '+client|getname', '+client|list',
  ];
}

/**
 * Writes the ACL file (0600: it holds password hashes), `default` off and a user per client kind with the
 * SHA-256 of its password. The local simulation runs every service from one configuration, so every user
 * gets secrets.redis; in production each user's line carries the hash of that service's own password.
 */
export function writeRedisAclFile(file: string, passwordFile: string, database: string): void {
  const hash = createHash('sha256').update(readRedisPassword(passwordFile)).digest('hex');
  const lines = [
    // `default` is whoever connects without AUTH: nobody may.
    'user default off resetkeys resetchannels -@all',
    ...REDIS_CLIENTS.map((client) => `user ${redisUser(client)} ${serviceUserRules(database).join(' ')} #${hash}`),
  ];
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}
