import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError } from './errors.js';

/**
 * How fleetpki's programs run: from the build (`node services/NAME/dist/main.js`, what an installation
 * has) or from the TypeScript sources through tsx (development: no build step between an edit and a run).
 */
export type Runtime = 'compiled' | 'source';
export const RUNTIMES: readonly Runtime[] = ['compiled', 'source'];

/**
 * Node flags that run our sources: the packages' `fleetpki-source` export condition (their src/ instead
 * of dist/) and tsx's loader. Only here, so no compiled program ever asks for tsx (a devDependency).
 */
export const SOURCE_NODE_FLAGS: readonly string[] = ['--conditions=fleetpki-source', '--import', 'tsx'];

/** The runtime of the code running now: this very module is src/runtime.ts under tsx, dist/runtime.js in a build. */
export const runningRuntime: Runtime = import.meta.url.endsWith('.ts') ? 'source' : 'compiled';

/**
 * The one setting that chooses how programs this process starts run: FLEETPKI_RUNTIME=compiled|source,
 * and without it the runtime this process runs in (so `pnpm fleetpki` starts sources and an installed
 * `node .../dist/main.js` starts builds). Tests set it to run services from the build while the test
 * code itself runs from sources.
 */
export function runtimeSetting(env: Record<string, string | undefined> = process.env): Runtime {
  const value = env.FLEETPKI_RUNTIME;
  if (value === undefined || value === '') return runningRuntime;
  if (!(RUNTIMES as readonly string[]).includes(value)) throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_RUNTIME must be one of ${RUNTIMES.join(', ')} (got "${value}")`);
  return value as Runtime;
}

/**
 * Node flags for a child process or thread that runs a module file beside the caller's own
 * (hsm-process-child, generate-worker): the caller's file tells, since a module and its sibling are
 * either both sources or both built.
 */
export function moduleNodeFlags(file: string): string[] {
  return file.endsWith('.ts') ? [...SOURCE_NODE_FLAGS] : [];
}

/**
 * The node arguments that start a fleetpki program (a service's main, the CLI's) from the repository or
 * installation at `root`: [...flags, file]. A program missing in that runtime is a configuration
 * error named at once, rather than a child that dies with a module-not-found its parent may never print.
 */
export function entryPoint(root: string, program: string, runtime: Runtime = runtimeSetting()): string[] {
  const file = runtime === 'compiled' ? join(root, 'services', program, 'dist', 'main.js') : join(root, 'services', program, 'src', 'main.ts');
  if (!existsSync(file)) {
    const hint = runtime === 'compiled' ? 'run `pnpm build` first, or set FLEETPKI_RUNTIME=source to run the sources through tsx' : 'an installation holds only the build: leave FLEETPKI_RUNTIME unset or set it to compiled';
    throw new FleetError('CONFIG_INVALID', `${program} cannot start from ${runtime === 'compiled' ? 'the build' : 'sources'}: ${file} is missing; ${hint}`);
  }
  return runtime === 'compiled' ? [file] : [...SOURCE_NODE_FLAGS, file];
}

/**
 * The environment a fleetpki program is started with: the caller's, without libpq's connection variables
 * (PGHOST, PGSSLMODE, PGPASSFILE ...) and NODE_EXTRA_CA_CERTS. A program is configured from its file
 * (tls.*, secrets.*): a shell's variables must not make a link work that the file leaves unsecured
 * (node-postgres takes TLS and passwords from them when a pool is given none), nor trust a CA the file
 * does not name. scripts/test-secure.sh sets them for the tests' own connections only.
 */
export function programEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^PG[A-Z]+$/.test(k) && k !== 'NODE_EXTRA_CA_CERTS'));
}
