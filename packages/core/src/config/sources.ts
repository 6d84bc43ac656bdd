// Secret sources (secrets.*, hsm.<site>.pin, tls.<part>.key): where a secret is read from, never the
// secret. A systemd credential (LoadCredential=NAME:...) is the file $CREDENTIALS_DIRECTORY/NAME.
import { join } from 'node:path';
import { FleetError } from '../errors.js';

/**
 * The file a source names. `credential:<name>` needs $CREDENTIALS_DIRECTORY (systemd sets it for a unit
 * with LoadCredential=); without it the key is refused, naming it, unless `required` is false (a secret
 * of another host, which this process never reads: then the path is given as the credential would be).
 */
export function secretFile(source: string, key: string, env: Record<string, string | undefined>, required = true): string {
  if (source.startsWith('credential:')) {
    const name = source.slice('credential:'.length);
    const dir = env.CREDENTIALS_DIRECTORY;
    if (!dir) {
      if (!required) return join('$CREDENTIALS_DIRECTORY', name);
      throw new FleetError('CONFIG_INVALID', `invalid configuration: ${key}: "${source}" is a systemd credential, but CREDENTIALS_DIRECTORY is not set (run the service with LoadCredential=${name}:<file>, or name a file)`);
    }
    return join(dir, name);
  }
  return source.startsWith('file:') ? source.slice('file:'.length) : source;
}
