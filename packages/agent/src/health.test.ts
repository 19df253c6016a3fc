import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileAgentConfig, type NodeState, type Primary } from '@primacy/common';
import { healthCheck, leaseIsLive, leaseRemainingMs, primaryCheck, replicaCheck, type Verdict } from './health.js';
import type { Observation } from './node/driver.js';
import type { AgentView } from './view.js';

const NOW = 1_800_000_000_000;

function config(node: string) {
  const doc = {
    cluster: 'main',
    node,
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
    mysql: { user: 'primacy', password: { env: 'PW' } },
    replication: { user: 'repl', password: { env: 'PW' } },
  };
  return compileAgentConfig(doc, { env: { PW: 'x' } });
}

const DB1 = { host: '10.0.0.1', port: 3306 };

function nodeState(over: Partial<NodeState> = {}): NodeState {
  return {
    flavor: 'mariadb',
    version: '10.11.6-MariaDB',
    serverId: 2,
    serverUuid: null,
    readOnly: true,
    superReadOnly: null,
    logBin: true,
    gtid: { executed: '0-1-100', received: '0-1-100' },
    replication: {
      sourceHost: DB1.host,
      sourcePort: DB1.port,
      ioState: 'running',
      sqlRunning: true,
      lastIoError: '',
      lastSqlError: '',
      autoPosition: true,
      secondsBehind: 0,
    },
    lagMs: 120,
    heartbeatEpoch: 4,
    semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
    connections: 3,
    maxConnections: 151,
    ...over,
  };
}

const PRIMARY_DB1: Primary = { node: 'db1', ...DB1, epoch: 4, state: 'ready', since: NOW - 60_000, gtid: '0-1-50', serverId: 1, serverUuid: null };

function up(state: NodeState): Observation {
  return { health: 'up', error: null, probeMs: 2, state };
}

/** db1, the ready primary of epoch 4, writable, with 3 s left on its lease. */
function primaryView(over: Partial<AgentView> = {}): AgentView {
  return {
    config: config('db1'),
    startedAt: NOW - 120_000,
    observation: up(nodeState({ serverId: 1, readOnly: false, replication: null, lagMs: 0 })),
    downProbes: 0,
    member: null,
    primary: PRIMARY_DB1,
    lease: { id: '694d7a1b2c3d4e5f', deadline: NOW + 3000 },
    etcd: { reachable: true, lastError: null },
    coordinator: { self: true, node: 'db1' },
    ...over,
  };
}

/** db2, a read-only replica of db1 with 120 ms lag. */
function replicaView(over: Partial<AgentView> = {}): AgentView {
  return primaryView({ config: config('db2'), observation: up(nodeState()), coordinator: { self: false, node: 'db1' }, ...over });
}

function withState(view: AgentView, over: Partial<NodeState>): AgentView {
  const state = view.observation?.state;
  assert.ok(state);
  return { ...view, observation: up({ ...state, ...over }) };
}

function withReplication(view: AgentView, over: Partial<NonNullable<NodeState['replication']>>): AgentView {
  const repl = view.observation?.state?.replication;
  assert.ok(repl);
  return withState(view, { replication: { ...repl, ...over } });
}

const down: Observation = { health: 'down', error: 'connect ECONNREFUSED 127.0.0.1:3306', probeMs: 1000, state: null };

interface Case {
  readonly name: string;
  readonly check: (view: AgentView) => Verdict;
  readonly view: AgentView;
  readonly ok: boolean;
  readonly reason: RegExp;
}

const primaryCases: Case[] = [
  { name: 'the ready, writable primary under a live lease', view: primaryView(), ok: true, reason: /^primary of epoch 4; lease expires in 3\.0 s$/ },
  { name: 'server down', view: primaryView({ observation: down }), ok: false, reason: /^server is down: connect ECONNREFUSED/ },
  { name: 'server refusing connections', view: primaryView({ observation: { ...down, health: 'refusing', error: '1040 Too many connections' } }), ok: false, reason: /^server refuses connections: 1040/ },
  { name: 'agent cannot log in', view: primaryView({ observation: { ...down, health: 'auth_error', error: '1045 Access denied' } }), ok: false, reason: /^agent cannot log in to the server: 1045/ },
  { name: 'not probed yet', view: primaryView({ observation: null }), ok: false, reason: /^server not probed yet$/ },
  { name: 'no primary key', view: primaryView({ primary: null }), ok: false, reason: /^no primary in the cluster$/ },
  { name: 'another node is primary', view: primaryView({ primary: { ...PRIMARY_DB1, node: 'db2' } }), ok: false, reason: /^not the primary: db2 is$/ },
  { name: 'primary is switching', view: primaryView({ primary: { ...PRIMARY_DB1, state: 'switching' } }), ok: false, reason: /^primary is switching$/ },
  { name: 'primary is promoting', view: primaryView({ primary: { ...PRIMARY_DB1, state: 'promoting' } }), ok: false, reason: /^primary is promoting$/ },
  { name: 'server still read-only', view: withState(primaryView(), { readOnly: true }), ok: false, reason: /^server is read-only$/ },
  { name: 'no lease held', view: primaryView({ lease: { id: null, deadline: NOW + 3000 } }), ok: false, reason: /^no lease held$/ },
  { name: 'lease deadline passed', view: primaryView({ lease: { id: 'ab', deadline: NOW - 400 } }), ok: false, reason: /^lease expired 0\.4 s ago$/ },
  { name: 'lease deadline is now', view: primaryView({ lease: { id: 'ab', deadline: NOW } }), ok: false, reason: /^lease expired 0\.0 s ago$/ },
  { name: 'heartbeat from an older epoch', view: withState(primaryView(), { heartbeatEpoch: 3 }), ok: false, reason: /^heartbeat is from epoch 3, the primary's epoch is 4$/ },
  { name: 'no heartbeat row yet', view: withState(primaryView(), { heartbeatEpoch: null }), ok: true, reason: /^primary of epoch 4/ },
  { name: 'heartbeat from a newer epoch', view: withState(primaryView(), { heartbeatEpoch: 5 }), ok: true, reason: /^primary of epoch 4/ },
].map((c) => ({ ...c, check: (v: AgentView) => primaryCheck(v, NOW) }));

const replica = (maxLagMs?: number) => (v: AgentView) => replicaCheck(v, NOW, maxLagMs);

const replicaCases: Case[] = [
  { name: 'a healthy read-only replica of the primary', check: replica(), view: replicaView(), ok: true, reason: /^replica of db1, lag 120 ms$/ },
  { name: 'within max lag', check: replica(120), view: replicaView(), ok: true, reason: /^replica of db1, lag 120 ms$/ },
  { name: 'past max lag', check: replica(100), view: replicaView(), ok: false, reason: /^replication lag 120 ms exceeds 100 ms$/ },
  { name: 'lag unknown with a max lag', check: replica(1000), view: withState(replicaView(), { lagMs: null }), ok: false, reason: /^replication lag is unknown$/ },
  { name: 'lag unknown without a max lag', check: replica(), view: withState(replicaView(), { lagMs: null }), ok: true, reason: /^replica of db1, lag unknown$/ },
  { name: 'server down', check: replica(), view: replicaView({ observation: down }), ok: false, reason: /^server is down: / },
  { name: 'no primary key', check: replica(), view: replicaView({ primary: null }), ok: false, reason: /^no primary in the cluster$/ },
  { name: 'this node is the primary', check: replica(), view: primaryView(), ok: false, reason: /^this node is the primary$/ },
  { name: 'no replication configured', check: replica(), view: withState(replicaView(), { replication: null }), ok: false, reason: /^replication is not configured$/ },
  {
    name: 'IO thread connecting',
    check: replica(),
    view: withReplication(replicaView(), { ioState: 'connecting', lastIoError: "error connecting to master 'repl@10.0.0.1:3306'\nretry-time: 60" }),
    ok: false,
    reason: /^replication IO thread is connecting: error connecting to master 'repl@10\.0\.0\.1:3306'$/,
  },
  { name: 'IO thread stopped', check: replica(), view: withReplication(replicaView(), { ioState: 'stopped' }), ok: false, reason: /^replication IO thread is stopped$/ },
  { name: 'SQL thread stopped', check: replica(), view: withReplication(replicaView(), { sqlRunning: false, lastSqlError: 'Duplicate entry' }), ok: false, reason: /^replication SQL thread is stopped: Duplicate entry$/ },
  { name: 'replicating from another host', check: replica(), view: withReplication(replicaView(), { sourceHost: '10.0.0.3' }), ok: false, reason: /^replicating from 10\.0\.0\.3:3306, not from the primary db1 at 10\.0\.0\.1:3306$/ },
  { name: 'replicating from another port', check: replica(), view: withReplication(replicaView(), { sourcePort: 3307 }), ok: false, reason: /^replicating from 10\.0\.0\.1:3307, not from the primary/ },
  {
    name: 'host names compare without case',
    check: replica(),
    view: withReplication(replicaView({ primary: { ...PRIMARY_DB1, host: 'DB1.example' } }), { sourceHost: 'db1.example' }),
    ok: true,
    reason: /^replica of db1/,
  },
  { name: 'server writable', check: replica(), view: withState(replicaView(), { readOnly: false }), ok: false, reason: /^server is writable$/ },
  { name: 'a switching primary still serves replicas', check: replica(), view: replicaView({ primary: { ...PRIMARY_DB1, state: 'switching' } }), ok: true, reason: /^replica of db1/ },
  {
    name: 'while the primary is switching, a replica may follow the switchover target',
    check: replica(),
    view: withReplication(replicaView({ primary: { ...PRIMARY_DB1, state: 'switching' }, switchoverTo: { node: 'db3', host: '10.0.0.3', port: 3306 } }), { sourceHost: '10.0.0.3' }),
    ok: true,
    reason: /^replica of db1/,
  },
  {
    name: 'following the target once the primary is no longer switching is following someone else',
    check: replica(),
    view: withReplication(replicaView({ switchoverTo: { node: 'db3', host: '10.0.0.3', port: 3306 } }), { sourceHost: '10.0.0.3' }),
    ok: false,
    reason: /^replicating from 10\.0\.0\.3:3306, not from the primary db1/,
  },
  { name: 'lease does not matter to a replica', check: replica(), view: replicaView({ lease: { id: null, deadline: 0 } }), ok: true, reason: /^replica of db1/ },
];

const health = (v: AgentView) => healthCheck(v, NOW);

const healthCases: Case[] = [
  { name: 'server up, etcd reachable', check: health, view: primaryView(), ok: true, reason: /^server is up; etcd is reachable$/ },
  { name: 'server up, etcd unreachable', check: health, view: replicaView({ etcd: { reachable: false, lastError: 'deadline exceeded' } }), ok: true, reason: /^server is up; etcd is unreachable: deadline exceeded$/ },
  { name: 'etcd unreachable without an error yet', check: health, view: replicaView({ etcd: { reachable: false, lastError: null } }), ok: true, reason: /^server is up; etcd is unreachable$/ },
  { name: 'server down', check: health, view: primaryView({ observation: down }), ok: false, reason: /^server is down: connect ECONNREFUSED 127\.0\.0\.1:3306; etcd is reachable$/ },
  { name: 'server refusing', check: health, view: primaryView({ observation: { ...down, health: 'refusing', error: null } }), ok: false, reason: /^server refuses connections; etcd is reachable$/ },
  { name: 'not probed yet', check: health, view: primaryView({ observation: null }), ok: false, reason: /^server not probed yet; etcd is reachable$/ },
  { name: 'no lease and no primary: still healthy', check: health, view: replicaView({ primary: null, lease: { id: null, deadline: 0 } }), ok: true, reason: /^server is up/ },
];

for (const [endpoint, cases] of [['primaryCheck', primaryCases], ['replicaCheck', replicaCases], ['healthCheck', healthCases]] as const) {
  for (const c of cases) {
    test(`${endpoint}: ${c.name} → ${c.ok ? 'ok' : 'not ok'}`, () => {
      const verdict = c.check(c.view);
      assert.equal(verdict.ok, c.ok, verdict.reason);
      assert.match(verdict.reason, c.reason);
      assert.doesNotMatch(verdict.reason, /\n/, 'one line');
    });
  }
}

test('lease remaining time and liveness', () => {
  assert.equal(leaseRemainingMs(primaryView(), NOW), 3000);
  assert.equal(leaseIsLive(primaryView(), NOW), true);
  assert.equal(leaseRemainingMs(primaryView({ lease: { id: 'ab', deadline: NOW - 1 } }), NOW), 0);
  assert.equal(leaseIsLive(primaryView({ lease: { id: 'ab', deadline: NOW } }), NOW), false);
  assert.equal(leaseRemainingMs(primaryView({ lease: { id: null, deadline: NOW + 5000 } }), NOW), 0);
  assert.equal(leaseIsLive(primaryView({ lease: { id: null, deadline: NOW + 5000 } }), NOW), false);
});

test('the primary check follows the clock: ok before the deadline, refused at and after it', () => {
  const view = primaryView();
  assert.equal(primaryCheck(view, NOW + 2999).ok, true);
  assert.equal(primaryCheck(view, NOW + 3000).ok, false);
  assert.match(primaryCheck(view, NOW + 4500).reason, /^lease expired 1\.5 s ago$/);
});
