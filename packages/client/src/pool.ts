/**
 * createPool: a mysql2/promise-style pool that follows the primary named in etcd.
 *
 * - Writes (`query`, `execute`, `getConnection`) go to the `ready` primary only. While it is
 *   `switching` or `promoting`, or absent, or unreachable, a statement waits up to `holdWritesMs`
 *   for a ready primary, then fails with PRIMACY_E_NO_PRIMARY, unsent.
 * - Every new connection is checked before use (verify.ts): the server's id, that it is writable,
 *   and that its heartbeat has reached the primary's epoch.
 * - When the primary changes, the old primary's idle connections are closed at once and its leased
 *   ones when they come back; no new statement goes to it.
 * - Reads go to replicas within `maxReplicaLagMs` only through `reader()`.
 * - A failed statement is retried only when it certainly did not run: unsent, or refused as
 *   read-only (1290, then once, on the next primary). A connection lost mid-statement surfaces
 *   PRIMACY_E_OUTCOME_UNKNOWN.
 */
import { EventEmitter } from 'node:events';
import type { ExecuteValues, FieldPacket, QueryResult, QueryValues } from 'mysql2/promise';
import type { Primary } from '@primacy/common';
import { classifyStatementError, connectionIsDead, isConfigurationError } from './classify.js';
import { PrimacyConnection, isQueryTimeout, send, type Sql, type StatementHost } from './connection.js';
import { ClientError, ClientErrorCodes, OutcomeUnknownError, isClientError, oneLine } from './errors.js';
import { NodePool, TargetRetired, type NodePoolOptions, type PooledConnection } from './node-pool.js';
import { compilePoolOptions, type CompiledPoolOptions, type PoolOptions } from './options.js';
import { ClientRegistrationHandle } from './registration.js';
import { primaryIdentity, type Replica } from './topology.js';
import { verifyPrimary, verifyReplica } from './verify.js';
import { PrimaryWatch } from './watch.js';

/** Between attempts on a primary that failed to connect or verify. */
const RETRY_MS = 200;
/** While holding, re-read etcd this often in case the watch stream is stuck on a hung member. */
const REFRESH_WHILE_HOLDING_MS = 1_000;
/** A replica that failed to connect takes no reads for this long. */
const REPLICA_AVOID_MS = 2_000;
const MAX_UNSENT_RETRIES = 5;
const END_DRAIN_MS = 2_000;

export interface ConnectionInfo {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly role: 'primary' | 'replica';
  readonly epoch: number;
  readonly threadId: number;
  readonly at: number;
}

export interface RetiredInfo {
  readonly node: string;
  readonly role: 'primary' | 'replica';
  readonly epoch: number;
  readonly reason: string;
  readonly at: number;
}

export interface PoolStats {
  /** Verified connections opened, per node. */
  readonly connectionsOpened: Readonly<Record<string, number>>;
  readonly statements: number;
  readonly outcomeUnknown: number;
  /** Statements refused as read-only (1290) and sent again to the next primary. */
  readonly readOnlyRetries: number;
  /** Statements that never left a closed connection and were sent again. */
  readonly unsentRetries: number;
  /** New connections rejected by the check (wrong server, read-only, stale heartbeat). */
  readonly rejectedConnections: number;
}

export interface PoolEvents {
  /** A new connection was opened and passed its check. */
  connection: [info: ConnectionInfo];
  /** The pool stopped sending to a node (in a role). */
  retired: [info: RetiredInfo];
  /** Something worth a log line: a failed connection attempt, a lost connection. The pool carries on. */
  warning: [error: ClientError];
}

/** Statements as mysql2/promise takes them. */
export interface Queryable {
  query<T extends QueryResult>(sql: Sql, values?: QueryValues): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult>(sql: Sql, values?: ExecuteValues): Promise<[T, FieldPacket[]]>;
}

type Route = 'write' | 'read';

function replicaIdentity(r: Replica): string {
  return `${r.node}/${r.host}:${r.port}/${r.serverId}`;
}

export class PrimaryPool extends EventEmitter<PoolEvents> implements Queryable, StatementHost {
  readonly watch: PrimaryWatch;
  /** Set when the pool was created with `register`. */
  readonly registration: ClientRegistrationHandle | null;
  readonly #o: CompiledPoolOptions;
  readonly #ownsWatch: boolean;
  readonly #user: string;
  readonly #nodeOptions: NodePoolOptions;
  #writer: NodePool | null = null;
  readonly #replicaPools = new Map<string, NodePool>();
  /** Retired node pools whose leased connections have not all come back. */
  readonly #draining = new Set<NodePool>();
  readonly #avoid = new Map<string, number>();
  #nextReplica = 0;
  #closed = false;
  readonly #stats = { connectionsOpened: {} as Record<string, number>, statements: 0, outcomeUnknown: 0, readOnlyRetries: 0, unsentRetries: 0, rejectedConnections: 0 };
  readonly #reader: Queryable;
  readonly #onPrimary = (p: Primary | null): void => this.#followPrimary(p);
  readonly #onReplicas = (replicas: readonly Replica[]): void => this.#followReplicas(replicas);

  constructor(options: CompiledPoolOptions) {
    super();
    this.#o = options;
    this.#ownsWatch = options.watch === undefined;
    this.watch = options.watch ?? new PrimaryWatch({ etcd: options.etcd!, cluster: options.cluster!, root: options.root, etcdTimeoutMs: options.etcdTimeoutMs });
    this.#user = String(options.connection.user ?? '');
    this.#nodeOptions = { connection: options.connection, limit: options.connectionLimit, connectTimeoutMs: options.connectTimeoutMs };
    // The pool stops routing to a node before the registration, which listens after it, says so.
    this.watch.on('primary', this.#onPrimary);
    this.watch.on('replicas', this.#onReplicas);
    const register = options.register;
    this.registration = register
      ? new ClientRegistrationHandle(this.watch, false, register, { beforePause: () => this.#drainOldPrimaries(register.drainMs) })
      : null;
    this.#reader = {
      query: <T extends QueryResult>(sql: Sql, values?: QueryValues) => this.#run<T>('read', 'query', sql, values),
      execute: <T extends QueryResult>(sql: Sql, values?: ExecuteValues) => this.#run<T>('read', 'execute', sql, values),
    };
  }

  /** A write (or any statement) on the ready primary. */
  query<T extends QueryResult>(sql: Sql, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('write', 'query', sql, values);
  }

  execute<T extends QueryResult>(sql: Sql, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('write', 'execute', sql, values);
  }

  /**
   * Reads that may go to a replica within `maxReplicaLagMs` (round robin), else to the primary.
   * Send only statements without effects through it.
   */
  reader(): Queryable {
    return this.#reader;
  }

  /** A connection to the ready primary, for transactions; `release()` it when done. */
  async getConnection(): Promise<PrimacyConnection> {
    const pc = await this.#acquireWriter(Date.now() + this.#o.holdWritesMs, null);
    return new PrimacyConnection(pc, this);
  }

  /** The primary the pool follows, as the watch sees it. */
  primary(): Primary | null {
    return this.watch.current();
  }

  stats(): PoolStats {
    return { ...this.#stats, connectionsOpened: { ...this.#stats.connectionsOpened } };
  }

  /** Closes every connection, the registration, and the watch if the pool made it. */
  async end(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.watch.off('primary', this.#onPrimary);
    this.watch.off('replicas', this.#onReplicas);
    const pools = [...(this.#writer ? [this.#writer] : []), ...this.#replicaPools.values(), ...this.#draining];
    this.#writer = null;
    this.#replicaPools.clear();
    for (const np of pools) np.retire('the pool is ending');
    await Promise.all(pools.map((np) => np.whenDrained(END_DRAIN_MS)));
    for (const np of pools) np.destroy('the pool ended');
    this.#draining.clear();
    await this.registration?.close();
    if (this.#ownsWatch) await this.watch.close();
  }

  /** StatementHost: a connection saw its node refuse a write, or lost its connection. */
  suspect(pc: PooledConnection, why: string, retire: boolean): void {
    if (retire) this.#retire(pc.pool, why);
    this.#warn(ClientErrorCodes.STALE_PRIMARY, `${why}; re-reading the primary`);
    void this.watch.refresh();
  }

  /** StatementHost: best effort, from a connection of its own (a user may kill its own queries). */
  killQuery(pc: PooledConnection): void {
    void pc.pool.killQuery(pc.threadId);
  }

  async #run<T extends QueryResult>(route: Route, kind: 'query' | 'execute', sql: Sql, values: QueryValues | ExecuteValues | undefined): Promise<[T, FieldPacket[]]> {
    this.#stats.statements += 1;
    let deadline = Date.now() + this.#o.holdWritesMs;
    let afterChange: number | null = null;
    let readOnlyRetried = false;
    let unsent = 0;
    for (;;) {
      const pc = route === 'read' ? await this.#acquireReader(deadline) : await this.#acquireWriter(deadline, afterChange);
      const np = pc.pool;
      if (np.retired || pc.dead) {
        // Retired or closed between acquire and send: nothing has left yet.
        pc.release(false);
        if (++unsent > MAX_UNSENT_RETRIES) throw this.#noPrimary(null, `connections to ${np.target.node} kept closing`);
        this.#stats.unsentRetries += 1;
        continue;
      }
      const seen = this.watch.changes;
      try {
        const result = await send<T>(pc, kind, sql, values);
        pc.release(true);
        return result;
      } catch (err) {
        const failure = classifyStatementError(err);
        // A replica refusing a write is the application's mistake, not a topology change.
        if (failure === 'statement' || (failure === 'read-only' && np.target.role === 'replica')) {
          pc.release(!connectionIsDead('statement', err));
          throw err;
        }
        pc.release(false);
        void this.watch.refresh();
        if (failure === 'not-sent') {
          if (++unsent > MAX_UNSENT_RETRIES) throw this.#noPrimary(err, `connections to ${np.target.node} kept closing`);
          this.#stats.unsentRetries += 1;
          continue;
        }
        if (failure === 'read-only') {
          this.#retire(np, `${np.target.node} refused a write as read-only (1290)`);
          if (readOnlyRetried) {
            throw new ClientError(ClientErrorCodes.NOT_PRIMARY, `${np.target.node} (epoch ${np.target.epoch}) refused the statement as read-only, after a retry; it was not executed`, { cause: err });
          }
          // Not the primary any more, and the statement did not run: once, on the next primary.
          readOnlyRetried = true;
          this.#stats.readOnlyRetries += 1;
          afterChange = seen;
          deadline = Date.now() + this.#o.holdWritesMs;
          continue;
        }
        if (isQueryTimeout(err)) this.killQuery(pc);
        this.#stats.outcomeUnknown += 1;
        this.#warn(ClientErrorCodes.OUTCOME_UNKNOWN, `lost the connection to ${np.target.node} mid-statement: ${oneLine(err)}`, err);
        throw new OutcomeUnknownError(np.target.node, np.target.epoch, err);
      }
    }
  }

  /**
   * A verified connection to the ready primary. Waits (until `deadline`) while there is none, and
   * with `afterChange` until the primary has changed since that count.
   */
  async #acquireWriter(deadline: number, afterChange: number | null): Promise<PooledConnection> {
    let lastError: unknown = null;
    for (;;) {
      this.#throwIfClosed();
      const seen = this.watch.changes;
      const p = this.watch.current();
      if (p && p.state === 'ready' && (afterChange === null || seen > afterChange)) {
        const np = this.#writerFor(p);
        try {
          return await np.acquire(deadline);
        } catch (err) {
          if (err instanceof TargetRetired) continue;
          if (isClientError(err, ClientErrorCodes.HEARTBEAT_UNREADABLE) || isConfigurationError(err)) throw err;
          lastError = err;
          if (isClientError(err, ClientErrorCodes.STALE_PRIMARY) || isClientError(err, ClientErrorCodes.NOT_PRIMARY)) {
            this.#stats.rejectedConnections += 1;
            this.#retire(np, oneLine(err));
          }
          this.#warn(ClientErrorCodes.NO_PRIMARY, `cannot use ${p.node} (epoch ${p.epoch}): ${oneLine(err)}`, err);
          void this.watch.refresh();
          if (Date.now() >= deadline) break;
          await this.watch.nextChange(seen, Math.min(deadline, Date.now() + RETRY_MS));
          continue;
        }
      }
      if (Date.now() >= deadline) break;
      const changed = await this.watch.nextChange(seen, Math.min(deadline, Date.now() + REFRESH_WHILE_HOLDING_MS));
      if (!changed) void this.watch.refresh();
    }
    this.#throwIfClosed();
    if (afterChange !== null && lastError === null) {
      const p = this.watch.current();
      throw new ClientError(
        ClientErrorCodes.NOT_PRIMARY,
        `${p?.node ?? 'the primary'} refused the statement as read-only (1290) and no new primary appeared within ${this.#o.holdWritesMs} ms; it was not executed`,
      );
    }
    throw this.#noPrimary(lastError);
  }

  /** A connection to a fresh replica, round robin; the primary when none is fresh or reachable. */
  async #acquireReader(deadline: number): Promise<PooledConnection> {
    const now = Date.now();
    const fresh = this.watch.replicas().filter((r) => r.lagMs <= this.#o.maxReplicaLagMs && (this.#avoid.get(replicaIdentity(r)) ?? 0) <= now);
    for (let i = 0; i < fresh.length; i++) {
      const r = fresh[(this.#nextReplica++ & 0x7fffffff) % fresh.length]!;
      const np = this.#replicaFor(r);
      try {
        return await np.acquire(Math.min(deadline, now + this.#o.connectTimeoutMs));
      } catch (err) {
        if (err instanceof TargetRetired) continue;
        this.#avoid.set(replicaIdentity(r), Date.now() + REPLICA_AVOID_MS);
        if (isClientError(err, ClientErrorCodes.STALE_PRIMARY)) this.#retire(np, oneLine(err));
        this.#warn(ClientErrorCodes.NO_PRIMARY, `replica ${r.node} takes no reads for ${REPLICA_AVOID_MS} ms: ${oneLine(err)}`, err);
      }
    }
    return this.#acquireWriter(deadline, null);
  }

  #writerFor(p: Primary): NodePool {
    const identity = primaryIdentity(p);
    const current = this.#writer;
    if (current && current.target.identity === identity && !current.retired) return current;
    if (current) this.#retire(current, `the primary is now ${p.node} at epoch ${p.epoch}`);
    const np = new NodePool(
      {
        node: p.node,
        host: p.host,
        port: p.port,
        role: 'primary',
        epoch: p.epoch,
        identity,
        verify: (conn, signal) =>
          verifyPrimary(conn, p, this.#user, {
            timeoutMs: this.#o.connectTimeoutMs,
            verifyHeartbeat: this.#o.verifyHeartbeat,
            heartbeatWaitMs: this.#o.heartbeatWaitMs,
            signal,
          }),
      },
      this.#nodeOptions,
    );
    np.onConnection = (pc) => this.#opened(pc);
    this.#writer = np;
    return np;
  }

  #replicaFor(r: Replica): NodePool {
    const identity = replicaIdentity(r);
    const known = this.#replicaPools.get(identity);
    if (known && !known.retired) return known;
    const np = new NodePool(
      {
        node: r.node,
        host: r.host,
        port: r.port,
        role: 'replica',
        epoch: this.watch.current()?.epoch ?? 0,
        identity,
        verify: (conn) => verifyReplica(conn, r, this.#o.connectTimeoutMs),
      },
      this.#nodeOptions,
    );
    np.onConnection = (pc) => this.#opened(pc);
    this.#replicaPools.set(identity, np);
    return np;
  }

  #followPrimary(p: Primary | null): void {
    const w = this.#writer;
    if (w && (p === null || p.state !== 'ready' || primaryIdentity(p) !== w.target.identity)) {
      const why = p === null ? 'etcd names no primary' : p.state !== 'ready' ? `${p.node} is ${p.state} at epoch ${p.epoch}` : `the primary is now ${p.node} at epoch ${p.epoch}`;
      this.#retire(w, why);
    }
    this.#followReplicas(this.watch.replicas());
  }

  #followReplicas(replicas: readonly Replica[]): void {
    const healthy = new Set(replicas.map(replicaIdentity));
    for (const [identity, np] of this.#replicaPools) {
      if (!healthy.has(identity)) this.#retire(np, `${np.target.node} is no longer a healthy replica`);
    }
  }

  #retire(np: NodePool, reason: string): void {
    if (this.#writer === np) this.#writer = null;
    if (this.#replicaPools.get(np.target.identity) === np) this.#replicaPools.delete(np.target.identity);
    if (np.retired) return;
    np.retire(reason);
    if (np.leased > 0) {
      this.#draining.add(np);
      void np.whenDrained(60_000).then(() => this.#draining.delete(np));
    }
    this.emit('retired', { node: np.target.node, role: np.target.role, epoch: np.target.epoch, reason, at: Date.now() });
  }

  /** Before a registered pool confirms its pause: its statements in flight on an old primary end, or `ms` pass. */
  async #drainOldPrimaries(ms: number): Promise<void> {
    const old = [...this.#draining].filter((np) => np.target.role === 'primary');
    await Promise.all(old.map((np) => np.whenDrained(ms)));
  }

  #opened(pc: PooledConnection): void {
    const t = pc.pool.target;
    this.#stats.connectionsOpened[t.node] = (this.#stats.connectionsOpened[t.node] ?? 0) + 1;
    this.emit('connection', { node: t.node, host: t.host, port: t.port, role: t.role, epoch: t.epoch, threadId: pc.threadId, at: Date.now() });
  }

  #noPrimary(lastError: unknown, detail?: string): ClientError {
    const p = this.watch.current();
    const why =
      detail ??
      (p === null
        ? this.watch.isReady
          ? 'etcd names no primary'
          : `etcd has not answered yet${this.watch.lastEtcdError ? ` (${this.watch.lastEtcdError.toLine()})` : ''}`
        : p.state !== 'ready'
          ? `${p.node} (epoch ${p.epoch}) is ${p.state}`
          : lastError !== null
            ? `${p.node} (epoch ${p.epoch}): ${oneLine(lastError)}`
            : `${p.node} (epoch ${p.epoch}) is not usable`);
    const code = isClientError(lastError, ClientErrorCodes.STALE_PRIMARY) ? ClientErrorCodes.STALE_PRIMARY : ClientErrorCodes.NO_PRIMARY;
    return new ClientError(code, `no usable ready primary for cluster ${this.watch.cluster} within ${this.#o.holdWritesMs} ms: ${why}; the statement was not sent`, { cause: lastError ?? undefined });
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new ClientError(ClientErrorCodes.POOL_CLOSED, 'the pool has ended; the statement was not sent');
    if (this.watch.closed) throw new ClientError(ClientErrorCodes.WATCH_CLOSED, "the pool's watch was closed, so it cannot follow the primary; the statement was not sent");
  }

  #warn(code: ClientError['code'], message: string, cause?: unknown): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', new ClientError(code, message, { cause }));
  }
}

/** A pool that follows the primary of `cluster`. */
export function createPool(options: PoolOptions): PrimaryPool {
  return new PrimaryPool(compilePoolOptions(options));
}
