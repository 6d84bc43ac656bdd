import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Throw-away TLS material for tests of the links between parts (PostgreSQL, Redis, etcd), made with the
 * openssl command line: a CA of its own and P-256 pairs signed by it. A second, unrelated CA makes the
 * "wrong certificate" a part must refuse. Production material comes from the organisation CA
 * (`fleetpki tls internal`); these stand-ins let a link's test not depend on a ceremony.
 */
export interface TestTlsCa {
  readonly dir: string;
  /** The CA certificate (PEM file): what a part's peers are checked against (tls.caBundle). */
  readonly caPem: string;
  /** A server pair: subjectAltName DNS/IP entries from `names`, extendedKeyUsage serverAuth (and clientAuth: etcd peers are both). */
  server(name: string, names: readonly string[]): TestTlsPair;
  /**
   * A client pair, extendedKeyUsage clientAuth, whose CN is `commonName` (etcd takes it as the user name),
   * or with no CN when `commonName` is undefined (O=fleetpki, OU=`name`), as `fleetpki tls internal` issues
   * etcdClient: etcd's JSON gateway, which Patroni uses, refuses a client certificate with a CN.
   */
  client(name: string, commonName: string | undefined): TestTlsPair;
}

export interface TestTlsPair {
  readonly cert: string;
  /** 0600, as a part's key file must be (PostgreSQL refuses a group- or world-readable key). */
  readonly key: string;
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function sanOf(names: readonly string[]): string {
  return names.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
}

export function makeTestTlsCa(label = 'fleetpki test internal CA', dir = mkdtempSync(join(tmpdir(), 'fleetpki-tls-'))): TestTlsCa {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  const caPem = join(dir, 'ca.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caPem, '-subj', `/CN=${label}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const issue = (name: string, subject: string, extensions: string): TestTlsPair => {
    const key = join(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.pem`);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(ext, extensions);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
    openssl(['x509', '-req', '-in', csr, '-CA', caPem, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', ext]);
    chmodSync(key, 0o600);
    return { cert, key };
  };
  return {
    dir,
    caPem,
    server: (name, names) => issue(name, `/CN=${names[0] ?? name}`, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${sanOf(names)}\n`),
    client: (name, commonName) => issue(name, commonName === undefined ? `/O=fleetpki/OU=${name}` : `/CN=${commonName}`, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'),
  };
}
