import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, PrimacyError, describeError } from './errors.js';

test('every error code is unique, stable in form and names itself', () => {
  const codes = Object.entries(ErrorCodes);
  assert.equal(new Set(codes.map(([, c]) => c)).size, codes.length);
  for (const [name, code] of codes) assert.equal(code, `PRIMACY_E_${name}`);
});

test('errors describe themselves in one line with their code and keep their cause', () => {
  const cause = new Error('inner');
  const e = new PrimacyError(ErrorCodes.USAGE, 'unknown flag --x', { cause });
  assert.equal(e.toLine(), 'PRIMACY_E_USAGE: unknown flag --x');
  assert.equal(e.cause, cause);
  assert.equal(describeError(new Error('a\nb')), 'a');
  assert.equal(describeError('s'), 's');
});
