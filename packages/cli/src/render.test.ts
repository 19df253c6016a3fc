import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DurabilityRecord, OpRecord } from '@primacy/common';
import { decodeOps } from './cluster.js';
import { durabilityModel, meaningOf, renderDurability } from './durability.js';
import { grpcReason } from './errors.js';
import { describeOpDurability, describeProof, renderExplain } from './explain.js';
import { formatAge, formatDuration, oneLine, table, visibleWidth } from './format.js';
import { historyModel, renderHistory } from './history.js';
import { COLOR, PLAIN, styleFor } from './io.js';
import { describeDurability, failoverWait, renderStatus, statusModel } from './status.js';
import { buildTopology, renderTopology } from './topology.js';
import { T0, healthyView, member, op, replicatingFrom, view } from './testing/fixtures.js';

describe('format', () => {
  test('durations in ms and s, ages', () => {
    assert.equal(formatDuration(0), '0 ms');
    assert.equal(formatDuration(850.4), '850 ms');
    assert.equal(formatDuration(1234), '1.23 s');
    assert.equal(formatDuration(12_345), '12.3 s');
    assert.equal(formatDuration(245_000), '4m 05s');
    assert.equal(formatDuration(7_800_000), '2h 10m');
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d 4h');
    assert.equal(formatAge(T0 - 3200, T0), '3.20 s ago');
    assert.equal(formatAge(T0 + 50, T0), 'just now');
  });

  test('tables align on visible width, whatever the colours', () => {
    const rows = [[COLOR.red('ok'), 'x'], ['longer', 'y']];
    const lines = table(['A', 'B'], rows);
    assert.deepEqual(lines.map(visibleWidth), [9, 9, 9]);
    assert.equal(lines[2], 'longer  y');
  });

  test('one line, cut', () => {
    assert.equal(oneLine('a\n  b\tc'), 'a b c');
    assert.equal(oneLine('abcdef', 4), 'abc…');
  });

  test('gRPC errors are cut down to their reason', () => {
    assert.equal(
      grpcReason('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: '),
      'connect ECONNREFUSED 127.0.0.1:1',
    );
    assert.equal(grpcReason('4 DEADLINE_EXCEEDED: Deadline exceeded'), 'Deadline exceeded');
  });

  test('colours only on a terminal, and never under NO_COLOR', () => {
    assert.equal(styleFor({ isTTY: true, env: {} }), COLOR);
    assert.equal(styleFor({ isTTY: false, env: {} }), PLAIN);
    assert.equal(styleFor({ isTTY: true, env: { NO_COLOR: '1' } }), PLAIN);
    assert.equal(styleFor({ isTTY: true, env: { NO_COLOR: '' } }), COLOR);
  });
});

describe('status', () => {
  test('the model: every node, the primary marked, gone nodes from the last op', () => {
    const v = healthyView({ lastOp: op({ members: { ...op().members, db4: { health: 'up', gtid: '0-1-1', received: '0-1-1', semiSync: 'off' } } }) });
    const s = statusModel(v, T0);
    assert.equal(s.version, 1);
    assert.deepEqual(s.nodes.map((n) => [n.node, n.primary, n.state, n.role]), [
      ['db1', false, 'ok', 'replica'],
      ['db2', true, 'ok', 'primary'],
      ['db3', false, 'ok', 'replica'],
      ['db4', false, 'gone', null],
    ]);
    assert.deepEqual(s.primary, { node: 'db2', host: '127.0.0.1', port: 3302, epoch: 2, state: 'ready', since: T0 - 65_000, gtid: '0-1-10' });
    assert.equal(s.coordinator, 'db3');
    assert.deepEqual(s.lastOp, {
      epoch: 2, kind: 'failover', from: 'db1', to: 'db2', trigger: 'automatic', outcome: 'done', reason: op().reason,
      startedAt: T0 - 10_000, endedAt: T0 - 8_200, durationMs: 1_800, proof: null,
    });
    assert.equal(s.failoverWaits, null);
    assert.deepEqual(s.durability, { configured: null, record: null });
    assert.deepEqual(s.nodes.map((n) => [n.fencedFor, n.serverGone]), [[null, null], [null, null], [null, null], [null, null]]);
    assert.equal(s.paused, false);
    assert.deepEqual(s.warnings, []);
  });

  test('the table', () => {
    const v = healthyView({ config: { paused: true }, requests: { '123-abc': { kind: 'switchover', to: 'db1', force: false, requestedAt: T0 - 2000, by: 'ann@host' } } });
    const lines = renderStatus(statusModel(v, T0), T0, PLAIN);
    assert.deepEqual(lines.slice(0, 8), [
      'cluster      main (etcd revision 1234)',
      'primary      db2, epoch 2, ready since 1m 05s',
      'coordinator  db3',
      'paused       yes: no automatic failover',
      'last op      epoch 2 failover db1 → db2, done 8.20 s ago (took 1.80 s)',
      "durability   not set: each agent's replication.semiSync; no record from the coordinator yet",
      'request      123-abc: switchover to db1 by ann@host, 2.00 s ago, not taken yet',
      '',
    ]);
    assert.deepEqual(lines.slice(8, 12), [
      '  NODE  ROLE     STATE  HEALTH  READ_ONLY  GTID EXECUTED  LAG     SEMI-SYNC            AGENT',
      '  db1   replica  ok     up      on         0-2-200        12 ms   src on, rep active   0.1.0',
      '* db2   primary  ok     up      off        0-2-200        -       src active, rep off  0.1.0',
      '  db3   replica  ok     up      on         0-2-199        1.50 s  src on, rep active   0.1.0',
    ]);
    assert.equal(lines[12], '* the primary named in etcd');
    assert.ok(!lines.some((l) => l.startsWith('GTID EXECUTED and LAG')), 'fresh positions need no age');
  });

  test('positions older than 5 s say how old the oldest is', () => {
    const s = statusModel(healthyView(), T0);
    const aged = { ...s, nodes: s.nodes.map((n, i) => ({ ...n, updatedAt: T0 - (i === 2 ? 25_000 : 1000) })) };
    assert.ok(renderStatus(aged, T0, PLAIN).includes('GTID EXECUTED and LAG as each agent last published them, the oldest 25.0 s ago'), renderStatus(aged, T0, PLAIN).join('\n'));
  });

  test('conditions: down, fenced, diverged, broken replication, no primary', () => {
    const v = view({
      members: [
        member('db1', { health: 'down', error: 'connect ECONNREFUSED', role: 'unknown' }, null),
        member('db2', { fenced: true, role: 'primary' }),
        member('db3', { role: 'diverged', errant: '0-3-7' }),
        member('db4', {}, { replication: replicatingFrom('db2', { ioState: 'connecting', lastIoError: 'error reconnecting to master' }) }),
      ],
      primary: null,
    });
    const s = statusModel(v, T0);
    assert.deepEqual(s.nodes.map((n) => n.state), ['down', 'fenced', 'diverged', 'broken']);
    const lines = renderStatus(s, T0, PLAIN);
    assert.equal(lines[1], 'primary      none');
    assert.ok(lines.includes('db1: server down: connect ECONNREFUSED'), lines.join('\n'));
    // Its salvage and the rejoin policy that applies come with it.
    assert.ok(lines.includes('db3: diverged: errant transactions 0-3-7; kept out of rotation; not salvaged yet; rejoin policy: none'), lines.join('\n'));
    assert.ok(lines.includes('db4: replication from 127.0.0.1:3302: IO connecting (error reconnecting to master), SQL running'));
    assert.ok(!lines.includes('* the primary named in etcd'));
  });

  test('durability: the mode and what the primary was last seen doing', () => {
    const rec = (over: Partial<DurabilityRecord> = {}): DurabilityRecord => ({ epoch: 2, node: 'db2', mode: 'semi-sync', state: 'active', strict: false, since: T0 - 65_000, clients: 2, ...over });
    const p = { node: 'db2', epoch: 2 };
    const cases: Array<[string, DurabilityRecord['mode'] | null, DurabilityRecord | null, string]> = [
      ['nothing set, nothing recorded', null, null, "not set: each agent's replication.semiSync; no record from the coordinator yet"],
      ['set, not recorded yet', 'strict', null, 'strict; no record from the coordinator yet'],
      ['semi-sync, active', 'semi-sync', rec(), 'semi-sync (active since 1m 05s, 2 semi-sync replicas)'],
      ['active, from the agents\' own settings', null, rec({ clients: 1 }), "semi-sync (active since 1m 05s, 1 semi-sync replica); not set: each agent's replication.semiSync"],
      ['strict, in force', 'strict', rec({ mode: 'strict', strict: true }), 'strict (active since 1m 05s, 2 semi-sync replicas)'],
      ['strict set, the primary not strict yet', 'strict', rec({ mode: 'strict' }), 'strict, but db2 is not seen strict yet (semi-sync active since 1m 05s): a revoke proves nothing until it is'],
      ['fallen back', 'semi-sync', rec({ state: 'fallback', clients: 0, since: T0 - 120_000 }), 'semi-sync, fallen back to async since 2026-01-02 03:02:05Z (2m 00s ago): writes acknowledged since then may exist only on db2'],
      ['async', 'async', rec({ mode: 'async', state: 'off', clients: 0 }), 'async (semi-sync off since 1m 05s)'],
      ['semi-sync set, but off on the primary', 'semi-sync', rec({ state: 'off', clients: 0 }), 'semi-sync, but semi-sync is off on db2 (since 1m 05s)'],
      ['unknown', 'semi-sync', rec({ state: 'unknown' }), "semi-sync (db2's semi-sync state unknown)"],
      ['set, not yet in the record', 'strict', rec(), 'semi-sync (active since 1m 05s, 2 semi-sync replicas); set to strict, not applied yet'],
      ['the record is of the old primary', 'semi-sync', rec({ node: 'db1', epoch: 1 }), 'semi-sync; no record for db2 (epoch 2) yet; the last is of db1 (epoch 1)'],
    ];
    for (const [name, configured, record, expected] of cases) {
      assert.equal(describeDurability({ configured, record }, p, T0, PLAIN), expected, name);
    }
    // Read from the config key and the durability key.
    const s = statusModel(healthyView({ config: { durability: 'strict', nodes: { db1: { priority: 2 } } }, durability: rec({ mode: 'strict', strict: true }) }), T0);
    assert.deepEqual(s.durability, { configured: 'strict', record: rec({ mode: 'strict', strict: true }) });
    assert.ok(renderStatus(s, T0, PLAIN).includes('durability   strict (active since 1m 05s, 2 semi-sync replicas)'));
    const fallback = renderStatus(statusModel(healthyView({ durability: rec({ state: 'fallback' }) }), T0), T0, COLOR);
    assert.ok(fallback.some((l) => l.startsWith('durability') && l.includes('\x1b[33msemi-sync, fallen back to async since')), 'a fallback is highlighted');
  });

  test('a failover waiting for a fencing proof: one highlighted line with what it waits for', () => {
    const detail = 'cannot prove db2 fenced: its agent is gone (its lease expired), and an expired lease proves nothing. the failover waits and keeps trying; an operator can … primacy failover --to NODE --unfenced';
    const waiting = op({
      epoch: 3, from: 'db2', to: null, outcome: 'running', startedAt: T0 - 40_000, endedAt: null, candidates: [],
      steps: [
        { name: 'detect', startedAt: T0 - 40_000, endedAt: T0 - 40_000, outcome: 'ok', detail: "db2's lease expired" },
        { name: 'fence', startedAt: T0 - 40_000, endedAt: null, outcome: 'running', detail },
      ],
    });
    const s = statusModel(healthyView({ lastOp: waiting }), T0);
    assert.deepEqual(s.failoverWaits, { epoch: 3, from: 'db2', to: null, since: T0 - 40_000, detail });
    const lines = renderStatus(s, T0, PLAIN);
    const at = lines.indexOf(`failover to epoch 3 waits: ${detail}`);
    assert.ok(at > 0, lines.join('\n'));
    assert.match(lines[at - 1]!, /^durability /, 'right under the header');
    assert.equal(lines[at + 1], '');
    assert.ok(renderStatus(s, T0, COLOR).includes(COLOR.red(`failover to epoch 3 waits: ${detail}`)));

    const proof = { kind: 'agent-fenced' as const, detail: 'fenced', at: T0, finalGtid: null };
    const cases: Array<[string, OpRecord | null, boolean]> = [
      ['no op', null, false],
      ['a done failover', op(), false],
      ['a running failover with its proof', { ...waiting, proof }, false],
      ['a running switchover', { ...waiting, kind: 'switchover' }, false],
      ['an aborted failover', { ...waiting, outcome: 'aborted', endedAt: T0 }, false],
      ['a running failover without a proof', waiting, true],
    ];
    for (const [name, o, waits] of cases) assert.equal(failoverWait(o) !== null, waits, name);
    // A strict revoke running after the fence step: the fence step is still what it waits on; with no fence step, the op's reason.
    assert.equal(failoverWait({ ...waiting, steps: [...waiting.steps, { name: 'revoke', startedAt: T0, endedAt: null, outcome: 'running', detail: 'replicas stop' }] })?.detail, detail);
    assert.equal(failoverWait({ ...waiting, steps: [] })?.detail, waiting.reason);
  });

  test('what the agents proved of their nodes: fenced for a failover, server gone', () => {
    const v = healthyView({
      members: [
        member('db1', { fenced: true, fencedFor: 3, role: 'unknown' }),
        member('db2', { role: 'primary' }),
        member('db3', { health: 'down', error: 'connect ECONNREFUSED', serverGone: 'connection refused on its own host (127.0.0.1:3303)' }, null),
        member('db4', { fencedFor: 2 }),
      ],
    });
    const s = statusModel(v, T0);
    assert.deepEqual(s.nodes.map((n) => [n.node, n.fencedFor, n.serverGone]), [
      ['db1', 3, null],
      ['db2', null, null],
      ['db3', null, 'connection refused on its own host (127.0.0.1:3303)'],
      ['db4', 2, null],
    ]);
    const lines = renderStatus(s, T0, PLAIN);
    assert.ok(lines.includes('db1: fenced by its agent for the failover to epoch 3: read-only, client sessions killed'), lines.join('\n'));
    assert.ok(lines.includes('db3: server down: connect ECONNREFUSED; its agent knows the server is gone: connection refused on its own host (127.0.0.1:3303)'));
    assert.ok(lines.includes('db4: fenced for the failover to epoch 2'));
    assert.ok(!lines.some((l) => l.startsWith('db2:')));
  });

  test('a malformed value is a warning line, and the rest still shows', () => {
    const v = healthyView({ members: [member('db1'), { node: 'db9', raw: '{"node":"db9","health":"sideways"}' }, { node: 'db8', raw: 'not json' }], config: { paused: 'maybe' } });
    const s = statusModel(v, T0);
    assert.deepEqual(s.nodes.map((n) => n.node), ['db1', 'db2', 'db3'], 'db2 (the primary) and db3 (in the last op) are gone; db8, db9 skipped');
    assert.equal(s.warnings.length, 3);
    assert.equal(s.paused, false);
    assert.match(s.configProblem ?? '', /^paused: /, 'status does not pass the defaults off as the truth');
    assert.deepEqual(s.durability, { configured: null, record: null }, 'a malformed config key leaves durability unset');
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/members\/db9/);
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/members\/db8: not JSON/);
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/config: paused/);
    const lines = renderStatus(s, T0, PLAIN);
    assert.equal(lines.filter((l) => l.startsWith('warning: ignoring malformed value')).length, 3);
    assert.ok(lines.some((l) => /^paused\s+unknown: the config key cannot be read \(paused: .*\); no automatic failover and no request is taken until it is fixed or deleted$/.test(l)), lines.join('\n'));
  });

  test('colours on a terminal, aligned all the same', () => {
    const lines = renderStatus(statusModel(healthyView(), T0), T0, COLOR);
    assert.ok(lines.some((l) => l.includes('\x1b[32mok\x1b[39m')));
    const plain = renderStatus(statusModel(healthyView(), T0), T0, PLAIN);
    assert.deepEqual(lines.map(visibleWidth), plain.map(visibleWidth));
  });
});

describe('topology', () => {
  test('the tree from the primary, with a chained replica', () => {
    const v = healthyView({
      members: [
        member('db1', {}, { replication: replicatingFrom('db2'), lagMs: 12 }),
        member('db2', { role: 'primary' }, { readOnly: false }),
        member('db3', {}, { replication: replicatingFrom('db1', { sourceHost: 'localhost' }), lagMs: 40 }),
        member('db4', {}, { replication: replicatingFrom('db2') }),
      ],
    });
    const t = buildTopology(v);
    assert.equal(t.root, 'db2');
    assert.deepEqual(Object.fromEntries(t.children), { db2: ['db1', 'db4'], db1: ['db3'] });
    assert.deepEqual(renderTopology(v, PLAIN), [
      'db2  127.0.0.1:3302  ok  writable  primary, epoch 2, ready',
      '├─ db1  127.0.0.1:3301  ok  lag 12 ms  read-only',
      '│  └─ db3  127.0.0.1:3303  ok  lag 40 ms  read-only',
      '└─ db4  127.0.0.1:3304  ok  read-only',
    ]);
  });

  test('broken replication shown in the tree; nowhere, strangers, diverged and gone listed apart', () => {
    const v = healthyView({
      members: [
        member('db1', {}, { replication: replicatingFrom('db2', { sqlRunning: false, lastSqlError: "Duplicate entry '1' for key 'PRIMARY'" }) }),
        member('db2', { role: 'primary' }, { readOnly: false }),
        member('db3', {}, { replication: null }),
        member('db4', { role: 'diverged', errant: '0-4-9' }, { replication: replicatingFrom('db2') }),
        member('db5', {}, { replication: { ...replicatingFrom('db2'), sourceHost: '10.0.0.9', sourcePort: 3306 } }),
      ],
      lastOp: op({ members: { db6: { health: 'up', gtid: null, received: null, semiSync: 'off' } }, from: null, to: 'db2' }),
    });
    const lines = renderTopology(v, PLAIN);
    assert.equal(lines[1], "└─ db1  127.0.0.1:3301  broken  read-only  replication from 127.0.0.1:3302: IO running, SQL stopped (Duplicate entry '1' for key 'PRIMARY')");
    assert.deepEqual(lines.slice(2), [
      '',
      'apart from the tree:',
      '  db3  127.0.0.1:3303  ok  read-only  replicates from nowhere',
      '  db4  127.0.0.1:3304  diverged  read-only  diverged: errant 0-4-9',
      '  db5  127.0.0.1:3305  ok  read-only  replicates from 10.0.0.9:3306, which is no member',
      '  db6  gone  gone: no member key',
    ]);
  });

  test('a primary whose agent is gone is still the root its replicas hang from', () => {
    const v = healthyView({ members: [member('db1', {}, { replication: replicatingFrom('db2') })] });
    const lines = renderTopology(v, PLAIN);
    assert.deepEqual(lines.slice(0, 2), ['db2  gone  primary, epoch 2, ready', '└─ db1  127.0.0.1:3301  ok  read-only']);
  });
});

describe('history', () => {
  test('the refused and aborted records of history/ join those of ops/, each once, by epoch and start', () => {
    const kv = (key: string, o: unknown) => ({ key, value: JSON.stringify(o), createRevision: '1', modRevision: '1' });
    const refused = op({ epoch: 3, outcome: 'refused', startedAt: T0 - 300, endedAt: T0 - 300, to: null, reason: 'paused' });
    const aborted = op({ epoch: 3, outcome: 'aborted', startedAt: T0 - 200, endedAt: T0 - 150, to: null, reason: 'too few nodes answer' });
    const done = op({ epoch: 3, startedAt: T0 - 100, endedAt: T0 - 50 });
    const { ops, warnings } = decodeOps(
      [kv('/primacy/main/ops/0000000002', op()), kv('/primacy/main/ops/0000000003', done)],
      [kv('/primacy/main/history/1-3-failover-refused', refused), kv('/primacy/main/history/2-3-failover-aborted', aborted), kv('/primacy/main/history/3-2-x', op()), kv('/primacy/main/history/4-x', '{')],
    );
    assert.deepEqual(ops.map((o) => `${o.epoch} ${o.outcome}`), ['2 done', '3 refused', '3 aborted', '3 done']);
    assert.equal(warnings.length, 1, 'a malformed history entry is a warning');
  });

  test('a table of ops, oldest first, one line of reason each', () => {
    const ops = [
      op({ epoch: 1, kind: 'bootstrap', from: null, to: 'db1', startedAt: T0 - 600_000, endedAt: T0 - 599_850, reason: 'db1 is the configured\nbootstrap primary', candidates: [], steps: [] }),
      op(),
      op({ epoch: 3, outcome: 'refused', endedAt: T0 - 100, startedAt: T0 - 100, to: null, reason: 'paused' }),
    ];
    const lines = renderHistory(historyModel('main', ops, ['ignoring malformed value at /primacy/main/ops/0000000004: not JSON']), T0, PLAIN);
    assert.deepEqual(lines, [
      'EPOCH  KIND       FROM  TO   STARTED               DURATION  OUTCOME  REASON',
      '1      bootstrap  -     db1  2026-01-02 02:54:05Z  150 ms    done     db1 is the configured bootstrap primary',
      "2      failover   db1   db2  2026-01-02 03:03:55Z  1.80 s    done     db1's agent sees its server down (connect ECONNREFUSED) and no replica receives from it",
      '3      failover   db1   -    2026-01-02 03:04:04Z  0 ms      refused  paused',
      'warning: ignoring malformed value at /primacy/main/ops/0000000004: not JSON',
    ]);
    assert.deepEqual(renderHistory(historyModel('main', [], []), T0, PLAIN), ['no operations recorded for main']);
  });
});

describe('explain', () => {
  test('trigger, candidates with positions, why the chosen one won, why the others did not, steps with durations', () => {
    const record = op({
      candidates: [
        { node: 'db2', gtid: '0-1-105', eligible: true, reason: 'chosen' },
        { node: 'db3', gtid: '0-1-100', eligible: true, reason: 'less advanced or lower priority' },
        { node: 'db4', gtid: '0-1-105,1-4-2', eligible: false, reason: 'errant GTIDs 1-4-2' },
      ],
      catchUpFrom: { node: 'db4', host: '127.0.0.1', port: 3304, gtid: '0-1-105' },
    });
    const lines = renderExplain({ version: 1, cluster: 'main', op: record, warnings: [] }, T0, PLAIN);
    const text = lines.join('\n');
    assert.equal(lines[0], 'epoch 2: failover db1 → db2, done');
    assert.match(text, /started +2026-01-02 03:03:55Z \(10\.0 s ago\), took 1\.80 s/);
    assert.match(text, /coordinator +db3 \(election revision 42\)/);
    assert.match(text, /trigger +automatic: db1's agent sees its server down/);
    assert.match(text, /db2 +0-1-105 +chosen: db2 has the most advanced received GTID position 0-1-105/);
    assert.match(text, /db3 +0-1-100 +not chosen: less advanced or lower priority/);
    assert.match(text, /db4 +0-1-105,1-4-2 +refused: errant GTIDs 1-4-2/);
    assert.match(text, /fence +ok +500 ms +\+0 ms +the old primary must take no more writes/);
    assert.match(text, /ready +ok +300 ms +\+1\.50 s +db2 is writable/);
    assert.match(text, /members when it decided\n +NODE +HEALTH +EXECUTED +RECEIVED +SEMI-SYNC\n +db1 +down +- +- +off/);
    assert.match(text, /\ncatch-up source: db4 \(127\.0\.0\.1:3304\), up to 0-1-105\n/);
    assert.match(text, /outcome\n  done: db1's agent sees/);
    assert.doesNotMatch(text, /must contain/);
  });

  test('a failover away from a candidate that stalled names what the next one must contain', () => {
    const record = op({ from: 'db2', to: 'db3', mustContain: '0-1-531', reason: 'db2 has not finished its promotion to epoch 2 within 13000 ms' });
    const text = renderExplain({ version: 1, cluster: 'main', op: record, warnings: [] }, T0, PLAIN).join('\n');
    assert.match(text, /\nmust contain: 0-1-531 \(everything db2 received; it may hold acknowledged writes\)\n/);
  });

  test('the proof, or what a running failover waits for; an operator override said plainly', () => {
    const fence = (detail: string) => ({ name: 'fence', startedAt: T0 - 5_000, endedAt: null, outcome: 'running' as const, detail });
    const proof = (kind: NonNullable<OpRecord['proof']>['kind'], detail: string, finalGtid: string | null = null) => ({ kind, detail, at: T0 - 9_000, finalGtid });
    const running = op({ outcome: 'running', endedAt: null, steps: [fence('cannot prove db1 fenced: its agent has not fenced it yet. the failover waits and keeps trying')] });
    const cases: Array<[string, OpRecord, string[]]> = [
      ['SQL fence with its final GTID', op({ proof: proof('sql-fenced', '3 client sessions killed, read_only read back ON', '0-1-17') }), ['proof: sql-fenced — 3 client sessions killed, read_only read back ON; final GTID 0-1-17']],
      ['server gone', op({ proof: proof('server-gone', "db1's agent: connection refused on its own host") }), ["proof: server-gone — db1's agent: connection refused on its own host"]],
      ['strict semi-sync', op({ proof: proof('strict-semi-sync', 'db1 ran strict semi-sync; db2, db3 stopped receiving from it') }), ['proof: strict-semi-sync — db1 ran strict semi-sync; db2, db3 stopped receiving from it']],
      [
        'an operator override',
        op({ proof: proof('operator', 'operator override (request 17-ab, by ann@host): db1 was not proven fenced; the operator says it takes no writes') }),
        [
          'proof: operator — operator override (request 17-ab, by ann@host): db1 was not proven fenced; the operator says it takes no writes',
          '  an operator overrode the fencing requirement: nothing proved that db1 could no longer acknowledge a write',
        ],
      ],
      ['running, no proof yet', running, ['no proof yet: cannot prove db1 fenced: its agent has not fenced it yet. the failover waits and keeps trying']],
      ['done, from before proofs', op(), []],
      ['a switchover', op({ kind: 'switchover' }), []],
    ];
    for (const [name, record, expected] of cases) assert.deepEqual(describeProof(record, PLAIN), expected, name);
    const overridden = op({ trigger: 'automatic; override 17-ab', request: { id: '17-ab', to: 'db3', force: false } });
    assert.match(renderExplain({ version: 1, cluster: 'main', op: overridden, warnings: [] }, T0, PLAIN).join('\n'), /trigger +automatic: db1's agent sees its server down; let go by operator request 17-ab: failover --unfenced to db3\n/);
    const text = renderExplain({ version: 1, cluster: 'main', op: running, warnings: [] }, T0, PLAIN).join('\n');
    assert.match(text, /trigger .*\n\nno proof yet: cannot prove db1 fenced: its agent has not fenced it yet/, 'right under the header');
  });

  test("the old primary's durability before the failover, and what a fallback means", () => {
    const rec = (over: Partial<DurabilityRecord> = {}): DurabilityRecord => ({ epoch: 1, node: 'db1', mode: 'semi-sync', state: 'active', strict: false, since: T0 - 120_000, clients: 2, ...over });
    const cases: Array<[string, OpRecord, string[]]> = [
      ['active', op({ durability: rec() }), ['durability of db1 (epoch 1) before the failover: mode semi-sync, active, not strict, since 2026-01-02 03:02:05Z, 2 semi-sync replicas']],
      ['strict', op({ durability: rec({ mode: 'strict', strict: true, clients: 1 }) }), ['durability of db1 (epoch 1) before the failover: mode strict, active, strict (no fallback to async), since 2026-01-02 03:02:05Z, 1 semi-sync replica']],
      [
        'fallen back',
        op({ durability: rec({ state: 'fallback', clients: 0 }) }),
        [
          'durability of db1 (epoch 1) before the failover: mode semi-sync, fallen back to async, not strict, since 2026-01-02 03:02:05Z, 0 semi-sync replicas',
          '  writes acknowledged since 2026-01-02 03:02:05Z may exist only on the old primary db1',
        ],
      ],
      ['none recorded', op(), ['durability: none recorded for db1 before the failover']],
      ['a refused failover promised nothing', op({ outcome: 'refused' }), []],
      ['a bootstrap', op({ kind: 'bootstrap', from: null }), []],
    ];
    for (const [name, record, expected] of cases) assert.deepEqual(describeOpDurability(record.durability, record, PLAIN), expected, name);
    const colored = renderExplain({ version: 1, cluster: 'main', op: op({ durability: rec({ state: 'fallback' }) }), warnings: [] }, T0, COLOR);
    assert.ok(colored.includes(COLOR.yellow('  writes acknowledged since 2026-01-02 03:02:05Z may exist only on the old primary db1')));
  });

  test('a request that was refused, and a running operation', () => {
    const refusedOp = op({ trigger: 'request 17-ab', request: { id: '17-ab', to: 'db3', force: true }, kind: 'failover', outcome: 'refused', reason: 'db3 lags by 9 s', candidates: [], steps: [] });
    const text = renderExplain({ version: 1, cluster: 'main', op: refusedOp, warnings: [] }, T0, PLAIN).join('\n');
    assert.match(text, /trigger +operator request 17-ab: failover to db3, forced\n/);
    assert.match(text, /outcome\n  refused: db3 lags by 9 s/);
    const bootstrap = op({ epoch: 1, kind: 'bootstrap', from: null, to: 'db1', reason: 'the config names db1', members: { db1: { health: 'up', gtid: '', received: '', semiSync: 'off' } }, candidates: [], steps: [], catchUpFrom: null });
    const b = renderExplain({ version: 1, cluster: 'main', op: bootstrap, warnings: [] }, T0, PLAIN).join('\n');
    assert.match(b, /trigger +bootstrap: the config names db1\n/);
    assert.match(b, /db1 +up +- +- +off/);
    assert.doesNotMatch(b, /candidates/);
    const running = op({ endedAt: null, outcome: 'running', steps: [{ name: 'fence', startedAt: T0 - 2000, endedAt: null, outcome: 'running', detail: '' }] });
    const lines = renderExplain({ version: 1, cluster: 'main', op: running, warnings: [] }, T0, PLAIN).join('\n');
    assert.match(lines, /running for 10\.0 s/);
    assert.match(lines, /fence +running +2\.00 s so far/);
  });
});

describe('durability', () => {
  const rec = (over: Partial<DurabilityRecord> = {}): DurabilityRecord => ({ epoch: 2, node: 'db2', mode: 'strict', state: 'active', strict: true, since: T0 - 65_000, clients: 2, ...over });

  test('the mode, what it means, and the primary as last recorded', () => {
    const cases: Array<[string, unknown, DurabilityRecord | undefined, string[]]> = [
      [
        'nothing set, nothing recorded',
        undefined,
        undefined,
        [
          'cluster     main',
          "durability  not set: each agent's replication.semiSync",
          "primary     db2, epoch 2: no durability record yet (the coordinator writes one once it has seen the primary's semi-sync state)",
        ],
      ],
      [
        'strict, in force',
        { durability: 'strict', paused: true },
        rec(),
        [
          'cluster     main',
          'durability  strict (the config key)',
          "meaning     the primary never falls back to asynchronous replication; commits wait for a replica's acknowledgement, however long",
          'primary     db2, epoch 2: mode strict, active, strict (no fallback to async), since 2026-01-02 03:03:00Z (1m 05s ago), 2 semi-sync replicas',
        ],
      ],
      [
        'strict set, not in force yet',
        { durability: 'strict' },
        rec({ strict: false }),
        [
          'cluster     main',
          'durability  strict (the config key)',
          "meaning     the primary never falls back to asynchronous replication; commits wait for a replica's acknowledgement, however long",
          'primary     db2, epoch 2: mode strict, active, not strict, since 2026-01-02 03:03:00Z (1m 05s ago), 2 semi-sync replicas',
          'strict is set, but db2 is not seen strict yet: until it is, a revoke does not prove it fenced',
        ],
      ],
      [
        'fallen back',
        undefined,
        rec({ mode: 'semi-sync', state: 'fallback', strict: false, clients: 0 }),
        [
          'cluster     main',
          "durability  not set: each agent's replication.semiSync",
          'primary     db2, epoch 2: mode semi-sync, fallen back to async, not strict, since 2026-01-02 03:03:00Z (1m 05s ago), 0 semi-sync replicas',
          'writes acknowledged since 2026-01-02 03:03:00Z may exist only on db2',
        ],
      ],
      [
        'set, the record still of the old mode',
        { durability: 'async' },
        rec({ mode: 'semi-sync', strict: false }),
        [
          'cluster     main',
          'durability  async (the config key)',
          'meaning     commits do not wait for any replica; a failover can lose writes the primary acknowledged',
          'primary     db2, epoch 2: mode semi-sync, active, not strict, since 2026-01-02 03:03:00Z (1m 05s ago), 2 semi-sync replicas',
          'set to async, but the record is still of semi-sync: not in force yet',
        ],
      ],
      [
        'the record is of the old primary',
        undefined,
        rec({ node: 'db1', epoch: 1 }),
        [
          'cluster     main',
          "durability  not set: each agent's replication.semiSync",
          "primary     db2, epoch 2: no durability record yet (the coordinator writes one once it has seen the primary's semi-sync state); the last is of db1, epoch 1: mode strict, active, strict (no fallback to async), since 2026-01-02 03:03:00Z (1m 05s ago), 2 semi-sync replicas",
        ],
      ],
    ];
    for (const [name, config, record, expected] of cases) {
      const v = healthyView({ ...(config === undefined ? {} : { config }), ...(record === undefined ? {} : { durability: record }) });
      assert.deepEqual(renderDurability(durabilityModel(v), T0, PLAIN), expected, name);
    }
    assert.deepEqual(renderDurability(durabilityModel(healthyView({ primary: null })), T0, PLAIN).at(-1), 'primary     none');
  });

  test('what each mode means, in one line', () => {
    assert.equal(meaningOf('strict'), "strict: the primary never falls back to asynchronous replication; commits wait for a replica's acknowledgement, however long");
    assert.match(meaningOf('semi-sync'), /^semi-sync: commits wait for a replica's acknowledgement, but the primary falls back to asynchronous replication/);
    assert.match(meaningOf('async'), /^async: commits do not wait for any replica/);
    for (const m of ['async', 'semi-sync', 'strict'] as const) assert.doesNotMatch(meaningOf(m), /\n/);
  });
});

describe('status: nodes in maintenance', () => {
  test('listed in the model and in a header line, only when there are any', () => {
    const s = statusModel(healthyView({ config: { nodes: { db3: { maintenance: true }, db1: { maintenance: false, priority: 2 } } } }), T0);
    assert.deepEqual(s.maintenance, ['db3']);
    const lines = renderStatus(s, T0, PLAIN);
    assert.equal(lines.filter((l) => l.startsWith('maintenance')).length, 1);
    assert.match(lines.find((l) => l.startsWith('maintenance'))!, /^maintenance +db3: never a candidate; its absence blocks no failover$/);
    const two = renderStatus(statusModel(healthyView({ config: { nodes: { db3: { maintenance: true }, db1: { maintenance: true } } } }), T0), T0, PLAIN);
    assert.ok(two.includes('maintenance  db1, db3: never candidates; their absence blocks no failover'), two.join('\n'));
    const none = statusModel(healthyView(), T0);
    assert.deepEqual(none.maintenance, []);
    assert.ok(!renderStatus(none, T0, PLAIN).some((l) => l.startsWith('maintenance')));
  });
});
