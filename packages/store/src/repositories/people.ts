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
