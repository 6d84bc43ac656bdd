import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type FleetConfig } from '@fleetpki/core';

/** A throw-away two-site PostgreSQL layout with TLS (test/postgres-tls.test.ts): its folder, material, ports and password files. */
export interface PgTlsFixture {
  readonly dir: string;
  readonly caBundle: string;
  readonly cert: string;
  readonly key: string;
  readonly ports: { readonly a: number; readonly b: number };
  /** Password file per role (secrets.postgres.<role>). */
  passwords: Partial<Record<'owner' | 'issuer' | 'worker' | 'status' | 'operator', string>>;
}

/** A secret file as an operator would write it: 0600, with the trailing newline `echo` leaves. */
export function writeSecret(dir: string, name: string, value: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return path;
}

let n = 0;

/**
 * The configuration a deployment with these files would load: through the configuration file and
 * loadConfig, as a service reads it, with nothing from this process's environment (the suite's own
 * sites, ports and database stay out of it).
 */
export function pgTlsConfig(f: PgTlsFixture): FleetConfig {
  const yaml = {
    paths: { state: join(f.dir, 'state'), deployment: join(f.dir, 'deployment') },
    database: { name: 'fleetpki' },
    sites: {
      a: { dir: join(f.dir, 'site-a'), postgres: { port: f.ports.a } },
      b: { dir: join(f.dir, 'site-b'), postgres: { port: f.ports.b } },
    },
    secrets: { postgres: f.passwords },
    tls: { caBundle: f.caBundle, postgres: { cert: f.cert, key: f.key } },
  };
  // Made here with the default mode (0755): the clusters run as the postgres OS user, which must traverse them.
  for (const site of [yaml.sites.a, yaml.sites.b]) mkdirSync(site.dir, { recursive: true });
  // JSON is YAML: the file needs no YAML writer.
  const file = join(f.dir, `fleetpki-${n++}.yaml`);
  writeFileSync(file, JSON.stringify(yaml, null, 2));
  return loadConfig({ FLEETPKI_CONFIG: file });
}
