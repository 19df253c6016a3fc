/**
 * `startCluster` of test/support, with what the frozen-mysqld benchmark needs on top and that the
 * test suite's starter does not take: extra server options (a short `slave_net_timeout`, so that
 * the replicas of a frozen primary stop counting as "receiving"), an etcd `config` value written
 * before any agent starts (the cluster's durability), and agent settings computed from the started
 * servers (a fencing command that knows their pids). Every agent gets its server's pid file
 * (`mysql.pidFile`). test/support stays untouched; the returned
 * object is a `TestCluster`, so the suite's witnesses (`WritableWatch`, `missingAcks`) work on it.
 */
import type { Etcd3 } from 'etcd3';
import { MemberStateSchema, OpRecordSchema, PrimarySchema, clusterKeys, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { APP, startMariaDb, waitFor, type EtcdCluster, type MariaDbCluster, type MariaDbServer } from '../../test/harness/index.js';
import { startAgent, type AgentOptions, type AgentProcess } from '../../test/support/agents.js';
import type { TestCluster } from '../../test/support/cluster.js';

export interface BenchClusterOptions {
  readonly semiSync: boolean;
  /** Extra mariadbd options, e.g. `{ 'slave-net-timeout': 5 }`. */
  readonly serverOptions?: Record<string, string | number | boolean>;
  /** Written to the cluster's etcd `config` key before the agents start (e.g. `{ durability: 'strict' }`). */
  readonly etcdConfig?: Record<string, unknown>;
  /** Deep-merged into every agent's config; given the started servers, before any agent starts. */
  readonly agentConfig?: (db: MariaDbCluster) => Record<string, unknown>;
}

let count = 0;

export async function startBenchCluster(etcd: EtcdCluster, options: BenchClusterOptions): Promise<TestCluster> {
  const name = `fz${++count}`;
  const keys = clusterKeys(name);
  const db = await startMariaDb({ count: 3, primary: null, semiSync: options.semiSync, serverOptions: options.serverOptions ?? {} });
  const client: Etcd3 = etcd.client();
  const agents = new Map<string, AgentProcess>();
  let extra: Record<string, unknown> = {};
  const agentOptions = (s: MariaDbServer): AgentOptions => ({
    cluster: name,
    node: s.name,
    etcd: etcd.endpoints,
    db: s,
    // mysql.pidFile, as an agent beside its mysqld should have: under strict semi-sync with every
    // replica revoked the agent stops a server with waiting commits through it (fencing.ts, StrictWaitError).
    config: merge({ bootstrap: { primary: 'db1' }, replication: { semiSync: options.semiSync }, mysql: { pidFile: s.pidFile } }, extra),
  });
  const read = async <T>(key: string, parse: (v: unknown) => T): Promise<T | null> => {
    const raw = await client.get(key).string();
    return raw === null ? null : parse(JSON.parse(raw));
  };
  // An assertion rather than an annotation: TestCluster grows fields the benchmark does not use
  // (`proxies`, for tests that cut a node's advertised port), which this cluster leaves empty.
  const cluster = {
    name,
    keys,
    db,
    etcd: client,
    agents,
    proxies: new Map<string, never>(),
    server: (node) => db.servers.find((s) => s.name === node)!,
    primary: () => read(keys.primary, (v) => PrimarySchema.parse(v)),
    member: (node): Promise<MemberState | null> => read(keys.member(node), (v) => MemberStateSchema.parse(v)),
    op: (epoch): Promise<OpRecord | null> => read(keys.op(epoch), (v) => OpRecordSchema.parse(v)),
    async coordinator() {
      const res = await client.getAll().prefix(`${keys.election}/`).sort('Create', 'Ascend').limit(1).strings();
      return Object.values(res)[0] ?? null;
    },
    async readyPrimary({ after = 0, timeoutMs = 20_000, not } = {}): Promise<Primary> {
      return waitFor(`a ready primary after epoch ${after}`, async () => {
        const p = await cluster.primary();
        return p && p.state === 'ready' && p.epoch > after && p.node !== not ? p : undefined;
      }, { timeoutMs, intervalMs: 20 });
    },
    async settled(timeoutMs = 20_000) {
      await waitFor('every member settled', async () => {
        const p = await cluster.primary();
        if (p?.state !== 'ready') return undefined;
        const ms = await Promise.all(db.servers.map((s) => cluster.member(s.name)));
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
      await db.stop();
    },
  } as TestCluster;
  try {
    if (options.etcdConfig) await client.put(keys.config).value(JSON.stringify(options.etcdConfig));
    extra = options.agentConfig?.(db) ?? {};
    for (const a of await Promise.all(db.servers.map((s) => startAgent(agentOptions(s))))) agents.set(a.node, a);
    await cluster.readyPrimary();
    await db.servers[0]!.query('CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))', [], { creds: APP });
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
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
