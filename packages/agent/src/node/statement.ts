/**
 * Running admin statements: one at a time, each checked, a failure reported as a PrimacyError that
 * names the statement (never its parameters: they can hold a password) and the node.
 */
import { ErrorCodes, PrimacyError } from '@primacy/common';
import { describeSqlError } from './classify.js';
import type { QueryOptions, Row, SqlParam, SqlSession } from './session.js';

/**
 * A driver's connections to its node. Probes, admin statements and long waits each get their own, so
 * fencing never queues behind a 30 s MASTER_GTID_WAIT and a probe never behind either.
 */
export interface DriverSessions {
  readonly probe: SqlSession;
  readonly admin: SqlSession;
  readonly wait: SqlSession;
}

export class StatementRunner {
  readonly #where: string;
  constructor(where: string) {
    this.#where = where;
  }

  get where(): string {
    return this.#where;
  }

  async run(session: SqlSession, sql: string, params: readonly SqlParam[] = [], options: QueryOptions = {}): Promise<readonly Row[]> {
    try {
      return await session.query(sql, params, options);
    } catch (cause) {
      throw this.failure(sql, cause);
    }
  }

  failure(sql: string, cause: unknown): PrimacyError {
    return new PrimacyError(ErrorCodes.NODE_STATEMENT, `${statementName(sql)} failed on ${this.#where}: ${describeSqlError(cause)}`, {
      cause,
    });
  }

  /** The first row of a statement that always returns one. */
  async one(session: SqlSession, sql: string, params: readonly SqlParam[] = [], options: QueryOptions = {}): Promise<Row> {
    const rows = await this.run(session, sql, params, options);
    const first = rows[0];
    if (first === undefined) {
      throw new PrimacyError(ErrorCodes.NODE_STATEMENT, `${statementName(sql)} returned no row on ${this.#where}`);
    }
    return first;
  }
}

/** The statement's leading words up to its first value, e.g. `SELECT MASTER_GTID_WAIT`, `CHANGE MASTER TO`. */
export function statementName(sql: string): string {
  // A query over a table is named by it: "SELECT … FROM information_schema.PROCESSLIST".
  const from = /^\s*SELECT\s.*?\sFROM\s+([\w.]+)/is.exec(sql);
  if (from && !/^\s*SELECT\s+\w+\(/i.test(sql)) return `SELECT … FROM ${from[1]}`;
  const name: string[] = [];
  for (const word of sql.trim().split(/\s+/).slice(0, 4)) {
    const head = word.split('(')[0] ?? '';
    if (head === '' || /[=?',]/.test(head)) break;
    name.push(head);
    // A function call names the statement: SELECT MASTER_GTID_WAIT(…).
    if (head !== word) break;
  }
  return name.join(' ');
}

/** Closes every distinct session once. */
export async function closeSessions(sessions: DriverSessions): Promise<void> {
  await Promise.all([...new Set([sessions.probe, sessions.admin, sessions.wait])].map((s) => s.close()));
}

/** Thread ids of the driver's own open connections, spared by killClientSessions. */
export function ownThreadIds(sessions: DriverSessions): Set<number> {
  const ids = [sessions.probe.threadId, sessions.admin.threadId, sessions.wait.threadId];
  return new Set(ids.filter((id): id is number => id !== null));
}

/** Runs a driver's state-changing operations one after another, so two never interleave statements. */
export class OperationQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(op, op);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

export interface DriverOptions {
  /** How the node is named in errors, `host:port`. */
  readonly where: string;
  /** The sessions' own query timeout, added to a wait's own timeout so the wait ends first. */
  readonly queryTimeoutMs: number;
  /** How often the primary writes its heartbeat (the agents' timings.heartbeatIntervalMs), for the exact lag. */
  readonly heartbeatIntervalMs?: number | undefined;
}
