import type { FastifyInstance } from 'fastify';
import { html } from './html.js';
import { notice, problem } from './layout.js';
import { REASONS, previewBody, revocationBody, revocationFormBody, type RevocationForm, type RevocationPreviewView } from './pages/revocations.js';
import type { ConsoleKit } from './kit.js';

/** The revocation form: preview first, then submit (over a threshold, an approval request instead). */
export function registerRevocationScreens(scope: FastifyInstance, { send, signedIn, ctx, api }: ConsoleKit): void {
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
}
