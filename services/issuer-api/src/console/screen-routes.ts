import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from '@fleetpki/core';
import { html, type Html } from './html.js';
import { homeFor, notice, problem } from './layout.js';
import { approvalsBody, type ApprovalView } from './pages/approvals.js';
import { auditBody, type AuditView } from './pages/audit.js';
import { batchDetailBody, batchListBody, batchProgress, type BatchDetail, type BatchSummary } from './pages/batches.js';
import { drillsBody, type DrillView } from './pages/drills.js';
import { certificatesBody, searchForm, type CertificateView } from './pages/devices.js';
import { overviewBody, type Overview } from './pages/overview.js';
import type { ConsoleKit } from './kit.js';

/** The overview, batches and approvals screens: each a rendering of one or two API answers. */
export function registerOperationsScreens(scope: FastifyInstance, { send, signedIn, ctx, api }: ConsoleKit): void {
  scope.get('/console', { preHandler: signedIn }, async (request, reply) => {
    const role = request.consoleSession!.principal.role;
    if (role === 'factory') return reply.redirect(homeFor(role), 303);
    const r = await api<Overview>(request, 'GET', '/v1/overview');
    return send(reply, 'Overview', r.ok ? overviewBody(r.body) : problem(r.error), ctx(request, '/console'), r.ok ? 200 : r.status);
  });

  scope.get('/console/batches', { preHandler: signedIn }, async (request, reply) => {
    const r = await api<{ batches: BatchSummary[] }>(request, 'GET', '/v1/batches?limit=100');
    return send(reply, 'Batches', r.ok ? batchListBody(r.body.batches) : problem(r.error), ctx(request, '/console/batches'), r.ok ? 200 : r.status);
  });
  scope.get<{ Params: { id: string } }>('/console/batches/:id', { preHandler: signedIn }, async (request, reply) => {
    const r = await api<BatchDetail>(request, 'GET', `/v1/batches/${encodeURIComponent(request.params.id)}`);
    return send(reply, r.ok ? `Batch ${r.body.id.slice(0, 8)}` : 'Batch', r.ok ? batchDetailBody(r.body) : problem(r.error), ctx(request, '/console/batches'), r.ok ? 200 : r.status);
  });
  scope.get<{ Params: { id: string } }>('/console/batches/:id/progress', { preHandler: signedIn }, async (request, reply) => {
    const r = await api<BatchDetail>(request, 'GET', `/v1/batches/${encodeURIComponent(request.params.id)}`);
    return reply.status(r.ok ? 200 : r.status).type('text/html; charset=utf-8').send((r.ok ? batchProgress(r.body) : problem(r.error)).value);
  });

  const approvalsPage = async (request: FastifyRequest, reply: FastifyReply, message?: Html, code = 200) => {
    const r = await api<{ approvals: ApprovalView[] }>(request, 'GET', '/v1/approvals');
    const body = r.ok ? html`${message ?? ''}${approvalsBody(r.body.approvals, request.consoleSession!.principal.name, request.consoleSession!.csrf)}` : problem(r.error);
    return send(reply, 'Approvals', body, ctx(request, '/console/approvals'), r.ok ? code : r.status);
  };
  scope.get('/console/approvals', { preHandler: signedIn }, async (request, reply) => approvalsPage(request, reply));
  scope.post<{ Params: { id: string; step: string } }>('/console/approvals/:id/:step', { preHandler: signedIn }, async (request, reply) => {
    const { id, step } = request.params;
    if (step !== 'approve' && step !== 'execute') throw new FleetError('NOT_FOUND', `no console action ${step.slice(0, 20)}`, { httpStatus: 404 });
    const r = await api<ApprovalView>(request, 'POST', `/v1/approvals/${encodeURIComponent(id)}/${step}`);
    return approvalsPage(request, reply, r.ok ? notice(step === 'approve' ? `Approved ${id.slice(0, 8)}: ${r.body.summary}` : `Executed ${id.slice(0, 8)}: ${r.body.summary}`) : problem(r.error), r.ok ? 200 : r.status);
  });
}

/** Device and certificate search, certificate download, drills and the audit check. */
export function registerRecordScreens(scope: FastifyInstance, { deps, send, signedIn, ctx, api }: ConsoleKit): void {
  scope.get<{ Querystring: { q?: string } }>('/console/devices', { preHandler: signedIn }, async (request, reply) => {
    const q = String(request.query.q ?? '').trim().slice(0, 64);
    const here = ctx(request, '/console/devices');
    if (!q) return send(reply, 'Devices and certificates', searchForm(''), here);
    // An EUI-64 (16 hex digits, with or without separators) names a device; anything else is a serial.
    const eui = q.replace(/[-:]/g, '');
    const byDevice = /^[0-9a-fA-F]{16}$/.test(eui);
    const r = byDevice
      ? await api<{ certificates: CertificateView[] }>(request, 'GET', `/v1/devices/${encodeURIComponent(eui)}/certificates`)
      : await api<CertificateView>(request, 'GET', `/v1/certificates/${encodeURIComponent(q)}`);
    const certs = r.ok ? (byDevice ? (r.body as { certificates: CertificateView[] }).certificates : [r.body as CertificateView]) : [];
    const notFound = r.status === 404;
    return send(reply, 'Devices and certificates', html`${searchForm(q)}${r.ok || notFound ? certificatesBody(certs) : problem(r.error)}`, here, r.ok || notFound ? 200 : r.status);
  });

  scope.get<{ Params: { serial: string }; Querystring: { format?: string } }>('/console/certificates/:serial/download', { preHandler: signedIn }, async (request, reply) => {
    const format = ['pem', 'der', 'c509'].includes(String(request.query.format)) ? String(request.query.format) : 'pem';
    const r = await api<{ serial: string; certificate: string }>(request, 'GET', `/v1/certificates/${encodeURIComponent(request.params.serial)}?format=${format}`);
    if (!r.ok) return send(reply, 'Download', problem(r.error), ctx(request, '/console/devices'), r.status);
    const file = `${r.body.serial}.${format === 'c509' ? 'c509' : format === 'der' ? 'der' : 'pem'}`;
    void reply.header('content-disposition', `attachment; filename="${file}"`);
    if (format === 'pem') return reply.type('application/x-pem-file').send(r.body.certificate);
    return reply.type(format === 'der' ? 'application/pkix-cert' : 'application/cose-c509-cert').send(Buffer.from(r.body.certificate, 'base64'));
  });

  const drillsPage = async (request: FastifyRequest, reply: FastifyReply, message?: Html, code = 200) => {
    const r = await api<{ drills: DrillView[] }>(request, 'GET', '/v1/drills?limit=20');
    const canStart = deps.drills && request.consoleSession!.principal.role === 'administrator';
    const body = r.ok ? html`${message ?? ''}${drillsBody(r.body.drills, canStart ? request.consoleSession!.csrf : undefined)}` : problem(r.error);
    return send(reply, 'Drills', body, ctx(request, '/console/drills'), r.ok ? code : r.status);
  };
  scope.get('/console/drills', { preHandler: signedIn }, async (request, reply) => drillsPage(request, reply));
  scope.post<{ Body: { approval?: string } }>('/console/drills', { preHandler: signedIn }, async (request, reply) => {
    const approval = typeof request.body?.approval === 'string' ? request.body.approval.trim() : '';
    const r = await api<{ pid: number; log: string }>(request, 'POST', '/v1/drills', { kind: 'failover', ...(approval ? { approval } : {}) });
    return drillsPage(request, reply, r.ok ? notice(`Failover drill started (process ${r.body.pid}, log ${r.body.log}). This site's database is about to be killed: follow it on the other site's console.`) : problem(r.error), r.ok ? 202 : r.status);
  });

  scope.get<{ Querystring: { verify?: string } }>('/console/audit', { preHandler: signedIn }, async (request, reply) => {
    const here = ctx(request, '/console/audit');
    if (request.query.verify !== '1') return send(reply, 'Audit log', auditBody(undefined), here);
    const r = await api<AuditView>(request, 'GET', '/v1/audit/verify');
    return send(reply, 'Audit log', r.ok ? auditBody(r.body) : problem(r.error), here, r.ok ? 200 : r.status);
  });
}
