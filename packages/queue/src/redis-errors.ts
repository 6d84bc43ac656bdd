// What a failed Redis link means, in words an operator can act on: the stable codes of issue 34's
// "a service given a wrong certificate or password fails at start with a clear error".
import { FleetError, isUntrustedCertificateCode } from '@fleetpki/core';
import { redisAddress, type RedisLink } from './redis-link.js';

// Node's codes for a server certificate that does not chain to the trusted CA or does not name the host.

/**
 * A FleetError for a link that failed for a reason other than absence, else undefined. `first` is the
 * socket's first error, `last` the command's (ioredis reports a TLS refusal as a closed connection).
 */
export function redisLinkError(link: RedisLink, first: Error, last: Error): FleetError | undefined {
  const at = redisAddress(link);
  const messages = `${first.message} ${last.message}`;
  if (/WRONGPASS|NOAUTH|NOPERM this user has no permissions to run the 'auth'/.test(messages)) {
    const who = link.username ?? 'default';
    const what = link.password === undefined ? 'no password was given (tls.redis and secrets.redis are not configured here)' : 'the password was refused (secrets.redis does not match the server\'s ACL file, or the user is disabled)';
    return new FleetError('REDIS_AUTH_FAILED', `Redis at ${at} refused user "${who}": ${what}`, { httpStatus: 503, cause: first });
  }
  const code = (first as NodeJS.ErrnoException).code ?? '';
  if (isUntrustedCertificateCode(code)) {
    return new FleetError('REDIS_TLS_UNTRUSTED', `Redis at ${at}: the server's TLS certificate is not trusted (${code}: ${first.message}); it must be issued by the CA in tls.caBundle for this host`, { httpStatus: 503, cause: first });
  }
  // A plaintext client to a TLS-only port: the server drops the connection without a Redis reply.
  // Only when the socket itself closed (no refused or timed-out connect first): that is Redis merely absent.
  if (!link.tls && (code === 'ECONNRESET' || (first === last && /Connection is closed/.test(first.message)))) {
    return new FleetError('REDIS_TLS_REQUIRED', `Redis at ${at} closed a plaintext connection: it probably accepts TLS only; configure tls.redis, tls.caBundle and secrets.redis on this host`, { httpStatus: 503, cause: first });
  }
  return undefined;
}
