import type { Queryable } from '../pool.js';
import { ruleError } from './approvals.js';
import type { Role } from './tokens.js';

/** A person: one identity with one role, holding any number of credentials. */
export interface PersonRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly disabledAt: Date | null;
}

function toPerson(r: Record<string, unknown>): PersonRecord {
  return { id: r.id as string, name: r.name as string, role: r.role as Role, manufacturerId: (r.manufacturer_id as string | null) ?? null, createdBy: (r.created_by as string | null) ?? null, createdAt: r.created_at as Date, disabledAt: (r.disabled_at as Date | null) ?? null };
}

export async function findPersonByName(db: Queryable, name: string): Promise<PersonRecord | undefined> {
  const { rows } = await db.query('SELECT * FROM people WHERE name = $1', [name]);
  return rows[0] ? toPerson(rows[0]) : undefined;
}

export async function getPerson(db: Queryable, id: string): Promise<PersonRecord | undefined> {
  const { rows } = await db.query('SELECT * FROM people WHERE id = $1', [id]);
  return rows[0] ? toPerson(rows[0]) : undefined;
}

export async function listPeople(db: Queryable): Promise<PersonRecord[]> {
  const { rows } = await db.query('SELECT * FROM people ORDER BY created_at, name LIMIT 10000');
  return rows.map(toPerson);
}

/** Owner only: bootstrap, recovery, tests' set-up (the services' and CLI's roles have no INSERT on people). */
export async function insertPersonAsOwner(db: Queryable, person: { id: string; name: string; role: Role; manufacturerId: string | null }): Promise<void> {
  await db.query('INSERT INTO people (id, name, role, manufacturer_id) VALUES ($1, $2, $3, $4)', [person.id, person.name, person.role, person.manufacturerId]);
}

/** Creates a person as the administrator `actorProof` proves; a privileged role needs the executed person.create approval. */
/**
 * Disables people by name with the owner's access (the drills' throw-away administrators, once their
 * switch back is done): their credentials stop working, and an installation where only they were
 * administrators can still be bootstrapped. Returns how many were disabled.
 */
export async function disablePeopleAsOwner(db: Queryable, names: readonly string[]): Promise<number> {
  const { rowCount } = await db.query('UPDATE people SET disabled_at = now() WHERE name = ANY($1::text[]) AND disabled_at IS NULL', [names]);
  return rowCount ?? 0;
}

export async function createPersonAs(db: Queryable, person: { id: string; name: string; role: Role; manufacturerId: string | null; actorProof: string; approvalId: string | null }): Promise<void> {
  try {
    await db.query('SELECT fp_person_create($1, $2, $3, $4, $5, $6)', [person.id, person.name, person.role, person.manufacturerId, person.actorProof, person.approvalId]);
  } catch (err) {
    throw ruleError(err);
  }
}

export async function rescopePersonAs(db: Queryable, change: { personId: string; role: Role; actorProof: string; approvalId: string }): Promise<void> {
  try {
    await db.query('SELECT fp_person_rescope($1, $2, $3, $4)', [change.personId, change.role, change.actorProof, change.approvalId]);
  } catch (err) {
    throw ruleError(err);
  }
}

/**
 * Owner only: two administrators who can still approve together, or undefined when no two can. Each
 * holds a live credential, and nobody stands behind both (neither created the other's credential, nor
 * one person both), as fp_approval_approve demands (migrations/0015_people.sql). Locks people first, so
 * two owner-access recoveries cannot both see too few administrators.
 */
export async function findAdministratorsWhoCanApprove(db: Queryable): Promise<readonly [string, string] | undefined> {
  await db.query('LOCK TABLE people IN SHARE ROW EXCLUSIVE MODE');
  const { rows } = await db.query<{ first: string; second: string }>(
    `WITH credentials AS (
       SELECT p.id AS person, p.name, t.created_by AS creator FROM people p JOIN api_tokens t ON t.person_id = p.id
        WHERE p.role = 'administrator' AND p.disabled_at IS NULL AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
       UNION
       SELECT p.id, p.name, c.created_by FROM people p JOIN organisation_certificates c ON c.person_id = p.id
        WHERE p.role = 'administrator' AND p.disabled_at IS NULL AND c.purpose = 'client' AND c.revoked_at IS NULL AND c.not_after > now()
     )
     SELECT x.name AS first, y.name AS second FROM credentials x JOIN credentials y ON x.person < y.person
      WHERE x.person IS DISTINCT FROM y.creator AND y.person IS DISTINCT FROM x.creator AND (x.creator IS NULL OR y.creator IS NULL OR x.creator <> y.creator)
      ORDER BY x.name, y.name LIMIT 1`,
  );
  return rows[0] && ([rows[0].first, rows[0].second] as const);
}
