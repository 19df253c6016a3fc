/**
 * One dedicated mysql2 connection to one server (never a pool), behind the tiny `SqlSession` interface
 * so the flavor drivers can also run on recorded server output.
 *
 * Any error destroys the connection and the next query reconnects: after a failure nothing on the wire
 * can be trusted, and MariaDB even sends 1927 (killed) and 1053 (shutdown) with `fatal: false`.
 * A query that outlives its timeout is also killed on the server, from a fresh connection, because the
 * server otherwise keeps running it (FACTS.md, mysql2).
 */
import mysql, { type Connection } from 'mysql2';
import { SESSION_TIMEOUT } from './classify.js';
import type { Endpoint } from './driver.js';

export type SqlParam = string | number | boolean | null;
export type Row = Readonly<Record<string, unknown>>;

export interface QueryOptions {
  /** Overrides the session's query timeout, for statements that wait on purpose. */
  readonly timeoutMs?: number;
}

export interface SqlSession {
  /** Runs one statement, params bound client-side. Rows for SELECT and SHOW, [] for anything else. */
  query(sql: string, params?: readonly SqlParam[], options?: QueryOptions): Promise<readonly Row[]>;
  /** The server's id for the open connection, null while none is open. */
  readonly threadId: number | null;
  close(): Promise<void>;
}

export interface SessionOptions {
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /**
   * Called when the server closes or resets an open connection that this session did not discard
   * itself: a crashed server closes every connection at once, well before the next probe.
   */
  readonly onDrop?: (() => void) | undefined;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = Object.freeze({ connectTimeoutMs: 1000, queryTimeoutMs: 1000 });

export class SessionTimeoutError extends Error {
  readonly code = SESSION_TIMEOUT;
  constructor(what: 'connect' | 'query', ms: number, where: string) {
    super(`${what} timed out after ${ms} ms on ${where}`);
    this.name = 'SessionTimeoutError';
  }
}

export class SessionClosedError extends Error {
  readonly code = 'PRIMACY_SESSION_CLOSED';
  constructor(where: string) {
    super(`session to ${where} is closed`);
    this.name = 'SessionClosedError';
  }
}

export function describeEndpoint(endpoint: Endpoint): string {
  return endpoint.socket ? endpoint.socket : `${endpoint.host}:${endpoint.port}`;
}

export class MysqlSession implements SqlSession {
  readonly #endpoint: Endpoint;
  readonly #options: SessionOptions;
  readonly #where: string;
  #conn: Connection | null = null;
  // Statements run one at a time, so each one's timeout measures only its own round trip.
  #tail: Promise<unknown> = Promise.resolve();
  readonly #kills = new Set<Promise<void>>();
  #closed = false;

  constructor(endpoint: Endpoint, options: Partial<SessionOptions> = {}) {
    this.#endpoint = endpoint;
    this.#options = { ...DEFAULT_SESSION_OPTIONS, ...options };
    this.#where = describeEndpoint(endpoint);
  }

  get threadId(): number | null {
    return this.#conn?.threadId ?? null;
  }

  query(sql: string, params: readonly SqlParam[] = [], options: QueryOptions = {}): Promise<readonly Row[]> {
    const run = (): Promise<readonly Row[]> => this.#run(sql, params, options.timeoutMs ?? this.#options.queryTimeoutMs);
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#conn) this.#discard(this.#conn);
    await Promise.all([...this.#kills]);
  }

  async #run(sql: string, params: readonly SqlParam[], timeoutMs: number): Promise<readonly Row[]> {
    if (this.#closed) throw new SessionClosedError(this.#where);
    const conn = this.#conn ?? (await this.#open());
    try {
      return await send(conn, sql, params, timeoutMs, this.#where);
    } catch (err) {
      this.#discard(conn);
      if (err instanceof SessionTimeoutError) this.#killQuery(conn.threadId);
      throw err;
    }
  }

  async #open(): Promise<Connection> {
    const conn = await openConnection(this.#endpoint, this.#options.connectTimeoutMs, this.#where);
    // Closed while connecting: do not keep the connection.
    if (this.#closed) {
      conn.destroy();
      throw new SessionClosedError(this.#where);
    }
    // An idle connection the server drops (wait_timeout, restart, crash) is forgotten, not reused.
    const forget = (): void => {
      const dropped = this.#conn === conn && !this.#closed;
      this.#discard(conn);
      if (dropped) this.#options.onDrop?.();
    };
    conn.on('error', forget);
    conn.on('end', forget);
    this.#conn = conn;
    return conn;
  }

  #discard(conn: Connection): void {
    if (this.#conn === conn) this.#conn = null;
    conn.destroy();
  }

  /** Best effort: the server keeps running a statement whose client went away. */
  #killQuery(threadId: number | undefined): void {
    if (!threadId) return;
    const kill = (async () => {
      const killer = await openConnection(this.#endpoint, this.#options.connectTimeoutMs, this.#where);
      try {
        await send(killer, 'KILL QUERY ?', [threadId], this.#options.queryTimeoutMs, this.#where);
      } finally {
        killer.destroy();
      }
    })()
      .catch(() => undefined)
      .finally(() => this.#kills.delete(kill));
    this.#kills.add(kill);
  }
}

/** Connects and completes the handshake within `timeoutMs`, or fails; never hangs. */
function openConnection(endpoint: Endpoint, timeoutMs: number, where: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const conn = mysql.createConnection({
      ...(endpoint.socket ? { socketPath: endpoint.socket } : { host: endpoint.host, port: endpoint.port }),
      user: endpoint.user,
      password: endpoint.password,
      connectTimeout: timeoutMs,
      multipleStatements: false,
    });
    // mysql2 ≥ 3.23.3 bounds the whole handshake; this timer is the backstop should it not.
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new SessionTimeoutError('connect', timeoutMs, where));
    }, timeoutMs + 50);
    conn.once('connect', () => {
      clearTimeout(timer);
      resolve(conn);
    });
    // `on`, not `once`: a second 'error' with no listener would crash the process.
    conn.on('error', (err: Error) => {
      clearTimeout(timer);
      conn.destroy();
      reject(err);
    });
  });
}

function send(conn: Connection, sql: string, params: readonly SqlParam[], timeoutMs: number, where: string): Promise<readonly Row[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new SessionTimeoutError('query', timeoutMs, where)), timeoutMs);
    conn.query({ sql, values: params.length > 0 ? [...params] : undefined }, (err, result) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(Array.isArray(result) ? (result as Row[]) : []);
    });
  });
}
