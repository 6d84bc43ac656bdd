// The resolved deployment as an operator reads it (fleetpki config check): every value, where it came
// from, and no secret. Secrets are files in the configuration; a password inside a URL is redacted.
import { stringify } from 'yaml';
import type { DeploymentInput } from './schema.js';
import type { FleetConfig } from './types.js';

function redact(value: unknown): unknown {
  if (typeof value === 'string') {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || !URL.canParse(value)) return value;
    const u = new URL(value);
    if (!u.password) return value;
    u.password = 'REDACTED';
    return u.toString();
  }
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]));
  return value;
}

/** YAML of the resolved configuration, headed by its file and the keys the environment set. */
export function describeConfig(config: FleetConfig, fromEnv: ReadonlyMap<string, string>): string {
  const overrides = [...fromEnv].map(([key, variable]) => `#   ${key} <- ${variable}`);
  const head = [
    `# configuration file: ${config.configFile ?? 'none (defaults: the local two-site simulation)'}`,
    ...(overrides.length ? ['# keys set by the environment (they win over the file):', ...overrides] : ['# no key set by the environment']),
  ];
  return `${head.join('\n')}\n${stringify(redact(config), { lineWidth: 0 })}`;
}

/** A configuration file's text: a comment heading it, then the document (fleetpki sites up writes one). */
export function renderConfigFile(doc: DeploymentInput, header: readonly string[]): string {
  return `${header.map((line) => `# ${line}`).join('\n')}\n${stringify(doc, { lineWidth: 0 })}`;
}
