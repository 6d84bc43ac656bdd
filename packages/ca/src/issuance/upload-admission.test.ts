import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetError } from '@fleetpki/core';
import { UploadAdmission } from './upload-admission.js';

function refusal(fn: () => unknown): { code: string; httpStatus: number; retryAfter: unknown } {
  try {
    fn();
  } catch (err) {
    if (isFleetError(err)) return { code: err.code, httpStatus: err.httpStatus, retryAfter: (err.details as { retryAfterSeconds?: unknown }).retryAfterSeconds };
    throw err;
  }
  assert.fail('admitted');
}

describe('UploadAdmission', () => {
  it("refuses a manufacturer's upload beyond its share with 429, and any beyond the total with 503; a release frees the slot once", () => {
    const admission = new UploadAdmission({ total: 3, perManufacturer: 2, retryAfterSeconds: 7 });
    const a1 = admission.admit('a');
    admission.admit('a');
    assert.deepEqual(refusal(() => admission.admit('a')), { code: 'UPLOADS_PER_MANUFACTURER', httpStatus: 429, retryAfter: 7 });
    admission.admit('b');
    assert.deepEqual(refusal(() => admission.admit('c')), { code: 'UPLOADS_BUSY', httpStatus: 503, retryAfter: 7 });
    a1();
    a1(); // a second release of the same slot changes nothing
    assert.equal(admission.inProgress(), 2);
    admission.admit('c');
    assert.deepEqual(refusal(() => admission.admit('a')), { code: 'UPLOADS_BUSY', httpStatus: 503, retryAfter: 7 });
  });
});
