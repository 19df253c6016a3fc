import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseGtid, type ClusterConfig, type DurabilityRecord, type FenceProof, type MemberState, type OpRecord } from '@primacy/common';
import { decide } from './decide.js';
import { PROMOTION_GRACE_MS, type ClusterView, type Decision } from './model.js';
import { chooseCandidate, detectFailure, detectStalledPromotion, majorVersion, type ChoiceInput } from './failover.js';
import { holdersOf } from './position.js';
import { member, membersOf, primary, replicatingFrom, timings } from '../testing/members.js';

const config: ClusterConfig = { paused: false, nodes: {} };
const P = primary('db1', { epoch: 4 });
const fromDb1 = (over: Parameters<typeof replicatingFrom>[2] = {}) => replicatingFrom('127.0.0.1', 3301, over);

const deadPrimary = member('db1', { health: 'down', downProbes: 2, error: 'connect ECONNREFUSED' }, null);
const replica = (node: string, received: string, over: Partial<MemberState> = {}, io: 'running' | 'connecting' | 'stopped' = 'connecting') =>
  member(node, over, { serverId: Number(node.slice(2)), replication: fromDb1({ ioState: io }), gtid: { executed: received, received }, lagMs: 100 });

// ---- detection -------------------------------------------------------------------------------

test('detect: server down by its agent and no replica receiving is a failure', () => {
  const f = detectFailure(P, membersOf(deadPrimary, replica('db2', '0-1-10'), replica('db3', '0-1-10')));
  assert.match(f?.reason ?? '', /sees its server down .* no replica receives/);
});

test('detect: a replica still receiving means the primary is alive (its agent may be cut from it)', () => {
  assert.equal(detectFailure(P, membersOf(deadPrimary, replica('db2', '0-1-10', {}, 'running'), replica('db3', '0-1-10'))), null);
});

test('detect: a primary whose agent is gone (lease expired) has nobody guarding it', () => {
  assert.match(detectFailure(P, membersOf(replica('db2', '0-1-10', {}, 'running')))?.reason ?? '', /lease expired/);
});

test('detect: "too many connections" and auth errors never count as failed', () => {
  for (const health of ['refusing', 'auth_error'] as const) {
    assert.equal(detectFailure(P, membersOf(member('db1', { health }, null), replica('db2', '0-1-10'))), null);
  }
});

// ---- choosing --------------------------------------------------------------------------------

function choice(answering: MemberState[], over: Partial<ChoiceInput> = {}) {
  return chooseCandidate({ answering, silent: [], oldPrimaryGtid: null, config, maxLagMs: 10_000, force: false, preferred: null, ...over });
}

test('choose: the most advanced received position wins, by exact comparison not by sum', () => {
  const c = choice([replica('db2', '0-1-10,1-1-5'), replica('db3', '0-1-12,1-1-5')]);
  assert.ok(c.ok);
  assert.equal(c.node, 'db3');
  assert.equal(c.catchUpFrom, null);
  assert.equal(c.verdicts.find((v) => v.node === 'db3')?.reason, 'chosen');
});

test('choose: a node with errant GTIDs is never chosen', () => {
  const errant = member('db3', {}, { serverId: 3, replication: fromDb1({ ioState: 'stopped' }), gtid: { executed: '0-3-11', received: '0-3-11' }, lagMs: 0 });
  const c = choice([replica('db2', '0-1-10'), errant], { oldPrimaryGtid: null });
  assert.ok(!c.ok || c.node !== 'db3');
  assert.match(c.verdicts.find((v) => v.node === 'db3')?.reason ?? '', /errant GTIDs 0-3-11/);
});

test('choose: an errant node is not a source to catch up from either, even when it looks most advanced', () => {
  // db3 wrote 9-3-1 in a domain of its own: positionally it contains db2, but copying from it would spread the errant write.
  const errant = member('db3', {}, { serverId: 3, replication: fromDb1({ ioState: 'stopped' }), gtid: { executed: '0-1-12,9-3-1', received: '0-1-12,9-3-1' }, lagMs: 0 });
  const c = choice([replica('db2', '0-1-12'), errant]);
  assert.ok(c.ok);
  assert.equal(c.node, 'db2');
  assert.equal(c.catchUpFrom, null);
});

test('choose: no-promote, binlog off, older major version and lag each exclude', () => {
  const cases: Array<[MemberState, RegExp]> = [
    [replica('db3', '0-1-12', { noPromote: true }), /no-promote/],
    [member('db3', {}, { serverId: 3, logBin: false, replication: fromDb1(), gtid: { executed: '0-1-12', received: '0-1-12' } }), /binary log is off/],
    [member('db3', {}, { serverId: 3, version: '10.6.1-MariaDB', replication: fromDb1(), gtid: { executed: '0-1-12', received: '0-1-12' } }), /older major version/],
    [member('db3', {}, { serverId: 3, lagMs: 60_000, replication: fromDb1(), gtid: { executed: '0-1-12', received: '0-1-12' } }), /lags .* over the 10000 ms limit/],
  ];
  for (const [db3, why] of cases) {
    const c = choice([replica('db2', '0-1-12', {}), db3]);
    assert.ok(c.ok, JSON.stringify(c));
    assert.equal(c.node, 'db2');
    assert.match(c.verdicts.find((v) => v.node === 'db3')?.reason ?? '', why);
  }
});

test('choose: no-promote from the cluster config counts too, and --force overrides it', () => {
  const cfg: ClusterConfig = { paused: false, nodes: { db3: { noPromote: true } } };
  const nodes = [replica('db2', '0-1-10'), replica('db3', '0-1-12')];
  const c = choice(nodes, { config: cfg });
  assert.ok(c.ok);
  assert.equal(c.node, 'db2');
  assert.equal(c.catchUpFrom, 'db3', 'the behind node catches up from the most advanced one first');
  const forced = choice(nodes, { config: cfg, force: true });
  assert.ok(forced.ok);
  assert.equal(forced.node, 'db3');
});

test('choose: a node in maintenance is never a candidate, even forced, but its position still counts', () => {
  const cfg: ClusterConfig = { paused: false, nodes: { db3: { maintenance: true } } };
  const nodes = [replica('db2', '0-1-10'), replica('db3', '0-1-12')];
  for (const force of [false, true]) {
    const c = choice(nodes, { config: cfg, force });
    assert.ok(c.ok && c.node === 'db2', JSON.stringify(c));
    assert.equal(c.catchUpFrom, 'db3', 'db2 first takes what only db3 received');
    assert.deepEqual(c.verdicts.find((v) => v.node === 'db3'), { node: 'db3', gtid: '0-1-12', eligible: false, reason: 'in maintenance' });
  }
  const preferred = choice(nodes, { config: cfg, force: true, preferred: 'db3' });
  assert.ok(!preferred.ok);
  assert.equal(preferred.reason, 'db3 cannot be promoted: in maintenance');
  const alone = choice([replica('db3', '0-1-12')], { config: cfg, force: true });
  assert.ok(!alone.ok && alone.reason === 'no replica may be promoted', JSON.stringify(alone));
});

test('choose: priority breaks ties; a preferred node that is behind catches up first', () => {
  const tie = choice([replica('db2', '0-1-12'), replica('db3', '0-1-12', { priority: 5 })]);
  assert.ok(tie.ok && tie.node === 'db3' && tie.catchUpFrom === null);
  const behind = choice([replica('db2', '0-1-12'), replica('db3', '0-1-10', { priority: 5 })]);
  assert.ok(behind.ok);
  assert.equal(behind.node, 'db3');
  assert.equal(behind.catchUpFrom, 'db2');
});

test('choose: refuses when too few nodes answer, unless forced', () => {
  const c = choice([replica('db2', '0-1-12')], { silent: ['db3'] });
  assert.ok(!c.ok);
  assert.match(c.reason, /too few nodes answer .* db3 did not/);
  assert.ok(choice([replica('db2', '0-1-12')], { silent: ['db3'], force: true }).ok);
});

test('choose: refuses diverged replicas', () => {
  const c = choice([replica('db2', '0-1-12,1-5-3'), replica('db3', '0-1-13')]);
  assert.ok(!c.ok);
  assert.match(c.reason, /diverged/);
});

test('choose: an operator-named node that cannot be promoted is refused with its reason', () => {
  const c = choice([replica('db2', '0-1-12'), replica('db3', '0-1-12', { noPromote: true })], { preferred: 'db3' });
  assert.ok(!c.ok);
  assert.match(c.reason, /db3 cannot be promoted: marked no-promote/);
});

test('major versions compare as major.minor', () => {
  assert.deepEqual(majorVersion('10.11.6-MariaDB-0+deb12u1'), [10, 11]);
  assert.deepEqual(majorVersion('8.4.2'), [8, 4]);
});

// ---- the whole decision, step by step ------------------------------------------------------------

function view(members: MemberState[], over: Partial<ClusterView> = {}): ClusterView {
  return { now: 10_000, members: membersOf(...members), primary: P, epoch: 4, config, bootstrapPrimary: null, currentOp: null, pendingOp: null, requests: new Map(), clients: new Map(), timings, ...over };
}

function op(over: Partial<OpRecord> = {}): OpRecord {
  return {
    epoch: 5, kind: 'failover', from: 'db1', to: null, trigger: 'automatic', request: null, coordinator: { node: 'db2', revision: '7' },
    startedAt: 9_500, endedAt: null, outcome: 'running', reason: 'r', catchUpFrom: null, mustContain: null, applied: null, proof: null, durability: null,
    members: { db1: { health: 'down', gtid: '0-1-10', received: '0-1-10', semiSync: 'source' }, db2: { health: 'up', gtid: '0-1-10', received: '0-1-10', semiSync: 'replica' }, db3: { health: 'up', gtid: '0-1-10', received: '0-1-10', semiSync: 'replica' } },
    candidates: [], steps: [], ...over,
  };
}

const kind = (d: Decision) => d.kind;
const reason = (d: Decision) => ('reason' in d ? d.reason : '');

test('decide: a failed primary starts a failover', () => {
  assert.equal(kind(decide(view([deadPrimary, replica('db2', '0-1-10'), replica('db3', '0-1-10')]))), 'failover-start');
});

test('decide: paused refuses, and the refusal is recorded once', () => {
  const v = view([deadPrimary, replica('db2', '0-1-10')], { config: { paused: true, nodes: {} } });
  const d = decide(v);
  assert.equal(kind(d), 'failover-refused');
  assert.match(reason(d), /paused/);
  assert.equal(kind(decide({ ...v, pendingOp: op({ outcome: 'refused', reason: reason(d) }) })), 'none');
});

test('decide: a second failure inside the anti-flapping window is refused with the reason', () => {
  const current = op({ epoch: 4, outcome: 'done', endedAt: 9_000 });
  const d = decide(view([deadPrimary, replica('db2', '0-1-10')], { currentOp: current }));
  assert.equal(kind(d), 'failover-refused');
  assert.match(reason(d), /anti-flapping: the last failover \(epoch 4\) ended at 1970-01-01T00:00:09.000Z, inside the 300 s window/);
  assert.equal(kind(decide(view([deadPrimary, replica('db2', '0-1-10')], { currentOp: current, now: 9_000 + 300_001 }))), 'failover-start');
});

const proven = (kind: FenceProof['kind'] = 'sql-fenced', finalGtid: string | null = null, at = 9_600): FenceProof => ({ kind, detail: `${kind} evidence`, at, finalGtid });
const fencedStep = (detail: string) => ({ name: 'fenced', startedAt: 9_600, endedAt: 9_600, outcome: 'ok' as const, detail });
const revokeStep = (startedAt = 9_600) => ({ name: 'revoke', startedAt, endedAt: null, outcome: 'running' as const, detail: '' });
/** A failover past its proof and its revoke step: what is left is waiting for the replicas and choosing. */
const revoking = (over: Partial<OpRecord> = {}) => op({ proof: proven(), steps: [fencedStep('sql-fenced: x'), revokeStep()], ...over });
const hung = member('db1', { health: 'down', downProbes: 4, error: 'PRIMACY_SESSION_TIMEOUT: no answer within 1000 ms' }, null);
const strictRec: DurabilityRecord = { epoch: 4, node: 'db1', mode: 'strict', state: 'active', strict: true, since: 1_000, clients: 2 };

// Invariant 4: which observations prove the old primary fenced, and which do not. Each row: the old
// primary's member key as etcd shows it (undefined: its key is gone), what decide() must do.
const proofCases: Array<[string, MemberState | undefined, Partial<ClusterView>, string, RegExp]> = [
  ['its agent fenced it for this failover and read it back', member('db1', { fenced: true, fencedFor: 5 }, { readOnly: true }), {}, 'record-fenced', /agent killed its client sessions, set read_only and read it back, for epoch 5/],
  ['its agent fenced it, but for no failover (a lapsed lease, say): not a proof for this one', member('db1', { fenced: true, fencedFor: null }, { readOnly: true }), {}, 'fence-old', /its agent fenced it before this failover/],
  ['its agent fenced it for an earlier failover', member('db1', { fenced: true, fencedFor: 3 }, { readOnly: true }), {}, 'fence-old', /cannot prove db1 fenced/],
  ['its agent saw a refused connection on its own host', { ...deadPrimary, serverGone: 'connection refused on this host (127.0.0.1)' }, {}, 'record-fenced', /server-gone|connection refused on this host/],
  ['a hung server (timeouts) is not down: no proof', hung, {}, 'fence-old', /not answering \(PRIMACY_SESSION_TIMEOUT.*which is not down/],
  ['a refused connection its agent did not call gone (a remote host) is not a proof', deadPrimary, {}, 'fence-old', /cannot prove db1 fenced/],
  ['an expired lease (no member key) is not a proof', undefined, {}, 'fence-old', /its agent is gone \(its lease expired\), and an expired lease proves nothing/],
  ['semi-sync with fallback: a revoke proves nothing, and the text says so', undefined, { durabilityMode: 'semi-sync' }, 'fence-old', /a revoked db1 could still acknowledge writes once semi-sync falls back/],
  ['strict semi-sync seen on the old primary: revoke first', undefined, { durabilityMode: 'strict', durabilityRecord: strictRec }, 'revoke', /strict semi-sync: the replicas stop receiving from db1 first/],
  ['strict mode, but the old primary was never seen strict: no shortcut', undefined, { durabilityMode: 'strict', durabilityRecord: { ...strictRec, strict: false } }, 'fence-old', /strict semi-sync was not confirmed on db1/],
  ['a strict record of another epoch is not this primary\'s', undefined, { durabilityMode: 'strict', durabilityRecord: { ...strictRec, epoch: 3 } }, 'fence-old', /not confirmed/],
  ['the cluster left strict mode: the old record no longer counts', undefined, { durabilityMode: 'semi-sync', durabilityRecord: strictRec }, 'fence-old', /durability is semi-sync/],
];

for (const [name, old, over, want, text] of proofCases) {
  test(`proof: ${name}`, () => {
    const members = [...(old ? [old] : []), replica('db2', '0-1-10'), replica('db3', '0-1-11')];
    const d = decide(view(members, { pendingOp: op(), ...over }));
    assert.equal(kind(d), want, JSON.stringify(d));
    const said = d.kind === 'fence-old' ? `${d.waiting}. ${d.advice}` : d.kind === 'record-fenced' ? `${d.proof.kind}: ${d.proof.detail}` : reason(d);
    assert.match(said, text);
  });
}

test('proof: recorded with the revoke in one write, unless a replica still receiving must first get the old primary\'s last transactions', () => {
  const gone = { ...deadPrimary, serverGone: 'connection refused on this host (127.0.0.1)' };
  const d = decide(view([gone, replica('db2', '0-1-10'), replica('db3', '0-1-11')], { pendingOp: op() }));
  assert.ok(d.kind === 'record-fenced' && d.revoke === 'db1 is fenced (server-gone)', JSON.stringify(d));
  // The agent read back a final position that db2, still receiving from db1, lacks: the revoke waits for it.
  const fenced = member('db1', { fenced: true, fencedFor: 5 }, { readOnly: true, gtid: { executed: '0-1-12', received: '0-1-12' } });
  const waits = decide(view([fenced, replica('db2', '0-1-10', {}, 'running'), replica('db3', '0-1-12', {}, 'running')], { pendingOp: op() }));
  assert.ok(waits.kind === 'record-fenced' && waits.revoke === undefined, JSON.stringify(waits));
  const all = decide(view([fenced, replica('db2', '0-1-12', {}, 'running'), replica('db3', '0-1-12', {}, 'running')], { pendingOp: op() }));
  assert.ok(all.kind === 'record-fenced' && all.revoke !== undefined, JSON.stringify(all));
});

test('proof: while waiting, the advice names what an operator can do, and leaves out what is already in place', () => {
  const d = decide(view([replica('db2', '0-1-10'), replica('db3', '0-1-10')], { pendingOp: op() }));
  assert.ok(d.kind === 'fence-old');
  assert.match(d.advice, /configure fencing.command .*strict semi-sync.*primacy failover --to NODE --unfenced/);
  const configured = decide(view([replica('db2', '0-1-10')], { pendingOp: op(), fencingCommand: true, durabilityMode: 'strict' }));
  assert.ok(configured.kind === 'fence-old');
  assert.doesNotMatch(configured.advice, /fencing.command|durability strict/);
});

test('proof: strict semi-sync proves it once every known replica has revoked, and as many as the old primary had', () => {
  const base = { durabilityMode: 'strict' as const, durabilityRecord: strictRec };
  const strictOp = op({ steps: [revokeStep()] });
  const one = decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-11')], { ...base, pendingOp: strictOp }));
  assert.ok(one.kind === 'fence-old' && /db3 has not stopped receiving from db1/.test(one.waiting), JSON.stringify(one));
  // db3's agent is gone: it is known from the op record, and its mysqld may still acknowledge.
  const gone = decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped')], { ...base, pendingOp: strictOp }));
  assert.ok(gone.kind === 'fence-old' && /db3 has not stopped/.test(gone.waiting), JSON.stringify(gone));
  const both = [replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-11', { revokedEpoch: 5 }, 'stopped')];
  const d = decide(view(both, { ...base, pendingOp: strictOp }));
  assert.ok(d.kind === 'record-fenced' && d.proof.kind === 'strict-semi-sync', JSON.stringify(d));
  // Three semi-sync replicas were connected, two are known: one without an agent may still acknowledge.
  const unseen = decide(view(both, { ...base, durabilityRecord: { ...strictRec, clients: 3 }, pendingOp: strictOp }));
  assert.ok(unseen.kind === 'fence-old' && /reported 3 semi-sync replicas but only 2 are known/.test(unseen.waiting), JSON.stringify(unseen));
});

test('proof: an operator\'s --unfenced failover request is the proof "operator", taken with its target', () => {
  const requests = new Map([['7-x', { kind: 'failover' as const, to: 'db3', force: false, unfenced: true, requestedAt: 1, by: 'ops@host' }]]);
  const d = decide(view([hung, replica('db2', '0-1-10'), replica('db3', '0-1-11')], { pendingOp: op(), requests }));
  assert.ok(d.kind === 'record-fenced' && d.proof.kind === 'operator' && d.request?.id === '7-x' && d.request.to === 'db3', JSON.stringify(d));
  assert.match(d.proof.detail, /operator override \(request 7-x, by ops@host\)/);
  // With a healthy ready primary there is nothing to override: refused, never a fence skipped.
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const refused = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), replica('db3', '0-1-10', {}, 'running')], { requests }));
  assert.equal(kind(refused), 'request-refused');
  assert.match(reason(refused), /no failover waits for a fencing proof/);
});

test('decide: once proven, the replicas still receiving first take the fenced primary\'s last transactions (bounded), then revoke', () => {
  const final = op({ proof: proven('agent-fenced', '0-1-12'), steps: [fencedStep('x')] });
  const receiving = (node: string, received: string) => replica(node, received, {}, 'running');
  const d = decide(view([member('db1', { fenced: true, fencedFor: 5 }, { readOnly: true }), receiving('db2', '0-1-12'), receiving('db3', '0-1-11')], { pendingOp: final }));
  assert.equal(kind(d), 'await');
  assert.match(reason(d), /waiting for db3 to receive db1's last transactions \(0-1-12\)/);
  assert.equal(kind(decide(view([receiving('db2', '0-1-12'), receiving('db3', '0-1-12')], { pendingOp: final }))), 'revoke');
  const late = decide(view([receiving('db2', '0-1-12'), receiving('db3', '0-1-11')], { pendingOp: final, now: 9_600 + timings.revokeWaitMs }));
  assert.equal(kind(late), 'revoke');
  assert.match(reason(late), /db3 did not receive db1's last transactions within 8000 ms/);
  // Without a final position (the server is gone), the revoke is at once.
  assert.equal(kind(decide(view([receiving('db2', '0-1-10')], { pendingOp: op({ proof: proven('server-gone'), steps: [fencedStep('x')] }) }))), 'revoke');
});

test('decide: once revoking, waits for every answering replica to revoke, then promotes the most advanced', () => {
  const notYet = [deadPrimary, replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-11')];
  assert.match(reason(decide(view(notYet, { pendingOp: revoking() }))), /waiting for db3 to stop receiving/);
  const revoked = [deadPrimary, replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-11', { revokedEpoch: 5 }, 'stopped')];
  const d = decide(view(revoked, { pendingOp: revoking() }));
  assert.ok(d.kind === 'promote' && d.node === 'db3' && d.fencedBy === 'sql-fenced: sql-fenced evidence', JSON.stringify(d));
});

test('decide: a replica that never answers the revoke makes the failover abort: too few nodes answer', () => {
  const d = decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), member('db3', { health: 'down' }, null)], { pendingOp: revoking(), now: 9_600 + 2_001 }));
  assert.equal(kind(d), 'failover-abort');
  assert.match(reason(d), /too few nodes answer .* db3/);
  // db3's key vanished entirely (its agent died too): it is still known from the op record.
  assert.equal(kind(decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped')], { pendingOp: revoking() }))), 'failover-abort');
});

test('decide: a node in maintenance that does not answer the revoke blocks nothing', () => {
  const maintenance: ClusterConfig = { paused: false, nodes: { db3: { maintenance: true } } };
  const d = decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), member('db3', { health: 'down' }, null)], { pendingOp: revoking(), now: 9_600 + 2_001, config: maintenance }));
  assert.ok(d.kind === 'promote' && d.node === 'db2', JSON.stringify(d));
  // Its key gone too (its agent stopped for the maintenance): still not waited for.
  const gone = decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped')], { pendingOp: revoking(), config: maintenance }));
  assert.ok(gone.kind === 'promote' && gone.node === 'db2', JSON.stringify(gone));
  // Another silent node still blocks, as without maintenance.
  const both: ClusterConfig = { paused: false, nodes: { db4: { maintenance: true } } };
  assert.equal(kind(decide(view([replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped')], { pendingOp: revoking(), config: both }))), 'failover-abort');
});

test('decide: a new coordinator resumes a running failover from its record', () => {
  const revoked = [replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-10', { revokedEpoch: 5 }, 'stopped')];
  assert.equal(kind(decide(view(revoked, { pendingOp: revoking({ coordinator: { node: 'db3', revision: '3' } }) }))), 'promote');
});

test('decide: a diverged member is named with its extra GTIDs in the epoch\'s record, once', () => {
  const current = op({ epoch: 4, outcome: 'done', endedAt: 1 });
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const diverged = member('db3', { errant: '0-3-11', role: 'diverged' });
  const durabilityRecord = { epoch: 4, node: 'db1', mode: 'semi-sync' as const, state: 'off' as const, strict: false, since: 1, clients: 0 };
  const d = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), diverged], { currentOp: current, durabilityRecord }));
  assert.equal(kind(d), 'note-diverged');
  assert.match(reason(d), /db3 has transactions db1 lacks: 0-3-11/);
  const noted = { ...current, steps: [{ name: 'diverged db3', startedAt: 1, endedAt: 1, outcome: 'failed' as const, detail: '' }] };
  assert.equal(kind(decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), diverged], { currentOp: noted, durabilityRecord }))), 'none');
});

test('decide: a candidate that dies while being promoted is failed over like any primary', () => {
  const promoting = primary('db1', { epoch: 4, state: 'promoting' });
  assert.equal(kind(decide(view([replica('db2', '0-1-10'), replica('db3', '0-1-10')], { primary: promoting }))), 'failover-start');
  const alive = member('db1', {}, { readOnly: true });
  assert.equal(kind(decide(view([alive, replica('db2', '0-1-10')], { primary: promoting }))), 'none');
});

// ---- a candidate that does not finish its promotion -------------------------------------------

// db2 was chosen at epoch 5 and is stuck applying its relay log: up, read-only, still replicating.
const promotingDb2 = primary('db2', { epoch: 5, state: 'promoting', since: 1_000 });
const stuck = (received: string) =>
  member('db2', {}, { serverId: 2, readOnly: true, replication: fromDb1({ ioState: 'stopped' }), gtid: { executed: '0-1-8', received }, lagMs: 30_000 });
const stallLimit = timings.relayApplyTimeoutMs + PROMOTION_GRACE_MS;

test('stall: a candidate still promoting after the relay-log wait and a grace is failed over, keeping what it received', () => {
  const members = membersOf(stuck('0-1-12'), replica('db3', '0-1-12'));
  assert.equal(detectStalledPromotion(promotingDb2, members, 1_000 + stallLimit, stallLimit), null, 'not before the limit');
  const f = detectStalledPromotion(promotingDb2, members, 1_000 + stallLimit + 1, stallLimit);
  assert.match(f?.reason ?? '', /db2 has not finished its promotion to epoch 5 within 13000 ms/);
  assert.equal(f?.mustContain, '0-1-12');
  const d = decide(view([stuck('0-1-12'), replica('db3', '0-1-12')], { primary: promotingDb2, now: 1_000 + stallLimit + 1 }));
  assert.ok(d.kind === 'failover-start' && d.from === 'db2' && d.mustContain === '0-1-12', JSON.stringify(d));
});

test('stall: a candidate that applies its relay log steadily is noted and waited for; one whose position stands still is replaced', () => {
  const chosen = op({ epoch: 5, to: 'db2' });
  const others = replica('db3', '0-1-12');
  // Too early for a note; then its position moved: noted, with the coordinator's time.
  assert.equal(kind(decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: chosen, now: 1_500 }))), 'none');
  const noted = decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: chosen, now: 2_500 }));
  assert.ok(noted.kind === 'note-applied' && noted.node === 'db2' && noted.gtid === '0-1-8', JSON.stringify(noted));
  const applying = (gtid: string, at: number) => ({ ...chosen, applied: { node: 'db2', gtid, at } });
  // The same position again is not noted; a newer one is, but not more than once a second.
  assert.equal(kind(decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: applying('0-1-8', 2_500), now: 5_000 }))), 'none');
  assert.equal(kind(decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: applying('0-1-7', 4_500), now: 5_000 }))), 'none');
  assert.equal(kind(decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: applying('0-1-7', 3_900), now: 5_000 }))), 'note-applied');
  // Past the limit from the promotion's start, but its position moved 2 s ago: not stalled.
  const late = 1_000 + stallLimit + 5_000;
  assert.equal(detectStalledPromotion(promotingDb2, membersOf(stuck('0-1-12'), others), late, stallLimit, late - 2_000), null);
  assert.notEqual(kind(decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: applying('0-1-8', late - 2_000), now: late }))), 'failover-start');
  // Standing still for the limit since its last progress: replaced, and the reason says when it last moved.
  const f = detectStalledPromotion(promotingDb2, membersOf(stuck('0-1-12'), others), late, stallLimit, late - stallLimit - 1);
  assert.match(f?.reason ?? '', /within 13000 ms \(its applied position last moved 13001 ms ago\)/);
  const d = decide(view([stuck('0-1-12'), others], { primary: promotingDb2, currentOp: applying('0-1-8', late - stallLimit - 1), now: late }));
  assert.ok(d.kind === 'failover-start' && d.mustContain === '0-1-12', JSON.stringify(d));
});

test('stall: a ready primary, or a candidate whose agent is gone or whose server is down, is not "stalled"', () => {
  const late = 1_000 + stallLimit + 1;
  assert.equal(detectStalledPromotion({ ...promotingDb2, state: 'ready' }, membersOf(stuck('0-1-12')), late, stallLimit), null);
  assert.equal(detectStalledPromotion(promotingDb2, membersOf(replica('db3', '0-1-12')), late, stallLimit), null);
  assert.equal(detectStalledPromotion(promotingDb2, membersOf(member('db2', { health: 'down' }, null)), late, stallLimit), null);
});

test('stall: when the stuck candidate holds writes no other node received, Primacy waits for it, and says so once', () => {
  const v = view([stuck('0-1-12'), replica('db3', '0-1-10')], { primary: promotingDb2, now: 1_000 + stallLimit + 1 });
  const d = decide(v);
  assert.equal(kind(d), 'failover-refused');
  assert.match(reason(d), /no other replica has everything db2 received \(0-1-12\), which may hold acknowledged writes; db2 keeps trying/);
  assert.equal(kind(decide({ ...v, pendingOp: op({ epoch: 6, from: 'db2', outcome: 'refused', reason: reason(d) }) })), 'none');
  assert.deepEqual(holdersOf('0-1-12', v.members, 'db2'), []);
  assert.deepEqual(holdersOf('0-1-10', v.members, 'db2'), ['db3']);
});

test('stall: the failover that follows promotes only a node with everything the stuck candidate received', () => {
  const fenced = op({ epoch: 6, from: 'db2', mustContain: '0-1-12', proof: proven(), steps: [fencedStep('x'), revokeStep()] });
  const fromDb2 = (node: string, received: string) =>
    member(node, { revokedEpoch: 6 }, { serverId: Number(node.slice(2)), replication: replicatingFrom('127.0.0.1', 3302, { ioState: 'stopped' }), gtid: { executed: received, received }, lagMs: 100 });
  const base = { primary: promotingDb2, now: 20_000 };
  const d = decide(view([stuck('0-1-12'), fromDb2('db1', '0-1-12'), fromDb2('db3', '0-1-11')], { ...base, pendingOp: fenced }));
  assert.ok(d.kind === 'promote' && d.node === 'db1', JSON.stringify(d));
  const lacking = decide(view([stuck('0-1-12'), fromDb2('db1', '0-1-11'), fromDb2('db3', '0-1-11')], { ...base, pendingOp: fenced }));
  assert.equal(kind(lacking), 'failover-abort');
  assert.match(reason(lacking), /no replica has everything db2 received \(0-1-12\)/);
  const unreadable = decide(view([stuck('0-1-12'), fromDb2('db1', '0-1-12')], { ...base, pendingOp: { ...fenced, mustContain: 'garbage' } }));
  assert.equal(kind(unreadable), 'failover-abort');
  assert.match(reason(unreadable), /must contain \(garbage\) cannot be read/);
});

test('choose: the required position is a rule an operator\'s --force overrides', () => {
  const required = { node: 'db2', position: parseGtid('mariadb', '0-1-12') };
  assert.equal(choice([replica('db3', '0-1-11')], { required }).ok, false);
  assert.equal(choice([replica('db3', '0-1-12')], { required }).ok, true);
  assert.equal(choice([replica('db3', '0-1-11')], { required, force: true }).ok, true);
  // The dead primary before the stalled candidate does not answer; the required position already bounds what it had acknowledged.
  assert.equal(choice([replica('db3', '0-1-12')], { required, silent: ['db1'] }).ok, true);
});

test('decide: after an automatic failover aborted, the next attempt waits failoverRetryMs', () => {
  const aborted = op({ outcome: 'aborted', endedAt: 9_000, reason: 'too few nodes answer' });
  const members = [deadPrimary, replica('db2', '0-1-10'), replica('db3', '0-1-10')];
  const d = decide(view(members, { pendingOp: aborted, now: 9_000 + timings.failoverRetryMs - 1 }));
  assert.equal(kind(d), 'await');
  assert.match(reason(d), /aborted \(too few nodes answer\); trying again 5000 ms after/);
  assert.equal(kind(decide(view(members, { pendingOp: aborted, now: 9_000 + timings.failoverRetryMs }))), 'failover-start');
});

test('decide: an etcd config key that cannot be read refuses automatic failover and requests, once, until fixed', () => {
  const problem = 'paused: expected boolean, received string';
  const v = view([deadPrimary, replica('db2', '0-1-10'), replica('db3', '0-1-10')], { configProblem: problem });
  const d = decide(v);
  assert.equal(kind(d), 'failover-refused');
  assert.match(reason(d), /failover refused: the etcd config key cannot be read \(paused: expected boolean, received string\); fix or delete it/);
  assert.equal(kind(decide({ ...v, pendingOp: op({ outcome: 'refused', reason: reason(d) }) })), 'none');
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const request = decide(view([healthy, replica('db2', '0-1-10', {}, 'running')], { configProblem: problem, requests: new Map([['1-x', { kind: 'switchover', to: 'db2', force: false, unfenced: false, requestedAt: 1, by: 't' }]]) }));
  assert.equal(kind(request), 'request-refused');
  assert.match(reason(request), /config key cannot be read/);
  assert.equal(kind(decide({ ...v, configProblem: null })), 'failover-start');
});

// ---- never the wrong node (issue 10) ----------------------------------------------------------

test('choose: a node its agent marked diverged is neither a candidate nor a catch-up source, whatever its priority', () => {
  const diverged = replica('db3', '0-1-12', { role: 'diverged', errant: '0-3-11' });
  const byPriority = { paused: false, nodes: { db3: { priority: 100 } } };
  const c = choice([replica('db2', '0-1-12'), diverged], { config: byPriority });
  assert.ok(c.ok && c.node === 'db2' && c.catchUpFrom === null, JSON.stringify(c));
  assert.match(c.verdicts.find((v) => v.node === 'db3')?.reason ?? '', /diverged: errant GTIDs 0-3-11/);
  const preferred = choice([replica('db2', '0-1-12'), diverged], { preferred: 'db3' });
  assert.ok(!preferred.ok && /db3 cannot be promoted: diverged/.test(preferred.reason), JSON.stringify(preferred));
  // db2 behind: the diverged db3 is not the node it catches up from.
  const behind = choice([replica('db2', '0-1-11'), replica('db4', '0-1-10'), replica('db3', '0-1-11', { role: 'diverged', errant: '0-3-9' })], { preferred: 'db4' });
  assert.ok(behind.ok && behind.node === 'db4' && behind.catchUpFrom === 'db2', JSON.stringify(behind));
  assert.equal(choice([replica('db2', '0-1-12'), diverged], { preferred: 'db3', force: true }).ok, true, '--force overrides');
});

test('choose: on MariaDB, errant writes a later GTID hides in the position are found in gtid_binlog_state', () => {
  // db3 wrote 0-3-11 itself, then received 0-1-12: its position reads 0-1-12, its state keeps both.
  const hidden = member('db3', {}, { serverId: 3, replication: fromDb1(), gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12,0-3-11' }, lagMs: 100 });
  const clean = member('db2', {}, { serverId: 2, replication: fromDb1(), gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12' }, lagMs: 100 });
  const c = choice([clean, hidden], { config: { paused: false, nodes: { db3: { priority: 10 } } } });
  assert.ok(c.ok && c.node === 'db2', JSON.stringify(c));
  assert.match(c.verdicts.find((v) => v.node === 'db3')?.reason ?? '', /errant GTIDs 0-3-11/);
});

test('choose: a node with errant GTIDs that alone received the old primary\'s last writes is not silently passed over', () => {
  // db3 wrote 9-3-1 itself (errant) but also received 0-1-12 from db1, which db2 lacks: it may be acknowledged.
  const c = choice([replica('db2', '0-1-11'), replica('db3', '0-1-12,9-3-1')], { oldPrimaryGtid: parseGtid('mariadb', '0-1-12') });
  assert.ok(!c.ok, JSON.stringify(c));
  assert.match(c.reason, /db3 has errant GTIDs, and also received 0-1-12 that no eligible replica has/);
  const same = choice([replica('db2', '0-1-12'), replica('db3', '0-1-12,9-3-1')], { oldPrimaryGtid: parseGtid('mariadb', '0-1-12') });
  assert.ok(same.ok && same.node === 'db2', 'nothing is lost when the eligible node has it all');
});

test('request: a manual failover to a node that could not be promoted is refused before anything is touched', () => {
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const request = (to: string, force = false) => new Map([['9-r', { kind: 'failover' as const, to, force, unfenced: false, requestedAt: 1, by: 't' }]]);
  const durabilityRecord = { epoch: 4, node: 'db1', mode: 'semi-sync' as const, state: 'off' as const, strict: false, since: 1, clients: 0 };
  const rows: Array<[string, MemberState, RegExp]> = [
    ['diverged', replica('db3', '0-1-10', { role: 'diverged', errant: '0-3-11' }, 'running'), /it has diverged \(errant GTIDs 0-3-11\)/],
    ['no-promote', replica('db3', '0-1-10', { noPromote: true }, 'running'), /marked no-promote/],
    ['lagging', member('db3', {}, { serverId: 3, replication: fromDb1(), gtid: { executed: '0-1-10', received: '0-1-10' }, lagMs: 60_000 }), /lags 60000 ms, over the 10000 ms limit/],
    ['applier stopped', member('db3', {}, { serverId: 3, replication: fromDb1({ sqlRunning: false, lastSqlError: 'Duplicate entry' }), gtid: { executed: '0-1-10', received: '0-1-10' }, lagMs: 100 }), /SQL thread is stopped: Duplicate entry/],
    ['down', member('db3', { health: 'down' }, null), /its server is down/],
  ];
  for (const [name, db3, why] of rows) {
    const d = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), db3], { requests: request('db3'), durabilityRecord }));
    assert.equal(kind(d), 'request-refused', name);
    assert.match(reason(d), why, name);
  }
  const forced = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), rows[1]![1]], { requests: request('db3', true), durabilityRecord }));
  assert.equal(kind(forced), 'failover-start', '--force overrides');
  // Maintenance is not a rule --force overrides: the operator takes it back first.
  const kept = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), replica('db3', '0-1-10', {}, 'running')], { requests: request('db3', true), durabilityRecord, config: { paused: false, nodes: { db3: { maintenance: true } } } }));
  assert.equal(kind(kept), 'request-refused');
  assert.equal(reason(kept), 'db3 cannot be promoted: it is in maintenance (primacy maintenance db3 off first)');
});

test('request: a switchover to a target too far behind to catch up in time is refused before writes are held', () => {
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const slow = member('db2', {}, { serverId: 2, replication: fromDb1({ ioState: 'running' }), gtid: { executed: '0-1-10', received: '0-1-10' }, lagMs: 9_000 });
  const requests = new Map([['9-s', { kind: 'switchover' as const, to: 'db2', force: false, unfenced: false, requestedAt: 1, by: 't' }]]);
  const d = decide(view([healthy, slow, replica('db3', '0-1-10', {}, 'running')], { requests, timings: { ...timings, switchoverCatchUpMs: 5_000 } }));
  assert.equal(kind(d), 'request-refused');
  assert.match(reason(d), /db2 lags 9000 ms, more than the 5000 ms a switchover waits/);
});

test('a candidate that dies while promoting: the next failover must contain everything it had received, and its catch-up source\'s position', () => {
  const promoting = primary('db2', { epoch: 5, state: 'promoting', gtid: '0-1-12' });
  const d = decide(view([replica('db1', '0-1-12'), replica('db3', '0-1-11')], { primary: promoting, epoch: 5 }));
  assert.ok(d.kind === 'failover-start' && d.mustContain === '0-1-12', JSON.stringify(d));
  // db2 (preferred) was catching up from db3, which had 0-1-14: the replacement needs that too.
  const catching = op({ epoch: 5, kind: 'failover', to: 'db2', catchUpFrom: { node: 'db3', host: '127.0.0.1', port: 3303, gtid: '0-1-14' } });
  const stalled = member('db2', {}, { serverId: 2, replication: fromDb1({ ioState: 'running' }), gtid: { executed: '0-1-9', received: '0-1-12' } });
  const s = decide(view([stalled, replica('db1', '0-1-12'), replica('db3', '0-1-14')], { primary: { ...promoting, since: 0 }, epoch: 5, currentOp: catching, now: 1 + timings.relayApplyTimeoutMs + PROMOTION_GRACE_MS }));
  assert.ok(s.kind === 'failover-start' && s.mustContain === '0-1-14', JSON.stringify(s));
});

// ---- bad state in etcd -------------------------------------------------------------------------

test('repair: an unreadable primary key is rebuilt at the same epoch, ready, from the newest finished promotion', () => {
  const done = op({ epoch: 4, from: 'db3', to: 'db1', outcome: 'done', endedAt: 9_000 });
  const db1 = member('db1', {}, { readOnly: true, heartbeatEpoch: 4 });
  const v = { primary: null, epoch: 4, currentOp: done, primaryProblem: 'not JSON' };
  const d = decide(view([db1, replica('db2', '0-1-10'), replica('db3', '0-1-10')], v));
  assert.ok(d.kind === 'repair-primary' && d.node === 'db1' && d.epoch === 4, JSON.stringify(d));
  const rows: Array<[string, Partial<ClusterView>, MemberState[], RegExp]> = [
    ['the newest op did not finish', { currentOp: { ...done, outcome: 'aborted' } }, [db1], /did not finish a promotion/],
    ['no op of the current epoch', { currentOp: null }, [db1], /did not finish a promotion/],
    ['an operation runs after it', { pendingOp: op({ epoch: 5 }) }, [db1], /epoch 5 is under way/],
    ['the promoted node does not answer', {}, [member('db1', { health: 'down' }, null)], /db1, promoted at epoch 4, does not answer/],
    ['its heartbeat is of another epoch', {}, [member('db1', {}, { heartbeatEpoch: 3 })], /heartbeat is of epoch 3, not 4/],
    ['another member reports a later epoch', {}, [db1, member('db2', {}, { heartbeatEpoch: 5 })], /db2 report a later epoch/],
  ];
  for (const [name, over, members, why] of rows) {
    const r = decide(view(members, { ...v, ...over }));
    assert.equal(r.kind, 'repair-refused', name);
    assert.match(reason(r), why, name);
    assert.match(reason(r), /the primary key cannot be read \(not JSON\)/, name);
  }
  // An absent primary key is a bootstrap, never a repair.
  assert.notEqual(decide(view([db1], { ...v, primaryProblem: null })).kind, 'repair-primary');
});

test('a request key that cannot be read is removed, with why, before anything else', () => {
  const d = decide(view([deadPrimary, replica('db2', '0-1-10')], { malformedRequests: [{ id: '5-x', why: 'kind: invalid option' }] }));
  assert.equal(kind(d), 'request-dropped');
  assert.match(reason(d), /the request 5-x cannot be read \(kind: invalid option\); removed/);
});

test('explain: a tie on position says so, and a request\'s failover reason does not repeat its trigger', () => {
  const c = choice([replica('db2', '0-1-12'), replica('db3', '0-1-12')]);
  assert.ok(c.ok && c.node === 'db2');
  assert.match(c.reason, /tie on position; chosen by priority, then name$/);
  const healthy = member('db1', {}, { readOnly: false, heartbeatEpoch: 4 });
  const requests = new Map([['9-r', { kind: 'failover' as const, to: 'db2', force: false, unfenced: false, requestedAt: 1, by: 't' }]]);
  const durabilityRecord = { epoch: 4, node: 'db1', mode: 'semi-sync' as const, state: 'off' as const, strict: false, since: 1, clients: 0 };
  const d = decide(view([healthy, replica('db2', '0-1-10', {}, 'running'), replica('db3', '0-1-10', {}, 'running')], { requests, durabilityRecord }));
  assert.ok(d.kind === 'failover-start' && d.reason === 'the operator asked to fail over to db2' && d.request?.id === '9-r', JSON.stringify(d));
});

// ---- not blocked by a replica that cannot matter --------------------------------------------------

/** A failover of db1 past its revoke, db2 answering, db3's server down since revision `down`; db1 last answered at `seen` with `executed`. */
function boundCase(o: { seen: number; executed: number; down: number | null; db2: number; db3Key?: 'present' | 'gone' }) {
  const lastAnswer = { executed: `0-1-${o.executed}`, received: `0-1-${o.executed}`, seenRevision: String(o.seen) };
  const db3Entry = { health: 'down' as const, gtid: null, received: null, semiSync: 'off', lastAnswer: null, downSinceRevision: o.down === null ? null : String(o.down) };
  const pending = revoking({ members: { db1: { health: 'down', gtid: null, received: null, semiSync: 'off', lastAnswer, downSinceRevision: null }, db2: { health: 'up', gtid: '0-1-1', received: '0-1-1', semiSync: 'replica' }, db3: db3Entry } });
  const db3 = member('db3', { health: 'down', downSinceRevision: o.down === null ? null : String(o.down) }, null);
  const members = [replica('db2', `0-1-${o.db2}`, { revokedEpoch: 5 }, 'stopped'), ...(o.db3Key === 'gone' ? [] : [db3])];
  return decide(view(members, { pendingOp: pending, now: 9_600 + timings.revokeWaitMs + 1 }));
}

test('bounded: a replica down since before the old primary\'s last answer does not block the failover', () => {
  const d = boundCase({ seen: 120, executed: 40, down: 100, db2: 40 });
  assert.ok(d.kind === 'promote' && d.node === 'db2', JSON.stringify(d));
  // Its agent died since: it was seen down when the failover began, which still bounds it.
  assert.equal(boundCase({ seen: 120, executed: 40, down: 100, db2: 40, db3Key: 'gone' }).kind, 'promote');
});

test('bounded: the candidate must then contain what the old primary had at its last answer', () => {
  const d = boundCase({ seen: 120, executed: 40, down: 100, db2: 39 });
  assert.equal(d.kind, 'failover-abort');
  assert.match(reason(d), /no replica has everything the old primary \(when db3 has been down since before its last answer\) received \(0-1-40\)/);
});

test('bounded: not when the replica went down after the old primary\'s last answer, or its down period is unknown', () => {
  assert.match(reason(boundCase({ seen: 90, executed: 40, down: 100, db2: 40 })), /too few nodes answer .* db3/);
  assert.match(reason(boundCase({ seen: 120, executed: 40, down: null, db2: 40 })), /too few nodes answer .* db3/);
});

test('bounded (property): whatever the timing, a promoted node has everything a down replica received', () => {
  // One domain; db1 commits one transaction per tick, so its position at tick t is 0-1-t; etcd revisions are ticks too.
  fc.assert(
    fc.property(
      fc.record({ death: fc.integer({ min: 1, max: 50 }), publishLag: fc.integer({ min: 1, max: 10 }), seen: fc.integer({ min: 1, max: 80 }), probeLag: fc.integer({ min: 0, max: 10 }), lost: fc.integer({ min: 0, max: 20 }), db2: fc.integer({ min: 0, max: 100 }) }),
      ({ death, publishLag, seen, probeLag, lost, db2 }) => {
        const down = death + publishLag; // the agent's first `down` write comes after the server died
        const executed = seen + probeLag; // the probe began after the read at revision `seen`
        const db3Received = Math.max(0, death - lost); // what db3 had when it died
        const d = boundCase({ seen, executed, down, db2 });
        if (d.kind !== 'promote') return true;
        return d.node === 'db2' && db2 >= db3Received;
      },
    ),
    { numRuns: 2000 },
  );
});

test('decide: a replica reconnecting to the fenced old primary is waited for too, and a candidate without its last transactions takes them from it', () => {
  const final = op({ proof: proven('sql-fenced', '0-1-1119'), steps: [fencedStep('x')] });
  // After a partition heals the replicas are 'connecting' again: they are waited for, not skipped.
  const d = decide(view([replica('db2', '0-1-28'), replica('db3', '0-1-28')], { pendingOp: final }));
  assert.equal(kind(d), 'await');
  assert.match(reason(d), /waiting for db2, db3 to receive db1's last transactions \(0-1-1119\)/);
  // They never got there: the most advanced still must not be promoted without them.
  const revoked = [replica('db2', '0-1-30', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-28', { revokedEpoch: 5 }, 'stopped')];
  const p = decide(view(revoked, { pendingOp: { ...final, steps: [...final.steps, revokeStep()] } }));
  assert.ok(p.kind === 'promote' && p.node === 'db2' && p.catchUpPosition?.node === 'db1' && p.catchUpPosition.gtid === '0-1-1119' && p.catchUpPosition.port === 3301, JSON.stringify(p));
  assert.match(p.reason, /first takes db1's last transactions \(0-1-1119\) from db1, fenced but readable/);
  // With them already received, nothing more.
  const had = decide(view([replica('db2', '0-1-1119', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-28', { revokedEpoch: 5 }, 'stopped')], { pendingOp: { ...final, steps: [...final.steps, revokeStep()] } }));
  assert.ok(had.kind === 'promote' && !had.catchUpPosition, JSON.stringify(had));
});

test('decide: an operator\'s override or a fencing command outlives an aborted attempt; a fence does not', () => {
  const aborted = (proof: FenceProof) => op({ outcome: 'aborted', endedAt: 9_000, proof, request: { id: '7-x', to: 'db3', force: false } });
  const members = [deadPrimary, replica('db2', '0-1-10'), replica('db3', '0-1-10')];
  const d = decide(view(members, { pendingOp: aborted(proven('operator')) }));
  assert.ok(d.kind === 'failover-start' && d.proof?.kind === 'operator' && d.carriedRequest?.to === 'db3', JSON.stringify(d));
  const cmd = decide(view(members, { pendingOp: aborted(proven('fencing-command')), now: 9_000 + timings.failoverRetryMs }));
  assert.ok(cmd.kind === 'failover-start' && cmd.proof?.kind === 'fencing-command', JSON.stringify(cmd));
  const sql = decide(view(members, { pendingOp: aborted(proven('sql-fenced')), now: 9_000 + timings.failoverRetryMs }));
  assert.ok(sql.kind === 'failover-start' && sql.proof === undefined, JSON.stringify(sql));
});

test('decide: a failover that cannot account for every semi-sync replica the old primary had says so, and waits', () => {
  const durability = { epoch: 4, node: 'db1', mode: 'semi-sync' as const, state: 'active' as const, strict: false, since: 1, clients: 3 };
  const revoked = [replica('db2', '0-1-10', { revokedEpoch: 5 }, 'stopped'), replica('db3', '0-1-10', { revokedEpoch: 5 }, 'stopped')];
  const d = decide(view(revoked, { pendingOp: revoking({ durability }) }));
  assert.equal(kind(d), 'failover-abort');
  assert.match(reason(d), /db1 had 3 semi-sync replicas connected, but only 2 replicas are known to the cluster \(db2, db3\); one without an agent may hold acknowledged writes/);
  assert.equal(kind(decide(view(revoked, { pendingOp: revoking({ durability: { ...durability, clients: 2 } }) }))), 'promote');
  assert.equal(kind(decide(view(revoked, { pendingOp: revoking({ durability: { ...durability, state: 'fallback' } }) }))), 'promote', 'fallen back: no replica acknowledges');
  assert.equal(kind(decide(view(revoked, { pendingOp: revoking({ durability, request: { id: 'r', to: null, force: true } }) }))), 'promote', '--force overrides');
});

test('decide: a revoke of an earlier attempt of the same epoch does not count: each attempt revokes', () => {
  const stale = [replica('db2', '0-1-10', { revokedEpoch: 5, revokedAttempt: 1_000 }, 'running'), replica('db3', '0-1-10', { revokedEpoch: 5, revokedAttempt: 9_500 }, 'stopped')];
  const d = decide(view(stale, { pendingOp: revoking() }));
  assert.equal(kind(d), 'await');
  assert.match(reason(d), /waiting for db2 to stop receiving from db1/);
  const fresh = [replica('db2', '0-1-10', { revokedEpoch: 5, revokedAttempt: 9_500 }, 'stopped'), replica('db3', '0-1-10', { revokedEpoch: 5, revokedAttempt: 9_500 }, 'stopped')];
  assert.equal(kind(decide(view(fresh, { pendingOp: revoking() }))), 'promote');
});
