import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterConfigSchema, MemberStateSchema, clusterKeys, type OpRecord } from '@primacy/common';
import type { ClusterSnapshot } from '../etcd/store.js';
import { member, membersOf, primary } from '../testing/members.js';
import { concernsAgent, decidesOnMembers } from './cluster-watch.js';

const keys = clusterKeys('main');

/** db1 primary (ready), db2 coordinating, db3 a plain replica; members parsed as the store parses them. */
function steady(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return ({
    members: membersOf(...['db1', 'db2', 'db3'].map((n) => MemberStateSchema.parse(member(n, {}, { lagMs: n === 'db1' ? null : 5 })))),
    primary: primary('db1'),
    primaryModRevision: '5',
    epoch: 1,
    config: ClusterConfigSchema.parse({}),
    durability: null,
    currentOp: null,
    pendingOp: null,
    requests: new Map(),
    clients: new Map(),
    campaigners: [
      { key: `${keys.election}/1`, node: 'db2', createRevision: '3', lease: '1' },
      { key: `${keys.election}/2`, node: 'db1', createRevision: '4', lease: '2' },
    ],
    invalid: [],
    revision: '9',
    ...over,
  }) as ClusterSnapshot;
}

describe('which watch hints an agent re-reads for', () => {
  it('a steady replica skips the other replicas\' member keys and its own, nothing else', () => {
    const snap = steady();
    assert.equal(concernsAgent(keys.member('db2'), keys, 'db3', snap), false, 'another replica\'s member key');
    assert.equal(concernsAgent(keys.member('db3'), keys, 'db3', snap), false, 'its own echo');
    assert.equal(concernsAgent(keys.member('db1'), keys, 'db3', snap), true, 'the primary\'s member key');
    for (const key of [keys.primary, keys.epoch, keys.config, keys.op(2), `${keys.election}/1`, keys.request('r1'), keys.durability]) {
      assert.equal(concernsAgent(key, keys, 'db3', snap), true, key);
    }
  });

  it('the coordinator and the primary\'s agent re-read every member key', () => {
    const snap = steady();
    assert.equal(decidesOnMembers('db2', snap), true);
    assert.equal(decidesOnMembers('db1', snap), true);
    assert.equal(decidesOnMembers('db3', snap), false);
    assert.equal(concernsAgent(keys.member('db3'), keys, 'db2', snap), true);
    assert.equal(concernsAgent(keys.member('db3'), keys, 'db1', snap), true);
  });

  it('every agent re-reads everything before its first snapshot, while the primary is not ready, and while an operation runs', () => {
    const running = { kind: 'failover', outcome: 'running' } as unknown as OpRecord;
    for (const snap of [null, steady({ primary: null }), steady({ primary: primary('db1', { state: 'switching' }) }), steady({ pendingOp: running })]) {
      assert.equal(concernsAgent(keys.member('db2'), keys, 'db3', snap), true);
    }
  });

  it('in a steady cluster, a member key rewritten with only positions, lag and times moved is skipped by every agent, the coordinator too', () => {
    const snap = steady();
    const before = snap.members.get('db3')!;
    const moved = { ...before, updatedAt: before.updatedAt + 30_000, server: { ...before.server!, gtid: { ...before.server!.gtid, executed: '0-1-999' }, lagMs: 40 } };
    for (const self of ['db1', 'db2', 'db3']) assert.equal(concernsAgent(keys.member('db3'), keys, self, snap, JSON.stringify(moved)), false, self);
    // Health, read_only, the replication threads or lag crossing maxLagMs: re-read by those that act on members.
    const down = { ...before, health: 'down' };
    const ro = { ...moved, server: { ...moved.server, readOnly: false } };
    const lagging = { ...moved, server: { ...moved.server, lagMs: 20_000 } };
    for (const v of [down, ro, lagging]) {
      assert.equal(concernsAgent(keys.member('db3'), keys, 'db2', snap, JSON.stringify(v), 10_000), true, JSON.stringify(v).slice(0, 60));
      assert.equal(concernsAgent(keys.member('db3'), keys, 'db1', snap, JSON.stringify(v), 10_000), true);
    }
    // A value that cannot be read, a delete and a new member are always re-read.
    assert.equal(concernsAgent(keys.member('db3'), keys, 'db2', snap, '{"node":'), true);
    assert.equal(concernsAgent(keys.member('db3'), keys, 'db2', snap, null), true);
    assert.equal(concernsAgent(keys.member('db4'), keys, 'db2', snap, JSON.stringify(member('db4'))), true);
    // While the primary is not ready or an operation runs, positions matter: nothing is skipped.
    const running = { kind: 'switchover', outcome: 'running' } as unknown as OpRecord;
    for (const busy of [steady({ primary: primary('db1', { state: 'switching' }) }), steady({ pendingOp: running })]) {
      assert.equal(concernsAgent(keys.member('db3'), keys, 'db3', busy, JSON.stringify(moved)), true);
    }
  });
});
