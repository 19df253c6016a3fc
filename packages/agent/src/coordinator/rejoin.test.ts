import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterConfig, DurabilityRecord, MemberState, OpRecord, OperatorRequest, SalvageManifest } from '@primacy/common';
import { decide } from './decide.js';
import type { ClusterView, Decision } from './model.js';
import { chooseRejoin } from './rejoin.js';
import { member, membersOf, primary, replicatingFrom, timings } from '../testing/members.js';

// db1 was the primary of epoch 1, wrote 0-1-11 that nobody received, and was failed over to db2 (epoch 2).
const p = primary('db2', { epoch: 2 });
const db1 = member('db1', { errant: '0-1-11' }, { gtid: { executed: '0-1-11', received: '0-1-11', binlogState: '0-1-11' } });
const db2 = member('db2', { role: 'primary' }, { readOnly: false, gtid: { executed: '0-1-10,0-2-12', received: '0-1-10,0-2-12', binlogState: '0-1-10,0-2-12' } });
const db3 = member('db3', { role: 'replica' }, { replication: replicatingFrom('127.0.0.1', 3302), gtid: { executed: '0-1-10,0-2-12', received: '0-1-10,0-2-12' } });

const salvage: SalvageManifest = {
  node: 'db1', flavor: 'mariadb', serverId: 1, at: 5000, nodeState: '0-1-11', primaryState: '0-1-10,0-2-12',
  extra: [{ domain: 0, server: 1, fromSeqExclusive: '10', toSeq: '11' }], gtids: '0-1-11', replayFrom: '0-1-10', readerServerId: 0,
  folder: '<crash>/db1-x', files: [{ name: 'mariadb-bin.000002', size: 900, sha256: 'a'.repeat(64) }],
};

function durability(state: DurabilityRecord['state'], strict = false): DurabilityRecord {
  return { epoch: 1, node: 'db1', mode: 'semi-sync', state, strict, since: 0, clients: state === 'active' ? 2 : 0 };
}

function failoverRecord(d: DurabilityRecord | null, over: Partial<OpRecord> = {}): OpRecord {
  return {
    epoch: 2, kind: 'failover', from: 'db1', to: 'db2', trigger: 'automatic', request: null, coordinator: { node: 'db3', revision: '1' },
    startedAt: 1000, endedAt: 2000, outcome: 'done', reason: 'db1 is down', catchUpFrom: null, mustContain: null, applied: null, proof: null,
    durability: d, members: {}, candidates: [],
    // The coordinator already noted db1 diverged in this record.
    steps: [{ name: 'diverged db1', startedAt: 3000, endedAt: 3000, outcome: 'failed', detail: 'db1 has transactions db2 lacks: 0-1-11' }],
    ...over,
  };
}

function view(over: Partial<ClusterView> & { policy?: ClusterConfig['rejoin'] } = {}): ClusterView {
  const { policy, ...rest } = over;
  return {
    now: 10_000, members: membersOf(db1, db2, db3), primary: p, epoch: 2, config: { paused: false, nodes: {}, ...(policy ? { rejoin: policy } : {}) },
    bootstrapPrimary: null, currentOp: failoverRecord(durability('active')), pendingOp: null, requests: new Map(), clients: new Map(),
    salvages: new Map([['db1', salvage]]), rejoins: new Map(), timings,
    // db2's own semi-sync state is recorded already: no durability record to write.
    durabilityRecord: { epoch: 2, node: 'db2', mode: 'semi-sync', state: 'off', strict: false, since: 0, clients: 0 },
    ...rest,
  };
}

const flashbackPolicy = { method: 'flashback' as const, allowUnacknowledgedFlashback: false };

function rejoinRecord(over: Partial<OpRecord> = {}): OpRecord {
  return {
    ...failoverRecord(null), kind: 'rejoin', from: 'db1', to: 'db2', startedAt: 9000, endedAt: null, outcome: 'running', reason: 'allowed',
    rejoin: { node: 'db1', method: 'flashback', allowed: 'allowed', salvageAt: 5000, salvageFolder: '<crash>/db1-x', gtids: '0-1-11', source: null },
    steps: [{ name: 'decide', startedAt: 9000, endedAt: 9000, outcome: 'ok', detail: 'db1 rejoins by flashback' }], ...over,
  };
}

function request(over: Partial<OperatorRequest> = {}): Map<string, OperatorRequest> {
  return new Map([['1-abc', { kind: 'rejoin', to: 'db1', force: false, unfenced: false, requestedAt: 1, by: 'op', ...over }]]);
}

// A rejoin by script of the salvage above failed part-way: its script wrote 0-1-12 on db1 first. The
// agent salvaged again once the record ended, naming that attempt.
const scriptPolicy = { method: 'script' as const, allowUnacknowledgedFlashback: false };
const failedScript = rejoinRecord({ outcome: 'aborted', endedAt: 9500, rejoin: { ...rejoinRecord().rejoin!, method: 'script', policy: scriptPolicy } });
const moved = member('db1', { errant: '0-1-12' }, { gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12' } });
const fresh: SalvageManifest = {
  ...salvage, at: 9600, nodeState: '0-1-12', gtids: '0-1-12', folder: '<crash>/db1-y', extra: [{ domain: 0, server: 1, fromSeqExclusive: '10', toSeq: '12' }],
  earlier: [{ at: 5000, folder: '<crash>/db1-x', gtids: '0-1-11', nodeState: '0-1-11' }], afterRejoin: { startedAt: 9000, method: 'script' },
};
const afterFailure = { members: membersOf(moved, db2, db3), salvages: new Map([['db1', fresh]]), rejoins: new Map([['db1', failedScript]]) };

const kindAndWhy = (d: Decision): string => `${d.kind}: ${'reason' in d ? d.reason : 'allowed' in d ? d.allowed : ''}`;

const cases: Array<[string, Partial<ClusterView> & { policy?: ClusterConfig['rejoin'] }, RegExp]> = [
  ['policy none: nothing starts by itself', {}, /^none: $/],
  ['flashback after a failover with semi-sync in sync: started, and the record says why', { policy: flashbackPolicy }, /^rejoin-start: semi-sync was in sync on db1 when it was failed over \(epoch 2: active, 2 replicas connected\), so flashback undoes only writes no client was told/],
  ['flashback under strict semi-sync: started', { policy: flashbackPolicy, currentOp: failoverRecord(durability('unknown', true)) }, /^rejoin-start: semi-sync was strict on db1/],
  ['flashback after semi-sync fell back: held, with what to do', { policy: flashbackPolicy, currentOp: failoverRecord(durability('fallback')) }, /^rejoin-held: flashback of db1 would undo 0-1-11, and semi-sync was fallback on db1 when it was failed over \(epoch 2, durability semi-sync\).*set rejoin\.allowUnacknowledgedFlashback, or rejoin by reseed or script/],
  ['flashback with no failover record of db1: held', { policy: flashbackPolicy, currentOp: null }, /^rejoin-held: .*no record of a failover away from db1 made epoch 2/],
  ['flashback of possibly acknowledged writes, allowed by the config: started, saying so', { policy: { ...flashbackPolicy, allowUnacknowledgedFlashback: true }, currentOp: failoverRecord(durability('off')) }, /^rejoin-start: rejoin\.allowUnacknowledgedFlashback is set, though semi-sync was off on db1.*acknowledged writes may be undone/],
  ['reseed: from a healthy replica, not the primary', { policy: { method: 'reseed', allowUnacknowledgedFlashback: false } }, /^rejoin-start: db1 is rebuilt from a copy of db3/],
  ['reseed from a named source that is down: held', { policy: { method: 'reseed', allowUnacknowledgedFlashback: false, reseedFrom: 'db3' }, members: membersOf(db1, db2, member('db3', { health: 'down' }, null)) }, /^rejoin-held: the reseed source rejoin\.reseedFrom \(db3\) is not a healthy member now/],
  ['script: started', { policy: { method: 'script', allowUnacknowledgedFlashback: false } }, /^rejoin-start: the operator's rejoin script/],
  ['no salvage yet: nothing starts', { policy: flashbackPolicy, salvages: new Map() }, /^none: $/],
  ['a salvage of an older binlog: nothing starts', { policy: flashbackPolicy, salvages: new Map([['db1', { ...salvage, nodeState: '0-1-10' }]]) }, /^none: $/],
  ['the same salvage was decided on already (held or ended): not again', { policy: flashbackPolicy, rejoins: new Map([['db1', rejoinRecord({ outcome: 'aborted' })]]) }, /^none: $/],
  ['paused: nothing starts by itself', { policy: flashbackPolicy, config: { paused: true, nodes: {}, rejoin: flashbackPolicy } }, /^none: $/],
  ['a request asks for a method the policy does not name', { requests: request({ method: 'script' }) }, /^rejoin-start: the operator's rejoin script/],
  ['a request to rejoin a node that has not diverged: refused', { requests: request({ to: 'db3' }) }, /^request-refused: db3 has not diverged/],
  ['a request under policy none without a method: refused, with how', { requests: request() }, /^request-refused: the cluster's rejoin policy is none: db1 stays out of rotation/],
  ['a request while the node has no salvage: refused with the salvage problem', { requests: request({ method: 'flashback' }), salvages: new Map(), members: membersOf({ ...db1, salvageProblem: 'salvage of db1 refused: the crash folder x is not writable (EACCES)' }, db2, db3) }, /^request-refused: db1 has no salvage of its current binlog \(its salvage failed: salvage of db1 refused: the crash folder x is not writable/],
  ['a failed rejoin, same salvage, same policy: not again by itself', { policy: scriptPolicy, rejoins: new Map([['db1', failedScript]]) }, /^none: $/],
  ['a failed rejoin moved the binlog; its fresh salvage names that attempt: not again by itself (no loop)', { policy: scriptPolicy, ...afterFailure }, /^none: $/],
  ['the policy changed since the failed rejoin: decided again, the record says it goes by a fresh salvage and why', { policy: { method: 'reseed', allowUnacknowledgedFlashback: false }, ...afterFailure }, /^rejoin-start: db1 is rebuilt from a copy of db3; its extra transactions \(0-1-12\) stay in the salvage in <crash>\/db1-y; a fresh salvage \(1970-01-01T00:00:09\.600Z\): db1's binlog moved from 0-1-11 to 0-1-12 since the salvage the last rejoin by script used: that rejoin failed part-way and changed it; the earlier salvage stays in <crash>\/db1-x$/],
  ['the node changed again after that salvage: decided again by itself', { policy: scriptPolicy, ...afterFailure, members: membersOf({ ...moved, server: { ...moved.server!, gtid: { executed: '0-1-13', received: '0-1-13', binlogState: '0-1-13' } } }, db2, db3), salvages: new Map([['db1', { ...fresh, at: 9800, nodeState: '0-1-13', earlier: [...fresh.earlier!, { at: 9600, folder: '<crash>/db1-y', gtids: '0-1-12', nodeState: '0-1-12' }] }]]) }, /^rejoin-start: the operator's rejoin script.*; a fresh salvage \(1970-01-01T00:00:09\.800Z\): db1's binlog moved from 0-1-11 to 0-1-13 since the salvage the last rejoin by script used: that rejoin failed part-way and changed it; the earlier salvages stay in <crash>\/db1-x, <crash>\/db1-y$/],
  ['a held flashback is decided again once the config allows it', { policy: { ...flashbackPolicy, allowUnacknowledgedFlashback: true }, currentOp: failoverRecord(durability('fallback')), rejoins: new Map([['db1', rejoinRecord({ outcome: 'refused', endedAt: 9000, rejoin: { ...rejoinRecord().rejoin!, allowed: '', policy: flashbackPolicy } })]]) }, /^rejoin-start: rejoin\.allowUnacknowledgedFlashback is set/],
  ['a request after a failed rejoin that left the binlog as it was: the salvage is reused, and the record says so', { ...afterFailure, members: membersOf(db1, db2, db3), salvages: new Map([['db1', salvage]]), requests: request({ method: 'script' }) }, /^rejoin-start: the operator's rejoin script.*; the salvage of 1970-01-01T00:00:05\.000Z is reused: db1's binlog is as it was then \(0-1-11\), after the last rejoin by script was aborted$/],
  ['a request after a failed rejoin that moved the binlog: by the fresh salvage', { ...afterFailure, requests: request({ method: 'script' }) }, /^rejoin-start: the operator's rejoin script.*stay in the salvage in <crash>\/db1-y; a fresh salvage/],
  ['flashback after a failed rejoin changed the node: refused, pointing at every salvage', { ...afterFailure, requests: request({ method: 'flashback' }) }, /^request-refused: flashback of db1 would undo only 0-1-12, but its rejoin by script of 1970-01-01T00:00:09\.000Z failed part-way and changed it .*rejoin it by reseed or script \(its salvages stay in <crash>\/db1-x, <crash>\/db1-y\)$/],
  ['a request for a rejoin already under way: refused', { requests: request({ method: 'flashback' }), rejoins: new Map([['db1', rejoinRecord()]]) }, /^request-refused: a rejoin of db1 is already under way$/],
];

for (const [name, over, expected] of cases) {
  test(`rejoin decision: ${name}`, () => {
    assert.match(kindAndWhy(decide(view(over))), expected);
  });
}

test('a running rejoin: the agent\'s progress is recorded, then its end; a failure ends it aborted with why', () => {
  const report = (r: MemberState['rejoin']): ClusterView => view({ rejoins: new Map([['db1', rejoinRecord()]]), members: membersOf({ ...db1, rejoin: r }, db2, db3) });
  assert.deepEqual(decide(report(null)), { kind: 'none' });
  assert.deepEqual(decide(report({ startedAt: 9000, step: 'flashback', outcome: 'running', detail: 'flashback of 0-1-11' })), { kind: 'rejoin-progress', node: 'db1', step: 'flashback', detail: 'flashback of 0-1-11' });
  // An earlier rejoin's report is not this one's.
  assert.deepEqual(decide(report({ startedAt: 1, step: 'flashback', outcome: 'done', detail: 'old' })), { kind: 'none' });
  assert.deepEqual(decide(report({ startedAt: 9000, step: 'replicating', outcome: 'done', detail: 'replicating from db2' })), { kind: 'rejoin-end', node: 'db1', outcome: 'done', reason: 'replicating from db2' });
  assert.match(kindAndWhy(decide(report({ startedAt: 9000, step: 'script', outcome: 'failed', detail: 'the rejoin script exit 3: disk full' }))), /^rejoin-end: script failed: the rejoin script exit 3: disk full$/);
});

test('a running rejoin ends aborted when the primary changed or its agent left', () => {
  const moved = view({
    primary: { ...p, epoch: 3 },
    rejoins: new Map([['db1', rejoinRecord()]]),
    durabilityRecord: { epoch: 3, node: 'db2', mode: 'semi-sync', state: 'off', strict: false, since: 0, clients: 0 },
  });
  assert.match(kindAndWhy(decide(moved)), /^rejoin-end: the primary changed \(epoch 3\) before the rejoin of db1 finished/);
  const gone = view({ members: membersOf(db2, db3), rejoins: new Map([['db1', rejoinRecord()]]) });
  assert.match(kindAndWhy(decide(gone)), /^rejoin-end: db1's agent left during the rejoin; db1 may be half-changed/);
});

test('chooseRejoin refuses flashback on MySQL and a node whose server is down', () => {
  const v = view({ salvages: new Map([['db1', { ...salvage, flavor: 'mysql' }]]) });
  assert.deepEqual(chooseRejoin(v, p, 'db1', 'flashback'), { ok: false, reason: 'flashback exists only on MariaDB; db1 is mysql' });
  const down = view({ members: membersOf({ ...db1, health: 'down', server: null }, db2, db3) });
  assert.deepEqual(chooseRejoin(down, p, 'db1', 'flashback'), { ok: false, reason: "db1's server is down" });
});
