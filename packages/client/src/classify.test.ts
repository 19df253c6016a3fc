import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyStatementError, connectionIsDead, isConfigurationError, type StatementFailure } from './classify.js';

/** An error as mysql2 builds it from a server error packet. */
function serverError(errno: number, code: string, message: string, fatal = false): Error {
  return Object.assign(new Error(message), { errno, code, sqlMessage: message, sqlState: 'HY000', fatal });
}

function networkError(code: string, errno: number): Error {
  return Object.assign(new Error(`read ${code}`), { code, errno, syscall: 'read', fatal: true });
}

const cases: ReadonlyArray<readonly [string, unknown, StatementFailure]> = [
  ['1290 read-only', serverError(1290, 'ER_OPTION_PREVENTS_STATEMENT', 'The MariaDB server is running with the --read-only option so it cannot execute this statement'), 'read-only'],
  ['1927 connection killed (MariaDB sends it with fatal: false)', serverError(1927, 'ER_CONNECTION_KILLED', 'Connection was killed'), 'lost'],
  ['1053 server shutdown', serverError(1053, 'ER_SERVER_SHUTDOWN', 'Server shutdown in progress'), 'lost'],
  ['2013 lost during query', serverError(2013, 'CR_SERVER_LOST', 'Lost connection to server during query'), 'lost'],
  ['1317 query interrupted', serverError(1317, 'ER_QUERY_INTERRUPTED', 'Query execution was interrupted'), 'lost'],
  ['ECONNRESET', networkError('ECONNRESET', -104), 'lost'],
  ['EPIPE', networkError('EPIPE', -32), 'lost'],
  ['server closed the connection', Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }), 'lost'],
  ['query timeout', Object.assign(new Error('Query inactivity timeout'), { code: 'PROTOCOL_SEQUENCE_TIMEOUT', errno: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true }), 'lost'],
  ['another fatal error', Object.assign(new Error('Unexpected packet while no commands in the queue'), { code: 'PROTOCOL_SOMETHING', fatal: true }), 'lost'],
  ['not an Error at all', 'boom', 'lost'],
  ['closed before sending', Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true }), 'not-sent'],
  ['1062 duplicate key', serverError(1062, 'ER_DUP_ENTRY', "Duplicate entry '1' for key 'PRIMARY'"), 'statement'],
  ['1064 syntax', serverError(1064, 'ER_PARSE_ERROR', 'You have an error in your SQL syntax'), 'statement'],
  ['1213 deadlock', serverError(1213, 'ER_LOCK_DEADLOCK', 'Deadlock found when trying to get lock'), 'statement'],
  ['1142 denied', serverError(1142, 'ER_TABLEACCESS_DENIED_ERROR', 'INSERT command denied'), 'statement'],
];

describe('classifyStatementError', () => {
  for (const [name, err, expected] of cases) {
    it(`${name} → ${expected}`, () => assert.equal(classifyStatementError(err), expected));
  }

  it('tells the application\'s own connection problems from the server\'s', () => {
    assert.equal(isConfigurationError(serverError(1045, 'ER_ACCESS_DENIED_ERROR', "Access denied for user 'app'")), true);
    assert.equal(isConfigurationError(serverError(1049, 'ER_BAD_DB_ERROR', "Unknown database 'nope'")), true);
    assert.equal(isConfigurationError(serverError(1040, 'ER_CON_COUNT_ERROR', 'Too many connections')), false);
    assert.equal(isConfigurationError(networkError('ECONNREFUSED', -111)), false);
  });

  it('keeps the connection only for a plain statement error', () => {
    assert.equal(connectionIsDead('statement', serverError(1062, 'ER_DUP_ENTRY', 'dup')), false);
    assert.equal(connectionIsDead('statement', serverError(1064, 'X', 'fatal one', true)), true);
    for (const f of ['read-only', 'not-sent', 'lost'] as const) assert.equal(connectionIsDead(f, new Error('x')), true);
  });
});
