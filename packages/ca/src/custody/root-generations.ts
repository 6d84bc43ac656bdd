import { X509Certificate } from 'node:crypto';
import { FleetError } from '@fleetpki/core';
import type { CaRecord, RootLinkRecord } from '@fleetpki/store';

/**
 * Root generations (RFC 4210 4.4): a root key is replaced by a new one, never edited. Each rollover
 * leaves a link between the old root and its successor: NewWithOld (the new key certified by the old,
 * so a meter that holds only the old root in firmware reaches the new hierarchy) and OldWithNew (the
 * old key certified by the new, so a verifier that holds only the new root still accepts what the old
 * root signed). The current root is the one no link names as old.
 */
export interface RootCaKeyUpdate {
  /** The old root's self-signed certificate. */
  readonly oldWithOld: Buffer;
  /** The new root's self-signed certificate. */
  readonly newWithNew: Buffer;
  /** The new root's key certified by the old root. */
  readonly newWithOld: Buffer;
  /** The old root's key certified by the new root. */
  readonly oldWithNew: Buffer;
}

/**
 * The roots still served (active: neither revoked nor retired), oldest generation first, and the
 * current one. The walk back from the current root stops at a retired root: its transition is over
 * (`ceremony root-retire`), and its links are no longer handed out.
 */
export function rootGenerations(cas: readonly CaRecord[], links: readonly RootLinkRecord[]): { current: CaRecord; updates: RootCaKeyUpdate[] } {
  const roots = cas.filter((c) => c.kind === 'root' && c.status !== 'revoked');
  const replaced = new Set(links.map((l) => l.oldRootId));
  const current = roots.filter((r) => !replaced.has(r.id));
  if (current.length === 0) throw new FleetError('CA_NOT_INITIALISED', 'no current root CA in the store: run `pnpm fleetpki ceremony init` first');
  if (current.length > 1) throw new FleetError('CA_ROOT_AMBIGUOUS', `more than one root CA without a successor (${current.map((r) => r.id).join(', ')}); a root rollover links each root to the next`);
  const byId = new Map(cas.map((c) => [c.id, c]));
  const updates: RootCaKeyUpdate[] = [];
  // Walk back from the current root: the chain of links is what a meter of any generation follows.
  const linkTo = new Map(links.map((l) => [l.newRootId, l]));
  for (let link = linkTo.get(current[0]!.id); link; link = linkTo.get(link.oldRootId)) {
    const oldRoot = byId.get(link.oldRootId);
    const newRoot = byId.get(link.newRootId);
    if (!oldRoot || !newRoot) throw new FleetError('CA_NOT_FOUND', `the root link ${link.oldRootId} -> ${link.newRootId} names a CA the store does not hold`);
    if (oldRoot.status !== 'active') break;
    const update = { oldWithOld: oldRoot.certificate, newWithNew: newRoot.certificate, newWithOld: link.newWithOld, oldWithNew: link.oldWithNew };
    assertLinked(update, `${link.oldRootId} -> ${link.newRootId}`);
    updates.unshift(update);
    if (updates.length > links.length) throw new FleetError('CA_ROOT_AMBIGUOUS', 'the root links form a cycle');
  }
  return { current: current[0]!, updates };
}

/**
 * What EST /cacerts returns (RFC 7030 4.1.3): the issuing CA, the root it chains to, and during a root
 * transition every NewWithNew, OldWithOld, OldWithNew and NewWithOld of the links that lead to it, so a client of
 * any generation can build its path. Duplicates are dropped (a root is OldWithOld of one link and
 * NewWithNew of the one before).
 */
export function caCertificatesForClients(issuing: Buffer, root: CaRecord, updates: readonly RootCaKeyUpdate[]): Buffer[] {
  const out: Buffer[] = [];
  const add = (der: Buffer) => {
    if (!out.some((d) => d.equals(der))) out.push(der);
  };
  add(issuing);
  add(root.certificate);
  for (const u of [...updates].reverse()) {
    add(u.newWithNew);
    add(u.newWithOld);
    add(u.oldWithNew);
    add(u.oldWithOld);
  }
  return out;
}

/**
 * Checks a link as a meter will before anything serves it: NewWithOld certifies the new root's name and
 * key under the old root's key, OldWithNew the old root's under the new key, and the new root is
 * self-signed. The rows are written only by the root ceremony, but a database role that could write
 * them must not be able to make the services hand out a root the old one never certified.
 */
function assertLinked(u: RootCaKeyUpdate, what: string): void {
  const [oldRoot, newRoot, newWithOld, oldWithNew] = [u.oldWithOld, u.newWithNew, u.newWithOld, u.oldWithNew].map((der) => new X509Certificate(der));
  const sameKey = (a: X509Certificate, b: X509Certificate) => a.publicKey.equals(b.publicKey);
  const ok =
    newRoot!.verify(newRoot!.publicKey) &&
    newWithOld!.verify(oldRoot!.publicKey) &&
    newWithOld!.subject === newRoot!.subject &&
    sameKey(newWithOld!, newRoot!) &&
    oldWithNew!.verify(newRoot!.publicKey) &&
    oldWithNew!.subject === oldRoot!.subject &&
    sameKey(oldWithNew!, oldRoot!);
  if (!ok) throw new FleetError('CA_CHAIN_INVALID', `the root link ${what} does not verify (NewWithOld under the old root, OldWithNew under the new): refusing to serve it`);
}

/** The issuing CA's certificate must verify under its parent root's key: the chain the services hand out. */
export function assertIssuedBy(ca: CaRecord, root: CaRecord): void {
  const [cert, issuer] = [new X509Certificate(ca.certificate), new X509Certificate(root.certificate)];
  if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) throw new FleetError('CA_CHAIN_INVALID', `the certificate of CA ${ca.id} does not verify under its parent ${root.id}: refusing to serve that chain`);
}
