import { randomBytes, verify } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { IssuingCa, SiteGuard } from '@fleetpki/ca';
import type { KeyStore } from '@fleetpki/hsm';

export interface HsmReadiness {
  readonly ok: boolean;
  readonly code?: 'HSM_NOT_READY' | 'HSM_TRUSTED_KEY_PRESENT';
  readonly detail: string;
}

/**
 * The HSM as /readyz sees it: the CA key signs and the signature verifies, and the token holds no trusted
 * key (fleetpki never leaves one there: one found is a key-encryption key anyone with the user PIN can
 * wrap the CA keys under, README "Key protection"). Checked at most once a second (a probe every request
 * would be load of its own).
 */
export function hsmProbe(ca: IssuingCa, keyStore: Pick<KeyStore, 'listTrustedKeys' | 'tokenLabel'>): () => Promise<HsmReadiness> {
  let last: { at: number; result: Promise<HsmReadiness> } | undefined;
  return () => {
    if (last && Date.now() - last.at < 1_000) return last.result;
    const result = (async (): Promise<HsmReadiness> => {
      const data = randomBytes(32);
      try {
        const trusted = await keyStore.listTrustedKeys();
        if (trusted.length > 0) {
          return { ok: false, code: 'HSM_TRUSTED_KEY_PRESENT', detail: `token ${keyStore.tokenLabel} holds trusted key(s) ${trusted.map((t) => `"${t.label}"`).join(', ')} outside a custody ceremony: any holder of the user PIN can wrap the CA keys under it; see \`pnpm fleetpki hsm check\`` };
        }
        const ok = verify('sha256', data, ca.publicKey, await ca.signer.sign(data));
        return ok ? { ok, detail: `CA key ${ca.record.id} signs` } : { ok, code: 'HSM_NOT_READY', detail: `CA key ${ca.record.id}: the signature does not verify` };
      } catch (err) {
        return { ok: false, code: 'HSM_NOT_READY', detail: `CA key ${ca.record.id} cannot sign: ${(err as Error).message}` };
      }
    })();
    last = { at: Date.now(), result };
    return result;
  };
}

export function registerSystemRoutes(app: FastifyInstance, deps: { guard: SiteGuard; chainPem: string; ca: IssuingCa; site: string; hsm: ReturnType<typeof hsmProbe> }): void {
  const hsm = deps.hsm;
  app.get('/v1/ca/chain', { schema: { summary: 'The device issuing CA and root certificates (PEM)', tags: ['ca'] } }, async (_request, reply) =>
    reply.type('application/pem-certificate-chain').header('cache-control', 'public, max-age=3600').send(deps.chainPem),
  );
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['system'] } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    { schema: { summary: 'Readiness: database reachable, the site lease (who may issue), writes not blocked by an unreachable synchronous standby, the CA key signing in the HSM', tags: ['system'] } },
    async (_request, reply) => {
      let standby: boolean;
      try {
        standby = await deps.guard.isStandby();
      } catch (err) {
        return reply.status(503).send({ code: 'NOT_READY', message: `database unreachable: ${(err as Error).message}` });
      }
      const lease = deps.guard.lease?.state();
      const key = await hsm();
      const body = { site: deps.site, role: standby ? 'standby' : 'active', ca: deps.ca.record.id, issuing: !standby && (lease?.issuing ?? true), lease, hsm: key };
      // A standby is ready to stand by (it answers writes with 503 SITE_STANDBY); an active site that
      // lost its lease, or whose HSM does not sign, is not ready at all.
      if (!key.ok) return reply.status(503).send({ status: 'not-ready', code: key.code ?? 'HSM_NOT_READY', message: key.detail, ...body });
      if (!standby && lease && !lease.issuing) return reply.status(503).send({ status: 'not-ready', code: 'SITE_NOT_LEASED', message: lease.reason, ...body });
      const blocked = standby ? undefined : await deps.guard.writesBlocked().catch(() => undefined);
      if (blocked) return reply.status(503).send({ status: 'not-ready', code: 'STANDBY_UNAVAILABLE', message: `writes blocked: synchronous standby unreachable since ${blocked.since.toISOString()}`, ...body });
      return { status: 'ready', ...body };
    },
  );
}
