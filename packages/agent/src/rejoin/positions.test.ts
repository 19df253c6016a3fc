import assert from 'node:assert/strict';
import { test } from 'node:test';
import { binlogsHolding, describeRanges, divergence, parseGtidListInfo, purgedRanges, type BinlogFile } from './positions.js';
import { flashbackProblem, NonInvertibleScanner } from './flashback.js';
import { DumpScanner } from './reseed.js';

test('divergence: a demoted primary\'s late writes are extra; the shared history ends where the new primary took over', () => {
  // db1 wrote 0-1-101..105 after it was cut off; db2 was promoted at 0-1-100 and went on to 0-2-103.
  const d = divergence('0-1-105', '0-1-100,0-2-103');
  assert.deepEqual(d.extra, [{ domain: 0, server: 1, fromSeqExclusive: 100n, toSeq: 105n }]);
  assert.equal(d.commonState, '0-1-100');
  assert.equal(d.commonPosition, '0-1-100');
  assert.equal(describeRanges(d.extra), '0-1-101..105');
});

test('divergence: the last shared GTID of a domain may be another server\'s; other domains keep theirs', () => {
  // db1 replicated 0-2-6..8 from db2, became primary again (0-1-9, 0-1-10), and wrote in domain 1 too.
  const d = divergence('0-1-10,0-2-8,1-1-4', '0-1-5,0-2-8,0-3-9,1-1-2');
  assert.equal(describeRanges(d.extra), '0-1-6..10, 1-1-3..4');
  assert.equal(d.commonState, '0-1-5,0-2-8,1-1-2');
  assert.equal(d.commonPosition, '0-2-8,1-1-2');
});

test('divergence: nothing extra, and a domain only the node wrote in has no shared history', () => {
  assert.deepEqual(divergence('0-1-100', '0-1-100,0-2-103').extra, []);
  const d = divergence('0-1-5,7-1-3', '0-1-5');
  assert.equal(describeRanges(d.extra), '7-1-1..3');
  assert.equal(d.commonPosition, '0-1-5');
  assert.equal(describeRanges(divergence('0-1-101', '0-1-100').extra), '0-1-101');
});

const files: BinlogFile[] = [
  { name: 'b.000001', size: 100, startState: '' },
  { name: 'b.000002', size: 100, startState: '0-1-50' },
  { name: 'b.000003', size: 100, startState: '0-1-102' },
  { name: 'b.000004', size: 100, startState: '0-1-105' },
];

test('binlogsHolding: exactly the files whose GTIDs reach into the ranges', () => {
  const { extra } = divergence('0-1-105', '0-1-100,0-2-103');
  // b.000002 holds 51..102, b.000003 103..105, b.000004 nothing after 105.
  assert.deepEqual(binlogsHolding(files, '0-1-105', extra).map((f) => f.name), ['b.000002', 'b.000003']);
  const late = divergence('0-1-105', '0-1-104').extra;
  assert.deepEqual(binlogsHolding(files, '0-1-105', late).map((f) => f.name), ['b.000003']);
  assert.deepEqual(binlogsHolding(files, '0-1-105', []), []);
});

test('purgedRanges: a range that begins before the oldest binlog cannot be salvaged', () => {
  const { extra } = divergence('0-1-105', '0-1-100');
  assert.deepEqual(purgedRanges(files, extra), []);
  assert.equal(describeRanges(purgedRanges(files.slice(2), extra)), '0-1-101..105');
  assert.equal(purgedRanges([], extra).length, 1);
});

test('parseGtidListInfo reads a Gtid_list event and refuses anything else', () => {
  assert.equal(parseGtidListInfo('[0-1-9,0-2-3]'), '0-1-9,0-2-3');
  assert.equal(parseGtidListInfo('[]'), '');
  assert.throws(() => parseGtidListInfo('BEGIN GTID 0-1-10'), /not a Gtid_list event/);
  assert.throws(() => parseGtidListInfo('[0-1-x]'), /bad GTID/);
});

test('flashbackProblem names the setting that makes an undo impossible', () => {
  const ok = { flavor: 'mariadb', logBin: true, format: 'ROW', rowImage: 'FULL', readOnly: true, serverId: 1, binlogState: '0-1-1' } as const;
  assert.equal(flashbackProblem(ok), null);
  assert.match(flashbackProblem({ ...ok, rowImage: 'MINIMAL' }) ?? '', /binlog_row_image is MINIMAL; flashback needs FULL/);
  assert.match(flashbackProblem({ ...ok, format: 'MIXED' }) ?? '', /binlog_format is MIXED; flashback needs ROW/);
  assert.match(flashbackProblem({ ...ok, logBin: false }) ?? '', /log_bin=OFF/);
  assert.match(flashbackProblem({ ...ok, readOnly: false }) ?? '', /writable/);
});

test('DumpScanner counts tables and finds the GTID position across chunk boundaries', () => {
  const s = new DumpScanner();
  const dump = "USE `app`;\nCREATE TABLE `t1` (\n  id int\n);\nCREATE TABLE `we``ird` (\n);\n-- SET GLOBAL gtid_slave_pos='0-2-17,1-3-4';\n";
  for (let i = 0; i < dump.length; i += 7) s.push(Buffer.from(dump.slice(i, i + 7)));
  s.end();
  assert.equal(s.tables, 2);
  assert.equal(s.table, 'we``ird');
  assert.equal(s.position, '0-2-17,1-3-4');
});

test('NonInvertibleScanner keeps the DDL and statements among row changes, as mariadb-binlog prints them', () => {
  // The shape of MariaDB 10.11's mariadb-binlog output (abridged from a live run).
  const h = (pos: number, what: string) => `# at ${pos}\n#261203 14:32:30 server id 1  end_log_pos ${pos} CRC32 0x7e6df73f \t${what}`;
  const text = [
    h(372, 'GTID 0-1-7 trans'),
    '/*!100001 SET @@session.gtid_seq_no=7*//*!*/;',
    'START TRANSACTION',
    '/*!*/;',
    h(420, 'Annotate_rows:'),
    '#Q> INSERT INTO app.t VALUES (1)',
    h(460, 'Write_rows: table id 18 flags: STMT_END_F'),
    h(500, 'Xid = 15'),
    'COMMIT/*!*/;',
    h(540, 'GTID 0-1-8'),
    'START TRANSACTION',
    h(600, 'Query\tthread_id=12\texec_time=0\terror_code=0\txid=0'),
    'SET TIMESTAMP=1764772350/*!*/;',
    'COMMIT',
    '/*!*/;',
    h(640, 'GTID 0-1-9 ddl'),
    '/*!100001 SET @@session.gtid_seq_no=9*//*!*/;',
    h(700, 'Query\tthread_id=13\texec_time=0\terror_code=0\txid=19'),
    'use `app`/*!*/;',
    'SET TIMESTAMP=1764772350/*!*/;',
    '/*!\\C utf8mb4 *//*!*/;',
    'ALTER TABLE app.t ADD COLUMN v INT',
    '/*!*/;',
    h(760, 'GTID 0-1-10'),
    h(800, 'Query\tthread_id=14\texec_time=0\terror_code=0'),
    'BEGIN',
    '/*!*/;',
    h(840, 'Query\tthread_id=14\texec_time=0\terror_code=0'),
    "UPDATE app.t SET v = 1",
    '/*!*/;',
    '# End of log file',
  ].join('\n');
  const s = new NonInvertibleScanner();
  for (const line of text.split('\n')) s.line(line);
  s.end();
  assert.deepEqual(s.found, [
    { gtid: '0-1-9', statement: 'ALTER TABLE app.t ADD COLUMN v INT' },
    { gtid: '0-1-10', statement: 'UPDATE app.t SET v = 1' },
  ]);
});
