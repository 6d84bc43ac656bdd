import type { FastifyInstance } from 'fastify';
import type { SiteId } from '@fleetpki/core';
import { ROLES, issueApiToken, revokeToken } from '@fleetpki/ca';
import { listApiTokens, type Pool, type Role } from '@fleetpki/store';
import { type ApiAccess, requireRole } from '../auth.js';

interface CreateBody {
  name: string;
  role: Role;
  manufacturer?: string;
  expiresDays?: number;
}

/** API clients and their tokens: administrators manage them, auditors may read the list. Secrets are shown once, at creation. */
export function registerTokenRoutes(app: FastifyInstance, deps: { pool: Pool; site: SiteId; authenticator: ApiAccess }): void {
  const admins = requireRole(deps.authenticator, ['administrator']);
  app.get('/v1/tokens', { preParsing: requireRole(deps.authenticator, ['administrator', 'auditor']), schema: { summary: 'API tokens (never their secrets)', tags: ['access'], security: [{ bearer: [] }] } }, async () => ({
    tokens: (await listApiTokens(deps.pool)).map((t) => ({
      id: t.id,
      name: t.name,
      role: t.role,
      manufacturer: t.manufacturerId,
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
        summary: 'Create an API token; the secret is in this answer only (stored as SHA-256)',
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
          },
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const token = await issueApiToken(deps.pool, { site: deps.site, actor: `token:${request.principal!.name}`, name: b.name, role: b.role, manufacturerId: b.manufacturer ?? null, ...(b.expiresDays ? { expiresDays: b.expiresDays } : {}) });
      return reply.status(201).send({ token, name: b.name, role: b.role, manufacturer: b.manufacturer ?? null });
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/tokens/:id/revoke',
    { preParsing: admins, schema: { summary: 'Revoke a token (stops working within 5 s)', tags: ['access'], security: [{ bearer: [] }], params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } } } },
    async (request) => {
      await revokeToken(deps.pool, { site: deps.site, actor: `token:${request.principal!.name}`, id: request.params.id });
      return { id: request.params.id, revoked: true };
    },
  );
}
