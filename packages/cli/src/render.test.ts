import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOps } from './cluster.js';
import { grpcReason } from './errors.js';
import { renderExplain } from './explain.js';
import { formatAge, formatDuration, oneLine, table, visibleWidth } from './format.js';
import { historyModel, renderHistory } from './history.js';
import { COLOR, PLAIN, styleFor } from './io.js';
import { renderStatus, statusModel } from './status.js';
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
      startedAt: T0 - 10_000, endedAt: T0 - 8_200, durationMs: 1_800,
    });
    assert.equal(s.paused, false);
    assert.deepEqual(s.warnings, []);
  });

  test('the table', () => {
    const v = healthyView({ config: { paused: true }, requests: { '123-abc': { kind: 'switchover', to: 'db1', force: false, requestedAt: T0 - 2000, by: 'ann@host' } } });
    const lines = renderStatus(statusModel(v, T0), T0, PLAIN);
    assert.deepEqual(lines.slice(0, 7), [
      'cluster      main (etcd revision 1234)',
      'primary      db2, epoch 2, ready since 1m 05s',
      'coordinator  db3',
      'paused       yes: no automatic failover',
      'last op      epoch 2 failover db1 → db2, done 8.20 s ago (took 1.80 s)',
      'request      123-abc: switchover to db1 by ann@host, 2.00 s ago, not taken yet',
      '',
    ]);
    assert.deepEqual(lines.slice(7, 11), [
      '  NODE  ROLE     STATE  HEALTH  READ_ONLY  GTID EXECUTED  LAG     SEMI-SYNC            AGENT',
      '  db1   replica  ok     up      on         0-2-200        12 ms   src on, rep active   0.1.0',
      '* db2   primary  ok     up      off        0-2-200        -       src active, rep off  0.1.0',
      '  db3   replica  ok     up      on         0-2-199        1.50 s  src on, rep active   0.1.0',
    ]);
    assert.equal(lines[11], '* the primary named in etcd');
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
    assert.ok(lines.includes('db3: diverged: errant transactions 0-3-7; kept out of rotation'));
    assert.ok(lines.includes('db4: replication from 127.0.0.1:3302: IO connecting (error reconnecting to master), SQL running'));
    assert.ok(!lines.includes('* the primary named in etcd'));
  });

  test('a malformed value is a warning line, and the rest still shows', () => {
    const v = healthyView({ members: [member('db1'), { node: 'db9', raw: '{"node":"db9","health":"sideways"}' }, { node: 'db8', raw: 'not json' }], config: { paused: 'maybe' } });
    const s = statusModel(v, T0);
    assert.deepEqual(s.nodes.map((n) => n.node), ['db1', 'db2', 'db3'], 'db2 (the primary) and db3 (in the last op) are gone; db8, db9 skipped');
    assert.equal(s.warnings.length, 3);
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/members\/db9/);
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/members\/db8: not JSON/);
    assert.match(s.warnings.join('\n'), /ignoring malformed value at \/primacy\/main\/config: paused/);
    const lines = renderStatus(s, T0, PLAIN);
    assert.equal(lines.filter((l) => l.startsWith('warning: ignoring malformed value')).length, 3);
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
