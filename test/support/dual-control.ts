import { randomUUID } from 'node:crypto';
import { DualControl, TokenAuthenticator, issueApiToken, type ApprovalAction } from '@fleetpki/ca';
import { listMasterKeys, type Pool } from '@fleetpki/store';
import type { TestCa } from './ca.js';
import { writeCaFile } from './ca.js';

/**
 * An approved dual-control request, as two officers of the role would make it (request, then a
 * second officer approves): returns its id and the requester's token file, for the CLI's
 * --approval and --token-file.
 */
export async function approvedRequest(pool: Pool, ca: TestCa, action: ApprovalAction, role: 'custodian' | 'administrator', payload: Record<string, unknown>): Promise<{ id: string; tokenFile: string }> {
  const suffix = randomUUID().slice(0, 8);
  const [first, second] = await Promise.all([1, 2].map((n) => issueApiToken(pool, { site: 'a', actor: 'test', name: `test-${role}-${n}-${suffix}`, role, manufacturerId: null, expiresDays: 1 })));
  const authenticator = new TokenAuthenticator(pool);
  const dualControl = new DualControl(pool, 'a', 60);
  const request = await dualControl.request(await authenticator.authenticate(`Bearer ${first}`), action, payload, `test: ${action}`);
  await dualControl.approve(await authenticator.authenticate(`Bearer ${second}`), request.id);
  return { id: request.id, tokenFile: writeCaFile(ca, `${role}-${suffix}.token`, first!) };
}

/** `keys master create` arguments for a role, with a custodian's token; with an approval when it is a rotation (an active key exists). */
export async function masterKeyCreateArgs(pool: Pool, ca: TestCa, role: 'mac' | 'enc'): Promise<string[]> {
  const args = ['keys', 'master', 'create', '--role', role];
  if (!(await listMasterKeys(pool)).some((m) => m.role === role && m.status === 'active')) {
    const custodian = await issueApiToken(pool, { site: 'a', actor: 'test', name: `test-custodian-${randomUUID().slice(0, 8)}`, role: 'custodian', manufacturerId: null, expiresDays: 1 });
    return [...args, '--token-file', writeCaFile(ca, `custodian-${randomUUID().slice(0, 8)}.token`, custodian)];
  }
  const { id, tokenFile } = await approvedRequest(pool, ca, 'master-key.rotate', 'custodian', { role });
  return [...args, '--approval', id, '--token-file', tokenFile];
}

