import type { Queryable } from '../pool.js';
import type { Role } from './tokens.js';
import { ruleError } from './approvals.js';

/** Who a live console session is, as the credential it was opened with says today. */
export interface ConsoleSessionPrincipal {
  readonly personId: string;
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  /** 'token:<id>' or 'cert:<serial hex>', as approvals and the audit log name credentials. */
  readonly credential: string;
}

/**
 * The console's sessions: opened at sign-in, looked up on every page, ended at sign-out or idleness,
 * each through a function of migrations/0026 (no role reads the cookie hashes: a console session of a
 * token is proof of that token for the approval rules).
 */
export interface ConsoleSessionStore {
  /** `credentialProof`: the token's proof ('token:<sha256 hex>') or the client certificate ('cert:<serial hex>'). */
  open(session: { idSha256: Buffer; credentialProof: string; maxAgeSeconds: number }): Promise<void>;
  /** The principal, if the session is live, not idle for `idleSeconds`, and its credential and person still usable; touches it. */
  find(idSha256: Buffer, idleSeconds: number): Promise<ConsoleSessionPrincipal | undefined>;
  end(idSha256: Buffer): Promise<void>;
}

export function postgresConsoleSessionStore(db: Queryable): ConsoleSessionStore {
  return {
    async open(s) {
      try {
        await db.query('SELECT fp_console_session_open($1, $2, $3)', [s.idSha256, s.credentialProof, s.maxAgeSeconds]);
      } catch (err) {
        throw ruleError(err);
      }
    },
    async find(idSha256, idleSeconds) {
      // The credential's own state is read every time (no cache): a revoked token or certificate, or a
      // disabled person, ends the session at the next request, as the API's own checks would.
      const { rows } = await db.query<{ person_id: string; name: string; role: Role; manufacturer_id: string | null; token_id: string | null; cert_serial: Buffer | null }>('SELECT * FROM fp_console_session_find($1, $2)', [idSha256, idleSeconds]);
      const r = rows[0];
      if (!r) return undefined;
      return { personId: r.person_id, name: r.name, role: r.role, manufacturerId: r.manufacturer_id, credential: r.token_id ? `token:${r.token_id}` : `cert:${r.cert_serial!.toString('hex')}` };
    },
    async end(idSha256) {
      await db.query('SELECT fp_console_session_end($1)', [idSha256]);
    },
  };
}
