import type { FastifyInstance } from 'fastify';
import { FleetError } from '@fleetpki/core';
import { DUAL_CONTROL_ROLES, ROLES, presentApproval, type AccessAdministration, type ApprovalAction, type DualControl, type RevocationService, type SiteGuard } from '@fleetpki/ca';
import { type ApiAccess, requireRole } from '../auth.js';
import { parseRevocationBody, runRevocation, type RevocationBody } from './revocations.js';

const OFFICERS = ['revocation-officer', 'administrator', 'custodian'] as const;
const READERS = [...OFFICERS, 'auditor'] as const;
/** Requested here rather than by a route of their own (bulk revocations come from POST /v1/revocations). */
const REQUESTABLE: readonly ApprovalAction[] = ['ca.revoke', 'master-key.rotate', 'site.switchover', 'drill.failover', 'person.create', 'person.rescope', 'credential.create', 'ca.root-rollover', 'ca.root-custody'];
/** Executed by the CLI, where the HSM and the sites are. */
const CLI_EXECUTED: Partial<Record<ApprovalAction, string>> = {
  'master-key.rotate': 'pnpm fleetpki keys master create --role <role> --approval <id> --token-file <file>',
  'site.switchover': 'pnpm fleetpki drill switchover --approval <id> --token-file <file>',
  'ca.root-rollover': 'pnpm fleetpki ceremony root-rollover --approval <id> --token-file <file>',
  'ca.root-custody': 'pnpm fleetpki ceremony root-custody --approval <id> --custodians <n> --threshold <m> --out <dir> --token-file <file>',
};
/** Executed by the route that does the change, with the approval's id. */
const ROUTE_EXECUTED: Partial<Record<ApprovalAction, string>> = {
  'person.create': 'POST /v1/tokens {name, role, approval} (or pnpm fleetpki tokens create --approval <id>)',
  'credential.create': 'POST /v1/tokens {name, role, approval} (or pnpm fleetpki tokens create --approval <id>)',
  'person.rescope': 'POST /v1/people/{name}/role {role, approval}',
  'drill.failover': 'POST /v1/drills {kind: "failover", approval} (test deployments)',
};

interface RequestBody {
  action: ApprovalAction;
  caId?: string;
  role?: string;
  reason?: string;
  /** person.create, person.rescope, credential.create: the person concerned. */
  name?: string;
  manufacturer?: string;
}

async function summarise(people: Pick<AccessAdministration, 'person'>, body: RequestBody): Promise<{ payload: Record<string, unknown>; summary: string }> {
  const person = async () => {
    if (!body.name) throw new FleetError('REQUEST_INVALID', `${body.action} needs "name"`, { httpStatus: 400 });
    const found = await people.person(body.name);
    if (!found) throw new FleetError('PERSON_NOT_FOUND', `no person ${body.name.slice(0, 64)}`, { httpStatus: 404 });
    return found;
  };
  const role = () => {
    if (!body.role || !(ROLES as readonly string[]).includes(body.role)) throw new FleetError('REQUEST_INVALID', `${body.action} needs "role": one of ${ROLES.join(', ')}`, { httpStatus: 400 });
    return body.role;
  };
  switch (body.action) {
    case 'person.create': {
      if (!body.name || !/^[A-Za-z0-9._@/-]{1,64}$/.test(body.name)) throw new FleetError('REQUEST_INVALID', 'person.create needs "name" (1-64 letters, digits, . _ @ / -)', { httpStatus: 400 });
      if (await people.person(body.name)) throw new FleetError('PERSON_EXISTS', `${body.name} exists already; a further credential is credential.create`, { httpStatus: 409 });
      return { payload: { name: body.name, role: role() }, summary: `create ${body.name} as ${role()}` };
    }
    case 'person.rescope': {
      const p = await person();
      return { payload: { person: p.id, name: p.name, from: p.role, role: role() }, summary: `move ${p.name} from ${p.role} to ${role()}` };
    }
    case 'credential.create': {
      const p = await person();
      return { payload: { person: p.id, name: p.name }, summary: `a new API token for ${p.name} (${p.role})` };
    }
    case 'ca.revoke':
      if (!body.caId) throw new FleetError('REQUEST_INVALID', 'ca.revoke needs "caId"', { httpStatus: 400 });
      return { payload: { caId: body.caId, reason: body.reason ?? 'keyCompromise' }, summary: `revoke CA ${body.caId} (${body.reason ?? 'keyCompromise'})` };
    case 'master-key.rotate':
      if (body.role !== 'mac' && body.role !== 'enc') throw new FleetError('REQUEST_INVALID', 'master-key.rotate needs "role": mac or enc', { httpStatus: 400 });
      return { payload: { role: body.role }, summary: `rotate the ${body.role} device master key` };
    case 'site.switchover':
      return { payload: {}, summary: 'planned switchover to the standby site' };
    case 'ca.root-rollover':
      // What the ceremony will do is fixed here, so the approver approves this root and no other.
      if (!body.caId || !/^[a-z][a-z0-9]{1,15}$/.test(body.caId)) throw new FleetError('REQUEST_INVALID', 'ca.root-rollover needs "caId": the new root\'s id (2-16 lower-case letters and digits)', { httpStatus: 400 });
      if (!body.name || body.name.length > 64 || !/^[\x20-\x7e]+$/.test(body.name)) throw new FleetError('REQUEST_INVALID', 'ca.root-rollover needs "name": the new root\'s common name (1-64 printable ASCII characters)', { httpStatus: 400 });
      return { payload: { id: body.caId, name: body.name }, summary: `root rollover to a new root ${body.caId} ("${body.name}")` };
    case 'ca.root-custody':
      // The root leaves its HSM (wrapped) only with two custodians: the shares and the backup are made once per approval.
      return { payload: {}, summary: "a second copy of the offline root: its keys wrapped under a KEK split among the custodians" };
    case 'drill.failover':
      return { payload: {}, summary: 'failover drill: kill the active site mid-batch (test deployment)' };
    default:
      throw new FleetError('REQUEST_INVALID', `action must be one of ${REQUESTABLE.join(', ')}`, { httpStatus: 400 });
  }
}

export function registerApprovalRoutes(app: FastifyInstance, deps: { people: Pick<AccessAdministration, 'person'>; dualControl: DualControl; revocations: RevocationService; authenticator: ApiAccess; guard: SiteGuard }): void {
  const idParams = { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } } as const;
  const now = () => deps.dualControl.now();

  app.get('/v1/approvals', { preParsing: requireRole(deps.authenticator, READERS), schema: { summary: 'Open and recent dual-control requests', tags: ['dual control'], security: [{ bearer: [] }] } }, async () => {
    const at = await now();
    const records = await deps.dualControl.list(100);
    return {
      approvals: await Promise.all(
        records.map(async (r) => {
          const view = presentApproval(r, at);
          // What an open bulk revocation would do now, counted: certificates and which batches (the approver's question).
          if (r.action !== 'revocation.bulk' || (view.status !== 'pending' && view.status !== 'approved')) return view;
          const { target } = parseRevocationBody(r.payload as RevocationBody);
          return { ...view, wouldDo: await deps.revocations.preview(target) };
        }),
      ),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/approvals/:id', { preParsing: requireRole(deps.authenticator, READERS), schema: { summary: 'One dual-control request', tags: ['dual control'], security: [{ bearer: [] }], params: idParams } }, async (request) => {
    return presentApproval(await deps.dualControl.get(request.params.id), await now());
  });

  app.post<{ Body: RequestBody }>(
    '/v1/approvals',
    {
      preParsing: requireRole(deps.authenticator, OFFICERS),
      schema: {
        summary: 'Request a dual-control operation (revoking a CA, rotating a master key, a planned switchover, a failover drill)',
        description: `Who may request and approve: ${Object.entries(DUAL_CONTROL_ROLES).map(([a, r]) => `${a}: ${r.join('/')}`).join('; ')}. Bulk revocations are requested by POST /v1/revocations.`,
        tags: ['dual control'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          required: ['action'],
          additionalProperties: false,
          properties: {
            action: { type: 'string', enum: REQUESTABLE },
            caId: { type: 'string', maxLength: 40 },
            role: { type: 'string', maxLength: 24 },
            reason: { type: 'string', maxLength: 40 },
            name: { type: 'string', maxLength: 64 },
          },
        },
      },
    },
    async (request, reply) => {
      await deps.guard.assertWritable();
      const { payload, summary } = await summarise(deps.people, request.body);
      const record = await deps.dualControl.request(request.principal!, request.body.action, payload, summary);
      return reply.status(201).send(presentApproval(record, await now()));
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/approvals/:id/approve',
    { preParsing: requireRole(deps.authenticator, OFFICERS), schema: { summary: "A second officer's approval (never the requester's own)", tags: ['dual control'], security: [{ bearer: [] }], params: idParams } },
    async (request) => {
      await deps.guard.assertWritable();
      return presentApproval(await deps.dualControl.approve(request.principal!, request.params.id), await now());
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/approvals/:id/execute',
    { preParsing: requireRole(deps.authenticator, OFFICERS), schema: { summary: 'Run an approved request once (bulk revocation, CA revocation)', tags: ['dual control'], security: [{ bearer: [] }], params: idParams } },
    async (request) => {
      await deps.guard.assertWritable();
      const record = await deps.dualControl.get(request.params.id);
      const cli = CLI_EXECUTED[record.action];
      if (cli) throw new FleetError('APPROVAL_EXECUTE_ELSEWHERE', `${record.action} runs where the HSM and the sites are: ${cli}`, { httpStatus: 409 });
      const route = ROUTE_EXECUTED[record.action];
      if (route) throw new FleetError('APPROVAL_EXECUTE_ELSEWHERE', `${record.action} is executed by the change itself: ${route}`, { httpStatus: 409 });
      const principal = request.principal!;
      if (record.action === 'revocation.bulk') {
        const { record: done } = await deps.dualControl.execute(principal, record.id, 'revocation.bulk', (payload) => runRevocation(deps.revocations, payload as RevocationBody, { by: principal, approvalId: record.id }));
        return presentApproval(done, await now());
      }
      const { record: done } = await deps.dualControl.execute(principal, record.id, 'ca.revoke', (payload) => deps.revocations.revokeCa(String(payload.caId), String(payload.reason), `person:${principal.name} (approval ${record.id})`, record.id));
      return presentApproval(done, await now());
    },
  );
}
