import type { FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from '@fleetpki/core';
import type { Principal, Role, TokenAuthenticator } from '@fleetpki/ca';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** A preHandler that authenticates the bearer token and admits only the given roles. */
export function requireRole(authenticator: TokenAuthenticator, roles: readonly Role[]) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const principal = await authenticator.authenticate(request.headers.authorization);
    if (!roles.includes(principal.role)) {
      throw new FleetError('ROLE_FORBIDDEN', `role ${principal.role} may not ${request.method} ${request.routeOptions.url}; needs ${roles.join(' or ')}`, { httpStatus: 403 });
    }
    request.principal = principal;
  };
}

/** Factories see only their own manufacturer's records; the answer for others' is the same as for none. */
export function visibleTo(principal: Principal, manufacturerId: string): boolean {
  return principal.role !== 'factory' || principal.manufacturerId === manufacturerId;
}
