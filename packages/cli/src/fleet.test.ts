import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { groupByCluster, fleetModel, renderClusters, renderFleetStatus } from './fleet.js';
import { PLAIN } from './io.js';
import { T0, clusterKvs, member, op, primary, replicatingFrom } from './testing/fixtures.js';

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
    const f = fleetModel('/primacy', '9', [...healthy, ...replicaDown, ...noCoordinator, ...promoting, ...noPrimary, ...paused], T0);
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
    const f = fleetModel('/primacy', '9', kvs, T0);
    const c = f.clusters[0]!;
    assert.equal(c.health, 'degraded', 'db3 has no readable member key, so it is gone');
    assert.deepEqual(c.problems, ['db3 gone']);
    assert.equal(f.warnings.length, 1);
    assert.match(f.warnings[0]!, /^ignoring malformed value at \/primacy\/m1\/members\/db3: not JSON/);
  });

  test('clusters: one line per cluster', () => {
    const f = fleetModel('/primacy', '9', [...clusterKvs('c1'), ...clusterKvs('c2', { primary: null, lastOp: running, requests: { r1: { kind: 'switchover', to: null, requestedAt: T0, by: 'ops@h' } } })], T0);
    assert.deepEqual(renderClusters(f, T0, PLAIN), [
      'CLUSTER  PRIMARY  EPOCH  HEALTH  NODES  OPERATION                                      NOTES',
      'c1       db2      2      ok      3/3    -                                              -',
      'c2       -        2      down    3/3    failover db2 → - (epoch 3, fence, 4.00 s ago)  no primary; failover to epoch 3 waits for a fencing proof; 1 request not taken',
    ]);
    assert.deepEqual(renderClusters(fleetModel('/x/', '1', [], T0), T0, PLAIN), ['no clusters under /x/']);
  });

  test('status --all: counts, then only the clusters that need a look', () => {
    const kvs = [...clusterKvs('c1'), ...clusterKvs('c2'), ...clusterKvs('c3', { config: { paused: true } }), ...clusterKvs('c4', { primary: primary('db2', { state: 'switching' }) })];
    const lines = renderFleetStatus(fleetModel('/primacy', '9', kvs, T0), T0, PLAIN);
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
    const calm = renderFleetStatus(fleetModel('/primacy', '9', clusterKvs('c1'), T0), T0, PLAIN);
    assert.equal(calm.at(-1), 'every cluster has a ready primary and every node ok');
  });

  test('1,000 clusters of 3 nodes: the model of a root read is fast', (t) => {
    const kvs = Array.from({ length: 1000 }, (_, i) => clusterKvs(`c${i}`)).flat();
    const started = performance.now();
    const f = fleetModel('/primacy', '9', kvs, T0);
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
