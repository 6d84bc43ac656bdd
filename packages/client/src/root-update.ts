import { X509Certificate } from 'node:crypto';
import { caConstraints } from '@fleetpki/x509';
import { MAX_PKI_MESSAGE_BYTES, OID_IT_ROOT_CA_CERT, OID_IT_ROOT_CA_KEY_UPDATE, buildGenmRequest, readPkiMessage, readRootCaKeyUpdateContent, verifyMacProtection, type PkiMessage, type RootCaKeyUpdateContent } from '@fleetpki/cmp';

/**
 * The client side of the root CA key update (RFC 9483 4.3.2): ask the CA's CMP endpoint (RFC 6712
 * HTTP) for the successor of the root a meter holds, and check the answer the way the meter must
 * before it trusts the new root (RFC 4210 4.4). What a meter's firmware does, for tools and tests.
 */

/** The new root and its link certificates, each a certificate's DER. */
export type RootCaKeyUpdateAnswer = RootCaKeyUpdateContent;

export interface RootCaKeyUpdateRequest {
  /** The factory's shared-secret reference and secret: the request and the answer are MAC-protected with them. */
  readonly reference: string;
  readonly secret: Buffer;
  /** The root held (RootCaCertValue); without it the CA answers its latest update. */
  readonly heldRoot?: Buffer;
  /** How long to wait for the answer (default 30 s). */
  readonly timeoutMs?: number;
}

const PKIXCMP = 'application/pkixcmp';

/**
 * Sends a genm asking id-it-rootCaCert and reads the genp. Undefined when the CA has no update for the
 * root held (infoValue absent); a CMP error answer, or an answer not MAC-protected with the secret or
 * not to this request, is an Error. The update is not trusted yet: verifyRootCaKeyUpdate decides that.
 */
export async function requestRootCaKeyUpdate(url: string, options: RootCaKeyUpdateRequest): Promise<RootCaKeyUpdateAnswer | undefined> {
  const request = buildGenmRequest({ reference: options.reference, secret: options.secret, infos: [{ infoType: OID_IT_ROOT_CA_CERT, ...(options.heldRoot ? { value: options.heldRoot } : {}) }] });
  const sent = readPkiMessage(request).header;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': PKIXCMP }, body: request, signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) });
  } catch (err) {
    throw new Error(`cannot reach the CMP endpoint ${url}: ${(err as Error).message}`, { cause: err });
  }
  // A CMP message is small (readPkiMessage refuses more than MAX_PKI_MESSAGE_BYTES): a larger answer is
  // refused before it is read, so a server cannot make the client buffer without bound.
  if (Number(res.headers.get('content-length') ?? 0) > MAX_PKI_MESSAGE_BYTES) throw new Error(`${url} answered ${res.headers.get('content-length')} bytes, more than a CMP message (${MAX_PKI_MESSAGE_BYTES})`);
  let answer: PkiMessage;
  try {
    answer = readPkiMessage(Buffer.from(await res.arrayBuffer()));
  } catch (err) {
    throw new Error(`${url} answered HTTP ${res.status} without a CMP message (${(err as Error).message})`, { cause: err });
  }
  const body = answer.body;
  // An error is believed unprotected: it only stops us, and a CA that could not check our MAC (a wrong
  // secret) cannot MAC its answer with it either.
  if (body.type === 'error') throw new Error(`the CA at ${url} refused the root CA key update request: ${body.texts.join('; ') || '(no text)'} (PKIFailureInfo bits ${body.failInfo.join(', ')}, RFC 4210 5.2.3)`);
  try {
    await verifyMacProtection(answer, options.secret);
  } catch (err) {
    throw new Error(`the answer from ${url} is not MAC-protected with the secret of ${options.reference}: ${(err as Error).message}`, { cause: err });
  }
  // RFC 9483 3.1/3.5: the answer echoes our transactionID and senderNonce; another one is a replay.
  if (!answer.header.transactionId?.equals(sent.transactionId!) || !answer.header.recipNonce?.equals(sent.senderNonce!)) throw new Error(`the answer from ${url} is not to this request (its transactionID or recipNonce differs)`);
  if (body.type !== 'genp') throw new Error(`${url} answered the genm with a ${body.type}, not a genp`);
  const update = body.infoValues.find((itav) => itav.infoType === OID_IT_ROOT_CA_KEY_UPDATE);
  if (!update) throw new Error(`${url} answered without id-it-rootCaKeyUpdate: it does not offer root CA key updates`);
  return update.value ? readRootCaKeyUpdateContent(update.value) : undefined;
}

function certificate(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new Error(`root CA key update refused: ${what} is not a certificate`);
  }
}

const spki = (c: X509Certificate) => c.publicKey.export({ format: 'der', type: 'spki' });

/**
 * What a meter checks before it trusts the new root (RFC 4210 4.4): NewWithOld is signed by the held
 * root and names NewWithNew's subject and key, so the key already trusted vouches for the new one;
 * NewWithNew is a self-signed CA certificate; OldWithNew, if given, carries the held root's name and key
 * under the new key (what lets a verifier holding only the new root accept the old one's signatures).
 * Returns the new root's DER, or throws an Error naming the check that failed. Validity dates are the
 * caller's to check against its own clock.
 */
export function verifyRootCaKeyUpdate(heldRoot: Buffer, update: RootCaKeyUpdateAnswer): Buffer {
  const refuse = (why: string): never => {
    throw new Error(`root CA key update refused: ${why}`);
  };
  const held = certificate(heldRoot, 'the held root');
  const newWithNew = certificate(update.newWithNew, 'NewWithNew');
  if (!update.newWithOld) refuse('no NewWithOld: nothing links the new root to the held one');
  const newWithOld = certificate(update.newWithOld!, 'NewWithOld');
  if (!newWithOld.checkIssued(held) || !newWithOld.verify(held.publicKey)) refuse("NewWithOld does not verify under the held root's key");
  if (newWithOld.subject !== newWithNew.subject || !spki(newWithOld).equals(spki(newWithNew))) refuse("NewWithOld does not certify NewWithNew's subject and key");
  if (!newWithNew.ca || !newWithNew.checkIssued(newWithNew) || !newWithNew.verify(newWithNew.publicKey)) refuse('NewWithNew is not a self-signed CA certificate that verifies');
  // A subordinate CA's genuine certificate (signed by the held root, pathLen 0) with a self-signed
  // twin of its key would pass the checks above: a root's link has no path length limit and may sign
  // certificates.
  for (const [name, der] of [['NewWithOld', update.newWithOld!], ['NewWithNew', update.newWithNew]] as const) {
    const c = caConstraints(der);
    if (!c.ca || c.pathLength !== undefined || !c.keyCertSign) refuse(`${name} is not a root's certificate (cA with no pathLenConstraint and keyCertSign): a subordinate CA cannot become a root`);
  }
  if (update.oldWithNew) {
    const oldWithNew = certificate(update.oldWithNew, 'OldWithNew');
    if (oldWithNew.subject !== held.subject || !spki(oldWithNew).equals(spki(held))) refuse("OldWithNew does not carry the held root's subject and key");
    if (!oldWithNew.checkIssued(newWithNew) || !oldWithNew.verify(newWithNew.publicKey)) refuse('OldWithNew does not verify under the new key');
  }
  return newWithNew.raw;
}
