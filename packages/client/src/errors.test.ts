import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, ClientErrorCodes, OutcomeUnknownError, isClientError, oneLine } from './errors.js';

test('every client error code is unique, stable in form and names itself', () => {
  const codes = Object.entries(ClientErrorCodes);
  assert.equal(new Set(codes.map(([, c]) => c)).size, codes.length);
  for (const [name, code] of codes) assert.equal(code, `PRIMACY_E_${name}`);
});

test('client errors describe themselves in one line with their code and keep their cause', () => {
  const cause = Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST' });
  const e = new OutcomeUnknownError('db1', 4, cause);
  assert.equal(e.code, 'PRIMACY_E_OUTCOME_UNKNOWN');
  assert.equal(e.cause, cause);
  assert.equal(e.node, 'db1');
  assert.equal(e.epoch, 4);
  assert.match(e.toLine(), /^PRIMACY_E_OUTCOME_UNKNOWN: .*may or may not have been executed.*PROTOCOL_CONNECTION_LOST: Connection lost/);
  assert.ok(isClientError(e, ClientErrorCodes.OUTCOME_UNKNOWN));
  assert.ok(!isClientError(e, ClientErrorCodes.NO_PRIMARY));
  assert.ok(!isClientError(cause));
  assert.equal(oneLine(new ClientError(ClientErrorCodes.NO_PRIMARY, 'none\nmore')), 'PRIMACY_E_NO_PRIMARY: none\nmore');
  assert.equal(oneLine(new Error('a\nb')), 'a');
  assert.equal(oneLine('s'), 's');
});
