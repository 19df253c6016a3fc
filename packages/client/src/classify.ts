/**
 * What a failed statement means for routing. Pure, so every code is table-tested.
 *
 * - `read-only`: 1290, the node refused the write because it is read-only: it is not the primary
 *   any more, and the statement did not run.
 * - `not-sent`: the connection was already closed when the statement was handed to it: it never
 *   left, so it may go elsewhere.
 * - `lost`: the connection died (or was killed) while the statement ran: it may or may not have
 *   been executed, so it is never retried.
 * - `statement`: the server refused this statement for its own reasons (duplicate key, syntax, …):
 *   the application's business; the connection stays usable.
 */
export type StatementFailure = 'read-only' | 'not-sent' | 'lost' | 'statement';

interface ErrorFields {
  readonly errno?: unknown;
  readonly code?: unknown;
  readonly fatal?: unknown;
  readonly message?: unknown;
}

export const ER_READ_ONLY = 1290;

const LOST_ERRNOS = new Set([
  1053, // ER_SERVER_SHUTDOWN
  1317, // ER_QUERY_INTERRUPTED: KILL QUERY; a commit may already be in the binlog
  1927, // ER_CONNECTION_KILLED (MariaDB), sent with fatal: false
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  2055, // CR_SERVER_LOST_EXTENDED
]);

const LOST_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_PACKETS_OUT_OF_ORDER',
  'PROTOCOL_UNEXPECTED_PACKET',
]);

/** mysql2's error when a command is added to a connection it already knows is closed. */
const CLOSED_STATE = /can't add new command when connection is in closed state/i;

export function classifyStatementError(err: unknown): StatementFailure {
  if (typeof err !== 'object' || err === null) return 'lost';
  const f = err as ErrorFields;
  const errno = typeof f.errno === 'number' && f.errno > 0 ? f.errno : null;
  const code = typeof f.code === 'string' ? f.code : null;
  const message = typeof f.message === 'string' ? f.message : '';
  if (errno === ER_READ_ONLY) return 'read-only';
  if (errno !== null && LOST_ERRNOS.has(errno)) return 'lost';
  if (code !== null && LOST_CODES.has(code)) return 'lost';
  if (CLOSED_STATE.test(message)) return 'not-sent';
  // Anything else that killed the connection killed it mid-statement.
  if (f.fatal === true) return 'lost';
  return 'statement';
}

/** Whether the connection must be thrown away after this failure. */
export function connectionIsDead(failure: StatementFailure, err: unknown): boolean {
  if (failure !== 'statement') return true;
  return typeof err === 'object' && err !== null && (err as ErrorFields).fatal === true;
}

const CONFIGURATION_ERRNOS = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR
  1045, // ER_ACCESS_DENIED_ERROR
  1049, // ER_BAD_DB_ERROR: the connection's database does not exist
  1251, // ER_NOT_SUPPORTED_AUTH_MODE
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
  1820, // ER_MUST_CHANGE_PASSWORD
  1862, // ER_MUST_CHANGE_PASSWORD_LOGIN
]);

/** A connection refused for the application's own credentials or settings: waiting for another primary will not help. */
export function isConfigurationError(err: unknown): boolean {
  const errno = typeof err === 'object' && err !== null ? (err as ErrorFields).errno : undefined;
  return typeof errno === 'number' && CONFIGURATION_ERRNOS.has(errno);
}
