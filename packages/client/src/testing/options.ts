/** Test helper: asserts that building a client from bad options fails with one clear line. */
import assert from 'node:assert/strict';
import { ClientError } from '../errors.js';

export function rejectsOptions(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ClientError, String(err));
    assert.equal(err.code, 'PRIMACY_E_OPTIONS_INVALID');
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}
