import type { CborValue } from './cbor.js';
import type { Element } from './der-walk.js';
import { NotExpressible } from './errors.js';

/** A specific extension encoding: the DER inside extnValue to its C509 form and back. */
export interface ExtensionCodec {
  encode(value: Element, path: string): CborValue;
  decode(v: unknown, path: string): Buffer;
}

/** Guards inside encoders: a value outside what the specific form covers is NotExpressible. */
export const need = (condition: unknown, why: string): void => {
  if (!condition) throw new NotExpressible(why);
};
