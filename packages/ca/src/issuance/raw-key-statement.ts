import { FleetError, type Eui64, type KeyRole } from '@fleetpki/core';
import { rawKeyStatementBytes } from '@fleetpki/manifest';
import type { ManifestKeyStore } from './store.js';
import { InputRuleError, parseDevicePublicKey, readStrictBase64, type DevicePublicKey, type PossessionVerifier } from '@fleetpki/x509';

/**
 * One rule for raw public keys, batch or online: a key without a CSR (no proof of possession) is taken
 * only when the manufacturer's registered manifest-signing key vouches for it. In a batch the signed
 * manifest does; online, a signed statement naming the manufacturer, the device, the key role and the
 * key (`rawKeyStatementBytes`, packages/manifest). The signature is checked where CSRs' are (the
 * possession threads).
 */
export class RawKeyStatements {
  constructor(
    private readonly store: ManifestKeyStore,
    private readonly possession: PossessionVerifier,
  ) {}

  /** The key, once its statement verifies; RAW_KEY_UNSIGNED, MANIFEST_KEY_MISSING or RAW_KEY_SIGNATURE_INVALID otherwise. */
  async prove(request: { manufacturerId: string; eui64: Eui64; keyRole: KeyRole; publicKey: DevicePublicKey; signature: string | undefined }): Promise<DevicePublicKey> {
    const manifestKey = await this.store.getManufacturerManifestKey(request.manufacturerId);
    if (request.signature === undefined) {
      throw new FleetError(
        'RAW_KEY_UNSIGNED',
        `a raw public key needs "publicKeySignature": the statement naming manufacturer, device, key role and key, signed by ${request.manufacturerId}'s registered manifest-signing key${manifestKey ? '' : ' (none registered yet: pnpm fleetpki manufacturers set-key)'}; or send a CSR`,
        { httpStatus: 422 },
      );
    }
    if (!manifestKey) throw new FleetError('MANIFEST_KEY_MISSING', `manufacturer ${request.manufacturerId} has no registered manifest-signing key (pnpm fleetpki manufacturers set-key)`, { httpStatus: 400 });
    const invalid = (why: string) => new FleetError('RAW_KEY_SIGNATURE_INVALID', `publicKeySignature ${why}`, { httpStatus: 422 });
    let signature: Buffer;
    try {
      signature = readStrictBase64(request.signature, 'publicKeySignature');
    } catch (err) {
      if (err instanceof InputRuleError) throw invalid(`is not canonical base64: ${err.message}`);
      throw err;
    }
    if (signature.length < 8 || signature.length > 80) throw invalid('is not a DER ECDSA P-256 signature');
    const statement = rawKeyStatementBytes({ manufacturerId: request.manufacturerId, eui64: request.eui64, keyRole: request.keyRole, spki: request.publicKey.spki });
    const verified = await this.possession.verify(parseDevicePublicKey(manifestKey.toString('base64')), statement, signature);
    if (!verified) throw invalid(`does not verify with ${request.manufacturerId}'s registered manifest-signing key over the statement for this device, key role and key`);
    return request.publicKey;
  }
}
