/**
 * The connections to one node in one role: "db2 as the primary of epoch 7", or "db3 as a replica".
 * A node pool is never re-pointed. When its target stops being true it is retired: idle connections
 * are destroyed at once, leased ones when they come back, and nothing new is handed out.
 */
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';

/** Internal: the target was retired while a caller waited; the caller routes again. */
export class TargetRetired extends Error {
  constructor(readonly reason: string) {
    super(`connection target retired: ${reason}`);
  }
}

export interface NodeTarget {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly role: 'primary' | 'replica';
  /** The primary's epoch this target belongs to (for a replica: the epoch it was chosen under). */
  readonly epoch: number;
  /** Equal identities are the same target; see primaryIdentity. */
  readonly identity: string;
  /** Throws when the new connection must not be used. Stops waiting when `signal` aborts. */
  verify(conn: Connection, signal: AbortSignal): Promise<void>;
}

export interface NodePoolOptions {
  readonly connection: Readonly<Omit<ConnectionOptions, 'host' | 'port' | 'socketPath'>>;
  readonly limit: number;
  readonly connectTimeoutMs: number;
}

export class PooledConnection {
  #dead = false;
  constructor(
    readonly conn: Connection,
    readonly pool: NodePool,
  ) {
    // mysql2 emits 'error' on a connection that dies while idle; unheard, that would crash the process.
    const die = (): void => {
      this.#dead = true;
      pool.forget(this);
    };
    conn.on('error', die);
    conn.on('end', die);
  }

  get dead(): boolean {
    return this.#dead;
  }

  get threadId(): number {
    return this.conn.threadId;
  }

  /** Back to its pool; a connection that is not `reusable` (or whose target was retired) is destroyed. */
  release(reusable: boolean): void {
    this.pool.release(this, reusable);
  }
}

export class NodePool {
  readonly #options: NodePoolOptions;
  readonly #idle: PooledConnection[] = [];
  readonly #all = new Set<PooledConnection>();
  #connecting = 0;
  readonly #waiters = new Set<() => void>();
  readonly #drainWaiters = new Set<() => void>();
  #retired: string | null = null;
  readonly #retiring = new AbortController();
  /** Called with every new, verified connection. */
  onConnection: ((pc: PooledConnection) => void) | null = null;

  constructor(
    readonly target: NodeTarget,
    options: NodePoolOptions,
  ) {
    this.#options = options;
  }

  get retired(): boolean {
    return this.#retired !== null;
  }

  get retiredBecause(): string | null {
    return this.#retired;
  }

  /** Connections handed out and not yet back. */
  get leased(): number {
    return this.#all.size - this.#idle.length;
  }

  get size(): number {
    return this.#all.size;
  }

  /**
   * An idle connection, or a new verified one while under the limit, or the next one released.
   * Opening a connection is bounded by `connectDeadline`; waiting for a busy pool is not (as mysql2).
   */
  async acquire(connectDeadline: number): Promise<PooledConnection> {
    for (;;) {
      if (this.#retired !== null) throw new TargetRetired(this.#retired);
      const idle = this.#idle.pop();
      if (idle) {
        if (!idle.dead) return idle;
        this.#drop(idle);
        continue;
      }
      if (this.#all.size + this.#connecting < this.#options.limit) return this.#open(connectDeadline);
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
  }

  release(pc: PooledConnection, reusable: boolean): void {
    if (!this.#all.has(pc)) return;
    if (!reusable || pc.dead || this.#retired !== null) this.#drop(pc);
    else this.#idle.push(pc);
    this.#wake();
  }

  /** A connection died on its own: it leaves the pool. */
  forget(pc: PooledConnection): void {
    if (!this.#all.has(pc)) return;
    const i = this.#idle.indexOf(pc);
    // Leased connections stay counted until released, so their holder's release() still finds them.
    if (i >= 0) this.#drop(pc);
  }

  /** Hands out nothing more; idle connections are destroyed now, leased ones when released. */
  retire(reason: string): void {
    if (this.#retired !== null) return;
    this.#retired = reason;
    this.#retiring.abort();
    for (const pc of [...this.#idle]) this.#drop(pc);
    this.#wake();
  }

  /** Retires the pool and destroys every connection, leased ones included. */
  destroy(reason: string): void {
    this.retire(reason);
    for (const pc of [...this.#all]) this.#drop(pc);
  }

  /** Resolves true once no connection is leased, or false after `timeoutMs`. */
  whenDrained(timeoutMs: number): Promise<boolean> {
    if (this.leased === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#drainWaiters.delete(wake);
        resolve(ok);
      };
      const wake = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#drainWaiters.add(wake);
    });
  }

  /** Best effort, from a connection of its own: a query whose client timed out keeps running otherwise. */
  async killQuery(threadId: number): Promise<void> {
    let conn: Connection | null = null;
    try {
      const timeout = this.#options.connectTimeoutMs;
      conn = await createConnection({ ...this.#options.connection, host: this.target.host, port: this.target.port, connectTimeout: timeout });
      conn.on('error', () => undefined);
      await conn.query({ sql: 'KILL QUERY ?', values: [threadId], timeout });
    } catch {
      // The server may be gone; then so is the query.
    } finally {
      conn?.destroy();
    }
  }

  async #open(connectDeadline: number): Promise<PooledConnection> {
    this.#connecting += 1;
    let conn: Connection | null = null;
    try {
      const remaining = Math.max(100, Math.min(this.#options.connectTimeoutMs, connectDeadline - Date.now()));
      conn = await createConnection({ ...this.#options.connection, host: this.target.host, port: this.target.port, connectTimeout: remaining });
      const pc = new PooledConnection(conn, this);
      await this.target.verify(conn, this.#retiring.signal);
      if (this.#retired !== null) throw new TargetRetired(this.#retired);
      if (pc.dead) throw new Error(`the connection to ${this.target.node} closed while it was checked`);
      this.#all.add(pc);
      this.onConnection?.(pc);
      return pc;
    } catch (err) {
      conn?.destroy();
      // A check cut short because the target was retired meanwhile says nothing about the node.
      if (this.#retired !== null) throw new TargetRetired(this.#retired);
      throw err;
    } finally {
      this.#connecting -= 1;
      this.#wake();
    }
  }

  #drop(pc: PooledConnection): void {
    this.#all.delete(pc);
    const i = this.#idle.indexOf(pc);
    if (i >= 0) this.#idle.splice(i, 1);
    pc.conn.destroy();
    if (this.leased === 0) {
      for (const w of [...this.#drainWaiters]) w();
    }
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
    if (this.leased === 0) for (const w of [...this.#drainWaiters]) w();
  }
}
