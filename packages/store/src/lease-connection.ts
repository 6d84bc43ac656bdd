import pg from 'pg';
import { pgConnectionConfig, type PgLinkSecurity } from './pg-link.js';

/**
 * The site lease's own connection (ca/site-lease.ts): one client, apart from the pools, so a read that
 * hangs (a server cut off mid-query) blocks nothing else and can be abandoned.
 */
export class LeaseConnection {
  private client: pg.Client | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly applicationName: string,
    private readonly connectTimeoutMs: number,
    /** TLS and the role's password when the link is secured (pgLinkSecurity). */
    private readonly security?: PgLinkSecurity,
  ) {}

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({ ...pgConnectionConfig(this.connectionString, this.security), application_name: this.applicationName, connectionTimeoutMillis: this.connectTimeoutMs });
    // A connection that broke (the server was killed, restarted, rewound) is never used again: the next
    // read connects anew.
    const forget = () => {
      if (this.client === client) this.client = undefined;
    };
    client.on('error', forget);
    client.on('end', forget);
    await client.connect();
    this.client = client;
    return client;
  }

  async inRecovery(): Promise<boolean> {
    return (await (await this.connect()).query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
  }

  /** On a hot standby: the WAL receiver's state and how long ago it last heard from the primary. */
  async receiver(site: string): Promise<{ status: string | null; ageMs: number | null; epoch: number | null; replayLsn: string | null }> {
    const { rows } = await (await this.connect()).query<{ status: string | null; age_ms: number | null; epoch: string | null; replay_lsn: string | null }>(
      // Through a function (migrations/0026): the service roles are not pg_monitor members.
      `SELECT w.status, w.age_ms, w.replay_lsn, (SELECT epoch::text FROM site_state WHERE site = $1) AS epoch FROM fp_wal_receiver() w`,
      [site],
    );
    const r = rows[0]!;
    return { status: r.status, ageMs: r.age_ms, epoch: r.epoch === null ? null : Number(r.epoch), replayLsn: r.replay_lsn };
  }

  async siteStates(): Promise<{ site: string; role: string; epoch: number }[]> {
    const { rows } = await (await this.connect()).query<{ site: string; role: string; epoch: string }>('SELECT site, role, epoch::text FROM site_state ORDER BY epoch DESC, site');
    return rows.map((r) => ({ site: r.site, role: r.role, epoch: Number(r.epoch) }));
  }

  /** Abandons the connection (and whatever it is waiting for). */
  drop(): void {
    const client = this.client;
    this.client = undefined;
    void client?.end().catch(() => undefined);
  }
}
