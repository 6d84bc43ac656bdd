import type { Queryable } from '../pool.js';
import type { Role } from './tokens.js';

/** Who a live console session is, as the credential it was opened with says today. */
export interface ConsoleSessionPrincipal {
  readonly personId: string;
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  /** 'token:<id>' or 'cert:<serial hex>', as approvals and the audit log name credentials. */
  readonly credential: string;
}

/** The console's sessions: opened at sign-in, looked up on every page, ended at sign-out or idleness. */
export interface ConsoleSessionStore {
  open(session: { idSha256: Buffer; personId: string; tokenId: string | null; certSerial: Buffer | null; maxAgeSeconds: number }): Promise<void>;
  /** The principal, if the session is live, not idle for `idleSeconds`, and its credential and person still usable; touches it. */
  find(idSha256: Buffer, idleSeconds: number): Promise<ConsoleSessionPrincipal | undefined>;
  end(idSha256: Buffer): Promise<void>;
}

export function postgresConsoleSessionStore(db: Queryable): ConsoleSessionStore {
  return {
    async open(s) {
      await db.query(`INSERT INTO console_sessions (id_sha256, person_id, token_id, cert_serial, expires_at) VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second')`, [
        s.idSha256,
        s.personId,
        s.tokenId,
        s.certSerial,
        s.maxAgeSeconds,
      ]);
    },
    async find(idSha256, idleSeconds) {
      // The credential's own state is read every time (no cache): a revoked token or certificate, or a
      // disabled person, ends the session at the next request, as the API's own checks would.
      const { rows } = await db.query<{ person_id: string; name: string; role: Role; manufacturer_id: string | null; token_id: string | null; cert_serial: Buffer | null }>(
        `UPDATE console_sessions s SET last_seen_at = now()
           FROM people p
          WHERE s.id_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - $2 * interval '1 second'
            AND p.id = s.person_id AND p.disabled_at IS NULL
            AND (
              (s.token_id IS NOT NULL AND EXISTS (SELECT 1 FROM api_tokens k WHERE k.id = s.token_id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))
              OR (s.cert_serial IS NOT NULL AND EXISTS (SELECT 1 FROM organisation_certificates c WHERE c.serial = s.cert_serial AND c.revoked_at IS NULL AND c.not_after > now()))
            )
          RETURNING p.id AS person_id, p.name, p.role, p.manufacturer_id, s.token_id, s.cert_serial`,
        [idSha256, idleSeconds],
      );
      const r = rows[0];
      if (!r) return undefined;
      return { personId: r.person_id, name: r.name, role: r.role, manufacturerId: r.manufacturer_id, credential: r.token_id ? `token:${r.token_id}` : `cert:${r.cert_serial!.toString('hex')}` };
    },
    async end(idSha256) {
      await db.query('UPDATE console_sessions SET ended_at = now() WHERE id_sha256 = $1 AND ended_at IS NULL', [idSha256]);
    },
  };
}
