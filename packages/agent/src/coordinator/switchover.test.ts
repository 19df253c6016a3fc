import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterConfig, MemberState, OpRecord, OperatorRequest } from '@primacy/common';
import { decide } from './decide.js';
import type { ClusterView, Decision } from './model.js';
import { member, membersOf, primary, replicatingFrom, timings } from '../testing/members.js';

const config: ClusterConfig = { paused: false, nodes: {} };
const P = primary('db1', { epoch: 4 });
const writable = member('db1', {}, { readOnly: false, heartbeatEpoch: 4, gtid: { executed: '0-1-20', received: '0-1-20' } });
const replica = (node: string, executed: string, over: Partial<MemberState> = {}) =>
  member(node, over, { serverId: Number(node.slice(2)), replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed, received: executed }, lagMs: 50 });

function view(members: MemberState[], over: Partial<ClusterView> = {}): ClusterView {
  return { now: 10_000, members: membersOf(...members), primary: P, epoch: 4, config, bootstrapPrimary: null, currentOp: null, pendingOp: null, requests: new Map(), clients: new Map(), timings, ...over };
}

function req(r: Partial<OperatorRequest>): Map<string, OperatorRequest> {
  return new Map([['100-a', { kind: 'switchover', to: null, force: false, unfenced: false, requestedAt: 1, by: 't', ...r }]]);
}

const held = { name: 'clients paused', startedAt: 9_000, endedAt: 9_000, outcome: 'ok' as const, detail: '' };

function op(over: Partial<OpRecord> = {}): OpRecord {
  return {
    epoch: 5, kind: 'switchover', from: 'db1', to: 'db2', trigger: 'request 100-a', request: { id: '100-a', to: 'db2', force: false },
    coordinator: { node: 'db3', revision: '1' }, startedAt: 9_000, endedAt: null, outcome: 'running', reason: 'r', catchUpFrom: null, mustContain: null, applied: null, proof: null, durability: null,
    members: {}, candidates: [], steps: [held], ...over,
  };
}

const reason = (d: Decision) => ('reason' in d ? d.reason : '');
const switching = primary('db1', { epoch: 4, state: 'switching' });

test('a switchover request starts with the named, healthy replica', () => {
  const d = decide(view([writable, replica('db2', '0-1-20'), replica('db3', '0-1-20')], { requests: req({ to: 'db3' }) }));
  assert.ok(d.kind === 'switchover-start' && d.to === 'db3' && d.request.id === '100-a', JSON.stringify(d));
});

test('without --to, the rules pick the candidate', () => {
  const d = decide(view([writable, replica('db2', '0-1-19'), replica('db3', '0-1-20')], { requests: req({}) }));
  assert.ok(d.kind === 'switchover-start' && d.to === 'db3');
});

test('a switchover to a node that is unhealthy, lagging, no-promote, errant, unknown or the primary is refused', () => {
  const cases: Array<[MemberState[], Partial<OperatorRequest>, RegExp]> = [
    [[writable, replica('db2', '0-1-20', { noPromote: true })], { to: 'db2' }, /db2 cannot be promoted: marked no-promote/],
    [[writable, replica('db2', '0-1-20'), member('db3', { health: 'down' }, null)], { to: 'db3' }, /db3 did not answer/],
    [[writable, member('db2', {}, { serverId: 2, replication: replicatingFrom('127.0.0.1', 3301), gtid: { executed: '0-1-20', received: '0-1-20' }, lagMs: 60_000 }), replica('db3', '0-1-20')], { to: 'db2' }, /lags/],
    [[writable, replica('db2', '0-1-20,9-2-1'), replica('db3', '0-1-20')], { to: 'db2' }, /errant GTIDs 9-2-1/],
    [[writable, replica('db2', '0-1-20')], { to: 'db9' }, /no member named db9/],
    [[writable, replica('db2', '0-1-20')], { to: 'db1' }, /already the primary/],
    [[writable, member('db2', {}, { serverId: 2, replication: null, gtid: { executed: '0-1-20', received: '0-1-20' } })], { to: 'db2' }, /does not replicate from db1/],
  ];
  for (const [members, r, why] of cases) {
    const d = decide(view(members, { requests: req(r) }));
    assert.equal(d.kind, 'request-refused', `${JSON.stringify(r)}: ${JSON.stringify(d)}`);
    assert.match(reason(d), why);
  }
});

test('a manual failover request needs --to and starts a failover toward it', () => {
  assert.match(reason(decide(view([writable, replica('db2', '0-1-20')], { requests: req({ kind: 'failover' }) }))), /needs --to/);
  const d = decide(view([writable, replica('db2', '0-1-20')], { requests: req({ kind: 'failover', to: 'db2', force: true }) }));
  assert.ok(d.kind === 'failover-start' && d.request?.to === 'db2' && d.request.force);
});

test('the switchover waits for the old primary to demote, then for the candidate to catch up, then promotes', () => {
  const running = op();
  const notYet = [{ ...writable }, replica('db2', '0-1-18')];
  assert.match(reason(decide(view(notYet, { primary: switching, pendingOp: running }))), /waiting for db1 to turn read-only/);
  const demoted = member('db1', { fenced: true }, { readOnly: true, gtid: { executed: '0-1-20', received: '0-1-20' } });
  const d1 = decide(view([demoted, replica('db2', '0-1-18')], { primary: switching, pendingOp: running }));
  assert.ok(d1.kind === 'record-demoted' && d1.gtid === '0-1-20');
  const withStep = op({ steps: [held, { name: 'demoted', startedAt: 9_500, endedAt: 9_500, outcome: 'ok', detail: '0-1-20' }] });
  assert.match(reason(decide(view([demoted, replica('db2', '0-1-18')], { primary: switching, pendingOp: withStep }))), /waiting for db2 to apply/);
  const d2 = decide(view([demoted, replica('db2', '0-1-20')], { primary: switching, pendingOp: withStep }));
  assert.ok(d2.kind === 'switchover-promote' && d2.node === 'db2');
  // A candidate that already has everything is promoted in the same step as the demotion is seen.
  assert.equal(decide(view([demoted, replica('db2', '0-1-20')], { primary: switching, pendingOp: running })).kind, 'switchover-promote');
});

test('a candidate that cannot catch up in time aborts the switchover and restores the old primary', () => {
  const demoted = member('db1', { fenced: true }, { readOnly: true, gtid: { executed: '0-1-20', received: '0-1-20' } });
  const withStep = op({ steps: [held, { name: 'demoted', startedAt: 0, endedAt: 0, outcome: 'ok', detail: '0-1-20' }] });
  const d = decide(view([demoted, replica('db2', '0-1-18')], { primary: switching, pendingOp: withStep, now: 10_001 }));
  assert.ok(d.kind === 'switchover-abort' && d.restore);
  assert.match(reason(d), /db2 did not catch up with db1 \(0-1-20\) within 10000 ms/);
  const stuck = decide(view([writable, replica('db2', '0-1-20')], { primary: switching, pendingOp: op({ startedAt: 0 }), now: 10_001 }));
  assert.ok(stuck.kind === 'switchover-abort' && /did not report itself demoted/.test(stuck.reason));
});

test('the switchover waits, bounded, for every registered client to hold its writes, and records who did not', () => {
  const clients = (paused: boolean, epoch = 4) => new Map([['proxy-a', { id: 'proxy-a', writesPaused: true, epoch: 4, updatedAt: 1 }], ['proxy-b', { id: 'proxy-b', writesPaused: paused, epoch, updatedAt: 1 }]]);
  const fresh = op({ steps: [] });
  const members = [writable, replica('db2', '0-1-20')];
  assert.match(reason(decide(view(members, { primary: switching, pendingOp: fresh, clients: clients(false) }))), /waiting for proxy-b to hold their writes/);
  const all = decide(view(members, { primary: switching, pendingOp: fresh, clients: clients(true) }));
  assert.ok(all.kind === 'record-clients-paused' && all.silent.length === 0 && all.paused.length === 2);
  const late = decide(view(members, { primary: switching, pendingOp: fresh, clients: clients(false), now: 9_000 + 2_001 }));
  assert.ok(late.kind === 'record-clients-paused');
  assert.match(reason(late), /demoting without proxy-b: no pause reported within 2000 ms; paused: proxy-a/);
  // A pause reported for an older epoch does not count.
  assert.equal(decide(view(members, { primary: switching, pendingOp: fresh, clients: clients(true, 3) })).kind, 'await');
});
