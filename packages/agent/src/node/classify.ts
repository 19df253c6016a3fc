/**
 * What a failed probe means for failover. `down` is the only class that can count towards a failover;
 * `refusing` (1040 and its kind) means the server is alive and merely turning clients away, and
 * `auth_error` means our own credentials are wrong. Pure, so every code is table-tested.
 */
import type { Health } from '@primacy/common';

export interface Classified {
  readonly health: Health;
  /** One line: the error's code (and server errno) and its first message line. */
  readonly message: string;
}

/** The fields mysql2, node's net module and our session put on errors. */
interface ErrorFields {
  readonly errno?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly sqlMessage?: unknown;
}

/** Our session's own code for a query or connect that outlived its timeout. */
export const SESSION_TIMEOUT = 'PRIMACY_SESSION_TIMEOUT';

const DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  // A unix socket path that does not exist: mysqld is not running there.
  'ENOENT',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  SESSION_TIMEOUT,
]);

const DOWN_ERRNOS = new Set([
  1053, // ER_SERVER_SHUTDOWN: the server is going away
  1927, // ER_CONNECTION_KILLED (MariaDB), sent with fatal: false
  2002, // CR_CONNECTION_ERROR
  2003, // CR_CONN_HOST_ERROR
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
]);

const REFUSING_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR: too many connections
  1043, // ER_HANDSHAKE_ERROR: bad handshake, the server answered
  1129, // ER_HOST_IS_BLOCKED: too many connection errors from this host
  1203, // ER_TOO_MANY_USER_CONNECTIONS: max_user_connections
  1226, // ER_USER_LIMIT_REACHED: max_connections_per_hour and friends
  1317, // ER_QUERY_INTERRUPTED
  3032, // ER_SERVER_OFFLINE_MODE (MySQL)
  3168, // ER_SERVER_ISNT_AVAILABLE (MySQL, during start-up or shutdown of a plugin)
]);

const AUTH_ERRNOS = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR
  1045, // ER_ACCESS_DENIED_ERROR
  1130, // ER_HOST_NOT_PRIVILEGED
  1142, // ER_TABLEACCESS_DENIED_ERROR
  1143, // ER_COLUMNACCESS_DENIED_ERROR
  1227, // ER_SPECIFIC_ACCESS_DENIED_ERROR: the agent user lacks a privilege
  1251, // ER_NOT_SUPPORTED_AUTH_MODE
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
  1820, // ER_MUST_CHANGE_PASSWORD
  1862, // ER_MUST_CHANGE_PASSWORD_LOGIN
  3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
  4151, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
]);

const STARTING = /server is (starting|initializing|not ready)|starting up/i;

export function classifyError(err: unknown): Classified {
  return { health: healthOf(rootCause(err)), message: describeSqlError(err) };
}

/** Our own wrappers (PrimacyError `PRIMACY_E_…` with a cause) are judged by what they wrap. */
function rootCause(err: unknown): unknown {
  let e = err;
  for (let depth = 0; depth < 5; depth++) {
    if (!(e instanceof Error) || e.cause === undefined) return e;
    const code = (e as ErrorFields).code;
    if (typeof code !== 'string' || !code.startsWith('PRIMACY_E_')) return e;
    e = e.cause;
  }
  return e;
}

function healthOf(err: unknown): Health {
  const { errno, code, text } = fieldsOf(err);
  if (errno !== null) {
    if (DOWN_ERRNOS.has(errno)) return 'down';
    if (AUTH_ERRNOS.has(errno)) return 'auth_error';
    // Any other server error: the server answered, so it is alive, whatever it disliked.
    return 'refusing';
  }
  if (code !== null && DOWN_CODES.has(code)) return 'down';
  if (STARTING.test(text)) return 'refusing';
  // Anything else without a server errno (mysql2's "connection is in closed state" among them):
  // nothing proves the server alive.
  return 'down';
}

/** The server's errno, when the error came from the server. */
export function serverErrno(err: unknown): number | null {
  return fieldsOf(err).errno;
}

/** One line: `CODE (errno): first line of the message`. */
export function describeSqlError(err: unknown): string {
  const { errno, code, text } = fieldsOf(err);
  const firstLine = text.split('\n')[0] ?? '';
  const label = code !== null && errno !== null ? `${code} (${errno})` : (code ?? (errno !== null ? String(errno) : 'Error'));
  return firstLine === '' ? label : `${label}: ${firstLine}`;
}

function fieldsOf(err: unknown): { errno: number | null; code: string | null; text: string } {
  if (typeof err !== 'object' || err === null) return { errno: null, code: null, text: String(err) };
  const f = err as ErrorFields;
  const code = typeof f.code === 'string' && f.code !== '' ? f.code : null;
  // node's network errors carry a negative errno (the libuv code) and mysql2's timeouts a string one;
  // only the server's errnos are positive numbers.
  const errno = typeof f.errno === 'number' && f.errno > 0 ? f.errno : null;
  const text = typeof f.sqlMessage === 'string' ? f.sqlMessage : typeof f.message === 'string' ? f.message : '';
  return { errno, code, text };
}
