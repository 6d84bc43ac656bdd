import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FleetError, type EtcdMember, type FleetConfig } from '@fleetpki/core';

/**
 * etcd members over TLS (issue 34): with tls.etcd they serve clients on https and demand a client
 * certificate from tls.caBundle; with tls.etcdPeer the members talk to each other the same way. Without
 * the keys etcd keeps its loopback http of the local simulation. The material is checked here before
 * etcd starts: etcd itself would exit with a Go error in its log, or start and refuse every client.
 * Locally one server pair whose SANs cover the three members' hosts serves all three (on real hosts each
 * has its own pair under the same keys).
 */
function pemCertificates(file: string, what: string): X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetError('ETCD_TLS_MATERIAL', `cannot read ${what} (${file}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new FleetError('ETCD_TLS_MATERIAL', `${what} (${file}) holds no PEM certificate`);
  return blocks.map((b) => new X509Certificate(b));
}

/** The pair serves `member`: readable, key matches, issued by a CA in the bundle, names the member's host. */
function checkServerPair(member: EtcdMember, url: string, part: 'etcd' | 'etcdPeer', pair: { cert: string; key: string }, caBundle: string): void {
  const where = `etcd member ${member.name} (${new URL(url).host})`;
  const [cert] = pemCertificates(pair.cert, `tls.${part}.cert`);
  let key: string;
  try {
    key = readFileSync(pair.key, 'utf8');
  } catch (err) {
    throw new FleetError('ETCD_TLS_MATERIAL', `${where}: cannot read tls.${part}.key (${pair.key}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let matches = false;
  try {
    matches = cert!.checkPrivateKey(createPrivateKey(key));
  } catch {
    // Not a key at all: the same answer, and no key text in an error.
    matches = false;
  }
  if (!matches) throw new FleetError('ETCD_TLS_MATERIAL', `${where}: tls.${part}.key (${pair.key}) is not the key of tls.${part}.cert (${pair.cert})`);
  const cas = pemCertificates(caBundle, 'tls.caBundle');
  if (!cas.some((ca) => cert!.checkIssued(ca) && cert!.verify(ca.publicKey))) {
    throw new FleetError('ETCD_TLS_UNTRUSTED', `${where}: tls.${part}.cert (${pair.cert}, issuer ${cert!.issuer.replace(/\n/g, ', ')}) is not issued by a CA in tls.caBundle (${caBundle}): its peers and clients would refuse it`);
  }
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if ((isIP(host) ? cert!.checkIP(host) : cert!.checkHost(host)) === undefined) {
    throw new FleetError('ETCD_TLS_MATERIAL', `${where}: tls.${part}.cert (${pair.cert}) does not name ${host} in its subjectAltName`);
  }
}

/** etcd's TLS flags for `member` (none without material), after checking the material serves it. */
export function etcdServerTlsFlags(config: FleetConfig, member: EtcdMember): string[] {
  const { caBundle, parts } = config.tls;
  const flags: string[] = [];
  if (parts.etcd) {
    checkServerPair(member, member.clientUrl, 'etcd', parts.etcd, caBundle!);
    // --trusted-ca-file alone already makes etcd demand client certificates (etcd's docs); the explicit
    // --client-cert-auth says so to whoever reads the command line.
    flags.push('--cert-file', parts.etcd.cert, '--key-file', parts.etcd.key, '--trusted-ca-file', caBundle!, '--client-cert-auth');
  }
  if (parts.etcdPeer) {
    checkServerPair(member, member.peerUrl, 'etcdPeer', parts.etcdPeer, caBundle!);
    flags.push('--peer-cert-file', parts.etcdPeer.cert, '--peer-key-file', parts.etcdPeer.key, '--peer-trusted-ca-file', caBundle!, '--peer-client-cert-auth');
  }
  return flags;
}
