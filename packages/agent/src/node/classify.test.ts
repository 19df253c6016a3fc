import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, PrimacyError } from '@primacy/common';
import type { Health } from '@primacy/common';
import { classifyError, describeSqlError, SESSION_TIMEOUT } from './classify.js';

/** An error as mysql2 builds it from a server error packet. */
function serverError(errno: number, code: string, message: string): Error {
  return Object.assign(new Error(message), { errno, code, sqlMessage: message, sqlState: 'HY000', fatal: false });
}

/** An error as node's net module builds it (negative libuv errno). */
function networkError(code: string, errno = -1): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:3306`), { code, errno, syscall: 'connect', fatal: true });
}

const cases: ReadonlyArray<readonly [string, unknown, Health]> = [
  // Not there at all, or gone mid-conversation: the only class that can count towards a failover.
  ['connection refused', networkError('ECONNREFUSED', -111), 'down'],
  ['connect timeout (mysql2)', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT', errno: 'ETIMEDOUT' }), 'down'],
  ['connection reset', networkError('ECONNRESET', -104), 'down'],
  ['broken pipe', networkError('EPIPE', -32), 'down'],
  ['host unreachable', networkError('EHOSTUNREACH', -113), 'down'],
  ['network unreachable', networkError('ENETUNREACH', -101), 'down'],
  ['socket file missing', networkError('ENOENT', -2), 'down'],
  ['socket closed by the server', Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }), 'down'],
  ['mysql2 query timeout', Object.assign(new Error('Query inactivity timeout'), { code: 'PROTOCOL_SEQUENCE_TIMEOUT', errno: 'PROTOCOL_SEQUENCE_TIMEOUT' }), 'down'],
  ['our session timeout', Object.assign(new Error('query timed out after 1000 ms on 127.0.0.1:3306'), { code: SESSION_TIMEOUT }), 'down'],
  ['closed state', Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true }), 'down'],
  ['1927 connection killed (MariaDB, fatal: false)', serverError(1927, 'ER_CONNECTION_KILLED', 'Connection was killed'), 'down'],
  ['1053 server shutdown', serverError(1053, 'ER_SERVER_SHUTDOWN', 'Server shutdown in progress'), 'down'],
  ['2013 lost connection', serverError(2013, 'CR_SERVER_LOST', 'Lost connection to server during query'), 'down'],
  ['2006 gone away', serverError(2006, 'CR_SERVER_GONE_ERROR', 'MySQL server has gone away'), 'down'],
  ['not an Error at all', 'boom', 'down'],
  // Alive but turning clients away: never a reason to fail over.
  ['1040 too many connections', serverError(1040, 'ER_CON_COUNT_ERROR', 'Too many connections'), 'refusing'],
  ['1203 max_user_connections', serverError(1203, 'ER_TOO_MANY_USER_CONNECTIONS', "User primacy already has more than 'max_user_connections' active connections"), 'refusing'],
  ['1226 user resource limit', serverError(1226, 'ER_USER_LIMIT_REACHED', "User 'primacy' has exceeded the 'max_questions' resource"), 'refusing'],
  ['1129 host blocked', serverError(1129, 'ER_HOST_IS_BLOCKED', "Host '10.0.0.5' is blocked because of many connection errors"), 'refusing'],
  ['1317 query interrupted', serverError(1317, 'ER_QUERY_INTERRUPTED', 'Query execution was interrupted'), 'refusing'],
  ['1043 bad handshake', serverError(1043, 'ER_HANDSHAKE_ERROR', 'Bad handshake'), 'refusing'],
  ['3032 offline mode (MySQL)', serverError(3032, 'ER_SERVER_OFFLINE_MODE', "The server is currently in offline mode"), 'refusing'],
  ['server is starting (no errno)', new Error('Server is starting up, try again'), 'refusing'],
  ['any other server error: it answered', serverError(1146, 'ER_NO_SUCH_TABLE', "Table 'primacy.heartbeat' doesn't exist"), 'refusing'],
  ['server errno mysql2 has no name for', Object.assign(new Error('Some future error'), { errno: 4999 }), 'refusing'],
  // Our own credentials or privileges are wrong.
  ['1045 access denied', serverError(1045, 'ER_ACCESS_DENIED_ERROR', "Access denied for user 'primacy'@'localhost' (using password: YES)"), 'auth_error'],
  ['1044 database access denied', serverError(1044, 'ER_DBACCESS_DENIED_ERROR', "Access denied for user 'primacy'@'%' to database 'primacy'"), 'auth_error'],
  ['1698 no password', serverError(1698, 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR', "Access denied for user 'root'@'localhost'"), 'auth_error'],
  ['1130 host not allowed', serverError(1130, 'ER_HOST_NOT_PRIVILEGED', "Host '10.0.0.5' is not allowed to connect to this MariaDB server"), 'auth_error'],
  ['1227 missing privilege', serverError(1227, 'ER_SPECIFIC_ACCESS_DENIED_ERROR', 'Access denied; you need (at least one of) the SUPER privilege(s) for this operation'), 'auth_error'],
  ['4151 account locked (MariaDB)', serverError(4151, 'ER_ACCOUNT_HAS_BEEN_LOCKED', 'Access denied, this account is locked'), 'auth_error'],
  // Our wrappers are judged by what they wrap.
  [
    'statement error wrapping 1040',
    new PrimacyError(ErrorCodes.NODE_STATEMENT, 'SET GLOBAL read_only failed', { cause: serverError(1040, 'ER_CON_COUNT_ERROR', 'Too many connections') }),
    'refusing',
  ],
  [
    'statement error wrapping a refused connection',
    new PrimacyError(ErrorCodes.NODE_STATEMENT, 'SET GLOBAL read_only failed', { cause: networkError('ECONNREFUSED', -111) }),
    'down',
  ],
];

describe('classifyError', () => {
  for (const [name, err, health] of cases) {
    it(`${name} → ${health}`, () => {
      assert.equal(classifyError(err).health, health);
    });
  }

  it('gives one line with the code and errno', () => {
    const err = serverError(1040, 'ER_CON_COUNT_ERROR', 'Too many connections\nsecond line');
    assert.equal(classifyError(err).message, 'ER_CON_COUNT_ERROR (1040): Too many connections');
    assert.equal(describeSqlError(networkError('ECONNREFUSED', -111)), 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:3306');
    assert.equal(describeSqlError(Object.assign(new Error(''), { code: 'ECONNREFUSED' })), 'ECONNREFUSED');
  });
});
