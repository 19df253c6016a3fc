import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterConfigSchema, clusterKeys, type OpRecord } from '@primacy/common';
import type { ClusterSnapshot } from '../etcd/store.js';
import { member, membersOf, primary } from '../testing/members.js';
import { concernsAgent, decidesOnMembers } from './cluster-watch.js';

const keys = clusterKeys('main');

/** db1 primary (ready), db2 coordinating, db3 a plain replica; only the fields the rule reads matter. */
function steady(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return ({
    members: membersOf(member('db1'), member('db2'), member('db3')),
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
});
