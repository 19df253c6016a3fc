/**
 * The MySQL paths of crash recovery, against recorded MySQL 8.0.36 and 8.4.3 output (node/fixtures):
 * no MySQL server runs on these machines (DESIGN.md, node flavors).
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ErrorCodes, PrimacyError, type SalvageManifest } from '@primacy/common';
import type { Endpoint } from '../node/driver.js';
import { loadFixture, replay, type Fixture } from '../node/recorded-fixtures.js';
import { RecordedSession, Transcript, type RecordedResponse } from '../node/recorded.js';
import { StatementRunner } from '../node/statement.js';
import { chooseRejoin, currentSalvage } from '../coordinator/rejoin.js';
import { member, membersOf, primary } from '../testing/members.js';
import { cloneVersionProblem, readCloneMark, summarizeCloneProgress } from './clone.js';
import { flashback, flashbackProblem, MYSQL_HAS_NO_FLASHBACK } from './flashback.js';
import { mysqlBinlogsHolding, mysqlDivergence, mysqlUnreachable, parsePreviousGtidsInfo } from './mysql-positions.js';
import type { BinlogFile } from './positions.js';
import { reseed, type ReseedProgress } from './reseed.js';
import { salvage } from './salvage.js';
import type { ConnectNodeSql } from './session.js';

const A = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const B = '5a8d1c2e-2f7b-11ef-8b3a-0242ac120003';
const mysql80 = loadFixture('mysql-8.0.36.json');
const mysql84 = loadFixture('mysql-8.4.3.json');

const db1: Endpoint = { host: 'db1', port: 3306, user: 'primacy', password: 'db1-s3cret' };
const db3: Endpoint = { host: 'db3', port: 3306, user: 'primacy', password: 'db3-s3cret' };
/** The new primary's gtid_executed as its member key carries it (canonical). */
const primaryExecuted = `${A}:1-1042,${B}:1-3`;

function transcriptOf(fixture: Fixture, scenario: string, extra: readonly RecordedResponse[] = []): Transcript {
  const recorded = fixture.scenarios[scenario];
  if (recorded === undefined) throw new Error(`no scenario ${scenario} in ${fixture.server}`);
  return new Transcript([...extra, ...recorded.responses]);
}

/** Every connection a step opens to a host answers from that host's transcript; the count shows how many it opened. */
function recordedConnect(byHost: Readonly<Record<string, Transcript>>): ConnectNodeSql & { opened: string[] } {
  const opened: string[] = [];
  const connect = (endpoint: Endpoint): ReturnType<ConnectNodeSql> => {
    const transcript = byHost[endpoint.host];
    if (transcript === undefined) throw new Error(`the step connected to ${endpoint.host}, which this test did not expect`);
    opened.push(endpoint.host);
    return { session: new RecordedSession(`${endpoint.host}#${opened.length}`, transcript, 90 + opened.length), sql: new StatementRunner(`${endpoint.host}:${endpoint.port}`) };
  };
  return Object.assign(connect, { opened });
}

const never: ConnectNodeSql = () => {
  throw new Error('the step connected to a node, though it should have refused first');
};

function refusal(code: string, pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PrimacyError, `expected a PrimacyError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/, 'one line');
    assert.doesNotMatch(err.message, /s3cret/, 'no password');
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// The pure arithmetic

const files: BinlogFile[] = [
  { name: 'binlog.000001', size: 100, startState: '' },
  { name: 'binlog.000002', size: 100, startState: `${A}:1-1000` },
  { name: 'binlog.000003', size: 100, startState: `${A}:1-1040,${B}:1-2` },
  { name: 'binlog.000004', size: 100, startState: `${A}:1-1044,${B}:1-2` },
];
const executed = `${A}:1-1045,${B}:1-2`;

test('mysqlDivergence is GTID_SUBTRACT of the primary from the node, and what both executed', () => {
  const d = mysqlDivergence(`${A}:1-1045,\n${B}:1-2`, primaryExecuted);
  assert.equal(d.extra, `${A}:1043-1045`);
  assert.equal(d.common, `${A}:1-1042,${B}:1-2`);
  // Gaps and several uuids: the difference is exact, never a count.
  assert.equal(mysqlDivergence(`${A}:1-5:7-9,${B}:1-4`, `${A}:1-8,${B}:1-3`).extra, `${A}:9,${B}:4`);
  assert.equal(mysqlDivergence(`${A}:1-1042`, primaryExecuted).extra, '');
});

test('mysqlBinlogsHolding: a file holds what lies between its Previous_gtids and the next file\'s (the last: gtid_executed)', () => {
  const names = (extra: string): string[] => mysqlBinlogsHolding(files, executed, extra).map((f) => f.name);
  assert.deepEqual(names(`${A}:1045`), ['binlog.000004'], 'extra in the last file only');
  assert.deepEqual(names(`${A}:1043-1045`), ['binlog.000003', 'binlog.000004'], 'extra spanning two files');
  assert.deepEqual(names(`${A}:999-1001`), ['binlog.000001', 'binlog.000002']);
  assert.deepEqual(names(`${B}:2`), ['binlog.000002'], 'another uuid');
  assert.deepEqual(names(''), []);
  assert.deepEqual(mysqlBinlogsHolding(files, executed, `${A}:1050`), [], 'nothing holds a GTID the node never executed');
});

test('mysqlUnreachable: purged GTIDs (gtid_purged, or before the oldest file) and GTIDs no file holds', () => {
  assert.deepEqual(mysqlUnreachable(files, executed, '', `${A}:1043-1045`), { purged: '', unlogged: '' });
  // binlog.000001 and .000002 purged: the oldest file began at :1-1040.
  assert.equal(mysqlUnreachable(files.slice(2), executed, `${A}:1-1040`, `${A}:1039-1041`).purged, `${A}:1039-1040`);
  assert.equal(mysqlUnreachable(files.slice(2), executed, '', `${A}:1039-1041`).purged, `${A}:1039-1040`, 'the oldest file shows it even when gtid_purged does not');
  assert.equal(mysqlUnreachable([], executed, '', `${A}:1045`).purged, `${A}:1045`, 'no binlogs at all');
  assert.equal(mysqlUnreachable(files, executed, '', `${A}:1046`).unlogged, `${A}:1046`);
});

test('parsePreviousGtidsInfo reads the set as SHOW BINLOG EVENTS prints it and refuses anything else', () => {
  assert.equal(parsePreviousGtidsInfo(`${A}:1-1040,\n${B}:1-2`), `${A}:1-1040,${B}:1-2`);
  assert.equal(parsePreviousGtidsInfo(''), '');
  assert.throws(() => parsePreviousGtidsInfo('[0-1-9]'), /server uuid/);
});

test('cloneVersionProblem: 8.0.17 or later, one release series, and the same point release before 8.0.37', () => {
  assert.equal(cloneVersionProblem('8.0.36', '8.0.36'), null);
  assert.equal(cloneVersionProblem('8.4.3', '8.4.0'), null);
  assert.equal(cloneVersionProblem('8.0.37', '8.0.40-log'), null);
  assert.match(cloneVersionProblem('8.0.16', '8.0.16') ?? '', /CLONE plugin needs 8\.0\.17 or later/);
  assert.match(cloneVersionProblem('8.0.36', '8.4.3') ?? '', /only within one release series/);
  assert.match(cloneVersionProblem('8.0.35', '8.0.36') ?? '', /before 8\.0\.37 CLONE needs the same point release/);
  assert.match(cloneVersionProblem('8.0.36', '8.0.40') ?? '', /same point release/);
  assert.match(cloneVersionProblem('10.11.6-MariaDB', '8.0.36') ?? '', /one release series/);
  assert.match(cloneVersionProblem('x', '8.0.36') ?? '', /not a MySQL version/);
});

test('summarizeCloneProgress adds up the stages and names the last one begun', () => {
  const rows = mysql80.scenarios['cloneRecipient']!.responses.find((r) => r.match.includes('clone_progress'))!.rows!;
  assert.deepEqual(summarizeCloneProgress(rows), { stage: 'RECOVERY', bytes: 1_306_845_748, estimate: 1_306_845_748 });
  const midway = rows.map((r, i) => ({ ...r, STATE: i < 1 ? 'Completed' : i === 1 ? 'In Progress' : 'Not Started', DATA: i === 1 ? 1000 : r['DATA'] }));
  assert.deepEqual(summarizeCloneProgress(midway), { stage: 'FILE COPY', bytes: 1000 + 262_144 + 2_560, estimate: 1_306_845_748 });
  assert.deepEqual(summarizeCloneProgress([]), { stage: null, bytes: 0, estimate: 0 });
});

// ---------------------------------------------------------------------------------------------
// Salvage, with a stand-in for mysqlbinlog

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'primacy-mysql-rejoin-'));
});
after(() => rm(dir, { recursive: true, force: true }));

interface BinlogRun {
  readonly args: string[];
  readonly options: string;
  readonly optionsMode: number;
}

/**
 * MySQL's mysqlbinlog is not installed here; this script stands in for it. It records its arguments
 * and its option file, and writes each named binlog under --result-file at the size the server listed.
 */
async function standInMysqlbinlog(name: string, sizes: Readonly<Record<string, number>>): Promise<{ program: string; run: () => Promise<BinlogRun | null> }> {
  const record = join(dir, `${name}.args`);
  const program = join(dir, `${name}.sh`);
  const cases = Object.entries(sizes).map(([file, size]) => `    ${file}) head -c ${size} /dev/urandom > "$prefix$a" ;;`).join('\n');
  await writeFile(
    program,
    `#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done > "${record}"
defaults="\${1#--defaults-extra-file=}"
cp "$defaults" "${record}.cnf"; stat -c %a "$defaults" > "${record}.mode"
prefix=""
for a in "$@"; do case "$a" in --result-file=*) prefix="\${a#--result-file=}" ;; esac; done
for a in "$@"; do
  case "$a" in
    -*) ;;
${cases}
    *) echo "mysqlbinlog stand-in: unknown file $a" >&2; exit 2 ;;
  esac
done
`,
  );
  await chmod(program, 0o755);
  return {
    program,
    run: async () => {
      const args = await readFile(record, 'utf8').catch(() => null);
      if (args === null) return null;
      return { args: args.trimEnd().split('\n'), options: await readFile(`${record}.cnf`, 'utf8'), optionsMode: parseInt(await readFile(`${record}.mode`, 'utf8'), 8) };
    },
  };
}

const sizesOf = (fixture: Fixture, scenario: string): Record<string, number> =>
  Object.fromEntries((fixture.scenarios[scenario]!.responses.find((r) => r.match === 'SHOW BINARY LOGS')!.rows ?? []).map((r) => [String(r['Log_name']), Number(r['File_size'])]));

describe('salvage on MySQL', () => {
  test('8.0.36, extra in the last binlog: the manifest names the exact GTIDs, and mysqlbinlog copies that one file under server id 0', async () => {
    const transcript = transcriptOf(mysql80, 'salvageExtraInLastFile');
    const connect = recordedConnect({ db1: transcript });
    const binlog = await standInMysqlbinlog('last', sizesOf(mysql80, 'salvageExtraInLastFile'));
    const crashDir = join(dir, 'crash-last');
    const m = await salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir, programs: { binlog: binlog.program }, now: () => Date.UTC(2026, 11, 3, 14, 0), connect });

    assert.equal(m.flavor, 'mysql');
    assert.equal(m.nodeState, `${A}:1-1045`);
    assert.equal(m.primaryState, primaryExecuted);
    assert.equal(m.gtids, `${A}:1043-1045`);
    assert.equal(m.replayFrom, `${A}:1-1042`);
    assert.deepEqual(m.extra, []);
    assert.equal(m.readerServerId, 0);
    assert.deepEqual(m.files.map((f) => [f.name, f.size]), [['binlog.000003', 18_734]]);
    assert.match(m.files[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.equal(m.folder, join(crashDir, 'db1-2026-12-03T14-00-00-000Z'));
    assert.deepEqual(JSON.parse(await readFile(join(m.folder, 'manifest.json'), 'utf8')), m);

    const run = await binlog.run();
    assert.ok(run);
    assert.match(run.args[0] ?? '', /^--defaults-extra-file=/);
    assert.deepEqual(run.args.slice(1), ['--read-from-remote-server', '--raw', '--connection-server-id=0', `--result-file=${m.folder}/`, 'binlog.000003']);
    assert.ok(!run.args.some((a) => a.includes(db1.password)), 'no password on the command line');
    assert.match(run.options, /password="db1-s3cret"/);
    assert.match(run.options, /host="db1"\nport=3306/);
    assert.equal(run.optionsMode, 0o600);

    // Each binlog's first events, in the server's order, and the server's own GTID_SUBTRACT as a cross-check.
    assert.deepEqual(
      transcript.sent.filter((s) => s.sql.startsWith('SHOW BINLOG EVENTS')).map((s) => s.params),
      [['binlog.000001'], ['binlog.000002'], ['binlog.000003']],
    );
    assert.deepEqual(transcript.sent.find((s) => s.sql.startsWith('SELECT GTID_SUBTRACT'))?.params, [`${A}:1-1045`, primaryExecuted]);
    assert.ok(!transcript.statements.some((s) => /^(SET|STOP|RESET|FLUSH|PURGE)/i.test(s)), 'salvage only reads the node');
  });

  test('8.4.3, extra spanning two binlogs: both are copied, the older first', async () => {
    const connect = recordedConnect({ db1: transcriptOf(mysql84, 'salvageSpanningFiles') });
    const binlog = await standInMysqlbinlog('span', sizesOf(mysql84, 'salvageSpanningFiles'));
    const m = await salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir: join(dir, 'crash-span'), programs: { binlog: binlog.program }, connect });
    assert.equal(m.gtids, `${A}:1043-1045`);
    assert.equal(m.nodeState, `${A}:1-1045,${B}:1-2`);
    assert.equal(m.replayFrom, `${A}:1-1042,${B}:1-2`);
    assert.deepEqual(m.files.map((f) => [f.name, f.size]), [['binlog.000004', 9_876], ['binlog.000005', 1_207]]);
    assert.deepEqual((await binlog.run())?.args.slice(-2), ['binlog.000004', 'binlog.000005']);
  });

  test('8.4.3, extra in the last binlog', async () => {
    const connect = recordedConnect({ db1: transcriptOf(mysql84, 'salvageExtraInLastFile') });
    const binlog = await standInMysqlbinlog('last84', sizesOf(mysql84, 'salvageExtraInLastFile'));
    const m = await salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir: join(dir, 'crash-last84'), programs: { binlog: binlog.program }, connect });
    assert.deepEqual(m.files.map((f) => f.name), ['binlog.000003']);
  });

  test('purged binlogs: a one-line refusal naming the purged GTIDs; nothing is copied', async () => {
    const binlog = await standInMysqlbinlog('purged', {});
    const crashDir = join(dir, 'crash-purged');
    await assert.rejects(
      salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir, programs: { binlog: binlog.program }, connect: recordedConnect({ db1: transcriptOf(mysql80, 'salvagePurged') }) }),
      refusal(ErrorCodes.OPERATION_REFUSED, new RegExp(`^salvage of db1 refused: the binary logs that held ${A}:1043 are purged \\(gtid_purged ${A}:1-1043\\)`)),
    );
    assert.equal(await binlog.run(), null, 'mysqlbinlog never ran');
    assert.deepEqual(await readdir(crashDir), [], 'no salvage folder');
  });

  test('a node with nothing extra gets an empty manifest and no copy', async () => {
    const binlog = await standInMysqlbinlog('nothing', {});
    const transcript = transcriptOf(mysql80, 'salvageNothingExtra');
    const m = await salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir: join(dir, 'crash-nothing'), programs: { binlog: binlog.program }, connect: recordedConnect({ db1: transcript }) });
    assert.equal(m.gtids, '');
    assert.deepEqual(m.files, []);
    assert.equal(await binlog.run(), null);
    assert.ok(!transcript.statements.includes('SHOW BINARY LOGS'));
  });

  test('a node that wrote during the copy: the salvage is refused, to be taken again', async () => {
    const settings = mysql80.scenarios['salvageExtraInLastFile']!.responses[0]!;
    const moved = { ...settings, once: true, rows: [{ ...settings.rows![0], gtid_executed: `${A}:1-1046` }] };
    const transcript = transcriptOf(mysql80, 'salvageExtraInLastFile', [{ ...settings, once: true }, moved]);
    const binlog = await standInMysqlbinlog('moved', sizesOf(mysql80, 'salvageExtraInLastFile'));
    await assert.rejects(
      salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: primaryExecuted, crashDir: join(dir, 'crash-moved'), programs: { binlog: binlog.program }, connect: recordedConnect({ db1: transcript }) }),
      refusal(ErrorCodes.REJOIN_ABORTED, new RegExp(`its binlog moved from ${A}:1-1045 to ${A}:1-1046 during the copy`)),
    );
  });

  test('a primary state that is not a MySQL GTID set is refused in one line', async () => {
    await assert.rejects(
      salvage({ node: 'db1', endpoint: db1, flavor: 'mysql', primaryState: '0-1-100', crashDir: join(dir, 'crash-bad'), connect: recordedConnect({ db1: transcriptOf(mysql80, 'salvageExtraInLastFile') }) }),
      refusal(ErrorCodes.OPERATION_REFUSED, /the primary's gtid_executed "0-1-100" is not a MySQL GTID set/),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Flashback

const mysqlManifest: SalvageManifest = {
  node: 'db1', flavor: 'mysql', serverId: 1, at: 5000, nodeState: `${A}:1-1045`, primaryState: primaryExecuted,
  extra: [], gtids: `${A}:1043-1045`, replayFrom: `${A}:1-1042`, readerServerId: 0,
  folder: '<crash>/db1-x', files: [{ name: 'binlog.000003', size: 18_734, sha256: 'a'.repeat(64) }],
};

test('flashback on MySQL is refused in one line before the node is touched: mysqlbinlog has no --flashback', async () => {
  const settings = { flavor: 'mysql', logBin: true, format: 'ROW', rowImage: 'FULL', readOnly: true, serverId: 1, binlogState: `${A}:1-1045` } as const;
  assert.equal(flashbackProblem(settings), MYSQL_HAS_NO_FLASHBACK);
  assert.match(MYSQL_HAS_NO_FLASHBACK, /^MySQL's mysqlbinlog has no --flashback .*; rejoin it by reseed or script$/);
  await assert.rejects(flashback({ node: 'db1', endpoint: db1, manifest: mysqlManifest, connect: never }), refusal(ErrorCodes.OPERATION_REFUSED, /^flashback of db1 refused: MySQL's mysqlbinlog has no --flashback/));
});

// ---------------------------------------------------------------------------------------------
// Reseed by CLONE

function cloneOptions(connect: ConnectNodeSql, progress: ReseedProgress[] = [], manifest = mysqlManifest) {
  return {
    node: 'db1', endpoint: db1, flavor: 'mysql' as const, source: { name: 'db3', endpoint: db3 }, manifest,
    timeoutMs: 600_000, progressEveryMs: 20, onProgress: (p: ReseedProgress) => progress.push(p), connect,
  };
}

describe('reseed on MySQL (CLONE)', () => {
  for (const fixture of [mysql80, mysql84]) {
    test(`${fixture.server}: CLONE INSTANCE from the donor; the dropped connection is the restart, and clone_status Completed is success`, async () => {
      const node = transcriptOf(fixture, 'cloneRecipient');
      const donor = transcriptOf(fixture, 'cloneDonor');
      const connect = recordedConnect({ db1: node, db3: donor });
      const progress: ReseedProgress[] = [];
      const done = await reseed(cloneOptions(connect, progress));

      assert.equal(done.position, `${A}:1-1042,${B}:1-9`, "the donor's gtid_executed, now the node's");
      assert.equal(done.bytes, 1_306_845_748);
      assert.deepEqual(done.databases, ['app', 'primacy']);
      assert.deepEqual(progress.at(-1), { bytes: 1_306_845_748, tables: 0, table: null, stage: 'RECOVERY', estimate: 1_306_845_748 });

      const sent = node.sent.map((s) => s.sql);
      const at = (prefix: string): number => sent.findIndex((s) => s.startsWith(prefix));
      // Checked before anything changes: versions, plugin, fencing, the mark, the salvage's state.
      assert.ok(at('SELECT @@GLOBAL.version') < at('STOP REPLICA'));
      assert.ok(at('SELECT STATE, ERROR_NO, SOURCE, BEGIN_TIME') < at('STOP REPLICA'));
      assert.ok(at('STOP REPLICA') < at('SET GLOBAL clone_valid_donor_list') && at('SET GLOBAL clone_valid_donor_list') < at('CLONE INSTANCE'));
      assert.deepEqual(node.sent[at('SET GLOBAL clone_valid_donor_list')]?.params, ['db3:3306']);
      const clone = node.sent[at('CLONE INSTANCE')];
      assert.equal(clone?.sql, 'CLONE INSTANCE FROM ?@?:3306 IDENTIFIED BY ?');
      assert.deepEqual(clone?.params, ['primacy', 'db3', 'db3-s3cret']);
      assert.equal(clone?.timeoutMs, 600_000, 'the statement may run as long as the reseed');
      // After the restart: refused once, then clone_status, clone_progress and gtid_executed on a new connection.
      assert.equal(sent.filter((s) => s.includes('ERROR_MESSAGE, GTID_EXECUTED')).length, 2);
      assert.ok(at('SELECT @@GLOBAL.gtid_executed') > at('CLONE INSTANCE'));
      assert.notEqual(node.sent.at(-1)?.session, clone?.session, 'the outcome is read on a new connection');
      assert.deepEqual(donor.statements.filter((s) => !s.startsWith('SELECT')), ['SHOW DATABASES'], 'the donor is only read');
    });
  }

  test('no supervisor: the copy is done but mysqld shut down; reported in one line, nothing reconnects', async () => {
    const node = transcriptOf(mysql80, 'cloneWithoutSupervisor');
    const connect = recordedConnect({ db1: node, db3: transcriptOf(mysql80, 'cloneDonor') });
    await assert.rejects(reseed(cloneOptions(connect)), refusal(ErrorCodes.REJOIN_ABORTED, /mysqld runs under no supervisor \(systemd, mysqld_safe\), so it shut down instead of restarting; start it/));
    assert.ok(!node.statements.some((s) => s.includes('GTID_EXECUTED')));
  });

  test('a clone the donor refuses: clone_status Failed is reported, and the node stays marked by it', async () => {
    const node = transcriptOf(mysql84, 'cloneDonorRefused');
    const connect = recordedConnect({ db1: node, db3: transcriptOf(mysql84, 'cloneDonor') });
    await assert.rejects(
      reseed(cloneOptions(connect)),
      refusal(ErrorCodes.REJOIN_ABORTED, /^reseed of db1 from db3 failed: clone_status is Failed: error 3862: Clone Donor Error: Connect failed: 1045 .*; db1 is marked as needing a reseed by its clone_status until a clone completes; its extra transactions are in <crash>\/db1-x$/),
    );
    const mark = await readCloneMark(db1, connect);
    assert.equal(mark?.source, 'db3:3306');
    assert.equal(mark?.startedAt.getFullYear(), 2026);
  });

  test("the MySQL driver's reseed mark is the clone status: none before a clone, the failed clone's after", async () => {
    const { driver } = replay(mysql84, 'cloneDonorRefused', 'mysql');
    assert.equal(await driver.readReseedMark(), null, 'never cloned');
    const mark = await driver.readReseedMark();
    assert.equal(mark?.source, 'db3:3306');
    assert.equal(await replay(mysql80, 'cloneWithoutPlugin', 'mysql').driver.readReseedMark(), null, 'no clone plugin, no clone');
  });

  test('a node without the clone plugin is refused before it changes', async () => {
    const node = transcriptOf(mysql80, 'cloneWithoutPlugin');
    const connect = recordedConnect({ db1: node, db3: transcriptOf(mysql80, 'cloneDonor') });
    await assert.rejects(reseed(cloneOptions(connect)), refusal(ErrorCodes.OPERATION_REFUSED, /^reseed of db1 refused: the CLONE plugin is not installed on db1; install it there \(INSTALL PLUGIN clone SONAME 'mysql_clone\.so'/));
    assert.ok(!node.statements.some((s) => /^(STOP|SET|CLONE)/.test(s)));
  });

  test('a donor on another release series is refused before the node changes', async () => {
    const node = transcriptOf(mysql80, 'cloneRecipient');
    const connect = recordedConnect({ db1: node, db3: transcriptOf(mysql84, 'cloneDonor') });
    await assert.rejects(reseed(cloneOptions(connect)), refusal(ErrorCodes.OPERATION_REFUSED, /it runs MySQL 8\.0\.36 and the donor 8\.4\.3: CLONE copies only within one release series; the node was not changed$/));
    assert.ok(!node.statements.some((s) => /^(STOP|SET|CLONE)/.test(s)));
  });

  test('a node whose binlog moved past its salvage is refused: salvage again first', async () => {
    const node = transcriptOf(mysql80, 'cloneRecipient');
    const connect = recordedConnect({ db1: node, db3: transcriptOf(mysql80, 'cloneDonor') });
    await assert.rejects(reseed(cloneOptions(connect, [], { ...mysqlManifest, nodeState: `${A}:1-1044` })), refusal(ErrorCodes.OPERATION_REFUSED, /its gtid_executed is .*:1-1045, the salvage's is .*:1-1044; salvage again first/));
    assert.ok(!node.statements.some((s) => /^(STOP|SET|CLONE)/.test(s)));
  });
});

// ---------------------------------------------------------------------------------------------
// The coordinator's view of a MySQL node

test('a MySQL node\'s salvage is current while its gtid_executed is the one salvaged; flashback is refused, reseed allowed', () => {
  const p = primary('db2', { epoch: 2 });
  const node = member('db1', { errant: `${A}:1043-1045` }, { flavor: 'mysql', gtid: { executed: `${A}:1-1045`, received: `${A}:1-1045` } });
  const prim = member('db2', { role: 'primary' }, { flavor: 'mysql', readOnly: false, gtid: { executed: primaryExecuted, received: primaryExecuted } });
  const v = { members: membersOf(node, prim), config: { paused: false, nodes: {} }, currentOp: null, salvages: new Map([['db1', mysqlManifest]]) };
  assert.equal(currentSalvage(v, node), mysqlManifest);
  const moved = member('db1', { errant: `${A}:1043-1046` }, { flavor: 'mysql', gtid: { executed: `${A}:1-1046`, received: `${A}:1-1046` } });
  assert.equal(currentSalvage(v, moved), null);
  const fb = chooseRejoin(v, p, 'db1', 'flashback');
  assert.equal(fb.ok, false);
  assert.match(fb.ok ? '' : fb.reason, /flashback exists only on MariaDB; db1 is mysql/);
  const rs = chooseRejoin(v, p, 'db1', 'reseed');
  assert.equal(rs.ok && rs.source?.node, 'db2');
});

