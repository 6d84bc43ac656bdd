import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, insertCa, listCas, migrate, type Pool } from '@fleetpki/store';
import { CA_IDS } from '@fleetpki/ca';

export interface SyntheticCaDatabase {
  readonly name: string;
  readonly url: string;
  /** Environment for a service process that must work on this database (and no other). */
  readonly env: Record<string, string>;
  readonly pool: Pool;
  readonly caId: string;
  /** `count` more synthetic certificates after those there (issued a minute ago, no OCSP response yet). */
  add(count: number): Promise<void>;
  /** Serials of the synthetic certificates, in insertion order. */
  serials(limit: number, offset?: number): Promise<Buffer[]>;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * A throw-away database on site A with the real CA hierarchy (copied from the site's database, keys in
 * the HSM as usual) and `certificates` synthetic certificate rows: real serials, shards computed as at
 * issuance (last serial byte mod 64), but a placeholder DER. The status benchmarks measure revocation,
 * CRLs and OCSP, which read serials and shards only; signing a million certificates first would take
 * the batch benchmark's 20 minutes and measure nothing more. Nothing here touches the site's own data.
 */
export async function createSyntheticCaDatabase(
  config: FleetConfig,
  certificates: number,
  onProgress?: (line: string) => void,
  /** Called as soon as the database exists, before it is filled: a benchmark stopped meanwhile drops it too. */
  onCreated?: (drop: () => Promise<void>) => void,
  /**
   * derBytes: each row's DER as that many pseudo-random bytes instead of a 2-byte placeholder, for a
   * benchmark whose figure depends on the table's size (a backup's time and size): incompressible, as
   * a certificate's key and signature are.
   */
  options: { derBytes?: number } = {},
): Promise<SyntheticCaDatabase> {
  const siteUrl = config.sites.a.databaseUrl;
  const source = createPool(siteUrl, { max: 1 });
  const cas = await listCas(source);
  await source.end();
  if (!cas.some((c) => c.id === CA_IDS.deviceIssuing)) throw new Error('no device issuing CA on site A: run `pnpm fleetpki ceremony init` (or `pnpm demo`) first');

  const name = `bench_${randomBytes(4).toString('hex')}`;
  const admin = createPool(withDatabase(siteUrl, 'postgres'), { max: 1 });
  await admin.query(`CREATE DATABASE ${name}`);
  const url = withDatabase(siteUrl, name);
  const pool = createPool(url, { max: 8, applicationName: 'fleetpki-bench' });
  let dropped = false;
  // Idempotent: a benchmark drops it when done and again from its clean-up after a failure.
  // The DROP first: WITH (FORCE) ends the pool's connections, so a pool busy with a query (a benchmark
  // stopped mid-way) cannot keep the database alive by not ending.
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await admin.end();
      await pool.end().catch(() => undefined);
    }
  };
  onCreated?.(drop);
  try {
    await migrate(pool, join(config.repoRoot, 'migrations'));
    for (const ca of cas) await insertCa(pool, ca);
    const caId = CA_IDS.deviceIssuing;
    const blocks = Math.ceil((options.derBytes ?? 0) / 64);
    const der = options.derBytes
      ? `substring((SELECT string_agg(sha512(serial || int2send(k::int2)), ''::bytea) FROM generate_series(1, ${blocks}) AS k) FROM 1 FOR ${options.derBytes})`
      : `'\\x3000'::bytea`;
    const insert = (from: number, to: number) =>
      pool.query(
        `WITH rows AS (
           SELECT i, '\\x5b'::bytea || substring(sha256(int8send(i)) FROM 1 FOR 15) AS serial FROM generate_series($2::bigint, $3::bigint) AS i
         ), intents AS (
           INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site)
           SELECT serial, $1, int8send(i + 7000000000000000000) /* syntheticEui64(i) */, 'digitalSignature', 'smart-meter', sha256(serial), 'a' FROM rows
         )
         -- Issued a minute ago: past the responder's settle time, so pre-production starts at once.
         INSERT INTO certificates (serial, ca_id, eui64, key_role, profile, der, not_before, not_after, crl_shard, issued_at)
         SELECT serial, $1, int8send(i + 7000000000000000000) /* syntheticEui64(i) */, 'digitalSignature', 'smart-meter', ${der}, now(), 'infinity', get_byte(serial, 15) % 64, now() - interval '1 minute' FROM rows`,
        [caId, from, to],
      );
    // In slices of 100k, so a million rows show progress and no statement holds a huge snapshot.
    const slice = 100_000;
    for (let from = 1; from <= certificates; from += slice) {
      const to = Math.min(certificates, from + slice - 1);
      await insert(from, to);
      onProgress?.(`${to}/${certificates} synthetic certificates`);
    }
    let count = certificates;
    await pool.query('ANALYZE');
    return {
      name,
      url,
      env: { FLEETPKI_DATABASE_URL: url, FLEETPKI_PG_DATABASE: name },
      pool,
      caId,
      async add(more) {
        await insert(count + 1, count + more);
        count += more;
      },
      async serials(limit, offset = 0) {
        const { rows } = await pool.query<{ serial: Buffer }>(
          `SELECT '\\x5b'::bytea || substring(sha256(int8send(i)) FROM 1 FOR 15) AS serial FROM generate_series($1::bigint, $2::bigint) AS i`,
          [offset + 1, offset + limit],
        );
        return rows.map((r) => r.serial);
      },
      drop,
    };
  } catch (err) {
    await drop();
    throw err;
  }
}

/** The EUI-64 of the i-th synthetic certificate (1-based), as the API takes it. */
export function syntheticEui64(i: number): string {
  return (7_000_000_000_000_000_000n + BigInt(i)).toString(16).toUpperCase().padStart(16, '0');
}
