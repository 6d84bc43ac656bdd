// The commented example of a three-host deployment (fleetpki config example); infra/fleetpki.example.yaml is
// the same text, and a test checks that both agree and that it validates.
export const EXAMPLE_CONFIG = `# fleetpki configuration: one file per host, /etc/fleetpki/fleetpki.yaml (FLEETPKI_CONFIG=<path> names another).
# Three hosts: site A (10.0.1.10, active), site B (10.0.2.10, standby), the witness (10.0.3.10, etcd only).
# The three files are this one with 'this:' changed; everything else describes the whole deployment.
# Precedence: a FLEETPKI_* environment variable overrides its one key, the file overrides the defaults.
# Check a file with: fleetpki config check --file <path>; every key below is optional unless it says so.

this:
  site: a                     # a, b or witness: which host this file is for
  services: [postgres, redis, etcd, site-agent, issuer-api, status-responder, batch-worker, daemons, crl-publisher]
  # on the witness host:  site: witness  and  services: [etcd]

paths:
  state: /var/lib/fleetpki    # the site's local state (its agent's pid and log; local clusters in the simulation)

database:
  name: fleetpki
  owner: fleetpki             # the owner role: migrations, ceremonies; each service connects as its own role
  ha: agent                   # patroni: Patroni keeps PostgreSQL available (docs/patroni.md)

sites:
  a:
    host: 10.0.1.10           # every part of the site is on this host unless the part names another
    postgres: { port: 5432 }
    redis: { port: 6379 }
    api: { port: 8443, url: https://ca-a.example.net:8443 }
    patroni: { port: 8008 }   # Patroni's REST API beside PostgreSQL (health, switchover, patronictl)
    status: { port: 9443, httpPort: 8080 }   # HTTPS (tls.status); OCSP and CRLs also over plain HTTP on httpPort
    metrics: { daemons: 9101, agent: 9102, worker: 9110 }   # GET /metrics of the processes without a server of their own; batch worker @N on 9110 + N - 1 (docs/metrics.md)
  b:
    host: 10.0.2.10
    postgres: { port: 5432 }
    redis: { port: 6379 }
    api: { port: 8443, url: https://ca-b.example.net:8443 }
    patroni: { port: 8008 }
    status: { port: 9443, httpPort: 8080 }
    metrics: { daemons: 9101, agent: 9102, worker: 9110 }

etcd:                         # who is the CA site: one member per site and the witness, a majority of three
  members:
    a: { clientUrl: 'https://10.0.1.10:2379', peerUrl: 'https://10.0.1.10:2380' }
    b: { clientUrl: 'https://10.0.2.10:2379', peerUrl: 'https://10.0.2.10:2380' }
    witness: { clientUrl: 'https://10.0.3.10:2379', peerUrl: 'https://10.0.3.10:2380' }
  credentialsDir: /etc/fleetpki/etcd

hsm:                          # per site: any PKCS#11 module; the token by label (or slot); where its user PIN is
  a:
    modulePath: /opt/nfast/toolkits/pkcs11/libcknfast.so
    token: { label: fleetpki-a }
    pin: credential:hsm-pin   # systemd LoadCredential=hsm-pin:... ($CREDENTIALS_DIRECTORY/hsm-pin)
  b:
    modulePath: /usr/lib/softhsm/libsofthsm2.so
    softhsmConf: /etc/softhsm/softhsm2.conf   # SoftHSM2 only
    token: { slot: 0 }
    pin: file:/etc/fleetpki/secrets/hsm-b.pin

secrets:                      # files (file:/path or /path) or systemd credentials (credential:<name>), never values
  # Each service's unit loads the credentials named here for what it reads (infra/systemd, LoadCredential=).
  postgres:
    owner: credential:pg-owner
    issuer: credential:pg-issuer
    worker: credential:pg-worker
    status: credential:pg-status
    operator: /etc/fleetpki/secrets/pg-operator
  redis: credential:redis-password   # each unit's own file: one Redis ACL user per service
  # etcd takes no password: a client is the user its certificate names (tls.etcdClient)
  backup: credential:backup-cipher-pass   # encrypts the backup repository: without it no backup can be read (docs/backup.md)

tls:                          # the organisation CA's bundle and each part's certificate and key
  caBundle: /etc/fleetpki/tls/ca.pem
  api: { cert: /etc/fleetpki/tls/api.pem, key: credential:api-tls-key }          # the issuer API's HTTPS (clients' certificates checked against caBundle)
  status: { cert: /etc/fleetpki/tls/status.pem, key: credential:status-tls-key }  # the status responders' HTTPS
  postgres: { cert: /etc/fleetpki/tls/postgres.pem, key: credential:postgres-tls-key }    # PostgreSQL, the site agent's child
  redis: { cert: /etc/fleetpki/tls/redis.pem, key: /run/credentials/redis-server.service/tls-key }   # read by Redis itself (redis.conf)
  etcd: { cert: /etc/fleetpki/tls/etcd.pem, key: /run/credentials/fleetpki-etcd.service/server-key }   # etcd members: https, client certificates required; read by etcd (its unit)
  etcdPeer: { cert: /etc/fleetpki/tls/etcd-peer.pem, key: /run/credentials/fleetpki-etcd.service/peer-key }
  etcdClient: { cert: /etc/fleetpki/tls/etcd-client.pem, key: credential:etcd-client-tls-key }  # this host's processes towards etcd

backup:                       # pgBackRest: WAL archive and backups, off the database hosts (docs/backup.md)
  repository: /mnt/fleetpki-backup   # a share both sites mount; S3 in production
  scratch: /srv/fleetpki-restore      # restore drills' scratch cluster: a volume of its own, room for a full copy
  retention: { full: 2, differential: 7 }

crl:
  baseUrl: http://crl.example.net/crl/        # written into certificates: one name for both sites
ocsp:
  url: http://ocsp.example.net/ocsp           # plain HTTP on purpose (RFC 5019): in front of the sites' status httpPort
  maxAgeSeconds: 300
  onDemand: { perAddressPerSecond: 20, concurrency: 1 }

log:
  level: info

api:
  host: 10.0.1.10             # where this host's issuer API listens (off loopback it needs HTTPS)
  tls: true                   # HTTPS; implied by tls.api (without tls.api: the files of 'fleetpki tls server')
  rateLimitPerMinute: 120000
  failedAuthPerMinute: 300
  connections: 16
  reservedConnections: 4

siteLease: { leaseMs: 5000 }
writeWaitMs: 3000
signing: { threads: 2, check: all }
possessionThreads: 1
intentTimeoutSeconds: 60
enrolmentHolds: { labels: [], retryAfterSeconds: 60 }
est: { revokeSupersededAfterSeconds: never }
cmp:
  implicitConfirm: false
  confirmWaitSeconds: 300
  maxClockSkewSeconds: 600
  authBudget: { burst: 10, refillPerSecond: 1 }
  pbmThreads: 1
console: { idleSeconds: 900, maxAgeSeconds: 28800, drills: false }
dualControl: { revocationThreshold: 100, revocationWindowMinutes: 1440, approvalTtlMinutes: 240 }
uploads: { connections: 4, perManufacturer: 2, idleSeconds: 30, progressBytes: 1024, maxSeconds: 3600 }
deviceKeyBundles: { concurrency: 2, maxSeconds: 600 }
`;
