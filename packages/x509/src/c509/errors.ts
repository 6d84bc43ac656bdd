import { FleetError } from '@fleetpki/core';

/**
 * C509_MALFORMED: the CBOR is not a C509 item (truncated, wrong shape, unknown code point).
 * C509_UNCONVERTIBLE: a DER certificate uses something C509 cannot express, or not so that the DER
 * comes back byte for byte; the message names the field.
 * C509_UNSUPPORTED: C509 can express it but fleetpki does not implement that part of the draft.
 */
export class C509Error extends FleetError {
  constructor(code: 'C509_MALFORMED' | 'C509_UNCONVERTIBLE' | 'C509_UNSUPPORTED', message: string) {
    super(code, message, { httpStatus: 400 });
  }
}

/** Thrown inside an encoder when a value has no specific C509 encoding; callers fall back or report. */
export class NotExpressible extends Error {}
