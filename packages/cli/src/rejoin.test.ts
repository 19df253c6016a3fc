import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SalvageManifest } from '@primacy/common';
import { parseInvocation } from './args.js';
import { explainRecovery, recoveryNote, rejoinPreview } from './rejoin.js';
import { PLAIN } from './io.js';
import { renderStatus, statusModel } from './status.js';
import { member, op, primary, replicatingFrom, T0, view } from './testing/fixtures.js';

const p = primary('db2', { epoch: 2 });
const salvage: SalvageManifest = {
  node: 'db1', flavor: 'mariadb', serverId: 1, at: T0, nodeState: '0-1-11', primaryState: '0-1-10,0-2-12',
  extra: [{ domain: 0, server: 1, fromSeqExclusive: '10', toSeq: '11' }], gtids: '0-1-11', replayFrom: '0-1-10', readerServerId: 0,
  folder: '<crash>/db1-x', files: [{ name: 'mariadb-bin.000002', size: 900, sha256: 'a'.repeat(64) }],
};

function cluster(config: unknown = {}) {
  const v = view({
    primary: p,
    config,
    members: [
      member('db1', { role: 'diverged', errant: '0-1-11' }, { gtid: { executed: '0-1-11', received: '0-1-11', binlogState: '0-1-11' } }),
      member('db2', { role: 'primary' }, { readOnly: false }),
      member('db3', { role: 'replica' }, { replication: replicatingFrom('db2') }),
    ],
  });
  return { ...v, salvages: new Map([['db1', salvage]]) };
}

// The failover away from db1 that made epoch 2, with semi-sync in sync on db1 then.
const failover = op({ epoch: 2, kind: 'failover', from: 'db1', to: 'db2', durability: { epoch: 1, node: 'db1', mode: 'semi-sync', state: 'active', strict: false, since: 0, clients: 2 } });

test('dry run under policy none: what the node has and why nothing happens', () => {
  const r = rejoinPreview(cluster(), failover, p, 'db1', null);
  assert.equal(r.ok, false);
  assert.deepEqual(r.lines.slice(1, 4), [
    '  diverged:  transactions db2 lacks: 0-1-11',
    `  salvage:   0-1-11 in <crash>/db1-x (1 binlog file, 900 bytes, sha256 each; taken ${new Date(T0).toISOString()})`,
    "  method:    none (the cluster's rejoin.method, by default)",
  ]);
  assert.match(r.lines[4] ?? '', /^ {2}refused: {3}the cluster's rejoin policy is none: db1 stays out of rotation/);
});

test('dry run of a flashback: what is undone and why it is allowed', () => {
  const r = rejoinPreview(cluster(), failover, p, 'db1', 'flashback');
  assert.equal(r.ok, true);
  assert.equal(r.lines[3], '  method:    flashback (asked with --method)');
  assert.match(r.lines[4] ?? '', /^ {2}would: {5}undo 0-1-11 with mariadb-binlog --flashback from the salvage's mariadb-bin\.000002 .*reset its binlog to the shared history 0-1-10, then replicate from db2$/);
  assert.match(r.lines[5] ?? '', /^ {2}allowed: {3}semi-sync was in sync on db1 when it was failed over/);
  const fellBack = rejoinPreview(cluster({ rejoin: { method: 'flashback' } }), { ...failover, durability: { ...failover.durability!, state: 'fallback' } }, p, 'db1', null);
  assert.equal(fellBack.ok, false);
  assert.match(fellBack.reason ?? '', /semi-sync was fallback on db1 when it was failed over/);
});

test('dry run of a reseed names its source; of a node that has not diverged, refused', () => {
  assert.match(rejoinPreview(cluster({ rejoin: { method: 'reseed' } }), failover, p, 'db1', null).lines[4] ?? '', /copy db3's with mariadb-dump/);
  assert.match(rejoinPreview(cluster(), failover, p, 'db3', 'script').reason ?? '', /db3 has not diverged/);
});

test('recovery notes for status and explain', () => {
  const v = cluster({ rejoin: { method: 'flashback' } });
  assert.equal(recoveryNote(v, 'db1'), 'salvaged 0-1-11 into <crash>/db1-x; rejoin policy: flashback');
  assert.equal(recoveryNote(v, 'db3'), null);
  assert.deepEqual(explainRecovery(v, failover), ['db1 now: diverged (0-1-11); salvaged 0-1-11 into <crash>/db1-x; rejoin policy: flashback']);
});

test('rejoin arguments: NODE, --method, --dry-run; bad input is one line', () => {
  const env = { PRIMACY_CLUSTER: 'main' };
  const inv = parseInvocation(['rejoin', 'db1', '--method', 'reseed', '--dry-run'], env);
  assert.equal(inv.command, 'rejoin');
  if (inv.command === 'rejoin') {
    assert.equal(inv.node, 'db1');
    assert.equal(inv.method, 'reseed');
    assert.equal(inv.dryRun, true);
    assert.equal(inv.timeoutMs, 600_000);
  }
  assert.throws(() => parseInvocation(['rejoin', 'db1', '--method', 'clone'], env), /bad --method "clone": expected flashback, reseed or script/);
  assert.throws(() => parseInvocation(['rejoin'], env), /rejoin needs the NODE to rejoin/);
});

test('status: the rejoin policy and restartUnsafe in the header, a diverged node\'s salvage in its note', () => {
  const v = cluster({ rejoin: { method: 'flashback' }, restartUnsafe: true });
  const lines = renderStatus(statusModel(v, T0), T0, PLAIN);
  assert.ok(lines.includes('rejoin       diverged nodes rejoin by flashback'), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('restart      restartUnsafe: after the whole cluster was down')), lines.join('\n'));
  assert.ok(lines.includes('db1: diverged: errant transactions 0-1-11; kept out of rotation; salvaged 0-1-11 into <crash>/db1-x; rejoin policy: flashback'), lines.join('\n'));
});
