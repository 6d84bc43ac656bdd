// Which secret files each service process reads, by the configuration key that names each. One list,
// used twice: a service refuses to start when a systemd credential it needs is missing from its unit
// (so a unit that forgot a LoadCredential= fails at once, naming the line to add, not on its first
// connection), and test/unit-credentials.test.ts checks infra/systemd's units against the example file.
import { accessSync, constants } from 'node:fs';
import { FleetError } from '../errors.js';
import { UNSET_CREDENTIALS_DIRECTORY } from './sources.js';
import type { DatabaseClient, FleetConfig, TlsPart } from './types.js';

export const SECRET_READING_SERVICES = ['site-agent', 'issuer-api', 'status-responder', 'batch-worker', 'daemons'] as const;
export type SecretReadingService = (typeof SECRET_READING_SERVICES)[number];

interface Reads {
  readonly hsm: boolean;
  /** The PostgreSQL roles it connects as (packages/store pg-link: a password only when tls.postgres is on). */
  readonly postgres: readonly ('owner' | DatabaseClient)[];
  /** Its own Redis ACL user's password (packages/queue redis-link). */
  readonly redis: boolean;
  /** The TLS servers it runs, whose keys it loads (the agent's: PostgreSQL, its child). */
  readonly serves: readonly Extract<TlsPart, 'api' | 'status' | 'postgres'>[];
  /** The backup repository's passphrase (the agent writes it into pgBackRest's configuration for archive_command). */
  readonly backup: boolean;
}

// Every service but the agent signs; the daemons run jobs of all three service roles (services/daemons/src/jobs.ts).
const READS: Readonly<Record<SecretReadingService, Reads>> = {
  'site-agent': { hsm: false, postgres: ['owner'], redis: false, serves: ['postgres'], backup: true },
  'issuer-api': { hsm: true, postgres: ['issuer'], redis: true, serves: ['api'], backup: false },
  'status-responder': { hsm: true, postgres: ['status'], redis: false, serves: ['status'], backup: false },
  'batch-worker': { hsm: true, postgres: ['worker'], redis: true, serves: [], backup: false },
  daemons: { hsm: true, postgres: ['issuer', 'worker', 'status'], redis: true, serves: [], backup: false },
};

export interface SecretRead {
  /** The configuration key that names the file (hsm.a.pin, secrets.postgres.issuer, tls.api.key...). */
  readonly key: string;
  readonly file: string;
}

/** The secret files `service` reads with this configuration, on this host. */
export function serviceSecretFiles(config: FleetConfig, service: SecretReadingService): SecretRead[] {
  const reads = READS[service];
  const out: SecretRead[] = [];
  if (reads.hsm) out.push({ key: `hsm.${config.site}.pin`, file: config.sites[config.site].hsmPinFile });
  const pgOverTls = config.tls.caBundle !== undefined && config.tls.parts.postgres !== undefined;
  for (const role of reads.postgres) {
    const file = config.secrets.postgres[role];
    if (pgOverTls && file) out.push({ key: `secrets.postgres.${role}`, file });
  }
  if (reads.redis && config.secrets.redis) out.push({ key: 'secrets.redis', file: config.secrets.redis });
  for (const part of reads.serves) {
    const pair = config.tls.parts[part];
    if (pair) out.push({ key: `tls.${part}.key`, file: pair.key });
  }
  if (reads.backup && config.secrets.backup) out.push({ key: 'secrets.backup', file: config.secrets.backup });
  const etcdClient = config.tls.parts.etcdClient;
  if (etcdClient) out.push({ key: 'tls.etcdClient.key', file: etcdClient.key });
  return out;
}

/** The systemd credential a file is, or undefined for a plain file. */
export function credentialNameOf(file: string, env: Record<string, string | undefined>): string | undefined {
  for (const dir of [env.CREDENTIALS_DIRECTORY, UNSET_CREDENTIALS_DIRECTORY]) {
    if (dir && file.startsWith(`${dir}/`)) return file.slice(dir.length + 1);
  }
  return undefined;
}

/**
 * Refuses to start `service` when a systemd credential its configuration names is not there to read:
 * the unit lacks the LoadCredential= line, or the process runs outside systemd. Plain files are read
 * where they are used, with their own errors (a password file rotated later is read again then).
 */
export function checkServiceCredentials(config: FleetConfig, service: SecretReadingService, env: Record<string, string | undefined> = process.env): void {
  const problems: string[] = [];
  for (const { key, file } of serviceSecretFiles(config, service)) {
    const name = credentialNameOf(file, env);
    if (name === undefined) continue;
    if (!env.CREDENTIALS_DIRECTORY) {
      problems.push(`${key} is the systemd credential "${name}", but CREDENTIALS_DIRECTORY is not set (run ${service} from its unit, or name a file)`);
      continue;
    }
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      problems.push(`${key} is the systemd credential "${name}", which ${service} cannot read at ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): add LoadCredential=${name}:<file> to its unit`);
    }
  }
  if (problems.length > 0) throw new FleetError('CONFIG_INVALID', `invalid configuration for ${service}: ${problems.join('; ')}`, { details: { problems } });
}
