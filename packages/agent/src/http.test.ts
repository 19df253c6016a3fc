import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { compileAgentConfig, type MemberState, type NodeState, type Primary } from '@primacy/common';
import { parseMaxLag, startHttpApi, type HttpApi } from './http.js';
import { createLogger, withEpoch } from './log.js';
import { renderMetrics } from './metrics.js';
import type { Observation } from './node/driver.js';
import { AGENT_VERSION } from './version.js';
import { newCounters, type AgentView, type Counters } from './view.js';

const NOW = 1_800_000_000_000;
const SECRET = 'hunter2-not-for-http';

function config(node: string) {
  const doc = {
    cluster: 'main',
    node,
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
    mysql: { user: 'primacy', password: { env: 'PW' } },
    replication: { user: 'repl', password: { env: 'PW' } },
  };
  return compileAgentConfig(doc, { env: { PW: SECRET } });
}

function nodeState(over: Partial<NodeState>): NodeState {
  return {
    flavor: 'mariadb',
    version: '10.11.6-MariaDB',
    serverId: 2,
    serverUuid: null,
    readOnly: true,
    superReadOnly: null,
    logBin: true,
    gtid: { executed: '0-1-100', received: '0-1-100' },
    replication: { sourceHost: '10.0.0.1', sourcePort: 3306, ioState: 'running', sqlRunning: true, lastIoError: '', lastSqlError: '', autoPosition: true, secondsBehind: 0 },
    lagMs: 250,
    heartbeatEpoch: 4,
    semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
    connections: 3,
    maxConnections: 151,
    ...over,
  };
}

function member(node: string, role: MemberState['role'], server: NodeState | null): MemberState {
  return {
    node, cluster: 'main', agentVersion: AGENT_VERSION, host: '10.0.0.1', port: 3306, apiUrl: 'http://10.0.0.1:8008', updatedAt: NOW - 100,
    health: server ? 'up' : 'down', error: null, downProbes: 0, probeMs: 2, role, fenced: false, fencedFor: null, serverGone: null, lastAnswer: null, downSinceRevision: null, errant: null, revokedEpoch: null, revokedAttempt: null, priority: 0, noPromote: false, server,
  };
}

const PRIMARY_DB1: Primary = { node: 'db1', host: '10.0.0.1', port: 3306, epoch: 4, state: 'ready', since: NOW - 60_000, gtid: '0-1-50', serverId: 1, serverUuid: null };
const primaryState = nodeState({ serverId: 1, readOnly: false, replication: null, lagMs: 0 });
const replicaState = nodeState({});

const primaryView: AgentView = {
  config: config('db1'),
  startedAt: NOW - 120_000,
  observation: { health: 'up', error: null, probeMs: 2, state: primaryState },
  downProbes: 0,
  member: member('db1', 'primary', primaryState),
  primary: PRIMARY_DB1,
  lease: { id: '694d7a1b2c3d4e5f', deadline: NOW + 3000 },
  etcd: { reachable: true, lastError: null },
  coordinator: { self: true, node: 'db1' },
};

const replicaView: AgentView = {
  ...primaryView,
  config: config('db2'),
  observation: { health: 'up', error: null, probeMs: 3, state: replicaState },
  member: member('db2', 'replica', replicaState),
  coordinator: { self: false, node: 'db1' },
};

const downObservation: Observation = { health: 'down', error: 'connect ECONNREFUSED 127.0.0.1:3306', probeMs: 1000, state: null };
const downView: AgentView = {
  ...primaryView,
  observation: downObservation,
  downProbes: 7,
  member: member('db1', 'unknown', null),
  lease: { id: null, deadline: 0 },
  etcd: { reachable: false, lastError: '14 UNAVAILABLE: No connection established' },
  coordinator: { self: false, node: 'db2' },
};

// The server reads whichever view the test sets; a throwing getter stands for a bug in the agent.
let current: () => AgentView = () => primaryView;
const counters: Counters = newCounters();
const logLines: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', cluster: 'main', node: 'db1', destination: { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) } });
let api: HttpApi;

before(async () => {
  for (const ms of [0.5, 1.5, 3, 3, 40, 2000]) counters.probeLatency.observe(ms);
  counters.probes = 6;
  counters.probeFailures = 1;
  counters.etcdErrors = 2;
  counters.memberWrites = 9;
  counters.operations.set('failover:done', 1);
  counters.operations.set('switchover:aborted', 2);
  api = await startHttpApi({ host: '127.0.0.1', port: 0, view: () => current(), counters, logger, now: () => NOW });
});

after(async () => {
  await api.close();
});

async function get(path: string, view: AgentView, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown>; response: Response }> {
  current = () => view;
  const response = await fetch(`${api.url}${path}`, init);
  const text = await response.text();
  const body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  assert.doesNotMatch(text, /\bat .+:\d+:\d+|node_modules|\.ts:\d+/, 'never a stack trace');
  return { status: response.status, body, response };
}

test('the server listens where it says, on a port of its own choosing', () => {
  assert.match(api.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(api.url, 'http://127.0.0.1:0');
});

test('GET /primary: 200 on the primary, 503 on a replica and on a down node', async () => {
  const p = await get('/primary', primaryView);
  assert.equal(p.status, 200);
  assert.deepEqual(p.body, { ok: true, reason: 'primary of epoch 4; lease expires in 3.0 s', node: 'db1', epoch: 4 });
  assert.match(p.response.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(p.response.headers.get('cache-control'), 'no-store');

  const r = await get('/primary', replicaView);
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { ok: false, reason: 'not the primary: db1 is', node: 'db2', epoch: 4 });

  const d = await get('/primary', downView);
  assert.equal(d.status, 503);
  assert.equal(d.body.ok, false);
  assert.match(String(d.body.reason), /^server is down: connect ECONNREFUSED/);

  const none = await get('/primary', { ...primaryView, primary: null });
  assert.equal(none.status, 503);
  assert.equal(none.body.epoch, null);
});

test('HEAD /primary answers with the status alone, as a load balancer check may ask', async () => {
  assert.equal((await get('/primary', primaryView, { method: 'HEAD' })).status, 200);
  assert.equal((await get('/primary', replicaView, { method: 'HEAD' })).status, 503);
});

test('GET /replica: 200 on a healthy replica, 503 past max_lag, on the primary and on a down node', async () => {
  const r = await get('/replica', replicaView);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { ok: true, reason: 'replica of db1, lag 250 ms', node: 'db2', epoch: 4, lagMs: 250 });

  assert.equal((await get('/replica?max_lag=250', replicaView)).status, 200);
  assert.equal((await get('/replica?max_lag=1000.5', replicaView)).status, 200);
  const lagging = await get('/replica?max_lag=100', replicaView);
  assert.equal(lagging.status, 503);
  assert.equal(lagging.body.reason, 'replication lag 250 ms exceeds 100 ms');

  const p = await get('/replica', primaryView);
  assert.equal(p.status, 503);
  assert.equal(p.body.reason, 'this node is the primary');

  const d = await get('/replica?max_lag=100', downView);
  assert.equal(d.status, 503);
  assert.equal(d.body.lagMs, null);
});

test('GET /replica with a bad max_lag: 400 with a one-line error', async () => {
  for (const bad of ['abc', '-5', '', '1e3', '0x10', ' 5', 'Infinity', 'NaN']) {
    const res = await get(`/replica?max_lag=${encodeURIComponent(bad)}`, replicaView);
    assert.equal(res.status, 400, `max_lag=${JSON.stringify(bad)}`);
    assert.deepEqual(Object.keys(res.body), ['error']);
    assert.match(String(res.body.error), /^max_lag must be a non-negative number of milliseconds, got ".*"$/);
  }
  const twice = await get('/replica?max_lag=1&max_lag=2', replicaView);
  assert.equal(twice.status, 400);
  assert.equal(twice.body.error, 'max_lag given more than once');
});

test('parseMaxLag accepts digits with an optional fraction and nothing else', () => {
  assert.deepEqual(parseMaxLag(undefined), { ok: true, value: undefined });
  assert.deepEqual(parseMaxLag('0'), { ok: true, value: 0 });
  assert.deepEqual(parseMaxLag('1500'), { ok: true, value: 1500 });
  assert.deepEqual(parseMaxLag('2.5'), { ok: true, value: 2.5 });
  for (const bad of ['-1', '1.', '.5', '1,5', '+1']) assert.equal(parseMaxLag(bad).ok, false, bad);
});

test('GET /health: 200 while the server is up, 503 when down, and says why etcd is unreachable', async () => {
  const p = await get('/health', primaryView);
  assert.equal(p.status, 200);
  assert.deepEqual(p.body, {
    ok: true,
    reason: 'server is up; etcd is reachable',
    node: 'db1',
    etcd: { reachable: true, lastError: null },
    lease: { live: true, remainingMs: 3000 },
  });

  const noEtcd = await get('/health', { ...replicaView, etcd: { reachable: false, lastError: 'deadline exceeded' } });
  assert.equal(noEtcd.status, 200, 'etcd trouble alone does not take a node out of rotation');
  assert.deepEqual(noEtcd.body.etcd, { reachable: false, lastError: 'deadline exceeded' });

  const d = await get('/health', downView);
  assert.equal(d.status, 503);
  assert.deepEqual(d.body, {
    ok: false,
    reason: 'server is down: connect ECONNREFUSED 127.0.0.1:3306; etcd is unreachable: 14 UNAVAILABLE: No connection established',
    node: 'db1',
    etcd: { reachable: false, lastError: '14 UNAVAILABLE: No connection established' },
    lease: { live: false, remainingMs: 0 },
  });
});

test('GET /status: the agent, its role, the primary, lease, etcd, member and observation, and no secrets', async () => {
  const p = await get('/status', primaryView);
  assert.equal(p.status, 200);
  const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
  assert.equal(p.body.agentVersion, pkg.version);
  assert.deepEqual(
    Object.keys(p.body).sort(),
    ['agentVersion', 'cluster', 'coordinator', 'downProbes', 'etcd', 'lease', 'member', 'node', 'observation', 'primary', 'role', 'startedAt', 'uptimeMs'],
  );
  assert.equal(p.body.node, 'db1');
  assert.equal(p.body.cluster, 'main');
  assert.equal(p.body.role, 'primary');
  assert.equal(p.body.uptimeMs, 120_000);
  assert.deepEqual(p.body.coordinator, { self: true, node: 'db1' });
  assert.deepEqual(p.body.primary, PRIMARY_DB1);
  assert.deepEqual(p.body.lease, { id: '694d7a1b2c3d4e5f', live: true, remainingMs: 3000 });
  assert.deepEqual(p.body.etcd, { reachable: true, lastError: null });
  assert.deepEqual(p.body.member, primaryView.member);
  assert.deepEqual(p.body.observation, primaryView.observation);
  assert.ok(!JSON.stringify(p.body).includes(SECRET), 'passwords never leave the agent');

  const d = await get('/status', downView);
  assert.equal(d.status, 200, 'status answers whatever the node is doing');
  assert.equal(d.body.role, 'unknown');
  assert.equal(d.body.downProbes, 7);
  assert.deepEqual(d.body.observation, downObservation);
});

test('unknown routes and methods: 404 JSON naming what was asked', async () => {
  const res = await get('/nope?x=1', primaryView);
  assert.equal(res.status, 404);
  assert.deepEqual(res.body, { error: 'no such endpoint: GET /nope' });
  const post = await get('/primary', primaryView, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(post.status, 404);
  assert.deepEqual(post.body, { error: 'no such endpoint: POST /primary' });
});

test('a failing handler answers 500 without a stack trace and logs the error with cluster and node', async () => {
  logLines.length = 0;
  current = () => {
    throw new Error('view is broken');
  };
  const response = await fetch(`${api.url}/status`);
  const text = await response.text();
  assert.equal(response.status, 500);
  assert.deepEqual(JSON.parse(text), { error: 'internal error; the agent log has the details' });
  assert.doesNotMatch(text, /view is broken|\bat /);
  assert.equal(logLines.length, 1);
  const line = logLines[0] ?? {};
  assert.equal(line.level, 'error');
  assert.equal(line.cluster, 'main');
  assert.equal(line.node, 'db1');
  assert.equal(line.url, '/status');
  assert.match(JSON.stringify(line.err), /view is broken/);
});

test('a port in use: startHttpApi rejects with one line naming host:port', async () => {
  const port = Number(new URL(api.url).port);
  await assert.rejects(
    startHttpApi({ host: '127.0.0.1', port, view: () => primaryView, counters, logger }),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.message, `HTTP API cannot listen on 127.0.0.1:${port}: the address is already in use`);
      return true;
    },
  );
});

// --- Prometheus exposition: parsed back line by line ---

interface ParsedSample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

interface Exposition {
  readonly help: Map<string, string>;
  readonly type: Map<string, string>;
  readonly samples: ParsedSample[];
}

/** A strict reader of text format 0.0.4: HELP and TYPE before a family's samples, escapes undone. */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'ends with a line feed');
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: ParsedSample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name = '', rest = ''] = meta;
      const map = kind === 'HELP' ? help : type;
      assert.ok(!map.has(name), `one ${kind} for ${name}`);
      if (kind === 'TYPE') {
        assert.ok(help.has(name), `HELP before TYPE for ${name}`);
        assert.match(rest, /^(counter|gauge|histogram)$/);
      }
      map.set(name, rest);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `a sample line: ${JSON.stringify(line)}`);
    const [, name = '', labelText, valueText = ''] = sample;
    const family = type.get(name) === undefined ? name.replace(/_(bucket|sum|count)$/, '') : name;
    assert.ok(type.has(family), `TYPE declared before ${name}`);
    if (family !== name) assert.equal(type.get(family), 'histogram');
    const value = valueText === 'NaN' ? NaN : valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    assert.ok(valueText === 'NaN' || !Number.isNaN(value), `a number: ${valueText}`);
    samples.push({ name, labels: parseLabels(labelText ?? ''), value });
  }
  return { help, type, samples };
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*="/.exec(text.slice(i));
    assert.ok(name, `a label name at ${text.slice(i)}`);
    i += name[0].length;
    let value = '';
    for (;;) {
      const c = text[i];
      assert.ok(c !== undefined, 'label value closed');
      assert.notEqual(c, '\n');
      i += 1;
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i];
        i += 1;
        assert.ok(e === '\\' || e === '"' || e === 'n', `a valid escape: \\${e}`);
        value += e === 'n' ? '\n' : e;
      } else {
        value += c;
      }
    }
    const key = name[0].slice(0, -2);
    assert.ok(!(key in labels), `label ${key} once`);
    labels[key] = value;
    if (text[i] === ',') i += 1;
    else assert.equal(i, text.length, 'labels end after a value');
  }
  return labels;
}

function valueOf(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const matches = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(matches.length, 1, `one sample ${name} ${JSON.stringify(labels)}`);
  return matches[0]?.value ?? NaN;
}

const FAMILIES = [
  'primacy_probe_duration_seconds', 'primacy_probes_total', 'primacy_probe_failures_total', 'primacy_replication_lag_seconds', 'primacy_role',
  'primacy_read_only', 'primacy_node_up', 'primacy_lease_remaining_seconds', 'primacy_etcd_reachable', 'primacy_etcd_errors_total',
  'primacy_member_writes_total', 'primacy_lease_losses_total', 'primacy_fencings_total', 'primacy_coordinator', 'primacy_epoch', 'primacy_operations_total',
];

test('metrics: every family has HELP and TYPE, every sample carries cluster and node', async () => {
  const e = parseExposition(await renderMetrics(replicaView, counters, NOW));
  assert.deepEqual([...e.type.keys()], FAMILIES);
  assert.deepEqual([...e.help.keys()], FAMILIES);
  for (const [name, t] of e.type) assert.equal(t, name.endsWith('_total') ? 'counter' : name === 'primacy_probe_duration_seconds' ? 'histogram' : 'gauge');
  for (const s of e.samples) {
    assert.equal(s.labels.cluster, 'main', s.name);
    assert.equal(s.labels.node, 'db2', s.name);
  }
});

test('metrics: the probe histogram is in seconds, cumulative, and ends with +Inf equal to the count', async () => {
  const e = parseExposition(await renderMetrics(replicaView, counters, NOW));
  const buckets = e.samples.filter((s) => s.name === 'primacy_probe_duration_seconds_bucket');
  assert.deepEqual(buckets.map((b) => b.labels.le), ['0.001', '0.002', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '+Inf']);
  assert.deepEqual(buckets.map((b) => b.value), [1, 2, 4, 4, 4, 5, 5, 5, 5, 5, 6]);
  assert.equal(valueOf(e, 'primacy_probe_duration_seconds_count'), 6);
  assert.ok(Math.abs(valueOf(e, 'primacy_probe_duration_seconds_sum') - 2.048) < 1e-9);
});

test('metrics: the values of a replica, a primary and a down node', async () => {
  const r = parseExposition(await renderMetrics(replicaView, counters, NOW));
  assert.equal(valueOf(r, 'primacy_probes_total'), 6);
  assert.equal(valueOf(r, 'primacy_probe_failures_total'), 1);
  assert.equal(valueOf(r, 'primacy_replication_lag_seconds'), 0.25);
  assert.equal(valueOf(r, 'primacy_role', { role: 'replica' }), 1);
  for (const role of ['primary', 'diverged', 'unknown']) assert.equal(valueOf(r, 'primacy_role', { role }), 0);
  assert.equal(valueOf(r, 'primacy_read_only'), 1);
  assert.equal(valueOf(r, 'primacy_node_up'), 1);
  assert.equal(valueOf(r, 'primacy_lease_remaining_seconds'), 3);
  assert.equal(valueOf(r, 'primacy_etcd_reachable'), 1);
  assert.equal(valueOf(r, 'primacy_etcd_errors_total'), 2);
  assert.equal(valueOf(r, 'primacy_member_writes_total'), 9);
  assert.equal(valueOf(r, 'primacy_lease_losses_total'), 0);
  assert.equal(valueOf(r, 'primacy_fencings_total'), 0);
  assert.equal(valueOf(r, 'primacy_coordinator'), 0);
  assert.equal(valueOf(r, 'primacy_epoch'), 4);
  assert.equal(valueOf(r, 'primacy_operations_total', { kind: 'failover', outcome: 'done' }), 1);
  assert.equal(valueOf(r, 'primacy_operations_total', { kind: 'switchover', outcome: 'aborted' }), 2);

  const p = parseExposition(await renderMetrics(primaryView, counters, NOW));
  assert.equal(valueOf(p, 'primacy_role', { role: 'primary' }), 1);
  assert.equal(valueOf(p, 'primacy_read_only'), 0);
  assert.equal(valueOf(p, 'primacy_coordinator'), 1);

  const d = parseExposition(await renderMetrics(downView, counters, NOW));
  assert.ok(Number.isNaN(valueOf(d, 'primacy_replication_lag_seconds')), 'lag unknown is NaN');
  assert.ok(Number.isNaN(valueOf(d, 'primacy_read_only')), 'read-only unknown is NaN');
  assert.equal(valueOf(d, 'primacy_node_up'), 0);
  assert.equal(valueOf(d, 'primacy_lease_remaining_seconds'), 0);
  assert.equal(valueOf(d, 'primacy_etcd_reachable'), 0);
  assert.equal(valueOf(d, 'primacy_role', { role: 'unknown' }), 1);
  assert.equal(valueOf(parseExposition(await renderMetrics({ ...downView, primary: null }, counters, NOW)), 'primacy_epoch'), 0);
});

test('metrics: label values with quotes, backslashes and line feeds are escaped and read back intact', async () => {
  const odd = 'a"b\\c\nd';
  const c = newCounters();
  c.operations.set(`fail"over:done\\x`, 3);
  c.operations.set('orphan', 1);
  const view: AgentView = { ...replicaView, config: { ...replicaView.config, cluster: odd, node: 'n\\' } };
  const text = await renderMetrics(view, c, NOW);
  const e = parseExposition(text);
  for (const s of e.samples) assert.deepEqual([s.labels.cluster, s.labels.node], [odd, 'n\\']);
  assert.equal(valueOf(e, 'primacy_operations_total', { kind: 'fail"over', outcome: 'done\\x' }), 3);
  assert.equal(valueOf(e, 'primacy_operations_total', { kind: 'orphan', outcome: 'unknown' }), 1);
  assert.equal(text.split('\n').length, e.help.size * 2 + e.samples.length + 1, 'no value spills onto another line');
});

test('GET /metrics serves text format 0.0.4 that parses back', async () => {
  current = () => replicaView;
  const response = await fetch(`${api.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const e = parseExposition(await response.text());
  assert.deepEqual([...e.type.keys()], FAMILIES);
  assert.equal(valueOf(e, 'primacy_role', { role: 'replica' }), 1);
});

test('log lines are JSON with cluster and node; withEpoch adds the epoch', () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug', cluster: 'main', node: 'db3', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  log.debug('probing');
  withEpoch(log, 7).info({ reason: 'db1 lease expired' }, 'failover decided');
  log.trace('below the level');
  assert.equal(lines.length, 2);
  assert.deepEqual([lines[0]?.level, lines[0]?.cluster, lines[0]?.node, lines[0]?.epoch], ['debug', 'main', 'db3', undefined]);
  assert.deepEqual([lines[1]?.level, lines[1]?.cluster, lines[1]?.node, lines[1]?.epoch, lines[1]?.reason, lines[1]?.msg], ['info', 'main', 'db3', 7, 'db1 lease expired', 'failover decided']);
  assert.equal(typeof lines[1]?.time, 'string');
});
