import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STRICT_SEMI_SYNC_TIMEOUT_MS, type ClusterConfig, type MemberState, type Primary } from '@primacy/common';
import { decide } from './decide.js';
import type { ClusterView } from './model.js';
import { member, membersOf, primary, replicatingFrom, timings } from '../testing/members.js';

const config: ClusterConfig = { paused: false, nodes: {} };

function view(members: MemberState[], over: Partial<ClusterView> = {}): ClusterView {
  return { now: 1000, members: membersOf(...members), primary: null, epoch: 0, config, bootstrapPrimary: null, currentOp: null, pendingOp: null, requests: new Map(), clients: new Map(), timings, ...over };
}

const db1Source = member('db1', {}, { gtid: { executed: '0-1-10', received: '0-1-10' } });
const db2Replica = member('db2', {}, { replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed: '0-1-9', received: '0-1-10' } });
const db3Replica = member('db3', {}, { replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed: '0-1-10', received: '0-1-10' } });

test('bootstrap picks the one node without a source that has every transaction', () => {
  assert.deepEqual(pick(decide(view([db1Source, db2Replica, db3Replica]))), ['bootstrap', 'db1']);
});

test('bootstrap picks the configured node', () => {
  const fresh = ['db1', 'db2', 'db3'].map((n) => member(n, {}, { gtid: { executed: '', received: '' } }));
  assert.deepEqual(pick(decide(view(fresh, { bootstrapPrimary: 'db2' }))), ['bootstrap', 'db2']);
});

test('bootstrap refuses a configured node that lacks transactions others have', () => {
  const d = decide(view([db1Source, db2Replica], { bootstrapPrimary: 'db2' }));
  assert.equal(d.kind, 'bootstrap-refused');
  assert.match(reason(d), /db2 lacks transactions that db1 has/);
});

test('bootstrap refuses a configured node that is down', () => {
  const d = decide(view([db1Source, member('db2', { health: 'down' }, null)], { bootstrapPrimary: 'db2' }));
  assert.match(reason(d), /db2 is not reachable/);
});

test('bootstrap refuses two nodes without a source', () => {
  const fresh = ['db1', 'db2'].map((n) => member(n, {}, { gtid: { executed: '', received: '' } }));
  const d = decide(view(fresh));
  assert.equal(d.kind, 'bootstrap-refused');
  assert.match(reason(d), /ambiguous: db1 and db2/);
});

test('bootstrap refuses diverged positions', () => {
  const a = member('db1', {}, { gtid: { executed: '0-1-10', received: '0-1-10' } });
  const b = member('db2', {}, { replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed: '0-2-10', received: '0-2-10' } });
  assert.match(reason(decide(view([a, b]))), /diverged/);
});

test('bootstrap refuses a sourceless node that is behind a replica', () => {
  const a = member('db1', {}, { gtid: { executed: '0-1-5', received: '0-1-5' } });
  assert.match(reason(decide(view([a, db3Replica]))), /db3 is more advanced/);
});

test('bootstrap waits for a reachable member', () => {
  assert.match(reason(decide(view([member('db1', { health: 'down' }, null)]))), /no member/);
});

test('a malformed GTID in a member is refused, not thrown', () => {
  const bad = member('db2', {}, { replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed: 'garbage', received: 'garbage' } });
  assert.equal(decide(view([db1Source, bad])).kind, 'bootstrap-refused');
});

test('a promoting primary becomes ready once its agent reports the promotion done', () => {
  const p: Primary = primary('db1', { state: 'promoting', epoch: 1 });
  const pending = member('db1', {}, { readOnly: false, heartbeatEpoch: null });
  assert.equal(decide(view([pending], { primary: p, epoch: 1 })).kind, 'none');
  const done = member('db1', {}, { readOnly: false, heartbeatEpoch: 1 });
  assert.deepEqual(pick(decide(view([done], { primary: p, epoch: 1 }))), ['mark-ready', 'db1']);
});

test('a ready, healthy primary needs nothing, once its semi-sync state is recorded', () => {
  const p1 = member('db1', {}, { readOnly: false, heartbeatEpoch: 1 });
  const first = decide(view([p1, db2Replica, db3Replica], { primary: primary('db1'), epoch: 1, durabilityRecord: null, now: 5 }));
  assert.ok(first.kind === 'record-durability', JSON.stringify(first));
  assert.deepEqual(first.record, { epoch: 1, node: 'db1', mode: 'semi-sync', state: 'off', strict: false, since: 5, clients: 0 });
  assert.equal(decide(view([p1, db2Replica, db3Replica], { primary: primary('db1'), epoch: 1, durabilityRecord: first.record })).kind, 'none');
});

test('the durability record follows the primary\'s semi-sync: fallen back since when, strict only when the server is', () => {
  const withSemiSync = (semiSync: Partial<MemberState['server'] & object>['semiSync']) => member('db1', {}, { readOnly: false, heartbeatEpoch: 1, ...(semiSync ? { semiSync } : {}) });
  const ss = { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: 10_000, sourceWaitNoReplica: true };
  const at = (m: MemberState, over: Partial<ClusterView>) => decide(view([m, db2Replica, db3Replica], { primary: primary('db1'), epoch: 1, now: 50, ...over }));
  const active = at(withSemiSync(ss), { durabilityRecord: null });
  assert.ok(active.kind === 'record-durability' && active.record.state === 'active' && !active.record.strict, JSON.stringify(active));
  const fell = at(withSemiSync({ ...ss, sourceActive: false }), { durabilityRecord: active.record, now: 80 });
  assert.ok(fell.kind === 'record-durability' && fell.record.state === 'fallback' && fell.record.since === 80, JSON.stringify(fell));
  // Strict needs the cluster to be strict and the server to show no fallback: an effectively infinite timeout, waiting with no replica.
  const notYet = at(withSemiSync(ss), { durabilityRecord: active.record, durabilityMode: 'strict' });
  assert.ok(notYet.kind === 'record-durability' && !notYet.record.strict && notYet.record.mode === 'strict', JSON.stringify(notYet));
  const strict = at(withSemiSync({ ...ss, sourceTimeoutMs: STRICT_SEMI_SYNC_TIMEOUT_MS }), { durabilityRecord: notYet.record, durabilityMode: 'strict', now: 90 });
  assert.ok(strict.kind === 'record-durability' && strict.record.strict && strict.record.since === 50, JSON.stringify(strict));
  const noWait = at(withSemiSync({ ...ss, sourceTimeoutMs: STRICT_SEMI_SYNC_TIMEOUT_MS, sourceWaitNoReplica: false }), { durabilityRecord: strict.record, durabilityMode: 'strict' });
  assert.ok(noWait.kind === 'record-durability' && !noWait.record.strict, JSON.stringify(noWait));
  // A primary that does not answer (its replicas still receive from it) changes nothing: the last record stands.
  assert.equal(at(member('db1', { health: 'down' }, null), { durabilityRecord: strict.record, durabilityMode: 'strict' }).kind, 'none');
});

function pick(d: ReturnType<typeof decide>): [string, string | undefined] {
  return [d.kind, 'node' in d ? d.node : undefined];
}
function reason(d: ReturnType<typeof decide>): string {
  return 'reason' in d ? d.reason : '';
}
