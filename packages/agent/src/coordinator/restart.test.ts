import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterConfig, LastSeenRecord, MemberState } from '@primacy/common';
import { decide } from './decide.js';
import type { ClusterView, Decision } from './model.js';
import { lastSeenUpdate, wholeClusterRestart } from './restart.js';
import { member, membersOf, primary, timings } from '../testing/members.js';

// Before the outage: db1 primary at 0-1-50, db3 had received all of it, db2 lagged at 0-1-40.
const lastSeen: LastSeenRecord = {
  at: 1000,
  nodes: {
    db1: { flavor: 'mariadb', executed: '0-1-50', received: '0-1-50', at: 1000 },
    db2: { flavor: 'mariadb', executed: '0-1-40', received: '0-1-40', at: 1000 },
    db3: { flavor: 'mariadb', executed: '0-1-50', received: '0-1-50', at: 1000 },
  },
};
const p = primary('db1', { epoch: 3 });
const back = (node: string, gtid: string): MemberState => member(node, {}, { gtid: { executed: gtid, received: gtid } });

function view(ms: MemberState[], over: Partial<ClusterView> = {}, config: Partial<ClusterConfig> = {}): ClusterView {
  return {
    now: 100_000, members: membersOf(...ms), primary: p, epoch: 3, config: { paused: false, nodes: {}, ...config }, bootstrapPrimary: null,
    currentOp: null, pendingOp: null, requests: new Map(), clients: new Map(), timings,
    // Every member key now was created (revision 200+) after the record was last written (100).
    memberCreated: new Map(ms.map((m, i) => [m.node, String(200 + i)])), lastSeen: { record: lastSeen, modRevision: '100' }, ...over,
  };
}

const said = (d: Decision): string => `${d.kind}: ${'reason' in d ? d.reason : ''}`;

test('whole cluster down: only when every member key is newer than the last-seen record', () => {
  assert.deepEqual(wholeClusterRestart(view([back('db2', '0-1-40')])), { missing: ['db1', 'db3'] });
  const seenBefore = view([back('db2', '0-1-40'), back('db3', '0-1-50')], { memberCreated: new Map([['db2', '250'], ['db3', '90']]) });
  assert.equal(wholeClusterRestart(seenBefore), null, 'db3 was seen before: the cluster was not all down');
  assert.equal(wholeClusterRestart(view([back('db2', '0-1-40')], { lastSeen: null })), null);
  // The coordinator back first decides before its own member key is published: no member key at all.
  assert.deepEqual(wholeClusterRestart(view([])), { missing: ['db1', 'db2', 'db3'] });
  assert.match(said(decide(view([], {}, { restartUnsafe: true }))), /^failover-start: .*restartUnsafe: the whole cluster was down and db1, db2, db3 are not back/);
  assert.equal(decide(view([])).kind, 'failover-refused');
});

test('the first node back lacks what others had: no failover, and the record says what it waits for', () => {
  const d = decide(view([back('db2', '0-1-40')]));
  assert.equal(d.kind, 'failover-refused');
  assert.match(said(d), /the whole cluster was down \(db1, db3 not back\): waiting for db1 \(the last primary\) or for a node whose position contains everyone's last published one \(0-1-50\); db2 has 0-1-40\. restartUnsafe/);
});

test('a node back that contains everyone\'s position: the failover starts and must promote one that does', () => {
  const d = decide(view([back('db2', '0-1-40'), back('db3', '0-1-50')]));
  assert.equal(d.kind, 'failover-start');
  assert.equal(d.kind === 'failover-start' ? d.mustContain : null, '0-1-50');
});

test('the last primary back first: no failover at all (its agent takes the primary key it is named in)', () => {
  assert.equal(decide(view([back('db1', '0-1-50'), back('db2', '0-1-40')])).kind !== 'failover-start', true);
});

test('restartUnsafe promotes the first node back, and the failover record says writes may have been lost', () => {
  const d = decide(view([back('db2', '0-1-40')], {}, { restartUnsafe: true }));
  assert.equal(d.kind, 'failover-start');
  assert.match(said(d), /restartUnsafe: the whole cluster was down and db1, db3 are not back; no node back holds everyone's last published position \(0-1-50\), so writes may have been lost/);
});

test('a primary that dies alone is not held by the rule', () => {
  const alive = view([back('db2', '0-1-40'), back('db3', '0-1-50')], { memberCreated: new Map([['db2', '50'], ['db3', '60']]) });
  const d = decide(alive);
  assert.equal(d.kind, 'failover-start');
  assert.equal(d.kind === 'failover-start' ? d.mustContain : 'x', null);
});

test('the refusal recorded, the last-seen record is not rewritten while the primary is gone (the restart would be forgotten)', () => {
  // db2's position moved since the record (0-1-40 then): before the fix this tick would rewrite it.
  const refused = view([back('db2', '0-1-41')]);
  const d = decide(refused);
  assert.equal(d.kind, 'failover-refused');
  const op = { epoch: 4, kind: 'failover' as const, from: 'db1', to: null, trigger: 'automatic', request: null, coordinator: { node: 'db2', revision: '1' }, startedAt: 1, endedAt: 1, outcome: 'refused' as const, reason: d.kind === 'failover-refused' ? d.reason : '', catchUpFrom: null, mustContain: null, applied: null, proof: null, durability: null, members: {}, candidates: [], steps: [] };
  assert.deepEqual(decide({ ...refused, pendingOp: op }), { kind: 'none' });
});

test('last-seen: a node new to the record is written at once; moved positions at most every 2 s; gone nodes kept', () => {
  const v = { now: 5000, members: membersOf(back('db2', '0-1-41')), lastSeen: { record: lastSeen, modRevision: '100' } };
  const d = lastSeenUpdate(v);
  assert.equal(d?.kind, 'record-last-seen');
  if (d?.kind === 'record-last-seen') {
    assert.equal(d.record.nodes['db2']?.executed, '0-1-41');
    assert.equal(d.record.nodes['db1']?.executed, '0-1-50', 'a node without a member key keeps its entry');
  }
  assert.equal(lastSeenUpdate({ ...v, now: 1500 }), null, 'moved, but the record is younger than 2 s');
  assert.equal(lastSeenUpdate({ ...v, members: membersOf(back('db2', '0-1-40')) }), null, 'nothing moved');
  assert.equal(lastSeenUpdate({ ...v, now: 1500, members: membersOf(back('db4', '')) })?.kind, 'record-last-seen', 'a new node at once');
});
