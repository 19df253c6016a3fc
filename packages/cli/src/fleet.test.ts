import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterKeys } from '@primacy/common';
import type { RawKv } from './cluster.js';
import { clusterFromRanges, clusterRanges, groupByCluster, fleetModel, listingResume, prefixEnd, renderClusters, renderFleetStatus } from './fleet.js';
import { PLAIN } from './io.js';
import { T0, clusterKvs, member, op, primary, replicatingFrom } from './testing/fixtures.js';

/** The fleet model of a root read's keys. */
function rootModel(root: string, revision: string, kvs: readonly RawKv[], readAt: number) {
  return fleetModel(root, revision, groupByCluster(root, revision, kvs), readAt);
}

const running = op({ epoch: 3, from: 'db2', to: null, outcome: 'running', endedAt: null, startedAt: T0 - 4_000, steps: [{ name: 'fence', startedAt: T0 - 4_000, endedAt: null, outcome: 'running', detail: 'cannot prove db2 fenced' }] });

describe('the fleet from one root read', () => {
  test('keys are grouped by cluster, in the shape of one cluster read; foreign keys are skipped', () => {
    const kvs = [...clusterKvs('c2'), ...clusterKvs('c10'), ...clusterKvs('c1')].reverse();
    const stray = [
      { key: '/primacy/loose', value: '1', createRevision: '1', modRevision: '1' },
      { key: '/primacy/bad name/primary', value: '{}', createRevision: '1', modRevision: '1' },
      { key: '/other/c9/primary', value: '{}', createRevision: '1', modRevision: '1' },
    ];
    const grouped = groupByCluster('/primacy', '77', [...kvs, ...stray]);
    assert.deepEqual([...grouped.keys()], ['c1', 'c2', 'c10'], 'by name, numbers in order');
    const c1 = grouped.get('c1')!;
    assert.equal(c1.revision, '77');
    assert.equal(c1.members.length, 3);
    assert.equal(c1.keyCount, clusterKvs('c1').length);
    assert.equal(c1.election[0]!.value, 'db3', 'the oldest election key first, whatever the key order');
    assert.equal(c1.lastOp!.key, '/primacy/c1/ops/0000000002', 'the newest ops/ key; history/ is not an op');
    assert.ok(c1.primary && c1.epoch && c1.config === null);
  });

  test('health: ok, degraded (a replica down, no coordinator, a waiting failover), down (no ready primary)', () => {
    const healthy = clusterKvs('ok1');
    const replicaDown = clusterKvs('deg1', {
      members: [
        member('db1', { health: 'down', error: 'ECONNREFUSED' }, null),
        member('db2', { role: 'primary' }, { readOnly: false }),
        member('db3', {}, { replication: replicatingFrom('db2') }),
      ],
    });
    const noCoordinator = clusterKvs('deg2', { coordinator: null });
    const promoting = clusterKvs('down1', { primary: primary('db2', { state: 'promoting' }) });
    const noPrimary = clusterKvs('down2', { primary: null, lastOp: running });
    const paused = clusterKvs('ok2', { config: { paused: true, nodes: { db1: { maintenance: true } } } });
    const f = rootModel('/primacy', '9', [...healthy, ...replicaDown, ...noCoordinator, ...promoting, ...noPrimary, ...paused], T0);
    const by = new Map(f.clusters.map((c) => [c.cluster, c]));
    assert.deepEqual(f.clusters.map((c) => [c.cluster, c.health]), [
      ['deg1', 'degraded'],
      ['deg2', 'degraded'],
      ['down1', 'down'],
      ['down2', 'down'],
      ['ok1', 'ok'],
      ['ok2', 'ok'],
    ]);
    assert.deepEqual(by.get('ok1')!.problems, []);
    assert.deepEqual(by.get('ok1')!.nodes, { total: 3, ok: 3 });
    assert.deepEqual([by.get('ok1')!.primary?.node, by.get('ok1')!.epoch, by.get('ok1')!.coordinator], ['db2', 2, 'db3']);
    assert.deepEqual(by.get('deg1')!.problems, ['db1 down']);
    assert.deepEqual(by.get('deg1')!.nodes, { total: 3, ok: 2 });
    assert.deepEqual(by.get('deg2')!.problems, ['no coordinator']);
    assert.deepEqual(by.get('down1')!.problems, ['primary db2 promoting']);
    assert.deepEqual(by.get('down2')!.problems, ['no primary', 'failover to epoch 3 waits for a fencing proof']);
    assert.deepEqual(by.get('down2')!.operation, { epoch: 3, kind: 'failover', from: 'db2', to: null, step: 'fence', startedAt: T0 - 4_000 });
    assert.deepEqual([by.get('ok2')!.paused, by.get('ok2')!.maintenance], [true, ['db1']]);
    assert.deepEqual(f.warnings, []);
  });

  test('a node in maintenance does not degrade its cluster; a malformed value is a warning', () => {
    const kvs = clusterKvs('m1', {
      config: { nodes: { db1: { maintenance: true } } },
      members: [member('db1', { health: 'down' }, null), member('db2', { role: 'primary' }, { readOnly: false }), { node: 'db3', raw: '{"node":' }],
    });
    const f = rootModel('/primacy', '9', kvs, T0);
    const c = f.clusters[0]!;
    assert.equal(c.health, 'degraded', 'db3 has no readable member key, so it is gone');
    assert.deepEqual(c.problems, ['db3 gone']);
    assert.equal(f.warnings.length, 1);
    assert.match(f.warnings[0]!, /^ignoring malformed value at \/primacy\/m1\/members\/db3: not JSON/);
  });

  test('clusters: one line per cluster', () => {
    const f = rootModel('/primacy', '9', [...clusterKvs('c1'), ...clusterKvs('c2', { primary: null, lastOp: running, requests: { r1: { kind: 'switchover', to: null, requestedAt: T0, by: 'ops@h' } } })], T0);
    assert.deepEqual(renderClusters(f, T0, PLAIN), [
      'CLUSTER  PRIMARY  EPOCH  HEALTH  NODES  OPERATION                                      NOTES',
      'c1       db2      2      ok      3/3    -                                              -',
      'c2       -        2      down    3/3    failover db2 → - (epoch 3, fence, 4.00 s ago)  no primary; failover to epoch 3 waits for a fencing proof; 1 request not taken',
    ]);
    assert.deepEqual(renderClusters(rootModel('/x/', '1', [], T0), T0, PLAIN), ['no clusters under /x/']);
  });

  test('status --all: counts, then only the clusters that need a look', () => {
    const kvs = [...clusterKvs('c1'), ...clusterKvs('c2'), ...clusterKvs('c3', { config: { paused: true } }), ...clusterKvs('c4', { primary: primary('db2', { state: 'switching' }) })];
    const lines = renderFleetStatus(rootModel('/primacy', '9', kvs, T0), T0, PLAIN);
    assert.deepEqual(lines, [
      'root        /primacy/ (etcd revision 9): 4 clusters',
      'ok          3',
      'degraded    0',
      'down        1: no ready primary',
      'paused      1: c3',
      'operations  none running',
      '',
      'CLUSTER  PRIMARY  EPOCH  HEALTH  NODES  OPERATION  NOTES',
      'c4       db2      2      down    3/3    -          primary db2 switching',
      'c3       db2      2      ok      3/3    -          paused',
    ]);
    const calm = renderFleetStatus(rootModel('/primacy', '9', clusterKvs('c1'), T0), T0, PLAIN);
    assert.equal(calm.at(-1), 'every cluster has a ready primary and every node ok');
  });

  test('1,000 clusters of 3 nodes: the model of a root read is fast', (t) => {
    const kvs = Array.from({ length: 1000 }, (_, i) => clusterKvs(`c${i}`)).flat();
    const started = performance.now();
    const f = rootModel('/primacy', '9', kvs, T0);
    const lines = renderFleetStatus(f, T0, PLAIN);
    const took = performance.now() - started;
    assert.equal(f.clusters.length, 1000);
    assert.equal(lines[0], 'root        /primacy/ (etcd revision 9): 1000 clusters');
    t.diagnostic(`1,000 clusters, ${kvs.length} keys: model and screen in ${took.toFixed(0)} ms`);
    // About 100 ms here when the machine is quiet; the bound is for a loaded CI machine, and still
    // far below what a per-cluster cost that grows with N would take.
    assert.ok(took < 5_000, `took ${took.toFixed(0)} ms`);
  });
});

/** What etcd answers a range over `kvs`: keys in [key, end), in key order, newest first and cut to the limit if asked. */
function answer(kvs: readonly RawKv[], r: ReturnType<typeof clusterRanges>[number]): RawKv[] {
  const hit = [...kvs].filter((kv) => kv.key >= r.key && kv.key < r.end).sort((a, b) => (a.key < b.key ? -1 : 1));
  if (r.descend) hit.reverse();
  return r.limit ? hit.slice(0, r.limit) : hit;
}

describe('the ranges of one cluster in a fleet read', () => {
  const keys = clusterKeys('c1');
  const v = (key: string, value: unknown = {}): RawKv => ({ key, value: JSON.stringify(value), createRevision: '5', modRevision: '6' });
  // A key of every kind the layout has, and neighbours whose names start alike.
  const mine = [
    ...clusterKvs('c1'),
    v(keys.client('app-1')),
    v(keys.config, { paused: true }),
    v(keys.durability),
    v(keys.lastSeen),
    v(keys.salvage('db1')),
    v(keys.rejoin('db3')),
    v(keys.request('r1'), { kind: 'switchover', to: null, requestedAt: T0, by: 'ops@h' }),
    ...Array.from({ length: 30 }, (_, i) => v(keys.historyEntry(T0 + i, `${i + 3}-switchover-done`))),
    ...Array.from({ length: 30 }, (_, i) => v(keys.op(i + 3))),
  ];
  const neighbours = [...clusterKvs('c1-a'), ...clusterKvs('c1.b'), ...clusterKvs('c10'), ...clusterKvs('c0')];
  const all = [...mine, ...neighbours];

  test('every key of the cluster but clients/, last-seen, history/ and the older ops/ is read; no other cluster\'s', () => {
    const ranges = clusterRanges(keys, false);
    const read = ranges.filter((r) => !r.countOnly).flatMap((r) => answer(all, r));
    const kinds = (kvs: RawKv[]) => [...new Set(kvs.map((kv) => kv.key.slice(keys.prefix.length).split('/')[0]))].sort();
    assert.deepEqual(kinds(read), ['config', 'durability', 'election', 'epoch', 'members', 'ops', 'primary', 'rejoin', 'requests', 'salvage']);
    assert.ok(read.every((kv) => kv.key.startsWith(keys.prefix)), 'nothing of c1-a, c1.b, c10 or c0');
    assert.deepEqual(read.filter((kv) => kv.key.startsWith(keys.opsPrefix)).map((kv) => kv.key), [keys.op(32)], 'the newest op only');
    assert.equal(read.length, 14, '3 members, 3 election keys, primary, epoch, config, durability, the newest op, salvage, rejoin, request');
    const count = ranges.find((r) => r.countOnly)!;
    assert.equal(answer(all, count).length, mine.length, 'the count covers the whole cluster');
  });

  test('the cluster from its ranges is the cluster from all its keys', () => {
    const answers = (withOps: boolean) => {
      const ranges = clusterRanges(keys, withOps);
      return { count: answer(all, ranges[0]!).length, kvs: ranges.slice(1).map((r) => answer(all, r)) };
    };
    const { raw, ops } = clusterFromRanges(keys, '9', answers(false));
    assert.deepEqual(raw, groupByCluster('/primacy', '9', mine).get('c1'));
    assert.equal(ops, null);
    const withOps = clusterFromRanges(keys, '9', answers(true));
    assert.deepEqual(withOps.raw, raw);
    assert.deepEqual([withOps.ops!.ops.length, withOps.ops!.history.length], [32, 31]);
  });

  test('a listing goes on past the cluster of its last key', () => {
    assert.equal(prefixEnd('/primacy/c1/'), '/primacy/c10');
    assert.equal(listingResume('/primacy', keys.member('db1')), '/primacy/c10');
    assert.equal(listingResume('/primacy/', keys.historyEntry(T0, 'x')), '/primacy/c10');
    assert.equal(listingResume('/primacy', '/primacy/loose'), '/primacy/loose\0', 'a key of no cluster: just past it');
    assert.equal(listingResume('/primacy', '/primacy/bad name/x'), '/primacy/bad name/x\0');
  });
});
