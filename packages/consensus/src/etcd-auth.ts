import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3, type IPermission } from 'etcd3';
import { FleetError, SITE_IDS, type FleetConfig, type SiteId } from '@fleetpki/core';
import { etcd3Tls, etcdClientTls } from './etcd-tls.js';

/**
 * Who a process is towards etcd (issue 33 §2). With authentication on, a client without credentials can
 * do nothing, and each credential may touch only the keys its holder's code writes:
 *
 *   agent-a, agent-b  the site agents: read and write everything under the pair's prefix but Patroni's
 *                     store, which they only read (they campaign,
 *                     publish the vouch floor, record rejoins and blocked writes, answer switchovers,
 *                     and execute the operators' recorded orders: `unprotected`, a forced failover's
 *                     lease revocation). LeaseRevoke needs write permission on every key attached to
 *                     the lease, so only they can revoke a candidacy's lease.
 *   operator          the CLI and the drills: reads the prefix; writes only `orders/` (a two-person
 *                     decision, recorded in the database first, for an agent to execute), `drill` (one
 *                     drill at a time) and `switchover` (a planned, zero-loss handover the leader's agent
 *                     performs only while its standby streams synchronously).
 *   service           issuer-api, status-responder, batch-worker, `sites status`: read only.
 *   patroni-a, -b     each site's Patroni (database.ha patroni): reads and writes only its own store,
 *                     `<prefix>patroni/`; the agents and services read its leader key there.
 *   root              only to set the users and roles up (ensureEtcdAuth); nothing runs with it.
 *
 * Passwords are random, one file each (0600) in <stateDir>/etcd-credentials/, never printed. Locally every
 * process runs as the same host account, so the files' modes keep other accounts out, not one of our
 * processes from another: on separate hosts each holds only its own file.
 */
export type EtcdIdentity = `agent-${SiteId}` | 'operator' | 'service' | `patroni-${SiteId}`;

export const ETCD_ROOT = 'root';

/** Where under the pair's prefix Patroni keeps its store (its `namespace`; the cluster is `scope` below it). */
export const PATRONI_NAMESPACE = 'patroni/';

/** The etcd user of a site's Patroni. */
export function patroniIdentity(site: SiteId): EtcdIdentity {
  return `patroni-${site}`;
}

/** The agent's identity for a site. */
export function agentIdentity(site: SiteId): EtcdIdentity {
  return `agent-${site}`;
}

export function etcdCredentialsDir(config: FleetConfig): string {
  return config.consensus.credentialsDir;
}

/** The password of `user`, from its file; FleetError ETCD_CREDENTIALS_MISSING when the setup has not run. */
export function readEtcdPassword(config: FleetConfig, user: EtcdIdentity | typeof ETCD_ROOT): string {
  const file = join(etcdCredentialsDir(config), user);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new FleetError('ETCD_CREDENTIALS_MISSING', `no etcd credential for ${user} (${file}); \`pnpm sites up\` creates them`);
  }
}

/** Reads the password file, creating it (random, 0600) if absent: says whether it was created. */
function passwordFile(config: FleetConfig, user: string): { password: string; created: boolean } {
  const dir = etcdCredentialsDir(config);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, user);
  if (existsSync(file)) {
    chmodSync(file, 0o600);
    const password = readFileSync(file, 'utf8').trim();
    if (password.length < 16) throw new FleetError('ETCD_CREDENTIAL_INVALID', `${file} holds no usable password (${password.length} characters); remove it and run \`pnpm sites up\` again`);
    return { password, created: false };
  }
  const password = randomBytes(24).toString('base64url');
  // 'wx': two setups racing never overwrite each other's password.
  writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return { password, created: true };
}

/** One byte past every key starting with `prefix` (etcd's range end of a prefix). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

type PermType = 'Read' | 'Write' | 'Readwrite';
interface Grant {
  readonly permType: PermType;
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
}

/** The roles and what each may touch; users get one role each. */
function rolesFor(config: FleetConfig): Record<string, readonly Grant[]> {
  const prefix = Buffer.from(config.consensus.prefix);
  const all = (permType: PermType): Grant => ({ permType, key: prefix, rangeEnd: prefixEnd(prefix) });
  const key = (permType: PermType, name: string): Grant => ({ permType, key: Buffer.from(config.consensus.prefix + name), rangeEnd: Buffer.alloc(0) });
  const under = (permType: PermType, name: string): Grant => {
    const k = Buffer.from(config.consensus.prefix + name);
    return { permType, key: k, rangeEnd: prefixEnd(k) };
  };
  // Patroni's store is Patroni's: an agent reads it (the leader key is the CA-site role) and writes none
  // of it, so its credential cannot move the role past Patroni (a written leader key makes that member
  // promote) or change Patroni's settings past the recorded two-person orders.
  const patroni = Buffer.from(config.consensus.prefix + PATRONI_NAMESPACE);
  return {
    'fleetpki-agent': [
      { permType: 'Readwrite', key: prefix, rangeEnd: patroni },
      { permType: 'Readwrite', key: prefixEnd(patroni), rangeEnd: prefixEnd(prefix) },
      under('Read', PATRONI_NAMESPACE),
    ],
    'fleetpki-service': [all('Read')],
    'fleetpki-operator': [all('Read'), under('Write', 'orders/'), key('Write', 'drill'), key('Write', 'switchover')],
    'fleetpki-patroni': [under('Readwrite', PATRONI_NAMESPACE)],
  };
}

function usersFor(): Record<EtcdIdentity, string> {
  const users = { operator: 'fleetpki-operator', service: 'fleetpki-service' } as Record<EtcdIdentity, string>;
  for (const site of SITE_IDS) users[agentIdentity(site)] = 'fleetpki-agent';
  for (const site of SITE_IDS) users[patroniIdentity(site)] = 'fleetpki-patroni';
  return users;
}

const sameGrant = (g: Grant, p: IPermission) => p.permType === g.permType && Buffer.compare(p.key, g.key) === 0 && Buffer.compare(p.range_end ?? Buffer.alloc(0), g.rangeEnd) === 0;

/**
 * Turns authentication on and makes the users and roles what rolesFor/usersFor say: idempotent, run by
 * every `sites up`, on a new cluster or one that ran without authentication. The root password stays in
 * its file; if authentication is on and that file is gone, nothing can change the users any more
 * (ETCD_ROOT_CREDENTIAL_LOST: restore the file, or rebuild etcd's data).
 */
export async function ensureEtcdAuth(config: FleetConfig): Promise<{ enabled: 'now' | 'already' }> {
  const hosts = [...config.consensus.endpoints];
  const tls = etcd3Tls(etcdClientTls(config));
  // "Anonymous" is without a password; over TLS etcd then takes the client certificate's CN as the user
  // (etcd-tls.ts makes sure that names no user), so the question below is answered the same way.
  const anonymous = new Etcd3({ hosts, dialTimeout: 3_000, ...tls });
  // With authentication off, anyone may list users; with it on, a caller without a token may not.
  let enabled: boolean;
  try {
    await anonymous.auth.userList();
    enabled = false;
  } catch (err) {
    if (!/user name is empty|permission denied|invalid auth token|user name not found/i.test((err as Error).message)) {
      anonymous.close();
      throw new FleetError('ETCD_AUTH_SETUP', `cannot ask etcd whether authentication is on: ${(err as Error).message}`);
    }
    enabled = true;
  } finally {
    anonymous.close();
  }
  const rootFileExisted = existsSync(join(etcdCredentialsDir(config), ETCD_ROOT));
  if (enabled && !rootFileExisted) {
    throw new FleetError('ETCD_ROOT_CREDENTIAL_LOST', `etcd authentication is on but ${join(etcdCredentialsDir(config), ETCD_ROOT)} is missing: the users cannot be set up without it`);
  }
  const root = passwordFile(config, ETCD_ROOT);
  const client = new Etcd3({ hosts, dialTimeout: 3_000, ...tls, ...(enabled ? { auth: { username: ETCD_ROOT, password: root.password } } : {}) });
  try {
    const auth = client.auth;
    const existingUsers = new Set((await auth.userList()).users);
    const existingRoles = new Set((await auth.roleList()).roles);
    const ensureUser = async (name: string, password: string) => {
      if (!existingUsers.has(name)) await auth.userAdd({ name, password });
      // A password file replaced by hand, or an old cluster's user, gets the file's password. Changed only
      // when it differs: a change ends the user's tokens, and every `sites up` (each test file) runs this.
      else if (!enabled || !(await auth.authenticate({ name, password }).then(() => true, () => false))) await auth.userChangePassword({ name, password });
    };
    await ensureUser(ETCD_ROOT, root.password);
    if (!existingRoles.has('root')) await auth.roleAdd({ name: 'root' });
    await auth.userGrantRole({ user: ETCD_ROOT, role: 'root' });
    for (const [role, grants] of Object.entries(rolesFor(config))) {
      if (!existingRoles.has(role)) await auth.roleAdd({ name: role });
      const current = (await auth.roleGet({ role })).perm ?? [];
      // Exactly these permissions: anything else granted by hand goes.
      for (const perm of current) if (!grants.some((g) => sameGrant(g, perm))) await auth.roleRevokePermission({ role, key: perm.key, range_end: perm.range_end });
      for (const g of grants) if (!current.some((p) => sameGrant(g, p))) await auth.roleGrantPermission({ name: role, perm: { permType: g.permType, key: g.key, range_end: g.rangeEnd } });
    }
    for (const [user, role] of Object.entries(usersFor())) {
      await ensureUser(user, passwordFile(config, user).password);
      const roles = (await auth.userGet({ name: user })).roles ?? [];
      for (const other of roles) if (other !== role) await auth.userRevokeRole({ name: user, role: other });
      if (!roles.includes(role)) await auth.userGrantRole({ user, role });
    }
    if (!enabled) await auth.authEnable();
    return { enabled: enabled ? 'already' : 'now' };
  } catch (err) {
    throw err instanceof FleetError ? err : new FleetError('ETCD_AUTH_SETUP', `setting up etcd's users and roles failed: ${(err as Error).message}`);
  } finally {
    client.close();
  }
}
