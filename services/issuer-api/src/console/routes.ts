import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { TLSSocket } from 'node:tls';
import { FleetError, isFleetError } from '@fleetpki/core';
import { SignInCsrf, type Principal } from '@fleetpki/ca';
import { CONSOLE_COOKIE, SIGN_IN_COOKIE, type ApiAccess } from '../auth.js';
import { callApi } from './api-call.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { html, type Html } from './html.js';
import { homeFor, notice, page, problem, type PageContext } from './layout.js';
import { approvalsBody, type ApprovalView } from './pages/approvals.js';
import { auditBody, type AuditView } from './pages/audit.js';
import { batchDetailBody, batchListBody, batchProgress, type BatchDetail, type BatchSummary } from './pages/batches.js';
import { drillsBody, type DrillView } from './pages/drills.js';
import { certificatesBody, searchForm, type CertificateView } from './pages/devices.js';
import { overviewBody, type Overview } from './pages/overview.js';
import { REASONS, previewBody, revocationBody, revocationFormBody, type RevocationForm, type RevocationPreviewView } from './pages/revocations.js';
import { signInBody } from './pages/sign-in.js';

/** The CSP of console pages: our own script and stylesheet only, forms posting back to us. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: { secret: string; principal: Principal; csrf: string };
  }
}

interface ConsoleDeps {
  readonly access: ApiAccess;
  /** Served over HTTPS: the console signs in only then (its cookie is Secure). */
  readonly tls: boolean;
  /** A test deployment: the drills page offers administrators a button that starts a failover drill. */
  readonly drills: boolean;
}

/**
 * The operator console under /console: server-rendered pages over the API's own routes (api-call.ts),
 * sessions from a token or a client certificate (packages/ca access/console-sessions.ts), CSRF on every
 * form. Works without JavaScript; with it, a running batch's figures refresh themselves.
 */
export async function registerConsole(app: FastifyInstance, deps: ConsoleDeps): Promise<void> {
  const sessions = deps.access.sessions;
  if (!sessions) throw new Error('the console needs ApiAccess with console sessions');

  await app.register(async (scope) => {
    // Pages, not API: left out of the OpenAPI document (test/console.test.ts covers who may see them).
    scope.addHook('onRoute', (route) => {
      route.schema = { ...(route.schema ?? {}), hide: true };
    });
    // Form bodies only here: the API's own routes keep taking JSON alone.
    await scope.register(formbody, { bodyLimit: 32 * 1024 * 1024 });
    // The revocation form takes a list as a file too (multipart); fields and the file's bytes land in the body.
    await scope.register(multipart, { attachFieldsToBody: 'keyValues', limits: { fileSize: 32 * 1024 * 1024, files: 1, fields: 10 } });
    scope.addHook('onSend', async (_request, reply) => {
      reply.header('content-security-policy', CONSOLE_CSP);
    });
    // A refusal on a console page is a page (its code and message), not the API's JSON.
    scope.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
      const code = isFleetError(err) ? err.code : err.statusCode && err.statusCode < 500 ? 'REQUEST_INVALID' : 'INTERNAL';
      const statusCode = isFleetError(err) ? err.httpStatus : err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
      if (statusCode >= 500) request.log.error({ err }, 'console request failed');
      const message = statusCode >= 500 ? 'the console could not answer; the service log has the details' : err.message;
      const context = request.consoleSession ? ctx(request, '') : undefined;
      return send(reply, 'Refused', problem({ code, message }), context, statusCode);
    });

    scope.get('/console/assets/console.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(CONSOLE_CSS));
    scope.get('/console/assets/console.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(CONSOLE_JS));

    const send = (reply: FastifyReply, title: string, body: Html, context?: PageContext, code = 200) => reply.status(code).type('text/html; charset=utf-8').send(page(title, body, context));

    // --- signing in and out ---
    // Over TLS, on this request's own connection: the session cookie is Secure, and a token typed into a
    // page must never cross the network in the clear.
    const overTls = (request: FastifyRequest) => deps.tls && (request.raw.socket as Partial<TLSSocket>).encrypted === true;
    // Login CSRF: the sign-in forms carry a token bound to a pre-session cookie that this page sets (the
    // one a browser already holds, if any, so two open sign-in tabs both work).
    const signInPage = (request: FastifyRequest, reply: FastifyReply, code: number, error?: Html) => {
      const pre = SignInCsrf.secret(request.cookies?.[SIGN_IN_COOKIE]);
      void reply.header('set-cookie', `${SIGN_IN_COOKIE}=${pre}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${SignInCsrf.maxAgeSeconds}`);
      return send(reply, 'Sign in', signInBody({ tls: true, csrf: SignInCsrf.token(pre), ...certificateOffer(request), ...(error ? { error } : {}) }), undefined, code);
    };
    scope.get('/console/sign-in', async (request, reply) => (overTls(request) ? signInPage(request, reply, 200) : send(reply, 'Sign in', signInBody({ tls: false }), undefined, 403)));

    scope.post<{ Body: { token?: string; method?: string; _csrf?: string } }>('/console/sign-in', async (request, reply) => {
      if (!overTls(request)) return send(reply, 'Sign in', signInBody({ tls: false }), undefined, 403);
      const body = request.body ?? {};
      try {
        // Before the credential is even looked at: a forged sign-in is refused whoever's token it carries.
        SignInCsrf.assert(request.cookies?.[SIGN_IN_COOKIE], body._csrf);
        const principal = await deps.access.identify(request, body.method === 'certificate' ? undefined : (body.token ?? ''));
        const secret = await sessions.open(principal);
        await deps.access.record(request, 'console.sign-in', principal);
        // The session replaces the pre-session: its token is spent.
        void reply.header('set-cookie', [`${CONSOLE_COOKIE}=${secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${sessions.maxAgeSeconds}`, `${SIGN_IN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`]);
        return reply.redirect(homeFor(principal.role), 303);
      } catch (err) {
        if (!isFleetError(err)) throw err;
        return signInPage(request, reply, err.httpStatus, problem({ code: err.code, message: err.message }));
      }
    });

    function certificateOffer(request: FastifyRequest): { certificate?: { subject: string } } {
      const certificate = deps.access.presentedClientCertificate(request);
      return certificate ? { certificate } : {};
    }

    // Every other console page needs a live session; without one, the sign-in page.
    const signedIn = async (request: FastifyRequest, reply: FastifyReply) => {
      const secret = request.cookies?.[CONSOLE_COOKIE];
      if (!secret) return reply.redirect('/console/sign-in', 303);
      try {
        const principal = await sessions.principal(secret);
        request.consoleSession = { secret, principal, csrf: sessions.csrfToken(secret) };
      } catch (err) {
        if (isFleetError(err, 'SESSION_INVALID')) return reply.header('set-cookie', `${CONSOLE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`).redirect('/console/sign-in', 303);
        throw err;
      }
      // State-changing forms carry the session's CSRF token (the API checks it again on its own routes).
      if (request.method === 'POST') sessions.assertCsrf(secret, (request.body as { _csrf?: unknown } | undefined)?._csrf);
    };
    const ctx = (request: FastifyRequest, current: string): PageContext => ({ principal: request.consoleSession!.principal, csrf: request.consoleSession!.csrf, current });
    const api = <T>(request: FastifyRequest, method: 'GET' | 'POST', url: string, payload?: unknown) => callApi<T>(app, request, method, url, { ...(payload !== undefined ? { payload } : {}), ...(method === 'POST' ? { csrf: request.consoleSession!.csrf } : {}) });

    scope.post('/console/sign-out', { preHandler: signedIn }, async (request, reply) => {
      const { secret, principal } = request.consoleSession!;
      await sessions.end(secret);
      await deps.access.record(request, 'console.sign-out', principal);
      return reply.header('set-cookie', `${CONSOLE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`).redirect('/console/sign-in', 303);
    });

    // --- screens ---
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

    scope.get('/console/revocations', { preHandler: signedIn }, async (request, reply) =>
      send(reply, 'Revoke certificates', revocationFormBody({ kind: 'devices', list: '', reason: 'keyCompromise' }, request.consoleSession!.csrf), ctx(request, '/console/revocations')),
    );
    scope.post<{ Body: { kind?: string; list?: string; upload?: Buffer | string; reason?: string; step?: string } }>('/console/revocations', { preHandler: signedIn }, async (request, reply) => {
      const b = request.body ?? {};
      // A list uploaded as a file (one per line, as inventories export them) joins what was typed.
      const uploaded = Buffer.isBuffer(b.upload) ? b.upload.toString('utf8') : '';
      const form: RevocationForm = {
        kind: b.kind === 'serials' || b.kind === 'batch' ? b.kind : 'devices',
        list: [String(b.list ?? ''), uploaded].filter((t) => t.trim()).join('\n').slice(0, 30_000_000),
        reason: (REASONS as readonly string[]).includes(String(b.reason)) ? String(b.reason) : 'keyCompromise',
      };
      const csrf = request.consoleSession!.csrf;
      const here = ctx(request, '/console/revocations');
      if (b.step === 'submit') {
        const r = await api<{ revoked?: number; alreadyRevoked?: number; approvalRequired?: boolean; approval?: { id: string } }>(request, 'POST', '/v1/revocations', revocationBody(form));
        if (!r.ok) return send(reply, 'Revoke certificates', revocationFormBody(form, csrf, problem(r.error)), here, r.status);
        if (r.body.approvalRequired) {
          return send(reply, 'Revoke certificates', html`${notice(`Over the threshold: approval request ${r.body.approval!.id.slice(0, 8)} is open; another person must approve it, then it can be executed.`)}<p><a href="/console/approvals">Go to approvals</a></p>`, here, 202);
        }
        return send(reply, 'Revoke certificates', html`${notice(`Revoked ${r.body.revoked ?? 0} certificate(s); ${r.body.alreadyRevoked ?? 0} were revoked already. OCSP reports them within seconds.`)}`, here);
      }
      const r = await api<RevocationPreviewView>(request, 'POST', '/v1/revocations/preview', revocationBody(form));
      return send(reply, 'Revoke certificates', revocationFormBody(form, csrf, r.ok ? previewBody(r.body) : problem(r.error)), here, r.ok ? 200 : r.status);
    });

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
  });
}
