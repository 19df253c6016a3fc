import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemberState, NodeState, Primary, ReplicationState } from '@primacy/common';
import { EMPTY_VIEW, applyPrimary, healthyReplicas, primaryIdentity, sameReplicas, type PrimaryView } from './topology.js';

function primary(node: string, epoch: number, state: Primary['state'] = 'ready', over: Partial<Primary> = {}): Primary {
  return { node, host: '127.0.0.1', port: 3300 + Number(node.slice(2)), epoch, state, since: epoch * 1000, gtid: '0-1-1', serverId: Number(node.slice(2)), serverUuid: null, ...over };
}

function replication(over: Partial<ReplicationState> = {}): ReplicationState {
  return { sourceHost: '127.0.0.1', sourcePort: 3301, ioState: 'running', sqlRunning: true, lastIoError: '', lastSqlError: '', autoPosition: true, secondsBehind: 0, ...over };
}

function member(node: string, over: Partial<MemberState> = {}, s: Partial<NodeState> | null = {}): MemberState {
  const id = Number(node.slice(2));
  return {
    node,
    cluster: 'c',
    agentVersion: '0.1.0',
    host: '127.0.0.1',
    port: 3300 + id,
    apiUrl: 'http://127.0.0.1:8008',
    updatedAt: 0,
    health: 'up',
    error: null,
    downProbes: 0,
    probeMs: 1,
    role: 'replica',
    fenced: false,
    fencedFor: null,
    serverGone: null,
    lastAnswer: null,
    downSinceRevision: null,
    errant: null,
    revokedEpoch: null,
    revokedAttempt: null,
    priority: 0,
    noPromote: false,
    server:
      s === null
        ? null
        : {
            flavor: 'mariadb',
            version: '10.11.6-MariaDB',
            serverId: id,
            serverUuid: null,
            readOnly: true,
            superReadOnly: null,
            logBin: true,
            gtid: { executed: '0-1-10', received: '0-1-10' },
            replication: replication(),
            lagMs: 12,
            heartbeatEpoch: 1,
            semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: true, replicaActive: true, sourceTimeoutMs: null, sourceWaitNoReplica: null },
            connections: 3,
            maxConnections: 100,
            ...s,
          },
    ...over,
  };
}

/** Applies (value, revision) steps in order and returns what each reported. */
function run(steps: ReadonlyArray<readonly [Primary | null, number]>): { kinds: string[]; view: PrimaryView } {
  let view = EMPTY_VIEW;
  const kinds: string[] = [];
  for (const [value, revision] of steps) {
    const u = applyPrimary(view, value, revision);
    kinds.push(u.kind);
    view = u.view;
  }
  return { kinds, view };
}

describe('applyPrimary', () => {
  it('reports each new value once, in revision order', () => {
    const { kinds, view } = run([
      [primary('db1', 1), 5],
      [primary('db1', 1), 5],
      [primary('db1', 1, 'switching'), 9],
      [primary('db2', 2, 'promoting'), 12],
      [primary('db2', 2), 13],
    ]);
    assert.deepEqual(kinds, ['changed', 'same', 'changed', 'changed', 'changed']);
    assert.equal(view.primary?.node, 'db2');
    assert.equal(view.highestEpoch, 2);
  });

  it('never reports an older epoch after a newer one, whatever the revision says', () => {
    const { kinds, view } = run([
      [primary('db2', 3), 20],
      [primary('db1', 2), 21],
      [primary('db3', 4), 22],
    ]);
    assert.deepEqual(kinds, ['changed', 'ignored', 'changed']);
    assert.equal(view.primary?.node, 'db3');
  });

  it('ignores a replayed event older than a read it already applied', () => {
    const { kinds, view } = run([
      [primary('db2', 2), 30],
      [primary('db1', 2, 'switching'), 25],
    ]);
    assert.deepEqual(kinds, ['changed', 'same']);
    assert.equal(view.primary?.node, 'db2');
  });

  it('reports a deleted key as null, and a later value only at the highest epoch or above', () => {
    const { kinds, view } = run([
      [primary('db1', 5), 3],
      [null, 4],
      [primary('db1', 4), 5],
      [primary('db1', 5, 'promoting'), 6],
    ]);
    assert.deepEqual(kinds, ['changed', 'changed', 'ignored', 'changed']);
    assert.equal(view.primary?.state, 'promoting');
  });

  it('an abort back to ready at the same epoch is a change', () => {
    const { kinds } = run([
      [primary('db1', 1), 1],
      [primary('db1', 1, 'switching', { since: 2000 }), 2],
      [primary('db1', 1, 'ready', { since: 3000 }), 3],
    ]);
    assert.deepEqual(kinds, ['changed', 'changed', 'changed']);
  });

  it('gives one identity per node, epoch and address', () => {
    assert.equal(primaryIdentity(primary('db1', 1)), primaryIdentity(primary('db1', 1, 'switching')));
    assert.notEqual(primaryIdentity(primary('db1', 1)), primaryIdentity(primary('db1', 2)));
    assert.notEqual(primaryIdentity(primary('db1', 1)), primaryIdentity(primary('db1', 1, 'ready', { port: 1 })));
  });
});

describe('healthyReplicas', () => {
  const p = primary('db1', 1);
  const cases: ReadonlyArray<readonly [string, MemberState, boolean]> = [
    ['a replicating replica', member('db2'), true],
    ['the primary itself', member('db1', { role: 'primary' }), false],
    ['a replica whose server is down', member('db2', { health: 'down' }), false],
    ['a replica refusing connections', member('db2', { health: 'refusing' }), false],
    ['a diverged node', member('db2', { role: 'diverged' }), false],
    ['a node of unknown role', member('db2', { role: 'unknown' }), false],
    ['a replica with errant transactions', member('db2', { errant: '0-2-5' }), false],
    ['a replica with its IO thread stopped (revoked)', member('db2', {}, { replication: replication({ ioState: 'stopped' }) }), false],
    ['a replica still connecting to its source', member('db2', {}, { replication: replication({ ioState: 'connecting' }) }), false],
    ['a replica with its SQL thread stopped', member('db2', {}, { replication: replication({ sqlRunning: false }) }), false],
    ['a replica without replication', member('db2', {}, { replication: null }), false],
    ['a member never probed', member('db2', {}, null), false],
    ['a replica without a heartbeat lag but with Seconds_Behind_Master', member('db2', {}, { lagMs: null, replication: replication({ secondsBehind: 2 }) }), true],
    ['a replica with no lag known at all', member('db2', {}, { lagMs: null, replication: replication({ secondsBehind: null }) }), false],
  ];
  for (const [name, m, expected] of cases) {
    it(`${name}: ${expected ? 'serves reads' : 'serves none'}`, () => {
      assert.equal(healthyReplicas([m], p).length, expected ? 1 : 0);
    });
  }

  it('lists replicas by node with their lag and server id', () => {
    const list = healthyReplicas([member('db3', {}, { lagMs: 40 }), member('db1', { role: 'primary' }), member('db2', {}, { lagMs: null, replication: replication({ secondsBehind: 2 }) })], p);
    assert.deepEqual(list, [
      { node: 'db2', host: '127.0.0.1', port: 3302, lagMs: 2000, serverId: 2 },
      { node: 'db3', host: '127.0.0.1', port: 3303, lagMs: 40, serverId: 3 },
    ]);
    assert.ok(sameReplicas(list, healthyReplicas([member('db2', {}, { lagMs: null, replication: replication({ secondsBehind: 2 }) }), member('db3', {}, { lagMs: 40 })], p)));
    assert.ok(!sameReplicas(list, list.slice(1)));
  });
});
