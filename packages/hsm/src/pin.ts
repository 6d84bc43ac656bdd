import { readFileSync } from 'node:fs';
import { HsmError } from './errors.js';

/**
 * Resolves a PIN source: `file:/path` (RFC 7512 pin-source), `env:VARIABLE`, or a bare file path.
 * The PIN itself is never logged or put in an error message; only where it was looked for.
 */
export function readPin(source: string): string {
  if (source.startsWith('env:')) {
    const name = source.slice(4);
    const pin = process.env[name];
    if (!pin) throw new HsmError('HSM_PIN_MISSING', `HSM PIN variable ${name} is not set`);
    return pin;
  }
  const path = source.startsWith('file:') ? source.slice(5) : source;
  let pin: string;
  try {
    pin = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new HsmError('HSM_PIN_MISSING', `cannot read HSM PIN file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, err);
  }
  if (!pin) throw new HsmError('HSM_PIN_MISSING', `HSM PIN file ${path} is empty`);
  return pin;
}
