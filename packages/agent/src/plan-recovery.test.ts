import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OpRecord, SalvageManifest } from '@primacy/common';
import { planNodeAction, type NodePlanInput, type RecoveryInput } from './plan.js';
import { member, primary, server } from './testing/members.js';

// db1, the old primary, came back with 0-1-11 that db2 (primary of epoch 2) lacks; its agent found it diverged.
const salvage: SalvageManifest = {
  node: 'db1', flavor: 'mariadb', serverId: 1, at: 5000, nodeState: '0-1-11', primaryState: '0-1-10,0-2-12',
  extra: [{ domain: 0, server: 1, fromSeqExclusive: '10', toSeq: '11' }], gtids: '0-1-11', replayFrom: '0-1-10', readerServerId: 0,
  folder: '<crash>/db1-x', files: [{ name: 'mariadb-bin.000002', size: 900, sha256: 'a'.repeat(64) }],
};

const record: OpRecord = {
  epoch: 2, kind: 'rejoin', from: 'db1', to: 'db2', trigger: 'automatic', request: null, coordinator: { node: 'db3', revision: '1' },
  startedAt: 9000, endedAt: null, outcome: 'running', reason: 'allowed', catchUpFrom: null, mustContain: null, applied: null, proof: null, durability: null,
  rejoin: { node: 'db1', method: 'flashback', allowed: 'semi-sync was in sync', salvageAt: 5000, salvageFolder: '<crash>/db1-x', gtids: '0-1-11', source: null },
  members: {}, candidates: [], steps: [],
};

const idle: RecoveryInput = { salvage: null, rejoin: null, busy: false, salvageHeld: false, carriedOut: null };

const base: NodePlanInput = {
  self: 'db1',
  leaseLive: true,
  server: server({ gtid: { executed: '0-1-11', received: '0-1-11', binlogState: '0-1-11' } }),
  primary: primary('db2', { epoch: 2 }),
  primaryMember: member('db2', {}, { readOnly: false, gtid: { executed: '0-1-10,0-2-12', received: '0-1-10,0-2-12', binlogState: '0-1-10,0-2-12' } }),
  diverged: true,
  failover: null,
  demoteAllowed: true,
  recovery: idle,
};

const cases: Array<[string, Partial<NodePlanInput>, string, RegExp?]> = [
  ['a diverged node with no salvage salvages first', {}, 'salvage', /no salvage yet/],
  ['a node that is not diverged is never salvaged', { diverged: false, server: server({ gtid: { executed: '0-1-10', received: '0-1-10', binlogState: '0-1-10' } }) }, 'replicate'],
  ['a salvage of an older binlog is taken again', { recovery: { ...idle, salvage: { ...salvage, nodeState: '0-1-9' } } }, 'salvage', /moved past its salvage \(0-1-9\)/],
  ['a salvage that failed waits for its retry', { recovery: { ...idle, salvageHeld: true } }, 'none'],
  ['while a salvage or rejoin runs, nothing else', { recovery: { ...idle, busy: true } }, 'none'],
  ['a writable node is fenced before anything', { server: server({ readOnly: false, gtid: { executed: '0-1-11', received: '0-1-11', binlogState: '0-1-11' } }) }, 'fence'],
  ['salvaged, with no rejoin recorded: it waits', { recovery: { ...idle, salvage } }, 'none'],
  ['salvaged, and the coordinator recorded a rejoin: it rejoins by the method', { recovery: { ...idle, salvage, rejoin: record } }, 'rejoin', /by flashback: semi-sync was in sync/],
  ['a rejoin of another salvage is not carried out', { recovery: { ...idle, salvage, rejoin: { ...record, rejoin: { ...record.rejoin!, salvageAt: 1 } } } }, 'none'],
  ['a rejoin decided in an earlier epoch is not carried out', { primary: primary('db2', { epoch: 3 }), recovery: { ...idle, salvage, rejoin: record } }, 'none'],
  ['a rejoin is not carried out while the primary is not ready', { primary: primary('db2', { epoch: 2, state: 'promoting' }), recovery: { ...idle, salvage, rejoin: record } }, 'none'],
  ['a rejoin this agent carried out already is not repeated', { recovery: { ...idle, salvage, rejoin: record, carriedOut: 9000 } }, 'none'],
  ['an ended rejoin is not carried out', { recovery: { ...idle, salvage, rejoin: { ...record, outcome: 'aborted' } } }, 'none'],
  ['after a failed rejoin that moved its binlog, the node is salvaged again once its record ended', { recovery: { ...idle, salvage: { ...salvage, nodeState: '0-1-9' }, rejoin: { ...record, outcome: 'aborted' }, carriedOut: 9000 } }, 'salvage', /moved past its salvage/],
  ['a failed rejoin whose record still runs: no salvage until the record ends', { recovery: { ...idle, salvage: { ...salvage, nodeState: '0-1-9' }, rejoin: record, carriedOut: 9000 } }, 'none'],
  ['during a failover a diverged node does nothing', { failover: { epoch: 3, from: 'db2', revoke: false } }, 'none'],
];

for (const [name, over, kind, reason] of cases) {
  test(`node plan, recovery: ${name}`, () => {
    const action = planNodeAction({ ...base, ...over });
    assert.equal(action.kind, kind);
    if (reason) assert.match('reason' in action ? action.reason : '', reason);
  });
}
