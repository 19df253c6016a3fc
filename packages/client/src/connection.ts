/**
 * A connection taken from the pool with `getConnection()`, for transactions. It is bound to the
 * primary it was opened to: once that primary is no longer the ready one, every further statement
 * fails with PRIMACY_E_STALE_PRIMARY without being sent, and nothing is retried (part of a
 * transaction may be lost; the application decides what to do).
 */
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2/promise';
import { classifyStatementError, connectionIsDead } from './classify.js';
import { ClientError, ClientErrorCodes, OutcomeUnknownError } from './errors.js';
import type { PooledConnection } from './node-pool.js';

export type Sql = string | QueryOptions;

/** What a connection reports back to its pool when a statement failed in a way that matters for routing. */
export interface StatementHost {
  /** The node refused a write as read-only, or the connection died: re-read etcd. */
  suspect(pc: PooledConnection, why: string, retire: boolean): void;
  /** A query timed out: the server keeps running it unless told. */
  killQuery(pc: PooledConnection): void;
}

export async function send<T extends QueryResult>(pc: PooledConnection, kind: 'query' | 'execute', sql: Sql, values: QueryValues | ExecuteValues | undefined): Promise<[T, FieldPacket[]]> {
  const c = pc.conn;
  if (kind === 'query') return typeof sql === 'string' ? c.query<T>(sql, values as QueryValues) : c.query<T>(sql, values as QueryValues);
  return typeof sql === 'string' ? c.execute<T>(sql, values as ExecuteValues) : c.execute<T>(sql, values as ExecuteValues);
}

export function isQueryTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'PROTOCOL_SEQUENCE_TIMEOUT';
}

export class PrimacyConnection {
  #pc: PooledConnection | null;
  readonly #host: StatementHost;
  readonly node: string;
  readonly epoch: number;
  readonly threadId: number;

  constructor(pc: PooledConnection, host: StatementHost) {
    this.#pc = pc;
    this.#host = host;
    this.node = pc.pool.target.node;
    this.epoch = pc.pool.target.epoch;
    this.threadId = pc.threadId;
  }

  query<T extends QueryResult>(sql: Sql, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('query', sql, values);
  }

  execute<T extends QueryResult>(sql: Sql, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('execute', sql, values);
  }

  async beginTransaction(): Promise<void> {
    await this.#run('query', 'START TRANSACTION', undefined);
  }

  async commit(): Promise<void> {
    await this.#run('query', 'COMMIT', undefined);
  }

  async rollback(): Promise<void> {
    await this.#run('query', 'ROLLBACK', undefined);
  }

  async ping(): Promise<void> {
    await this.#run('query', 'SELECT 1', undefined);
  }

  /** Back to the pool (or destroyed, when its primary has changed meanwhile). */
  release(): void {
    const pc = this.#pc;
    this.#pc = null;
    pc?.release(true);
  }

  /** Closes the connection instead of returning it, e.g. after an abandoned transaction. */
  destroy(): void {
    const pc = this.#pc;
    this.#pc = null;
    pc?.release(false);
  }

  async #run<T extends QueryResult>(kind: 'query' | 'execute', sql: Sql, values: QueryValues | ExecuteValues | undefined): Promise<[T, FieldPacket[]]> {
    const pc = this.#pc;
    if (pc === null) throw new ClientError(ClientErrorCodes.CONNECTION_CLOSED, 'this connection was released or destroyed; take a new one with getConnection()');
    const np = pc.pool;
    if (np.retired) {
      this.destroy();
      throw new ClientError(
        ClientErrorCodes.STALE_PRIMARY,
        `${np.target.node} (epoch ${np.target.epoch}) is no longer the ready primary (${np.retiredBecause ?? 'retired'}); the statement was not sent. Take a new connection and start the transaction again`,
      );
    }
    if (pc.dead) {
      this.destroy();
      throw new ClientError(ClientErrorCodes.CONNECTION_CLOSED, `the connection to ${np.target.node} was closed; the statement was not sent. Take a new connection and start the transaction again`);
    }
    try {
      return await send<T>(pc, kind, sql, values);
    } catch (err) {
      const failure = classifyStatementError(err);
      if (!connectionIsDead(failure, err)) throw err;
      this.destroy();
      switch (failure) {
        case 'read-only':
          this.#host.suspect(pc, `${np.target.node} refused a write as read-only (1290)`, true);
          throw new ClientError(
            ClientErrorCodes.NOT_PRIMARY,
            `${np.target.node} (epoch ${np.target.epoch}) is read-only: it is not the primary any more; the statement was not executed. Take a new connection and start the transaction again`,
            { cause: err },
          );
        case 'not-sent':
          throw new ClientError(ClientErrorCodes.CONNECTION_CLOSED, `the connection to ${np.target.node} was closed; the statement was not sent`, { cause: err });
        default:
          if (isQueryTimeout(err)) this.#host.killQuery(pc);
          this.#host.suspect(pc, `the connection to ${np.target.node} was lost`, false);
          throw new OutcomeUnknownError(np.target.node, np.target.epoch, err);
      }
    }
  }
}
