/**
 * The benchmarks' writer: like the test suite's `Writer` (one INSERT at a time, as the application
 * user, to whichever node etcd names the ready primary), but each acknowledgement also records the
 * node and epoch it came from, so that "first write on the new primary" cannot be confused with a
 * late acknowledgement from the old one. It stops by itself after `maxMs` or `maxWrites`.
 */
import type { Connection } from 'mysql2/promise';
import type { Primary } from '@primacy/common';
import { APP, type MariaDbServer } from '../../test/harness/index.js';

export interface Ack {
  readonly id: number;
  readonly node: string;
  readonly epoch: number;
  /** Date.now() when the server's OK arrived. */
  readonly at: number;
  /** With `readGtid`: the session's `@@last_gtid` right after the INSERT (MariaDB), i.e. the write's own GTID. */
  readonly gtid?: string;
}

/** What the writer needs of a cluster; the test suite's `TestCluster` has it. */
export interface WriteTarget {
  primary(): Promise<Primary | null>;
  server(node: string): MariaDbServer;
}

export interface AckWriterOptions {
  /** Pause between writes; 0 writes back to back. */
  readonly intervalMs?: number;
  readonly maxMs?: number;
  readonly maxWrites?: number;
  /**
   * The client-side timeout of one INSERT (default 15 s). A write that times out is not acknowledged;
   * the writer drops the connection and asks etcd again, as an application with a short timeout would.
   */
  readonly queryTimeoutMs?: number;
  /** After each acknowledged INSERT, read `@@last_gtid` on the same connection (one more round trip per write). */
  readonly readGtid?: boolean;
}

const MAX_ERRORS_KEPT = 200;

export class AckWriter {
  readonly acks: Ack[] = [];
  readonly errors: Array<{ at: number; node: string | null; message: string }> = [];
  errorCount = 0;
  /** etcd reads of the primary key, one per attempt. */
  lookups = 0;
  private next = 1;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private conn: Connection | null = null;
  private connTo: { node: string; epoch: number } | null = null;

  constructor(
    private readonly cluster: WriteTarget,
    private readonly options: AckWriterOptions = {},
  ) {}

  start(): this {
    this.loop = this.run();
    return this;
  }

  /** The first acknowledgement at or after `t` that satisfies `which`. */
  firstAck(t: number, which: (a: Ack) => boolean = () => true): Ack | null {
    return this.acks.find((a) => a.at >= t && which(a)) ?? null;
  }

  /** The last acknowledgement at or after `t` that satisfies `which`. */
  lastAck(t: number, which: (a: Ack) => boolean = () => true): Ack | null {
    for (let i = this.acks.length - 1; i >= 0; i--) {
      const a = this.acks[i]!;
      if (a.at < t) return null;
      if (which(a)) return a;
    }
    return null;
  }

  private async run(): Promise<void> {
    const deadline = Date.now() + (this.options.maxMs ?? 120_000);
    const maxWrites = this.options.maxWrites ?? 1_000_000;
    const interval = this.options.intervalMs ?? 0;
    const timeout = this.options.queryTimeoutMs ?? 15_000;
    while (!this.stopped && Date.now() < deadline && this.next <= maxWrites) {
      try {
        this.lookups += 1;
        const p = await this.cluster.primary();
        if (!p || p.state !== 'ready') {
          await pause(5);
          continue;
        }
        if (!this.conn || this.connTo?.node !== p.node) {
          this.dropConnection();
          this.conn = await this.cluster.server(p.node).connect(APP, { connectTimeout: 1000 });
        }
        this.connTo = { node: p.node, epoch: p.epoch };
        const id = this.next++;
        await this.conn.query({ sql: 'INSERT INTO app.acks (id) VALUES (?)', timeout }, [id]);
        const at = Date.now();
        const gtid = this.options.readGtid ? await lastGtid(this.conn, timeout) : undefined;
        this.acks.push({ id, node: p.node, epoch: p.epoch, at, ...(gtid !== undefined ? { gtid } : {}) });
        if (interval > 0) await pause(interval);
      } catch (err) {
        this.errorCount += 1;
        if (this.errors.length < MAX_ERRORS_KEPT) this.errors.push({ at: Date.now(), node: this.connTo?.node ?? null, message: err instanceof Error ? err.message : String(err) });
        this.dropConnection();
        await pause(5);
      }
    }
  }

  private dropConnection(): void {
    this.conn?.destroy();
    this.conn = null;
    this.connTo = null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.dropConnection();
  }
}

/** The GTID of the session's last commit (MariaDB's `@@last_gtid`); '' when it cannot be read. */
export async function lastGtid(conn: Connection, timeoutMs: number): Promise<string> {
  try {
    const [rows] = await conn.query({ sql: 'SELECT @@last_gtid AS g', timeout: timeoutMs });
    return String((rows as Array<{ g: unknown }>)[0]?.g ?? '');
  } catch {
    return '';
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
