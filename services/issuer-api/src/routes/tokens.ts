import type { FastifyInstance } from 'fastify';
import { ROLES, type AccessAdministration, type Role } from '@fleetpki/ca';
import { type ApiAccess, requireRole } from '../auth.js';

interface CreateBody {
  name: string;
  role: Role;
  manufacturer?: string;
  expiresDays?: number;
  approval?: string;
}

/**
 * People and their API tokens: administrators manage them, auditors may read the lists. Secrets are
 * shown once, at creation. A privileged person (officer, custodian, administrator, auditor) and any
 * further credential of theirs need an approved request (AccessAdministration).
 */
export function registerTokenRoutes(app: FastifyInstance, deps: { authenticator: ApiAccess; access: AccessAdministration }): void {
  const admins = requireRole(deps.authenticator, ['administrator']);
  const readers = requireRole(deps.authenticator, ['administrator', 'auditor']);
  app.get('/v1/people', { preParsing: readers, schema: { summary: 'People (identities) and their roles', tags: ['access'], security: [{ bearer: [] }] } }, async () => {
    const people = await deps.access.people();
    const names = new Map(people.map((p) => [p.id, p.name]));
    return { people: people.map((p) => ({ id: p.id, name: p.name, role: p.role, manufacturer: p.manufacturerId, createdBy: p.createdBy ? (names.get(p.createdBy) ?? p.createdBy) : null, createdAt: p.createdAt.toISOString(), disabledAt: p.disabledAt?.toISOString() ?? null })) };
  });
  app.post<{ Params: { name: string }; Body: { role: Role; approval: string } }>(
    '/v1/people/:name/role',
    {
      preParsing: admins,
      schema: {
        summary: "Change a person's role (executes an approved person.rescope)",
        tags: ['access'],
        security: [{ bearer: [] }],
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 64 } } },
        body: { type: 'object', required: ['role', 'approval'], additionalProperties: false, properties: { role: { type: 'string', enum: ROLES }, approval: { type: 'string', maxLength: 64 } } },
      },
    },
    async (request) => {
      const person = await deps.access.rescope(request.principal!, { name: request.params.name, role: request.body.role, approvalId: request.body.approval });
      return { name: person.name, role: person.role };
    },
  );
  app.get('/v1/tokens', { preParsing: readers, schema: { summary: 'API tokens (never their secrets)', tags: ['access'], security: [{ bearer: [] }] } }, async () => ({
    tokens: (await deps.access.tokens()).map((t) => ({
      id: t.id,
      name: t.name,
      role: t.role,
      manufacturer: t.manufacturerId,
      person: t.person,
      createdBy: t.createdBy,
      createdAt: t.createdAt.toISOString(),
      expiresAt: t.expiresAt?.toISOString() ?? null,
      revokedAt: t.revokedAt?.toISOString() ?? null,
    })),
  }));
  app.post<{ Body: CreateBody }>(
    '/v1/tokens',
    {
      preParsing: admins,
      schema: {
        summary: 'Create an API token for a person (created when missing); the secret is in this answer only (stored as SHA-256)',
        description: 'A factory identity is one administrator\'s to create. A privileged person (revocation officer, custodian, administrator, auditor), and every further credential of one, needs "approval": the id of a person.create (new person) or credential.create (existing person) request a second administrator approved.',
        tags: ['access'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          required: ['name', 'role'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' },
            role: { type: 'string', enum: ROLES },
            manufacturer: { type: 'string', maxLength: 63 },
            expiresDays: { type: 'integer', minimum: 1, maximum: 3650 },
            approval: { type: 'string', maxLength: 64 },
          },
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const issued = await deps.access.issueToken(request.principal!, { name: b.name, role: b.role, manufacturerId: b.manufacturer ?? null, ...(b.expiresDays ? { expiresDays: b.expiresDays } : {}), ...(b.approval ? { approvalId: b.approval } : {}) });
      return reply.status(201).send({ token: issued.token, id: issued.tokenId, name: b.name, role: b.role, manufacturer: b.manufacturer ?? null, personCreated: issued.personCreated });
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/tokens/:id/revoke',
    { preParsing: admins, schema: { summary: 'Revoke a token (stops working within 5 s)', tags: ['access'], security: [{ bearer: [] }], params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } } } },
    async (request) => {
      await deps.access.revokeToken(request.principal!, request.params.id);
      return { id: request.params.id, revoked: true };
    },
  );
}
