/** Builders of etcd values and captured I/O for the CLI's unit tests. */
import { clusterKeys, type MemberState, type NodeState, type OpRecord, type Primary, type ReplicationState } from '@primacy/common';
import { decodeCluster, type ClusterView, type RawCluster, type RawKv } from '../cluster.js';
import type { Io } from '../io.js';

export const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);

export function server(over: Partial<NodeState> = {}): NodeState {
  return {
    flavor: 'mariadb',
    version: '10.11.6-MariaDB',
    serverId: 1,
    serverUuid: null,
    readOnly: true,
    superReadOnly: null,
    logBin: true,
    gtid: { executed: '0-1-10', received: '0-1-10' },
    replication: null,
    lagMs: null,
    heartbeatEpoch: null,
    semiSync: { sourceEnabled: true, sourceActive: false, sourceClients: 0, replicaEnabled: true, replicaActive: true, sourceTimeoutMs: null, sourceWaitNoReplica: null },
    connections: 3,
    maxConnections: 100,
    ...over,
  };
}

export function replicatingFrom(node: string, over: Partial<ReplicationState> = {}): ReplicationState {
  return { sourceHost: '127.0.0.1', sourcePort: portOf(node), ioState: 'running', sqlRunning: true, lastIoError: '', lastSqlError: '', autoPosition: true, secondsBehind: 0, ...over };
}

export function portOf(node: string): number {
  return 3300 + Number(node.replace(/\D/g, '') || 0);
}

export function member(node: string, over: Partial<MemberState> = {}, s: Partial<NodeState> | null = {}): MemberState {
  return {
    node,
    cluster: 'main',
    agentVersion: '0.1.0',
    host: '127.0.0.1',
    port: portOf(node),
    apiUrl: 'http://127.0.0.1:8008',
    updatedAt: T0,
    health: 'up',
    error: null,
    downProbes: 0,
    probeMs: 1,
    role: 'replica',
    fenced: false,
    fencedFor: null,
    serverGone: null,
    lastAnswer: null,
    downSinceRevision: null,
    errant: null,
    revokedEpoch: null,
    revokedAttempt: null,
    priority: 0,
    noPromote: false,
    server: s === null ? null : server(s),
    ...over,
  };
}

export function primary(node: string, over: Partial<Primary> = {}): Primary {
  return { node, host: '127.0.0.1', port: portOf(node), epoch: 2, state: 'ready', since: T0 - 65_000, gtid: '0-1-10', serverId: 1, serverUuid: null, ...over };
}

export function op(over: Partial<OpRecord> = {}): OpRecord {
  return {
    epoch: 2,
    kind: 'failover',
    from: 'db1',
    to: 'db2',
    trigger: 'automatic',
    request: null,
    coordinator: { node: 'db3', revision: '42' },
    startedAt: T0 - 10_000,
    endedAt: T0 - 8_200,
    outcome: 'done',
    reason: "db1's agent sees its server down (connect ECONNREFUSED) and no replica receives from it",
    catchUpFrom: null,
    mustContain: null,
    applied: null,
    proof: null,
    durability: null,
    members: {
      db1: { health: 'down', gtid: null, received: null, semiSync: 'off' },
      db2: { health: 'up', gtid: '0-1-100', received: '0-1-105', semiSync: 'replica' },
      db3: { health: 'up', gtid: '0-1-100', received: '0-1-100', semiSync: 'replica' },
    },
    candidates: [
      { node: 'db2', gtid: '0-1-105', eligible: true, reason: 'chosen' },
      { node: 'db3', gtid: '0-1-100', eligible: true, reason: 'less advanced or lower priority' },
    ],
    steps: [
      { name: 'detect', startedAt: T0 - 10_000, endedAt: T0 - 10_000, outcome: 'ok', detail: "db1's agent sees its server down" },
      { name: 'fence', startedAt: T0 - 10_000, endedAt: T0 - 9_500, outcome: 'ok', detail: 'the old primary must take no more writes' },
      { name: 'choose', startedAt: T0 - 9_000, endedAt: T0 - 9_000, outcome: 'ok', detail: 'db2 has the most advanced received GTID position 0-1-105' },
      { name: 'ready', startedAt: T0 - 8_500, endedAt: T0 - 8_200, outcome: 'ok', detail: 'db2 is writable' },
    ],
    ...over,
  };
}

let revision = 100;

function kv(key: string, value: unknown, createRevision = revision++): RawKv {
  return { key, value: typeof value === 'string' ? value : JSON.stringify(value), createRevision: String(createRevision), modRevision: String(revision++) };
}

export interface ViewInput {
  readonly members?: ReadonlyArray<MemberState | { node: string; raw: string }>;
  readonly primary?: Primary | null;
  readonly epoch?: number | null;
  readonly config?: unknown;
  readonly durability?: unknown;
  readonly coordinator?: string | null;
  readonly lastOp?: OpRecord | null;
  readonly requests?: Record<string, unknown>;
}

/** A view as `decodeCluster` makes it from raw etcd values, so that malformed values can be fed too. */
export function view(i: ViewInput = {}, cluster = 'main'): ClusterView {
  const keys = clusterKeys(cluster);
  const raw: RawCluster = {
    revision: '1234',
    keyCount: 10,
    members: (i.members ?? []).map((m) => kv(keys.member(m.node), 'raw' in m ? m.raw : m)),
    election: i.coordinator === null ? [] : [kv(`${keys.election}/abc`, i.coordinator ?? 'db3')],
    primary: i.primary === null || i.primary === undefined ? null : kv(keys.primary, i.primary),
    epoch: i.epoch === null ? null : kv(keys.epoch, i.epoch ?? i.primary?.epoch ?? 2),
    config: i.config === undefined ? null : kv(keys.config, i.config),
    durability: i.durability === undefined ? null : kv(keys.durability, i.durability),
    lastOp: i.lastOp ? kv(keys.op(i.lastOp.epoch), i.lastOp) : null,
    requests: Object.entries(i.requests ?? {}).map(([id, r]) => kv(keys.request(id), r)),
  };
  return decodeCluster(cluster, keys, raw);
}

/** The usual healthy cluster: db2 primary, db1 and db3 replicating from it. */
export function healthyView(over: ViewInput = {}): ClusterView {
  return view({
    members: [
      member('db1', {}, { replication: replicatingFrom('db2'), lagMs: 12, gtid: { executed: '0-2-200', received: '0-2-200' } }),
      member('db2', { role: 'primary' }, { readOnly: false, gtid: { executed: '0-2-200', received: '0-2-200' }, semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null } }),
      member('db3', {}, { replication: replicatingFrom('db2'), lagMs: 1500, gtid: { executed: '0-2-199', received: '0-2-200' } }),
    ],
    primary: primary('db2'),
    lastOp: op(),
    ...over,
  });
}

export interface Captured extends Io {
  readonly out: () => string;
  readonly err: () => string;
}

export function captureIo(over: Partial<Io> = {}): Captured {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    isTTY: false,
    env: {},
    ...over,
    out: () => out,
    err: () => err,
  };
}

/**
 * Every key of one cluster under a root, as a root read returns them: three members (db2 the
 * primary unless `over` says otherwise), primary, epoch, three election keys, the last op and an
 * older one, and a config when given. For the fleet's unit tests and its 1,000-cluster test.
 */
export function clusterKvs(cluster: string, over: ViewInput = {}, root = '/primacy'): RawKv[] {
  const keys = clusterKeys(cluster, root);
  const healthy = healthyView();
  const members = over.members ?? [...healthy.members.values()].map((m) => ({ ...m, cluster }));
  const p = over.primary === undefined ? primary('db2') : over.primary;
  const last = over.lastOp === undefined ? op() : over.lastOp;
  const coordinator = over.coordinator === undefined ? 'db3' : over.coordinator;
  return [
    ...members.map((m) => kv(keys.member(m.node), 'raw' in m ? m.raw : m)),
    // Created first, so the oldest: the coordinator.
    ...(coordinator === null ? [] : [coordinator, ...['db1', 'db2', 'db3'].filter((n) => n !== coordinator)].map((n, i) => kv(`${keys.election}/lease-${9 - i}`, n))),
    ...(p === null ? [] : [kv(keys.primary, p)]),
    kv(keys.epoch, over.epoch ?? p?.epoch ?? 2),
    ...(over.config === undefined ? [] : [kv(keys.config, over.config)]),
    ...(last === null ? [] : [kv(keys.op(1), op({ epoch: 1, kind: 'bootstrap', from: null, to: 'db1' })), kv(keys.op(last.epoch), last)]),
    ...Object.entries(over.requests ?? {}).map(([id, r]) => kv(keys.request(id), r)),
    kv(keys.historyEntry(T0, '1-bootstrap-done'), op({ epoch: 1 })),
  ];
}
