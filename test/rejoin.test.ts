/**
 * Crash recovery on live MariaDB 10.11 (issue 11): an old primary that went on writing after the
 * replicas stopped receiving from it is salvaged (its extra transactions copied off, checksummed,
 * and replayed into a scratch server to prove the copy holds exactly them), then rejoined by
 * flashback or by a reseed from a healthy replica, and ends with exactly the new primary's data.
 * Bad input: binlog_row_image=MINIMAL, a crash folder that is not writable, a reseed source that
 * dies mid-copy: each a clear refusal or abort, with the node as it was or clearly marked.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, PrimacyError, SalvageManifestSchema, type SalvageManifest } from '@primacy/common';
import { ADMIN, REPL, cleanupAll, harnessDir, startMariaDb, waitFor, type MariaDbCluster, type MariaDbServer } from './harness/index.js';
import { flashback, MANIFEST_FILE, readReseedMark, replicateFromPrimary, reseed, salvage, type ReseedProgress } from '../packages/agent/src/rejoin/index.js';
import { sha256 } from '../packages/agent/src/rejoin/salvage.js';
import { checksums } from './support/checksums.js';

after(cleanupAll);

function endpoint(s: MariaDbServer) {
  return { host: s.host, port: s.port, user: ADMIN.user, password: ADMIN.password };
}

async function one<T>(s: MariaDbServer, sql: string): Promise<T> {
  const [row] = await s.query<Record<string, T>>(sql);
  return Object.values(row ?? {})[0] as T;
}

const binlogState = (s: MariaDbServer) => one<string>(s, 'SELECT @@GLOBAL.gtid_binlog_state');


function sh(script: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', script], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}: ${stderr}`));
      else resolve(stdout);
    });
  });
}

const clientArgs = (s: MariaDbServer) => `--user=${ADMIN.user} --password=${ADMIN.password} --host=${s.host} --port=${s.port} --protocol=tcp`;

async function changeMaster(replica: MariaDbServer, source: MariaDbServer): Promise<void> {
  await replica.query('STOP SLAVE');
  await replica.query(
    'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1',
    [source.host, source.port, REPL.user, REPL.password],
  );
  await replica.query('START SLAVE');
}

async function caughtUp(replica: MariaDbServer, source: MariaDbServer): Promise<void> {
  const pos = await one<string>(source, 'SELECT @@GLOBAL.gtid_binlog_pos');
  const reached = await one<number>(replica, `SELECT MASTER_GTID_WAIT('${pos}', 20)`);
  assert.equal(Number(reached), 0, `${replica.name} did not reach ${source.name}'s ${pos}`);
}

/**
 * db1 is the primary; `cutOff` stop receiving from it; db1 writes on (the extra transactions, over
 * two binlog files); db2 is promoted and writes its own; `follow` replicate from db2; db1 is fenced.
 */
async function diverge(db: MariaDbCluster, cutOff: MariaDbServer[], follow: MariaDbServer[]): Promise<void> {
  const [db1, db2] = db.servers as [MariaDbServer, MariaDbServer];
  await db1.query('CREATE TABLE app.accounts (id INT PRIMARY KEY, owner VARCHAR(40), balance DECIMAL(12,2), note TEXT)');
  await db1.query('CREATE TABLE app.events (id BIGINT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(20), payload BLOB, at DATETIME(6))');
  for (let i = 1; i <= 20; i++) await db1.query('INSERT INTO app.accounts VALUES (?, ?, ?, ?)', [i, `owner${i}`, i * 10.5, i % 3 === 0 ? null : `n${i}`]);
  await db1.query("INSERT INTO app.events (kind, payload, at) SELECT 'seed', REPEAT(CHAR(65 + seq % 26), 50), '2026-01-01 00:00:00' FROM app.seq_1_to_50");
  await db.waitForReplication();
  for (const r of cutOff) await r.query('STOP SLAVE');

  // The extra transactions: every kind of row event, a multi-statement transaction, a second binlog file.
  await db1.query("INSERT INTO app.accounts VALUES (100, 'late', 1.00, 'extra')");
  await db1.query("UPDATE app.accounts SET balance = balance + 1000, note = 'bumped' WHERE id <= 5");
  await db1.query('DELETE FROM app.accounts WHERE id IN (7, 8)');
  const conn = await db1.connect();
  await conn.query('BEGIN');
  await conn.query("INSERT INTO app.events (kind, payload, at) VALUES ('extra', 'x', NOW(6))");
  await conn.query("UPDATE app.accounts SET owner = 'moved' WHERE id = 9");
  await conn.query('COMMIT');
  await conn.end();
  await db1.query('FLUSH BINARY LOGS');
  await db1.query("DELETE FROM app.events WHERE id BETWEEN 10 AND 19");
  await db1.query("UPDATE app.events SET payload = NULL WHERE id = 1");

  await db2.query('STOP SLAVE');
  await db2.query('RESET SLAVE ALL');
  await db2.query('SET GLOBAL read_only = OFF');
  await db1.query('SET GLOBAL read_only = ON');
  for (const r of follow) await changeMaster(r, db2);
  await db2.query("INSERT INTO app.accounts VALUES (200, 'new-primary', 2.00, NULL)");
  await db2.query("UPDATE app.accounts SET balance = 0 WHERE id = 2");
  for (const r of follow) await caughtUp(r, db2);
}

describe('salvage and flashback of a diverged old primary', () => {
  let db: MariaDbCluster;
  let db1: MariaDbServer, db2: MariaDbServer, db3: MariaDbServer, scratch: MariaDbServer;
  let crashDir: string;
  let manifest: SalvageManifest;

  before(async () => {
    db = await startMariaDb({ count: 4, primary: 0 });
    [db1, db2, db3, scratch] = db.servers as [MariaDbServer, MariaDbServer, MariaDbServer, MariaDbServer];
    // The scratch server stops where the new primary took over and stays there: the replay target.
    await diverge(db, [db2, db3, scratch], [db3]);
    crashDir = await harnessDir('crash');
  });
  after(() => db.stop());

  it('refuses with one line when the crash folder is not writable, and leaves the node untouched', async (t) => {
    const stateBefore = await binlogState(db1);
    const underAFile = join(crashDir, 'a-file');
    await writeFile(underAFile, '');
    const readOnly = join(crashDir, 'read-only');
    await mkdir(readOnly);
    // As root, mode bits do not stop a write: a read-only mount does. Otherwise mode 0555 does.
    const root = process.getuid?.() === 0;
    const ro = await sh(root ? `mount -t tmpfs -o ro,size=1m tmpfs ${readOnly}` : `chmod 0555 ${readOnly}`).then(
      () => true,
      (err: unknown) => {
        t.diagnostic(`no read-only folder to try (${String(err).split('\n')[0]}); only a path under a file`);
        return false;
      },
    );
    try {
      for (const dir of [join(underAFile, 'crash'), ...(ro ? [readOnly] : [])]) {
        await assert.rejects(
          salvage({ node: 'db1', endpoint: endpoint(db1), flavor: 'mariadb', primaryState: await binlogState(db2), crashDir: dir }),
          (err: unknown) => {
            assert.ok(err instanceof PrimacyError);
            assert.equal(err.code, ErrorCodes.OPERATION_REFUSED);
            assert.match(err.toLine(), /^PRIMACY_E_OPERATION_REFUSED: salvage of db1 refused: the crash folder .* is not writable \((ENOTDIR|EROFS|EACCES)\); nothing was copied and the node was not touched$/);
            return true;
          },
        );
      }
      assert.deepEqual(readdirSync(readOnly), []);
    } finally {
      if (ro) await sh(root ? `umount ${readOnly}` : `chmod 0755 ${readOnly}`);
    }
    assert.equal(await binlogState(db1), stateBefore);
  });

  it('copies exactly the binary logs that hold the extra transactions, with a manifest', async (t) => {
    const nodeState = await binlogState(db1);
    const primaryState = await binlogState(db2);
    const started = performance.now();
    manifest = await salvage({ node: 'db1', endpoint: endpoint(db1), flavor: 'mariadb', primaryState, crashDir });
    const ms = performance.now() - started;
    t.diagnostic(`salvage: ${manifest.files.length} files, ${manifest.files.reduce((n, f) => n + f.size, 0)} bytes in ${ms.toFixed(0)} ms`);
    assert.equal(manifest.nodeState, nodeState);
    assert.equal(manifest.primaryState, primaryState);
    assert.equal(manifest.readerServerId, 0);
    // db1 wrote 0-1-1…N in common with the others; everything after the new primary's 0-1 is extra.
    const common = primaryState.split(',').find((g) => g.startsWith('0-1-'));
    assert.ok(common);
    assert.equal(manifest.replayFrom, common);
    assert.equal(manifest.gtids, nodeState);
    assert.deepEqual(manifest.extra, [{ domain: 0, server: 1, fromSeqExclusive: common.split('-')[2], toSeq: nodeState.split('-')[2] }]);
    // The extras span both binlogs, and the copies are the server's files byte for byte.
    const logs = await db1.query<{ Log_name: string; File_size: number }>('SHOW BINARY LOGS');
    assert.deepEqual(manifest.files.map((f) => f.name), logs.map((l) => l.Log_name));
    for (const [i, f] of manifest.files.entries()) {
      const original = readFileSync(join(db1.dataDir, f.name));
      const copy = readFileSync(join(manifest.folder, f.name));
      assert.equal(f.size, original.length);
      assert.equal(f.sha256, await sha256(join(manifest.folder, f.name)));
      // The one difference, in the file the server still writes: its Format_description event's
      // LOG_EVENT_BINLOG_IN_USE_F flag (file offset 21), which the copy has cleared.
      if (i === manifest.files.length - 1) {
        assert.equal(original[21], (copy[21] ?? 0) | 1);
        copy[21] = original[21] ?? 0;
      }
      assert.ok(copy.equals(original), `${f.name} differs from the server's file`);
    }
    const written = SalvageManifestSchema.parse(JSON.parse(readFileSync(join(manifest.folder, MANIFEST_FILE), 'utf8')));
    assert.deepEqual(written, manifest);
    // Salvage only reads: the node is as it was.
    assert.equal(await binlogState(db1), nodeState);
  });

  it('a node with nothing extra has nothing to salvage: no files, no folder', async () => {
    const before = readdirSync(crashDir).sort();
    const m = await salvage({ node: 'db3', endpoint: endpoint(db3), flavor: 'mariadb', primaryState: await binlogState(db2), crashDir });
    assert.deepEqual(m.extra, []);
    assert.deepEqual(m.files, []);
    assert.equal(m.gtids, '');
    assert.deepEqual(readdirSync(crashDir).sort(), before);
  });

  it('the salvage files hold exactly the extra transactions: replayed into a scratch server, it has the old primary\'s data and GTIDs', async () => {
    const before = await checksums(scratch);
    assert.notDeepEqual(before, await checksums(db1));
    const files = manifest.files.map((f) => join(manifest.folder, f.name)).join(' ');
    // The replay keeps each transaction's own GTID, so the scratch server's binlog shows what was applied.
    await sh(`mariadb-binlog --start-position=${manifest.replayFrom} ${files} | mariadb ${clientArgs(scratch)}`);
    assert.deepEqual(await checksums(scratch), await checksums(db1));
    assert.equal(await binlogState(scratch), manifest.nodeState);
  });

  it('refuses flashback on binlog_row_image=MINIMAL and leaves the node as it was', async () => {
    const data = await checksums(db1);
    const state = await binlogState(db1);
    await db1.query('SET GLOBAL binlog_row_image = MINIMAL');
    try {
      await assert.rejects(flashback({ node: 'db1', endpoint: endpoint(db1), manifest }), (err: unknown) => {
        assert.ok(err instanceof PrimacyError);
        assert.equal(
          err.toLine(),
          'PRIMACY_E_OPERATION_REFUSED: flashback of db1 refused: binlog_row_image is MINIMAL; flashback needs FULL (the before images of its rows are missing); the node was not changed',
        );
        return true;
      });
    } finally {
      await db1.query('SET GLOBAL binlog_row_image = FULL');
    }
    assert.deepEqual(await checksums(db1), data);
    assert.equal(await binlogState(db1), state);
  });

  it('refuses flashback when the node wrote since its salvage', async () => {
    const moved = { ...manifest, nodeState: `${manifest.replayFrom}` };
    await assert.rejects(flashback({ node: 'db1', endpoint: endpoint(db1), manifest: moved }), /salvage again first; the node was not changed/);
  });

  it('flashes the old primary back; replicating from the new primary it ends with exactly its data', async (t) => {
    const started = performance.now();
    const result = await flashback({ node: 'db1', endpoint: endpoint(db1), manifest });
    const undoMs = performance.now() - started;
    assert.equal(result.undone, manifest.gtids);
    assert.equal(result.position, manifest.replayFrom);
    // The binlog forgot the undone transactions (the salvage keeps them): it ends where the histories part.
    assert.equal(await binlogState(db1), manifest.replayFrom);
    assert.equal(await one<string>(db1, 'SELECT @@GLOBAL.gtid_slave_pos'), manifest.replayFrom);
    const rep = await replicateFromPrimary('db1', endpoint(db1), 'mariadb', { host: db2.host, port: db2.port, user: REPL.user, password: REPL.password });
    t.diagnostic(`flashback: undo ${undoMs.toFixed(0)} ms (${result.bytes} bytes of SQL), replicating after ${rep.ms} ms`);
    await db2.query("INSERT INTO app.accounts VALUES (201, 'after-rejoin', 3.00, NULL)");
    await caughtUp(db1, db2);
    const primary = await checksums(db2);
    assert.deepEqual(await checksums(db1), primary);
    assert.deepEqual(await checksums(db3), primary);
    assert.equal(await one<string>(db1, 'SELECT @@GLOBAL.gtid_current_pos'), await one<string>(db2, 'SELECT @@GLOBAL.gtid_binlog_pos'));
    // The node's own binlog holds only what it replicated: no transaction of its own.
    assert.equal((await binlogState(db1)).split(',').filter((g) => g.split('-')[1] === '1' && g !== manifest.replayFrom).length, 0);
    // Nothing of the salvage was lost.
    for (const f of manifest.files) assert.equal(await sha256(join(manifest.folder, f.name)), f.sha256);
  });
});

describe('reseed of a diverged old primary from a healthy replica', () => {
  let db: MariaDbCluster;
  let db1: MariaDbServer, db2: MariaDbServer, db3: MariaDbServer;
  let manifest: SalvageManifest;

  before(async () => {
    db = await startMariaDb({ count: 3, primary: 0 });
    [db1, db2, db3] = db.servers as [MariaDbServer, MariaDbServer, MariaDbServer];
    // Enough rows that a dump takes a while, so the source can die in the middle of it.
    await db1.query('CREATE TABLE app.bulk (id INT PRIMARY KEY, filler VARCHAR(255))');
    await db1.query("INSERT INTO app.bulk SELECT seq, REPEAT('r', 200) FROM app.seq_1_to_100000");
    await diverge(db, [db2, db3], [db3]);
    // A schema only the old primary has, from an extra transaction.
    await db1.query('CREATE DATABASE only_on_db1');
    await db1.query('CREATE TABLE only_on_db1.t (id INT PRIMARY KEY)');
    manifest = await salvage({ node: 'db1', endpoint: endpoint(db1), flavor: 'mariadb', primaryState: await binlogState(db2), crashDir: await harnessDir('crash') });
  });
  after(() => db.stop());

  it('refuses flashback when the extra transactions hold DDL, which it cannot undo; the node is as it was', async () => {
    const data = await checksums(db1);
    const state = await binlogState(db1);
    await assert.rejects(flashback({ node: 'db1', endpoint: endpoint(db1), manifest }), (err: unknown) => {
      assert.ok(err instanceof PrimacyError);
      assert.match(
        err.toLine(),
        /^PRIMACY_E_OPERATION_REFUSED: flashback of db1 refused: 0-1-\d+ is not a row change \(CREATE DATABASE only_on_db1\) and 1 more, which flashback cannot undo; reseed it instead; the node was not changed$/,
      );
      return true;
    });
    assert.deepEqual(await checksums(db1), data);
    assert.equal(await binlogState(db1), state);
  });

  it('aborts with a clear error when the source dies mid-copy; the node is marked, its salvage intact', async (t) => {
    let killed = false;
    const progress: ReseedProgress[] = [];
    await assert.rejects(
      reseed({
        node: 'db1',
        endpoint: endpoint(db1),
        flavor: 'mariadb',
        source: { name: 'db3', endpoint: endpoint(db3) },
        manifest,
        progressEveryMs: 0,
        onProgress: (p) => {
          progress.push(p);
          if (!killed && p.bytes > 1_000_000) {
            killed = true;
            void db3.kill();
          }
        },
      }),
      (err: unknown) => {
        assert.ok(err instanceof PrimacyError);
        assert.equal(err.code, ErrorCodes.REJOIN_ABORTED);
        assert.match(
          err.toLine(),
          /^PRIMACY_E_REJOIN_ABORTED: reseed of db1 from db3 aborted after \d+ bytes and \d+ tables: mariadb-dump exit \d+: .*; db1 is marked as needing a reseed \(primacy_rejoin\.reseed\); its extra transactions are in .+$/,
        );
        assert.doesNotMatch(err.message, /\n/);
        t.diagnostic(err.toLine());
        return true;
      },
    );
    assert.ok(killed, 'the dump ended before it passed 1 MB');
    const mark = await readReseedMark(endpoint(db1));
    assert.equal(mark?.source, 'db3');
    for (const f of manifest.files) assert.equal(await sha256(join(manifest.folder, f.name)), f.sha256);
    assert.ok(existsSync(join(manifest.folder, MANIFEST_FILE)));
  });

  it('reseeds the marked node from the restarted replica, with progress; replicating from the new primary it ends identical', async (t) => {
    await db3.start();
    await waitFor('db3 replicating again', async () => {
      const [s] = await db3.query<Record<string, unknown>>('SHOW SLAVE STATUS');
      return s?.['Slave_SQL_Running'] === 'Yes' && s['Slave_IO_Running'] === 'Yes' ? true : undefined;
    });
    await caughtUp(db3, db2);
    const progress: ReseedProgress[] = [];
    const result = await reseed({
      node: 'db1',
      endpoint: endpoint(db1),
      flavor: 'mariadb',
      source: { name: 'db3', endpoint: endpoint(db3) },
      manifest,
      progressEveryMs: 100,
      onProgress: (p) => progress.push(p),
    });
    t.diagnostic(`reseed: ${result.bytes} bytes, ${result.tables} tables in ${result.ms} ms, ${progress.length} progress reports`);
    assert.ok(progress.length >= 2);
    const last = progress[progress.length - 1];
    assert.equal(last?.bytes, result.bytes);
    assert.ok(progress.every((p, i) => i === 0 || p.bytes >= (progress[i - 1]?.bytes ?? 0)));
    assert.ok(result.tables >= 3, `${result.tables} tables`);
    assert.equal(await readReseedMark(endpoint(db1)), null);
    assert.equal(result.position, await one<string>(db3, 'SELECT @@GLOBAL.gtid_binlog_pos'));
    await replicateFromPrimary('db1', endpoint(db1), 'mariadb', { host: db2.host, port: db2.port, user: REPL.user, password: REPL.password });
    await db2.query("INSERT INTO app.accounts VALUES (202, 'after-reseed', 4.00, NULL)");
    await caughtUp(db1, db2);
    assert.deepEqual(await checksums(db1), await checksums(db2));
    const dbs = (await db1.query<{ Database: string }>('SHOW DATABASES')).map((r) => r.Database);
    assert.ok(!dbs.includes('only_on_db1'), 'the schema only the old primary had is gone (its salvage keeps it)');
  });
});
