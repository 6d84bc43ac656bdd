import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { entryPoint, isFleetError, programEnvironment, type FleetConfig, type HttpsPart, type InternalHttps, type SiteId } from '@fleetpki/core';
import { inNetns } from './exec.js';
import { deploymentFile, hostOwnFile } from './deployment-file.js';

/**
 * Starts a service as its own process, as it runs in production: its build (services/NAME/dist/main.js)
 * or its sources through tsx, as FLEETPKI_RUNTIME says (entryPoint). `output: 'pipe'` gives the caller
 * the service's stdout and stderr (a test reading what it says); else they are this process's.
 */
export function startService(config: FleetConfig, name: string, env: NodeJS.ProcessEnv = {}, options: { output?: 'inherit' | 'pipe' } = {}): ChildProcess {
  // FLEETPKI_SERVICE_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the service under load.
  const extra = process.env.FLEETPKI_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  // On the site's own host: its network namespace when the sites run in namespaces.
  const site = (env.FLEETPKI_SITE ?? process.env.FLEETPKI_SITE ?? config.site) as SiteId;
  const [file, args] = inNetns(config.sites[site]?.netns, process.execPath, [...extra, ...entryPoint(config.programsDir, name)]);
  // This host's own file when the caller was configured from one, else the deployment's file when `sites
  // up` wrote one (a caller's FLEETPKI_CONFIG in `env` wins).
  const own = hostOwnFile(config);
  const configFile = own ? { FLEETPKI_CONFIG: own } : existsSync(deploymentFile(config)) ? { FLEETPKI_CONFIG: deploymentFile(config) } : {};
  const child = spawn(file, args, {
    env: { ...programEnvironment(), FLEETPKI_LOG_LEVEL: 'warn', ...configFile, ...env },
    stdio: ['ignore', options.output ?? 'inherit', options.output ?? 'inherit'],
  });
  return child;
}

/**
 * Waits until `url` answers 2xx. With `via`, through fleetpki's internal client of that part (https
 * checked against the configured bundle): a certificate it does not vouch for ends the wait at once
 * (<PART>_TLS_UNTRUSTED), as no amount of waiting mends it.
 */
export async function waitForHttp(url: string, timeoutMs = 30_000, via?: { https: InternalHttps; part: HttpsPart }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      if (via) {
        const answer = await via.https.request(via.part, url, { timeoutMs: 5_000 });
        if (answer.status >= 200 && answer.status < 300) return;
        last = `HTTP ${answer.status}`;
      } else {
        const res = await fetch(url);
        if (res.ok) return;
        last = `HTTP ${res.status}`;
      }
    } catch (err) {
      if (isFleetError(err) && /_TLS_(UNTRUSTED|MATERIAL)$/.test(err.code)) throw err;
      // not listening yet (or, kept for the message, something that is not what was expected)
      last = isFleetError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
  });
}
