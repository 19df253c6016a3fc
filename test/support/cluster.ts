/**
 * A whole Primacy cluster for failover tests: 3 MariaDB servers (semi-sync AFTER_SYNC by default),
 * an etcd the caller provides, and one real agent per server; plus the two witnesses every failover
 * test uses: a writer that records each acknowledged write, and a poller that checks every node's
 * read_only every 20 ms so that two writable nodes at once cannot go unseen.
 */
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import type { Connection } from 'mysql2/promise';
import { MemberStateSchema, OpRecordSchema, PrimarySchema, clusterKeys, type ClusterKeys, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { APP, startMariaDb, startProxy, waitFor, type EtcdCluster, type MariaDbCluster, type MariaDbServer, type TcpProxy } from '../harness/index.js';
import { startAgent, type AgentOptions, type AgentProcess } from './agents.js';

let clusterCount = 0;

export interface TestCluster {
  readonly name: string;
  readonly keys: ClusterKeys;
  readonly db: MariaDbCluster;
  readonly etcd: Etcd3;
  readonly agents: Map<string, AgentProcess>;
  /** With `advertiseProxies`: the proxy in front of each node's advertised port, by node; empty otherwise. */
  readonly proxies: ReadonlyMap<string, TcpProxy>;
  server(node: string): MariaDbServer;
  primary(): Promise<Primary | null>;
  member(node: string): Promise<MemberState | null>;
  op(epoch: number): Promise<OpRecord | null>;
  /** The node whose election key is oldest. */
  coordinator(): Promise<string | null>;
  /** Waits for a ready primary, optionally one of a later epoch than `after`. */
  readyPrimary(options?: { after?: number; timeoutMs?: number; not?: string }): Promise<Primary>;
  /**
   * Waits until every node's member key shows it up with a GTID position, the primary as primary and
   * each other node replicating from it with a known lag: the picture an operation is decided on.
   */
  settled(timeoutMs?: number): Promise<void>;
  restartAgent(node: string): Promise<AgentProcess>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly semiSync?: boolean;
  /** Deep-merged into every agent's config. */
  readonly agentConfig?: Record<string, unknown> | ((db: MariaDbCluster) => Record<string, unknown>);
  /** Written to the cluster's etcd `config` key before any agent starts (e.g. `{ durability: 'strict' }`). */
  readonly etcdConfig?: Record<string, unknown>;
  readonly maxConnections?: number;
  /** Puts a proxy between each agent and etcd (endpoints per node). */
  readonly etcdEndpointsFor?: (node: string) => readonly string[];
  /** Starts this node's agent first, so that it wins the election and coordinates. */
  readonly coordinator?: string;
  /** Extra mariadbd options for every server, e.g. `{ slave_net_timeout: 4 }`. */
  readonly serverOptions?: Record<string, string | number | boolean>;
  /**
   * Each node's advertised port (mysql.advertisePort: what replicas and the coordinator use) goes
   * through a harness TCP proxy that a test can cut (`TestCluster.proxies`); the node's own agent and
   * the test's clients connect directly.
   */
  readonly advertiseProxies?: boolean;
  /** Gives each agent its server's pid file (mysql.pidFile). */
  readonly pidFiles?: boolean;
}

export async function startCluster(etcd: EtcdCluster, options: ClusterOptions = {}): Promise<TestCluster> {
  const name = `c${++clusterCount}`;
  const keys = clusterKeys(name);
  const semiSync = options.semiSync ?? true;
  const db = await startMariaDb({
    count: 3,
    primary: null,
    semiSync,
    ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
    ...(options.serverOptions ? { serverOptions: options.serverOptions } : {}),
  });
  const client = etcd.client();
  const proxies = new Map<string, TcpProxy>();
  if (options.advertiseProxies) {
    for (const s of db.servers) proxies.set(s.name, await startProxy({ targetHost: s.host, targetPort: s.port }));
  }
  if (options.etcdConfig) await client.put(keys.config).value(JSON.stringify(options.etcdConfig));
  // Computed once the servers run: a fencing command, say, may need their pids.
  const extra = typeof options.agentConfig === 'function' ? options.agentConfig(db) : (options.agentConfig ?? {});
  const agentOptions = (s: MariaDbServer): AgentOptions => {
    const proxy = proxies.get(s.name);
    const mysql: Record<string, unknown> = {};
    if (proxy) mysql['advertisePort'] = proxy.port;
    if (options.pidFiles) mysql['pidFile'] = s.pidFile;
    const own = Object.keys(mysql).length > 0 ? { mysql } : {};
    return {
      cluster: name,
      node: s.name,
      etcd: options.etcdEndpointsFor?.(s.name) ?? etcd.endpoints,
      db: s,
      config: merge(merge({ bootstrap: { primary: 'db1' }, replication: { semiSync } }, extra), own),
    };
  };
  const first = db.servers.find((s) => s.name === options.coordinator);
  const leader = first ? [await startAgent(agentOptions(first))] : [];
  if (first) {
    await waitFor(`${first.name} to campaign`, async () => (Object.keys(await client.getAll().prefix(`${keys.election}/`).strings()).length > 0 ? true : undefined));
  }
  const rest = await Promise.all(db.servers.filter((s) => s !== first).map((s) => startAgent(agentOptions(s))));
  const agents = new Map([...leader, ...rest].map((a) => [a.node, a]));
  const read = async <T>(key: string, parse: (v: unknown) => T): Promise<T | null> => {
    const raw = await client.get(key).string();
    return raw === null ? null : parse(JSON.parse(raw));
  };
  const cluster: TestCluster = {
    name,
    keys,
    db,
    etcd: client,
    agents,
    proxies,
    server: (node) => db.servers.find((s) => s.name === node)!,
    primary: () => read(keys.primary, (v) => PrimarySchema.parse(v)),
    member: (node) => read(keys.member(node), (v) => MemberStateSchema.parse(v)),
    op: (epoch) => read(keys.op(epoch), (v) => OpRecordSchema.parse(v)),
    async coordinator() {
      const res = await client.getAll().prefix(`${keys.election}/`).sort('Create', 'Ascend').limit(1).strings();
      return Object.values(res)[0] ?? null;
    },
    async readyPrimary({ after = 0, timeoutMs = 20_000, not } = {}) {
      try {
        return await waitFor(`a ready primary after epoch ${after}`, async () => {
          const p = await cluster.primary();
          return p && p.state === 'ready' && p.epoch > after && p.node !== not ? p : undefined;
        }, { timeoutMs, intervalMs: 20 });
      } catch (error) {
        // Say what the cluster did instead: the primary key and the record of the operation after `after`.
        const [p, op] = await Promise.all([cluster.primary().catch(() => null), cluster.op(after + 1).catch(() => null)]);
        const record = op ? `; op ${op.epoch}: ${op.kind} ${op.outcome}: ${op.reason}` : `; no op record at epoch ${after + 1}`;
        throw new Error(`${error instanceof Error ? error.message : String(error)}; primary ${p ? `${p.node} epoch ${p.epoch} ${p.state}` : 'none'}${record}`);
      }
    },
    async settled(timeoutMs = 20_000) {
      await waitFor('every member settled', async () => {
        const p = await cluster.primary();
        if (p?.state !== 'ready') return undefined;
        const ms = await Promise.all(db.servers.map((s) => cluster.member(s.name)));
        // GTID positions are republished every 5 s when nothing else changes: wait for every node's.
        const settled = ms.every((m) => {
          if (m?.health !== 'up' || !m.server?.gtid.executed) return false;
          if (m.node === p.node) return m.role === 'primary';
          const r = m.server.replication;
          return m.role === 'replica' && r?.ioState === 'running' && r.sqlRunning && r.sourcePort === p.port && m.server.lagMs !== null;
        });
        return settled ? true : undefined;
      }, { timeoutMs });
    },
    async restartAgent(node) {
      const a = await startAgent(agentOptions(cluster.server(node)));
      agents.set(node, a);
      return a;
    },
    async stop() {
      await Promise.allSettled([...agents.values()].map((a) => a.kill()));
      await Promise.allSettled([...proxies.values()].map((p) => p.close()));
      await db.stop();
    },
  };
  await cluster.readyPrimary();
  if (first) {
    const coordinator = await cluster.coordinator();
    if (coordinator !== first.name) throw new Error(`${first.name} was started first but ${coordinator} coordinates`);
  }
  await db.servers[0]!.query('CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))', [], { creds: APP });
  return cluster;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? merge(prev, v) : v;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Writes rows as the application user to whichever node etcd names the ready primary, one at a
 * time, and records each acknowledged id with the time of its acknowledgement.
 */
export class Writer {
  readonly acked = new Map<number, number>();
  /** The node that acknowledged each id. */
  readonly ackedOn = new Map<number, string>();
  readonly errors: string[] = [];
  private next = 1;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private conn: Connection | null = null;
  private connNode: string | null = null;

  constructor(private readonly cluster: TestCluster) {}

  start(): this {
    this.loop = this.run();
    return this;
  }

  /** The first acknowledged write at or after `t`, and on which node. */
  firstAckAfter(t: number): number | null {
    const times = [...this.acked.values()].filter((a) => a >= t);
    return times.length > 0 ? Math.min(...times) : null;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const p = await this.cluster.primary();
        if (!p || p.state !== 'ready') {
          await pause(10);
          continue;
        }
        if (this.connNode !== p.node || !this.conn) {
          this.conn?.destroy();
          this.conn = await this.cluster.server(p.node).connect(APP, { connectTimeout: 1000 });
          this.connNode = p.node;
        }
        const id = this.next++;
        const node = p.node;
        await this.conn.query({ sql: 'INSERT INTO app.acks (id) VALUES (?)', timeout: 15_000 }, [id]);
        this.acked.set(id, Date.now());
        this.ackedOn.set(id, node);
      } catch (err) {
        this.errors.push(err instanceof Error ? err.message : String(err));
        this.conn?.destroy();
        this.conn = null;
        this.connNode = null;
        await pause(20);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.conn?.destroy();
  }
}

/** A node the watch does not count as able to take writes from `from` on, and why. */
export interface Exemption {
  readonly node: string;
  readonly reason: string;
  readonly from: number;
}

/** A sample in which more than one node read read_only OFF. */
export interface WritableSample {
  readonly at: number;
  readonly writable: readonly string[];
}

/**
 * Polls every node's read_only every ~20 ms and records any moment when two nodes were writable.
 * A test may exempt a node from a time on (`exempt`) when read_only=0 there cannot take a write (a
 * revoked node under strict semi-sync cannot commit): such samples go to `exempted`, not
 * `violations`, and the test asserts instead that the node acknowledged nothing.
 */
export class WritableWatch {
  readonly violations: string[] = [];
  /** Samples with more than one writable node that an exemption excused. */
  readonly exempted: Array<WritableSample & { readonly exempt: readonly string[] }> = [];
  readonly exemptions: Exemption[] = [];
  samples = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly conns = new Map<string, Connection>();
  /** Every sample with more than one writable node, so that an exemption can also excuse earlier ones. */
  private readonly overlaps: Array<WritableSample & { readonly violation: string }> = [];

  constructor(private readonly cluster: TestCluster) {}

  start(): this {
    this.loop = this.run();
    return this;
  }

  /** From `from` on (which may be in the past), `node` read writable does not count; says why. */
  exempt(node: string, reason: string, from: number = Date.now()): void {
    this.exemptions.push({ node, reason, from });
    // Samples already taken after `from` are judged again.
    for (const o of this.overlaps) {
      const i = this.violations.indexOf(o.violation);
      if (i === -1) continue;
      const judged = this.judge(o);
      if (judged === null) this.violations.splice(i, 1);
    }
  }

  private exemptAt(node: string, at: number): boolean {
    return this.exemptions.some((e) => e.node === node && at >= e.from);
  }

  /** The violation text for a sample, or null when the exemptions leave at most one writable node (recorded in `exempted`). */
  private judge(o: WritableSample): string | null {
    const exempt = o.writable.filter((n) => this.exemptAt(n, o.at));
    const counted = o.writable.filter((n) => !exempt.includes(n));
    if (counted.length > 1) return `${new Date(o.at).toISOString()} writable at once: ${o.writable.join(', ')}`;
    if (!this.exempted.some((e) => e.at === o.at)) this.exempted.push({ ...o, exempt });
    return null;
  }

  private async readOnly(s: MariaDbServer): Promise<boolean | null> {
    try {
      let c = this.conns.get(s.name);
      if (!c) {
        c = await s.connect(undefined, { connectTimeout: 200 });
        this.conns.set(s.name, c);
      }
      const [rows] = await c.query({ sql: 'SELECT @@global.read_only AS ro', timeout: 200 });
      return (rows as Array<{ ro: number }>)[0]?.ro === 1;
    } catch {
      this.conns.get(s.name)?.destroy();
      this.conns.delete(s.name);
      return null; // down or paused: not writable as far as any client can tell
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const flags = await Promise.all(this.cluster.db.servers.map(async (s) => [s.name, await this.readOnly(s)] as const));
      this.samples += 1;
      const writable = flags.filter(([, ro]) => ro === false).map(([n]) => n);
      if (writable.length > 1) {
        const sample = { at: Date.now(), writable };
        const violation = this.judge(sample);
        if (violation !== null) {
          this.violations.push(violation);
          this.overlaps.push({ ...sample, violation });
        }
      }
      await pause(20);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    for (const c of this.conns.values()) c.destroy();
  }
}

/** Every acknowledged id is on `node` (after it has applied everything it has). */
export async function missingAcks(cluster: TestCluster, node: string, acked: Iterable<number>): Promise<number[]> {
  const rows = await cluster.server(node).query<{ id: number }>('SELECT id FROM app.acks');
  const have = new Set(rows.map((r) => r.id));
  return [...acked].filter((id) => !have.has(id));
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A cluster with its two witnesses running: a writer recording acknowledgements, and the read_only poller. */
export interface WitnessedCluster {
  readonly c: TestCluster;
  readonly writer: Writer;
  readonly watch: WritableWatch;
}

export async function startWitnessed(etcd: EtcdCluster, options: ClusterOptions = {}): Promise<WitnessedCluster> {
  const c = await startCluster(etcd, options);
  const writer = new Writer(c).start();
  const watch = new WritableWatch(c).start();
  await waitFor('the writer to get acknowledgements', () => (writer.acked.size >= 20 ? true : undefined), { timeoutMs: 10_000 });
  await c.settled();
  return { c, writer, watch };
}

/** Stops the witnesses and asserts both invariants on the node etcd names primary, then stops the cluster. */
export async function finishWitnessed({ c, writer, watch }: WitnessedCluster): Promise<void> {
  await writer.stop();
  await watch.stop();
  assert.deepEqual(watch.violations, [], 'two nodes were never writable at once');
  assert.ok(watch.samples > 10, `read_only polled ${watch.samples} times`);
  const p = await c.primary();
  assert.ok(p, 'a primary exists');
  const missing = await missingAcks(c, p.node, writer.acked.keys());
  assert.deepEqual(missing, [], `no acknowledged write is lost (${writer.acked.size} acknowledged)`);
  await c.stop();
}
