import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planNodeAction, revokedFor, type NodePlanInput } from './plan.js';
import { member, primary, replicatingFrom, server } from './testing/members.js';

const base: NodePlanInput = {
  self: 'db2',
  leaseLive: true,
  server: server({ replication: replicatingFrom('127.0.0.1', 3301) }),
  primary: primary('db1'),
  primaryMember: member('db1', {}, { readOnly: false, gtid: { executed: '0-1-10', received: '0-1-10' } }),
  diverged: false,
  failover: null,
  demoteAllowed: true,
};

const cases: Array<[string, Partial<NodePlanInput>, string, RegExp?]> = [
  ['a healthy replica of the primary does nothing', {}, 'none'],
  ['a server that does not answer is left alone', { server: null }, 'none'],
  ['a writable node without a live lease fences itself', { leaseLive: false, server: server({ readOnly: false }) }, 'fence', /no live lease/],
  ['a read-only node without a lease does nothing', { leaseLive: false }, 'none'],
  ['a writable node when etcd names no primary is fenced', { primary: null, server: server({ readOnly: false }) }, 'fence', /no primary/],
  ['a read-only node with no primary waits', { primary: null }, 'none'],
  ['a writable node that is not the primary is fenced', { server: server({ readOnly: false }) }, 'fence', /db1 is the primary of epoch 1/],
  ['the named primary promotes itself while promoting', { self: 'db1', primary: primary('db1', { state: 'promoting', epoch: 2 }), server: server() }, 'promote', /epoch 2/],
  ['a ready primary that is read-only (agent restarted) is made writable again', { self: 'db1', server: server({ readOnly: true, heartbeatEpoch: 1 }) }, 'promote'],
  ['a promoted primary with this epoch\'s heartbeat does nothing', { self: 'db1', server: server({ readOnly: false, heartbeatEpoch: 1 }) }, 'none'],
  ['a primary that still replicates finishes its promotion', { self: 'db1', server: server({ readOnly: false, heartbeatEpoch: 1, replication: replicatingFrom('127.0.0.1', 3303) }) }, 'promote'],
  ['a switching primary that is still writable demotes itself', { self: 'db1', primary: primary('db1', { state: 'switching' }), server: server({ readOnly: false, heartbeatEpoch: 1 }) }, 'demote', /switchover away/],
  ['a switching primary keeps its writes until its registered clients hold theirs', { self: 'db1', demoteAllowed: false, primary: primary('db1', { state: 'switching' }), server: server({ readOnly: false, heartbeatEpoch: 1 }) }, 'none'],
  ['a switching primary already read-only waits for the switchover', { self: 'db1', primary: primary('db1', { state: 'switching' }), server: server() }, 'none'],
  ['a replica without replication points at the primary', { server: server({ replication: null, gtid: { executed: '0-1-5', received: '0-1-5' } }) }, 'replicate', /db1 is the primary/],
  ['a replica of the old primary is repointed', { server: server({ replication: replicatingFrom('127.0.0.1', 3303) }) }, 'replicate'],
  ['a stopped IO thread is restarted', { server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }) }) }, 'replicate', /stopped/],
  ['during a failover a replica of the old primary stops receiving from it', { failover: { epoch: 2, from: 'db1', revoke: true } }, 'revoke', /failover of db1/],
  ['during a failover a replica still connecting to the dead primary stops too', { failover: { epoch: 2, from: 'db1', revoke: true }, server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'connecting' }) }) }, 'revoke'],
  ['before the old primary is fenced, replicas keep receiving its last transactions', { failover: { epoch: 2, from: 'db1', revoke: false } }, 'none'],
  ['a revoked IO thread stays stopped', { failover: { epoch: 2, from: 'db1', revoke: true }, server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }) }) }, 'none'],
  ['the old primary\'s agent fences its node while a failover away from it runs', { self: 'db1', failover: { epoch: 2, from: 'db1', revoke: true }, server: server({ readOnly: false, heartbeatEpoch: 1 }) }, 'fence', /failover away from this node/],
  ['a read-only old primary is fenced too for the failover away from it: the fence is its proof', { self: 'db1', failover: { epoch: 2, from: 'db1', revoke: false }, server: server({ readOnly: true }) }, 'fence', /epoch 2/],
  ['the old primary\'s agent, once fenced for the failover, never re-promotes while it runs', { self: 'db1', fencedFor: 2, failover: { epoch: 2, from: 'db1', revoke: true }, server: server({ readOnly: true }) }, 'none'],
  ['a fence for an earlier failover is not this one\'s', { self: 'db1', fencedFor: 1, failover: { epoch: 2, from: 'db1', revoke: true }, server: server({ readOnly: true }) }, 'fence'],
  ['a server that does not answer and was last seen writable is fenced whenever it must be, again and again', { self: 'db1', mayBeWritable: true, failover: { epoch: 2, from: 'db1', revoke: false }, server: null }, 'fence', /failover away/],
  ['a server that does not answer, last seen read-only, is left alone', { self: 'db1', mayBeWritable: false, failover: { epoch: 2, from: 'db1', revoke: false }, server: null }, 'none'],
  ['without a lease, a silent server last seen writable is fenced', { leaseLive: false, mayBeWritable: true, server: null }, 'fence', /no live lease/],
  ['the primary of a silent server with a live lease and no failover is left alone', { self: 'db1', mayBeWritable: true, server: null }, 'none'],
  ['a strict cluster\'s primary sets its semi-sync timeout to never fall back', { self: 'db1', durability: { mode: 'strict', timeoutMs: 10_000 }, server: server({ readOnly: false, heartbeatEpoch: 1, semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: 10_000, sourceWaitNoReplica: true } }) }, 'semi-sync', /strict: semi-sync source on, timeout 4294967295 ms/],
  ['a primary already at the strict timeout does nothing', { self: 'db1', durability: { mode: 'strict', timeoutMs: 10_000 }, server: server({ readOnly: false, heartbeatEpoch: 1, semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: 4_294_967_295, sourceWaitNoReplica: true } }) }, 'none'],
  ['a semi-sync cluster leaving strict goes back to the configured timeout', { self: 'db1', durability: { mode: 'semi-sync', timeoutMs: 10_000 }, server: server({ readOnly: false, heartbeatEpoch: 1, semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: 4_294_967_295, sourceWaitNoReplica: true } }) }, 'semi-sync', /timeout 10000 ms/],
  ['a timeout the driver cannot read is left alone', { self: 'db1', durability: { mode: 'strict', timeoutMs: 10_000 }, server: server({ readOnly: false, heartbeatEpoch: 1, semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null } }) }, 'none'],
  ['an async cluster\'s replica turns its semi-sync replica side off', { durability: { mode: 'async', timeoutMs: 10_000 }, server: server({ replication: replicatingFrom('127.0.0.1', 3301), semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: true, replicaActive: true, sourceTimeoutMs: null, sourceWaitNoReplica: null } }) }, 'semi-sync', /replica off/],
  ['a broken applier is not restarted in a loop', { server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped', sqlRunning: false, lastSqlError: 'Duplicate entry' }) }) }, 'none'],
  ['a node with transactions the primary lacks is marked diverged, never repointed', { server: server({ replication: null, gtid: { executed: '0-2-12', received: '0-2-12' } }) }, 'diverged', /0-2-12/],
  ['a demoted primary whose late write the new primary lacks is diverged, though its position looks behind', {
    server: server({ replication: null, gtid: { executed: '0-1-101', received: '0-1-101', binlogState: '0-1-101' } }),
    primaryMember: member('db1', {}, { serverId: 2, readOnly: false, gtid: { executed: '0-2-150', received: '0-2-150', binlogState: '0-1-100,0-2-150' } }),
  }, 'diverged', /0-1-101/],
  ['a replica ahead of the primary\'s published state only in the primary\'s own writes is not diverged (the state is older)', {
    server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }), gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12' } }),
  }, 'replicate'],
  ['a replica ahead of a candidate that has received (not yet applied) the same is repointed to it, not diverged', {
    primary: primary('db3', { state: 'promoting', epoch: 2 }),
    primaryMember: member('db3', {}, { serverId: 3, gtid: { executed: '0-1-10', received: '0-1-12', binlogState: '0-1-10' } }),
    server: server({ serverId: 2, replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }), gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12' } }),
  }, 'replicate'],
  ['a replica ahead of what the candidate received is diverged', {
    primary: primary('db3', { state: 'promoting', epoch: 2 }),
    primaryMember: member('db3', {}, { serverId: 3, gtid: { executed: '0-1-10', received: '0-1-11', binlogState: '0-1-10' } }),
    server: server({ serverId: 2, replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }), gtid: { executed: '0-1-12', received: '0-1-12', binlogState: '0-1-12' } }),
  }, 'diverged', /0-1-12/],
  ['a stopped replica with transactions the ready primary lacks is diverged, not restarted', {
    server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }), gtid: { executed: '0-3-12', received: '0-3-12' } }),
  }, 'diverged', /0-3-12/],
  ['while the primary is switching, a replica already follows the target', { primary: primary('db1', { state: 'switching' }), switchoverTo: { node: 'db3', host: '127.0.0.1', port: 3303 } }, 'replicate', /db3 is the target of a switchover away from db1/],
  ['a replica following the switchover target does nothing more', { primary: primary('db1', { state: 'switching' }), switchoverTo: { node: 'db3', host: '127.0.0.1', port: 3303 }, server: server({ replication: replicatingFrom('127.0.0.1', 3303) }) }, 'none'],
  ['the switchover target itself keeps following the old primary', { self: 'db3', primary: primary('db1', { state: 'switching' }), switchoverTo: { node: 'db3', host: '127.0.0.1', port: 3303 } }, 'none'],
  ['once the primary is no longer switching (aborted), a replica of the target goes back to the primary', { switchoverTo: null, server: server({ replication: replicatingFrom('127.0.0.1', 3303) }) }, 'replicate', /db1 is the primary/],
  ['a node already marked diverged stays out', { diverged: true, server: server({ replication: null, gtid: { executed: '0-2-12', received: '0-2-12' } }) }, 'none'],
];

for (const [name, over, kind, reason] of cases) {
  test(name, () => {
    const action = planNodeAction({ ...base, ...over });
    assert.equal(action.kind, kind);
    if (reason && 'reason' in action) assert.match(action.reason, reason);
  });
}

test('a replica reports the failover revoked once it no longer receives from the old primary', () => {
  const f = { epoch: 2, from: 'db1', revoke: true };
  assert.equal(revokedFor({ ...base, failover: f }), null);
  assert.deepEqual(revokedFor({ ...base, failover: f, server: server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }) }) }), { epoch: 2, attempt: null });
  assert.deepEqual(revokedFor({ ...base, failover: f, server: server({ replication: null }) }), { epoch: 2, attempt: null });
  assert.equal(revokedFor({ ...base, failover: null }), null);
  assert.equal(revokedFor({ ...base, self: 'db1', failover: f }), null);
});

test('revokedFor names the attempt it revoked for, once the IO thread is stopped', () => {
  const f = { epoch: 2, from: 'db1', revoke: true, startedAt: 777 };
  assert.equal(revokedFor({ ...base, failover: f }), null, 'still receiving: not yet');
  const stopped = server({ replication: replicatingFrom('127.0.0.1', 3301, { ioState: 'stopped' }) });
  assert.deepEqual(revokedFor({ ...base, failover: f, server: stopped }), { epoch: 2, attempt: 777 });
});
