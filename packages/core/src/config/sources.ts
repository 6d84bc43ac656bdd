// Secret sources (secrets.*, hsm.<site>.pin, tls.<part>.key): where a secret is read from, never the
// secret. A systemd credential (LoadCredential=NAME:...) is the file $CREDENTIALS_DIRECTORY/NAME.
import { join } from 'node:path';

/**
 * Where a credential points when CREDENTIALS_DIRECTORY is not set: absolute, under a folder only root
 * can create, and naming the cause, so a reader's "cannot read" message says why, and no file planted
 * in the working directory is ever read in its place.
 */
export const UNSET_CREDENTIALS_DIRECTORY = '/run/credentials/CREDENTIALS_DIRECTORY-is-not-set';

/**
 * The file a source names. `credential:<name>` is $CREDENTIALS_DIRECTORY/<name>, which systemd sets for
 * a unit with LoadCredential=. Without it (the CLI in an operator's shell, which reads none of the
 * services' credentials) the path is UNSET_CREDENTIALS_DIRECTORY/<name>: a service checks its own at
 * start (checkServiceCredentials, service-secrets.ts) and refuses, naming the key.
 */
export function secretFile(source: string, env: Record<string, string | undefined>): string {
  if (source.startsWith('credential:')) return join(env.CREDENTIALS_DIRECTORY || UNSET_CREDENTIALS_DIRECTORY, source.slice('credential:'.length));
  return source.startsWith('file:') ? source.slice('file:'.length) : source;
}
