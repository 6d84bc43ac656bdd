// The resolved configuration every part of fleetpki reads (loadConfig): one shape, whatever its source (file, environment, defaults).
export const SITE_IDS = ['a', 'b'] as const;
export type SiteId = (typeof SITE_IDS)[number];

/**
 * Who connects to the CA's database, each as a role of its own with exactly the grants its code uses
 * (migrations/0016_service_roles.sql): the three services and the operators' CLI. The owner role is
 * for migrations (and the owner-only paths: bootstrap, recovery, tests' and benchmarks' set-up).
 */
export const DATABASE_CLIENTS = ['issuer', 'worker', 'status', 'operator'] as const;
export type DatabaseClient = (typeof DATABASE_CLIENTS)[number];
export const DATABASE_ROLES: Readonly<Record<DatabaseClient, string>> = { issuer: 'fleetpki_issuer', worker: 'fleetpki_worker', status: 'fleetpki_status', operator: 'fleetpki_operator' };

/** Where one site's parts listen and keep their state. Locally both sites share a machine; in production
 * each maps to its own host (infra/README.md) with the same field names. */
export interface SiteConfig {
  readonly id: SiteId;
  readonly dir: string;
  /** The address the site's parts listen on and are reached at: 127.0.0.1, or the site's own in its network namespace. */
  readonly host: string;
  /** The network namespace the site's processes run in (FLEETPKI_NETNS=on), else undefined. */
  readonly netns: string | undefined;
  readonly pgPort: number;
  readonly redisPort: number;
  readonly apiPort: number;
  readonly statusPort: number;
  /**
   * With tls.status: the plain-HTTP listener for OCSP and CRLs only (sites.<id>.status.httpPort), beside
   * the HTTPS status port; undefined when there is none.
   */
  readonly statusHttpPort: number | undefined;
  /** Metrics listeners of the daemons, batch worker and site agent (sites.<id>.metrics), where configured. */
  readonly metrics: { readonly daemons?: number; readonly worker?: number; readonly agent?: number; readonly scrapers?: readonly string[] };
  /** Patroni's REST API (database.ha patroni): sites.<id>.patroni. */
  readonly patroniHost: string;
  readonly patroniPort: number;
  /** The owner's connection: operators, migrations, ceremonies, drills (the CLI). */
  readonly databaseUrl: string;
  /**
   * Each service's connection, as its own role (DATABASE_ROLES). Derived from databaseUrl (same host,
   * port and database, the role as user), or from FLEETPKI_SERVICE_DATABASE_URL with the role as user,
   * so the owner's and a service's connections can never name different databases (databaseUrls).
   */
  readonly serviceDatabaseUrls: Readonly<Record<DatabaseClient, string>>;
  readonly redisUrl: string;
  /** SoftHSM2 configuration file of this site's token directory (SOFTHSM2_CONF). */
  readonly softhsmConf: string;
  readonly hsmTokenLabel: string;
  readonly hsmPinFile: string;
  /** Where each part of the site is reached (sites.<id>.<part>.host; each defaults to the site's host). */
  readonly pgHost: string;
  readonly redisHost: string;
  readonly apiHost: string;
  readonly statusHost: string;
  /**
   * Base URLs of the site's issuer API and status responder (sites.<id>.api.url, .status.url), for the
   * other site and operators: https when the part serves HTTPS (api.tls or tls.api; tls.status).
   */
  readonly apiUrl: string;
  readonly statusUrl: string;
  /** The site's HSM as the file describes it (hsm.<id>): any PKCS#11 module, the token by label or slot, the PIN's source. */
  readonly hsm: SiteHsmConfig;
}

export interface SiteHsmConfig {
  /** The PKCS#11 module (shared library); SoftHSM2's by default. */
  readonly modulePath: string;
  /** SoftHSM2 only: its configuration file (SOFTHSM2_CONF); undefined for another module unless given. */
  readonly softhsmConf: string | undefined;
  readonly tokenLabel: string;
  /** The slot id, when the token is chosen by slot (the token's label is then read from the slot). */
  readonly slot: number | undefined;
  /** Where the user PIN was configured to come from (`file:...`, `credential:...`), and the file it resolves to. */
  readonly pinSource: string;
  readonly pinFile: string;
}

/** The services a host may run (this.services in the file). */
export const HOST_SERVICES = ['postgres', 'redis', 'etcd', 'site-agent', 'issuer-api', 'status-responder', 'batch-worker', 'daemons', 'crl-publisher'] as const;
export type HostService = (typeof HOST_SERVICES)[number];

/**
 * Parts whose TLS certificate and key the file may name (the TLS work of issue 34 fills them in). etcd has
 * three: `etcd` the members' server pair, `etcdPeer` theirs towards each other, `etcdClient` this host's
 * processes' client pair towards etcd (a process still signs in with its own etcd user's password).
 */
export const TLS_PARTS = ['api', 'status', 'postgres', 'redis', 'etcd', 'etcdPeer', 'etcdClient'] as const;
export type TlsPart = (typeof TLS_PARTS)[number];

/** Secrets as files: a path, or `$CREDENTIALS_DIRECTORY/<name>` for a systemd credential; never the secret itself. */
export interface SecretFiles {
  /** PostgreSQL passwords per role: the owner's and each service's. */
  readonly postgres: Readonly<Partial<Record<'owner' | DatabaseClient, string>>>;
  readonly redis: string | undefined;
  readonly etcd: string | undefined;
  /** The backup repository's passphrase; undefined: the simulation's own, generated beside the repository (backup.cipherPassFile). */
  readonly backup: string | undefined;
}

export interface TlsFiles {
  /** CA bundle that every part's peer certificate is checked against. */
  readonly caBundle: string | undefined;
  readonly parts: Readonly<Partial<Record<TlsPart, { readonly cert: string; readonly key: string }>>>;
}

export type EtcdMemberName = SiteId | 'witness';

/**
 * FLEETPKI_NETNS=on: the addresses of site A, site B and the witness on the namespaces' private link
 * (10.77.0.0/24; this machine's own end, where tests and the CLI run, is 10.77.0.254): the defaults of
 * simulation.subnet. Another simulation on the same machine (a test's own) names another subnet,
 * namespace prefix and link prefix (simulation.*), so the two never share a namespace, veth or address.
 */
export const NETNS_HOSTS: Readonly<Record<EtcdMemberName, string>> = { a: '10.77.0.1', b: '10.77.0.2', witness: '10.77.0.3' };
export const NETNS_SUBNET = '10.77.0.0/24';
export const NETNS_ROOT_HOST = '10.77.0.254';

/** The simulation's network namespaces, resolved from simulation.* (namespaces.ts in packages/sites uses these). */
export interface SimulationNet {
  readonly netns: boolean;
  /** Each member's network namespace (`<namespacePrefix>-<member>`). */
  readonly namespaces: Readonly<Record<EtcdMemberName, string>>;
  /** Each member's address on the private link (.1, .2, .3 of the subnet). */
  readonly hosts: Readonly<Record<EtcdMemberName, string>>;
  /** This machine's own end of the links (.254). */
  readonly rootHost: string;
  /** The subnet, as CIDR (pg_hba.conf's trust lines of a simulation without TLS). */
  readonly subnet: string;
  /** The veth interfaces' prefix (`<linkPrefix>-<from><to>`, within IFNAMSIZ). */
  readonly linkPrefix: string;
}

export interface EtcdMember {
  readonly name: EtcdMemberName;
  readonly host: string;
  readonly netns: string | undefined;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dir: string;
}

export interface FleetConfig {
  readonly repoRoot: string;
  /**
   * Where the programs this process starts are (services/NAME/...): paths.programs, an installation
   * made by scripts/package.sh, else repoRoot (this process's own repository or installation).
   */
  readonly programsDir: string;
  /**
   * Where the local clusters live (PostgreSQL, Redis, etcd, the sites' SoftHSM token directories, the
   * agents): shared by every deployment on them (FLEETPKI_STATE_DIR).
   */
  readonly stateDir: string;
  /**
   * Where this deployment keeps its own files: the API's TLS material, the token PINs, the custodians'
   * PIN files, the offline root's HSM, audit checkpoints, drill and benchmark output
   * (FLEETPKI_DEPLOYMENT_DIR). The installation's is its state folder; a test run's is a temporary
   * folder of its own (scripts/run-tests.sh), so a test leaves the installation's files as they were.
   */
  readonly deploymentDir: string;
  /** The configuration file this was read from (FLEETPKI_CONFIG, or /etc/fleetpki/fleetpki.yaml when present), else undefined. */
  readonly configFile: string | undefined;
  /** The local simulation's network namespaces (simulation.*): names, addresses, links. */
  readonly simulation: SimulationNet;
  /** This host: which member of the deployment it is (a site's host or the witness) and which services it runs. */
  readonly thisHost: { readonly name: EtcdMemberName; readonly services: readonly HostService[] };
  /** Where secrets are read from (secrets.*): files only, resolved; the TLS helper and the database clients read them. */
  readonly secrets: SecretFiles;
  /** TLS material per part (tls.*), every entry optional until TLS between parts is on. */
  readonly tls: TlsFiles;
  /** The site this process belongs to. */
  readonly site: SiteId;
  readonly sites: Readonly<Record<SiteId, SiteConfig>>;
  /** This process's site's PKCS#11 module (sites' own: sites.<id>.hsm.modulePath). */
  readonly pkcs11Module: string;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Name of the PostgreSQL superuser the local clusters are created with. */
  readonly pgUser: string;
  /**
   * The CA's database on every site: FLEETPKI_PG_DATABASE, or the database FLEETPKI_DATABASE_URL names.
   * The test suite and the benchmarks run on throw-away databases of the same clusters; this one name
   * is what every URL below, the queue's Redis prefix and the service start-up check follow.
   */
  readonly pgDatabase: string;
  /** Who keeps PostgreSQL highly available (database.ha): Patroni, or the site agent's own promote/rewind. */
  readonly databaseHa: 'agent' | 'patroni';
  /** Prefix of the SoftHSM token labels (`<prefix>-a`, `<prefix>-b`, `<prefix>-root`); tests use their own tokens. */
  readonly hsmTokenPrefix: string;
  /** Label of the token holding the offline root CA key, in the root's own HSM (rootHsm). */
  readonly rootTokenLabel: string;
  /**
   * The offline root's HSM: locally a SoftHSM token directory of its own, which no service's PKCS#11
   * configuration lists; in production a separate HSM kept offline. Only ceremonies open it.
   */
  readonly rootHsm: { readonly dir: string; readonly softhsmConf: string };
  /**
   * Base URL of the CRL distribution points written into certificates. One value for the deployment
   * (in production a name served by whichever site is active), so a shard CRL published by site B after
   * a failover still matches the certificates site A issued.
   */
  readonly crlBaseUrl: string;
  /** Base URL of the OCSP responder, for operators and tests. */
  readonly ocspUrl: string;
  /** Two-person rule: what needs a second officer's approval, and how long a request waits for it. */
  readonly dualControl: {
    /**
     * Revoking more certificates than this needs an approval, counted per person over a sliding window
     * (what they revoked without approval in the last revocationWindowMinutes plus the new request),
     * so a large revocation split into small requests needs one all the same.
     */
    readonly revocationThreshold: number;
    readonly revocationWindowMinutes: number;
    readonly approvalTtlMinutes: number;
  };
  /**
   * The active site's lease (ca/site-lease.ts): renewed through the synchronous standby every
   * renewEveryMs; a site that cannot renew stops issuing and stops answering OCSP "good" within leaseMs,
   * and a site taking over waits until the old lease has lapsed.
   */
  readonly siteLease: { readonly leaseMs: number; readonly renewEveryMs: number };
  /**
   * Who is the active CA site is decided by etcd, three members: one per site and a witness in a third
   * place, so either site with the witness is a majority. The site agents campaign for the CA-site role
   * with a lease of ttlSeconds; every service process reads the leader and its lease from here.
   */
  readonly consensus: {
    readonly members: readonly EtcdMember[];
    /** Client URLs of every member. */
    readonly endpoints: readonly string[];
    /** Key prefix of this pair of sites (every deployment on the same clusters shares it). */
    readonly prefix: string;
    readonly ttlSeconds: number;
    /**
     * The etcd users' password files (consensus/etcd-auth.ts). They belong to the cluster, not to a
     * deployment: fixed here, so a configuration copied with another state folder (a drill's, a test's)
     * still reaches the members it shares.
     */
    readonly credentialsDir: string;
  };
  /**
   * How long a write may wait on a primary whose synchronous standby is unreachable before it answers
   * 503 STANDBY_UNAVAILABLE with Retry-After (the write itself completes if the standby comes back).
   */
  readonly writeWaitMs: number;
  /**
   * Signing in the HSM: `threads` signing threads per process (0: sessions on the libuv pool, for a
   * process that signs rarely), and which signatures are verified before use (1 in checkEvery; 1 = all).
   */
  readonly signing: { readonly threads: number; readonly checkEvery: number };
  /**
   * Threads per process that check device requests' proofs of possession (ECDSA over a CSR), off the
   * JavaScript main thread (x509 PossessionThreads); 0 checks on the main thread.
   */
  readonly possessionThreads: number;
  /** OCSP over HTTP GET: max-age never beyond this, whatever the response's nextUpdate (RFC 5019 6.2). */
  readonly ocspMaxAgeSeconds: number;
  /**
   * OCSP answers that need a signature on request and that anyone can ask for (unknown serials,
   * several CertIDs in one request): at most perAddressPerSecond per client address, and at most
   * `concurrency` signatures at once, so they never take the HSM from the responder's own re-signing.
   */
  readonly ocspOnDemand: { readonly perAddressPerSecond: number; readonly concurrency: number };
  /** An online intent with no certificate after this long is released by the reconciler (the device may enrol again). */
  readonly intentTimeoutSeconds: number;
  /**
   * Enrolment labels (a profile and a key role: packages/ca/src/issuance/enrolment-labels.ts) whose new
   * certificates wait for an administrator's approval, whatever the protocol (JSON API, EST, CMP;
   * batches refuse their keys), and the Retry-After a held request is answered with.
   */
  readonly enrolmentHolds: { readonly labels: readonly string[]; readonly retryAfterSeconds: number };
  /**
   * EST (RFC 7030): how long a certificate superseded by a re-enrolment stays good before it is revoked
   * (reason superseded), null for never.
   */
  readonly est: { readonly revokeSupersededAfterSeconds: number | null };
  /**
   * CMP: grant implicit confirmation when a client asks (RFC 9483 4.1.1; off: every certificate waits
   * for its certConf), how long an answered certificate waits for it before it is marked unconfirmed,
   * and how far a request's messageTime may be from this server's clock. authBudget: per client
   * address, how many requests may be having their protection checked or have failed it (burst), and how
   * fast failures are forgiven (packages/ca/src/protocols/cmp-auth-budget.ts). pbmThreads: threads
   * computing password-based MACs off the main thread (0: on it).
   */
  readonly cmp: {
    readonly implicitConfirm: boolean;
    readonly confirmWaitSeconds: number;
    readonly maxClockSkewSeconds: number;
    readonly authBudget: { readonly burst: number; readonly refillPerSecond: number };
    readonly pbmThreads: number;
  };
  /** The operator console's sessions: ended after `idleSeconds` without a request, and `maxAgeSeconds` after sign-in in any case. */
  readonly console: {
    readonly idleSeconds: number;
    readonly maxAgeSeconds: number;
    /** A test deployment: administrators may start a failover drill from the API and the console (it kills the active site). */
    readonly drills: boolean;
  };
  /**
   * pgBackRest (packages/sites/src/backup): the repository every site archives WAL to and backs up
   * into, the stanza (one per pair of clusters), the passphrase it is encrypted with, and how many
   * full and differential backups expire leaves.
   */
  readonly backup: {
    readonly repository: string;
    /** Where restore drills put their scratch cluster (backup.scratch). */
    readonly scratch: string;
    readonly stanza: string;
    readonly cipherPassFile: string;
    readonly retention: { readonly full: number; readonly differential: number };
  };
  /** Abuse limits of the HTTP API, per client address; where it listens and whether over TLS. */
  readonly api: {
    readonly rateLimitPerMinute: number;
    readonly failedAuthPerMinute: number;
    readonly host: string;
    /**
     * HTTPS, client certificates accepted (mTLS): with tls.api's pair (clients checked against
     * tls.caBundle) when the file names one, else with what `fleetpki tls server` wrote into tlsDir.
     */
    readonly tls: boolean;
    /** Where `fleetpki tls server` writes this site's key, certificate and client CA bundle (used when tls.api is not set). */
    readonly tlsDir: string;
    /** Database connections of the issuer API's general pool (enrolment, batches' reads, tokens, ...). */
    readonly connections: number;
    /**
     * Connections of a pool of their own for revocation, approvals, certificate lookups and health, so
     * that these are never queued behind anything else the API does.
     */
    readonly reservedConnections: number;
  };
  /**
   * Factory manifest uploads (POST /v1/batches). They copy into PostgreSQL through a pool of their own
   * (`connections`, which is also how many the process takes at once), at most `perManufacturer` at a
   * time for one manufacturer; an upload that sends less than `progressBytes` in `idleSeconds`, or is
   * still sending after `maxSeconds`, is cut and leaves nothing behind.
   */
  readonly uploads: {
    readonly connections: number;
    readonly perManufacturer: number;
    readonly idleSeconds: number;
    readonly progressBytes: number;
    readonly maxSeconds: number;
  };
  /**
   * Device-key bundle downloads: each holds an HSM session while it streams; at most `concurrency` at
   * once per process, each closed (its session released) after `maxSeconds` however slowly it is read.
   */
  readonly deviceKeyBundles: { readonly concurrency: number; readonly maxSeconds: number };
}
