import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OpRecord, SalvageManifest } from '@primacy/common';
import { MAX_EARLIER_SALVAGES, salvageLineage } from './salvage-lineage.js';

const first: SalvageManifest = {
  node: 'db1', flavor: 'mariadb', serverId: 1, at: 5000, nodeState: '0-1-11', primaryState: '0-1-10,0-2-12',
  extra: [{ domain: 0, server: 1, fromSeqExclusive: '10', toSeq: '11' }], gtids: '0-1-11', replayFrom: '0-1-10', readerServerId: 0,
  folder: '<crash>/db1-x', files: [{ name: 'mariadb-bin.000002', size: 900, sha256: 'a'.repeat(64) }],
};

function record(outcome: OpRecord['outcome'], salvageAt = 5000): OpRecord {
  return {
    epoch: 2, kind: 'rejoin', from: 'db1', to: 'db2', trigger: 'automatic', request: null, coordinator: { node: 'db3', revision: '1' },
    startedAt: 9000, endedAt: 9500, outcome, reason: 'r', catchUpFrom: null, mustContain: null, applied: null, proof: null, durability: null,
    rejoin: { node: 'db1', method: 'script', allowed: 'a', salvageAt, salvageFolder: '<crash>/db1-x', gtids: '0-1-11', source: null },
    members: {}, candidates: [], steps: [],
  };
}

const firstAsEarlier = { at: 5000, folder: '<crash>/db1-x', gtids: '0-1-11', nodeState: '0-1-11' };

test('salvage lineage: the first salvage of a divergence names nothing before it', () => {
  assert.deepEqual(salvageLineage(null, null), {});
});

test('salvage lineage: after a failed rejoin from the previous salvage, the new one names it and that attempt', () => {
  assert.deepEqual(salvageLineage(first, record('aborted')), { earlier: [firstAsEarlier], afterRejoin: { startedAt: 9000, method: 'script' } });
});

test('salvage lineage: a binlog that moved with no rejoin (or a refused one) is not blamed on a rejoin', () => {
  assert.deepEqual(salvageLineage(first, null), { earlier: [firstAsEarlier] });
  assert.deepEqual(salvageLineage(first, record('refused')), { earlier: [firstAsEarlier] });
  // An attempt on an older salvage than the previous one says nothing about the previous one.
  assert.deepEqual(salvageLineage(first, record('aborted', 1000)), { earlier: [firstAsEarlier] });
});

test('salvage lineage: a node once changed by a failed rejoin stays so for every later salvage of its divergence', () => {
  const second = { ...first, at: 9600, nodeState: '0-1-12', folder: '<crash>/db1-y', ...salvageLineage(first, record('aborted')) };
  const third = salvageLineage(second, record('aborted'));
  assert.deepEqual(third.afterRejoin, { startedAt: 9000, method: 'script' });
  assert.deepEqual(third.earlier?.map((e) => e.folder), ['<crash>/db1-x', '<crash>/db1-y']);
});

test('salvage lineage: a rejoin that succeeded from the previous salvage ended that divergence', () => {
  assert.deepEqual(salvageLineage(first, record('done')), {});
});

test('salvage lineage: the first salvage is always named, and at most a bounded number', () => {
  let m: SalvageManifest = first;
  for (let i = 1; i <= 15; i++) m = { ...m, at: 5000 + i, folder: `<crash>/db1-${i}`, ...salvageLineage(m, null) };
  assert.equal(m.earlier?.length, MAX_EARLIER_SALVAGES);
  assert.equal(m.earlier?.[0]?.folder, '<crash>/db1-x');
  assert.equal(m.earlier?.at(-1)?.folder, '<crash>/db1-14');
});
