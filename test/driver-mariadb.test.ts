/**
 * The MariaDB node driver against real MariaDB 10.11 servers started by the harness: what a probe sees
 * on a primary and a replica, what it reports when the server is killed, paused, full or refuses our
 * password, fencing, repointing and waiting, and the heartbeat's read-only guard.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from 'mysql2/promise';
import { STRICT_SEMI_SYNC_TIMEOUT_MS } from '@primacy/common';
import { ADMIN, APP, cleanupAll, ER_READ_ONLY, REPL, sleep, startMariaDb, waitFor, type MariaDbCluster, type MariaDbServer } from './harness/index.js';
import { connectNode, MysqlSession, type NodeDriver, type Observation } from '../packages/agent/src/node/index.js';
import { knock } from '../packages/agent/src/node/knock.js';
import { demoteNode, fenceNode, StrictWaitError } from '../packages/agent/src/fencing.js';

const TIMEOUT_MS = 1000;

const drivers: NodeDriver[] = [];

function driverFor(server: MariaDbServer, password = ADMIN.password): NodeDriver {
  const driver = connectNode(
    { host: server.host, port: server.port, user: ADMIN.user, password },
    { flavor: 'auto', connectTimeoutMs: TIMEOUT_MS, queryTimeoutMs: TIMEOUT_MS },
  );
  drivers.push(driver);
  return driver;
}

async function up(driver: NodeDriver): Promise<NonNullable<Observation['state']>> {
  const o = await driver.observe();
  assert.equal(o.error, null);
  assert.equal(o.health, 'up');
  assert.ok(o.state);
  return o.state;
}

async function binlogPos(server: MariaDbServer): Promise<string> {
  const [row] = await server.query<{ pos: string }>('SELECT @@GLOBAL.gtid_binlog_pos AS pos');
  return row?.pos ?? '';
}

async function heartbeatTableExists(server: MariaDbServer): Promise<boolean> {
  const rows = await server.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'primacy' AND TABLE_NAME = 'heartbeat'");
  return rows.length > 0;
}

function errnoOf(err: unknown): unknown {
  return (err as { errno?: unknown }).errno;
}

after(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  await cleanupAll();
});

describe('MariaDB driver, semi-sync primary and replica', () => {
  let cluster: MariaDbCluster;
  let db1: MariaDbServer;
  let db2: MariaDbServer;
  let primary: NodeDriver;
  let replica: NodeDriver;

  before(async () => {
    cluster = await startMariaDb({ count: 2, primary: 0, semiSync: true });
    [db1, db2] = cluster.servers as [MariaDbServer, MariaDbServer];
    primary = driverFor(db1);
    replica = driverFor(db2);
    // The harness turns semi-sync on for both sides everywhere. A replica with the source side on and
    // log_slave_updates makes its own SQL thread wait rpl_semi_sync_master_timeout (10 s) for acks from
    // replicas it does not have, so, as Primacy does, only the primary keeps the source side.
    await replica.setSemiSyncSource(false, 0);
  });
  after(() => cluster.stop());

  it('writeHeartbeat on a read-only replica writes nothing, not even the table, though we have SUPER', async () => {
    const before = await binlogPos(db2);
    await replica.writeHeartbeat(1, 'db2');
    assert.equal(await binlogPos(db2), before);
    assert.equal(await heartbeatTableExists(db2), false);
    assert.equal(await replica.readHeartbeat(), null);
  });

  it('writeHeartbeat on the writable primary creates the table and upserts the row; the replica reads it', async () => {
    const before = await binlogPos(db1);
    await primary.writeHeartbeat(1, 'db1');
    await primary.writeHeartbeat(2, 'db1');
    assert.notEqual(await binlogPos(db1), before);
    await cluster.waitForReplication();
    const seen = await replica.readHeartbeat();
    assert.equal(seen?.epoch, 2);
    assert.equal(seen?.node, 'db1');
    assert.ok(seen !== null && seen.ageMs >= 0 && seen.ageMs < 5000, `age ${seen?.ageMs}`);
  });

  it('observe() on the primary: writable, positions, semi-sync source active with one client, no replication', async () => {
    const state = await up(primary);
    const pos = await binlogPos(db1);
    assert.equal(state.flavor, 'mariadb');
    assert.equal(primary.flavor, 'mariadb');
    assert.match(state.version, /MariaDB/);
    assert.equal(state.serverId, db1.serverId);
    assert.equal(state.serverUuid, null);
    assert.equal(state.readOnly, false);
    assert.equal(state.superReadOnly, null);
    assert.equal(state.logBin, true);
    assert.equal(state.gtid.binlogPos, pos);
    assert.equal(state.gtid.executed, pos);
    assert.equal(state.gtid.received, pos);
    assert.equal(state.replication, null);
    assert.equal(state.lagMs, null);
    assert.equal(state.heartbeatEpoch, 2);
    assert.deepEqual(state.semiSync, { sourceEnabled: true, sourceActive: true, sourceClients: 1, replicaEnabled: true, replicaActive: false, sourceTimeoutMs: 10_000, sourceWaitNoReplica: true });
    assert.ok(state.connections >= 2 && state.connections <= state.maxConnections);
  });

  it('observe() on the replica: threads running from db1, caught up, semi-sync replica active, lag from the heartbeat', async () => {
    await primary.writeHeartbeat(3, 'db1');
    await cluster.waitForReplication();
    const state = await up(replica);
    const pos = await binlogPos(db1);
    assert.equal(state.readOnly, true);
    assert.equal(state.gtid.executed, pos);
    assert.equal(state.gtid.received, pos);
    assert.equal(state.gtid.slavePos, pos);
    assert.equal(state.gtid.ioPos, pos);
    assert.deepEqual(state.replication, {
      sourceHost: db1.host,
      sourcePort: db1.port,
      ioState: 'running',
      sqlRunning: true,
      lastIoError: '',
      lastSqlError: '',
      autoPosition: true,
      secondsBehind: 0,
    });
    assert.equal(state.semiSync.replicaEnabled, true);
    assert.equal(state.semiSync.replicaActive, true);
    assert.equal(state.heartbeatEpoch, 3);
    assert.ok(state.lagMs !== null && state.lagMs >= 0 && state.lagMs < 2000, `lag ${state.lagMs} ms`);
  });

  it('probes take two round trips and about a millisecond on loopback', async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 50; i++) times.push((await replica.observe()).probeMs);
    times.sort((a, b) => a - b);
    const median = times[25] ?? Infinity;
    t.diagnostic(`replica probe on loopback: median ${median.toFixed(2)} ms, max ${times.at(-1)?.toFixed(2)} ms`);
    assert.ok(median < 50, `median probe ${median} ms`);
  });

  it('setReadOnly + killClientSessions stops an APP writer and kills a SUPER session, sparing replication and us', async () => {
    await db1.query('CREATE TABLE IF NOT EXISTS app.t (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(16))');
    const app = await db1.connect(APP);
    const root = await db1.connect(ADMIN);
    await app.query("INSERT INTO app.t (who) VALUES ('app')");
    await root.query("INSERT INTO app.t (who) VALUES ('root')");

    await primary.setReadOnly(true);
    await assert.rejects(app.query("INSERT INTO app.t (who) VALUES ('app')"), (err) => errnoOf(err) === ER_READ_ONLY);
    // The reason fencing must kill sessions: read_only does not bind SUPER.
    await root.query("INSERT INTO app.t (who) VALUES ('root, fenced')");

    const killed = await primary.killClientSessions();
    assert.ok(killed >= 2, `killed ${killed}`);
    for (const conn of [app, root] as Connection[]) await assert.rejects(conn.query('SELECT 1'));

    // Our own sessions, the replica's binlog dump and the replica's threads survive.
    assert.equal((await up(primary)).readOnly, true);
    await cluster.waitForReplication();
    assert.equal((await up(replica)).replication?.ioState, 'running');

    await primary.setReadOnly(false);
    assert.equal((await up(primary)).readOnly, false);
  });

  it('writeHeartbeat on a fenced primary leaves its GTID position alone; unfenced, it writes again', async () => {
    await primary.setReadOnly(true);
    const fenced = await binlogPos(db1);
    await primary.writeHeartbeat(9, 'db1');
    assert.equal(await binlogPos(db1), fenced);
    await primary.setReadOnly(false);
    await primary.writeHeartbeat(10, 'db1');
    assert.notEqual(await binlogPos(db1), fenced);
    await cluster.waitForReplication();
    assert.equal((await replica.readHeartbeat())?.epoch, 10);
  });

  it('stopReplicaIo ("revoke") stops receiving and keeps applying; setSemiSyncReplica leaves it stopped', async () => {
    await replica.stopReplicaIo();
    await replica.setSemiSyncReplica(false);
    const state = await up(replica);
    assert.equal(state.replication?.ioState, 'stopped');
    assert.equal(state.replication?.sqlRunning, true);
    assert.equal(state.semiSync.replicaEnabled, false);
    await replica.setSemiSyncReplica(true);
    assert.equal((await up(replica)).replication?.ioState, 'stopped');
    await replica.startReplication();
    await waitFor('db2 semi-sync active again', async () => ((await up(replica)).semiSync.replicaActive ? true : undefined), { timeoutMs: 5000 });
  });

  it('setSemiSyncSource switches the source side', async () => {
    await primary.setSemiSyncSource(false, 5000);
    assert.equal((await up(primary)).semiSync.sourceEnabled, false);
    await primary.setSemiSyncSource(true, 3000);
    const [row] = await db1.query<{ t: number }>('SELECT @@GLOBAL.rpl_semi_sync_master_timeout AS t');
    assert.equal(row?.t, 3000);
    assert.equal((await up(primary)).semiSync.sourceEnabled, true);
  });

  it('strict semi-sync: a timeout of 2^32 - 1 ms that waits with no replica, read back by the probe', async () => {
    await db1.query('SET GLOBAL rpl_semi_sync_master_wait_no_slave = OFF');
    await primary.setSemiSyncSource(true, STRICT_SEMI_SYNC_TIMEOUT_MS);
    const s = (await up(primary)).semiSync;
    assert.equal(s.sourceTimeoutMs, STRICT_SEMI_SYNC_TIMEOUT_MS);
    assert.equal(s.sourceWaitNoReplica, true, 'setting the source on also sets waiting with no replica');
    const seen = await up(primary);
    assert.deepEqual(await primary.readFenceState(), { readOnly: seen.readOnly, gtidExecuted: seen.gtid.executed });
    await primary.setSemiSyncSource(true, 10_000);
  });

  it('a fence under strict semi-sync with every replica revoked kills nothing: a kill would acknowledge commits no replica has', async () => {
    await db1.query('CREATE TABLE IF NOT EXISTS app.strict_waits (id INT PRIMARY KEY)');
    await cluster.waitForReplication();
    await primary.setSemiSyncSource(true, STRICT_SEMI_SYNC_TIMEOUT_MS);
    await db2.query('STOP SLAVE IO_THREAD'); // the revoke: nobody can acknowledge
    await waitFor('db1 to count no semi-sync replica', async () => ((await primary.readSemiSyncWait()).clients === 0 ? true : undefined), { timeoutMs: 5000 });
    const sessions = await Promise.all([db1.connect(APP), db1.connect(APP)]);
    const outcomes = sessions.map((c, i) => c.query({ sql: 'INSERT INTO app.strict_waits (id) VALUES (?)', timeout: 20_000 }, [i + 1]).then(() => 'OK', (e: unknown) => `error ${(e as { code?: string }).code}`));
    await waitFor('both commits to wait for an acknowledgement', async () => ((await primary.readSemiSyncWait()).waiting >= 1 ? true : undefined), { timeoutMs: 5000 });
    await assert.rejects(fenceNode(primary), (err: Error) => err instanceof StrictWaitError && /wait for a semi-sync acknowledgement that no replica can send/.test(err.message));
    const early = await Promise.race([Promise.all(outcomes), sleep(500).then(() => 'still waiting')]);
    assert.equal(early, 'still waiting', 'no client was told OK');
    // With nothing waiting, the fence still kills nobody: it sets read_only and reads it back.
    const idle = await db1.connect(APP);
    await db2.query('START SLAVE IO_THREAD');
    assert.deepEqual(await Promise.all(outcomes), ['OK', 'OK'], 'acknowledged once a replica has them');
    await db2.query('STOP SLAVE IO_THREAD');
    await waitFor('no semi-sync replica again', async () => ((await primary.readSemiSyncWait()).clients === 0 ? true : undefined), { timeoutMs: 5000 });
    const fenced = await fenceNode(primary);
    assert.equal(fenced.killed, 0);
    assert.equal((await idle.query('SELECT 1 AS one'))[0] !== undefined, true, 'the idle session was not killed');
    idle.destroy();
    await primary.setReadOnly(false);
    // Let the replica acknowledge them again, and undo the strict settings.
    await db2.query('START SLAVE IO_THREAD');
    for (const c of sessions) c.destroy();
    await primary.setSemiSyncSource(true, 10_000);
  });
});

describe('MariaDB driver, repointing and waiting (3 servers, asynchronous)', () => {
  let cluster: MariaDbCluster;
  let db1: MariaDbServer;
  let db2: MariaDbServer;
  let db3: MariaDbServer;
  let d1: NodeDriver;
  let d2: NodeDriver;
  let d3: NodeDriver;

  before(async () => {
    cluster = await startMariaDb({ count: 3, primary: 0 });
    [db1, db2, db3] = cluster.servers as [MariaDbServer, MariaDbServer, MariaDbServer];
    [d1, d2, d3] = [driverFor(db1), driverFor(db2), driverFor(db3)];
    await db1.query('CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)');
  });
  after(() => cluster.stop());

  it('setReadOnly waits behind a running write (and times out); killing sessions first makes it immediate', async () => {
    const writer = await db1.connect(APP);
    const write = writer.query('INSERT INTO app.t (v) SELECT SLEEP(4)').catch((err: unknown) => err);
    await waitFor('the slow write to run', async () =>
      (await db1.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO app.t (v) SELECT SLEEP%'")).length > 0 ? true : undefined,
    );
    let started = performance.now();
    await assert.rejects(d1.setReadOnly(true), /timed out/);
    assert.ok(performance.now() - started < TIMEOUT_MS + 500);
    assert.equal((await up(d1)).readOnly, false, 'SET GLOBAL read_only waits for running writes to finish');

    started = performance.now();
    assert.ok((await d1.killClientSessions()) >= 1);
    await d1.setReadOnly(true);
    assert.ok(performance.now() - started < 500, `kill then read_only took ${performance.now() - started} ms`);
    assert.ok(await write, 'the write was killed');
    assert.equal((await up(d1)).readOnly, true);
    await d1.setReadOnly(false);
  });

  it('demoteNode: a write that ends within drainMs commits; one that does not is killed when the drain ends', async () => {
    const writer = await db1.connect(APP);
    const running = async () => (await db1.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO app.t (v) SELECT SLEEP%'")).length > 0 ? true : undefined;
    // Drained: a 0.3 s write finishes inside a 2 s drain and is kept.
    const short = writer.query('INSERT INTO app.t (v) SELECT SLEEP(0.3) + 700');
    await waitFor('the short write to run', running);
    let started = performance.now();
    await demoteNode(d1, 2000);
    assert.ok(performance.now() - started < 1500, `demoted in ${Math.round(performance.now() - started)} ms`);
    await short;
    assert.equal((await db1.query('SELECT COUNT(*) AS n FROM app.t WHERE v = 700'))[0]?.n, 1, 'the drained write committed');
    assert.equal((await up(d1)).readOnly, true);
    await d1.setReadOnly(false);
    // Not drained: a 4 s write outlasts a 300 ms drain; the demotion does not wait for it.
    const writer2 = await db1.connect(APP);
    const long = writer2.query('INSERT INTO app.t (v) SELECT SLEEP(4) + 800').catch((err: unknown) => err);
    await waitFor('the long write to run', running);
    started = performance.now();
    await demoteNode(d1, 300);
    const took = performance.now() - started;
    assert.ok(took >= 250 && took < 1500, `demoted in ${Math.round(took)} ms`);
    assert.ok((await long) instanceof Error, 'the write was killed');
    assert.equal((await db1.query('SELECT COUNT(*) AS n FROM app.t WHERE v = 800'))[0]?.n, 0);
    assert.equal((await up(d1)).readOnly, true);
    await d1.setReadOnly(false);
  });

  it('waitForGtid: reached, timed out within its bound, and a node waiting for its own writes', async () => {
    await db1.query('INSERT INTO app.t (v) VALUES (1)', [], { creds: APP });
    const pos = await binlogPos(db1);
    assert.equal(await d2.waitForGtid(pos, 5000), true);
    const started = performance.now();
    assert.equal(await d2.waitForGtid('0-1-999999', 300), false);
    const waited = performance.now() - started;
    assert.ok(waited >= 250 && waited < 1500, `waited ${waited} ms`);
    // MASTER_GTID_WAIT alone would hang here: it only looks at gtid_slave_pos, empty on the primary.
    assert.equal(await d1.waitForGtid(pos, 300), true);
  });

  it('waitForRelayApplied: false while the SQL thread is stopped (received ahead of executed), true once it runs', async () => {
    await db2.query('STOP SLAVE SQL_THREAD');
    await db1.query('INSERT INTO app.t (v) VALUES (2)', [], { creds: APP });
    const pos = await binlogPos(db1);
    const state = await waitFor('db2 to receive without applying', async () => {
      const s = await up(d2);
      return s.gtid.received === pos ? s : undefined;
    });
    assert.notEqual(state.gtid.executed, pos);
    assert.equal(state.replication?.sqlRunning, false);
    assert.equal(await d2.waitForRelayApplied(200), false);
    await db2.query('START SLAVE SQL_THREAD');
    assert.equal(await d2.waitForRelayApplied(5000), true);
    assert.equal((await up(d2)).gtid.executed, pos);
  });

  it('switchover: the old primary rejoins under the new one from its own position (gtid_strict_mode on)', async () => {
    await db1.query('INSERT INTO app.t (v) VALUES (3)', [], { creds: APP });
    await d1.setReadOnly(true);
    await d1.killClientSessions();
    const last = await binlogPos(db1);
    assert.equal(await d2.waitForGtid(last, 5000), true);
    assert.equal(await d3.waitForGtid(last, 5000), true);

    await d2.resetReplication();
    await d2.setReadOnly(false);
    const promoted = await up(d2);
    assert.equal(promoted.replication, null);
    assert.equal(promoted.readOnly, false);

    const source = { host: db2.host, port: db2.port, user: REPL.user, password: REPL.password };
    await d1.replicateFrom(source);
    await d3.replicateFrom(source);
    // db1's gtid_slave_pos was empty: without taking its binlog position it would ask db2 for everything.
    const [pos] = await db1.query<{ slave: string }>('SELECT @@GLOBAL.gtid_slave_pos AS slave');
    assert.equal(pos?.slave, last);

    await db2.query('INSERT INTO app.t (v) VALUES (4)', [], { creds: APP });
    const newPos = await binlogPos(db2);
    assert.notEqual(newPos, last);
    for (const d of [d1, d3]) {
      assert.equal(await d.waitForGtid(newPos, 5000), true);
      const state = await up(d);
      assert.equal(state.replication?.sourcePort, db2.port);
      assert.equal(state.replication?.ioState, 'running');
      assert.equal(state.replication?.lastIoError, '');
      assert.equal(state.replication?.lastSqlError, '');
      assert.equal(state.gtid.executed, newPos);
    }
  });

  it('stopReplication, startReplication and resetReplication', async () => {
    await d3.stopReplication();
    let state = await up(d3);
    assert.equal(state.replication?.ioState, 'stopped');
    assert.equal(state.replication?.sqlRunning, false);
    await d3.startReplication();
    state = await waitFor('db3 running again', async () => {
      const s = await up(d3);
      return s.replication?.ioState === 'running' ? s : undefined;
    });
    assert.equal(state.replication?.sqlRunning, true);
    await d3.resetReplication();
    assert.equal((await up(d3)).replication, null);
  });
});

describe('MariaDB driver when the server is not there, stuck, full or refusing us', () => {
  let cluster: MariaDbCluster;
  let db: MariaDbServer;
  const MAX_CONNECTIONS = 8;

  before(async () => {
    cluster = await startMariaDb({ count: 1, primary: null, maxConnections: MAX_CONNECTIONS });
    db = cluster.servers[0] as MariaDbServer;
  });
  after(() => cluster.stop());

  it('a wrong password is auth_error, never down', async () => {
    const o = await driverFor(db, 'not-the-password').observe();
    assert.equal(o.health, 'auth_error');
    assert.match(o.error ?? '', /1045/);
    assert.equal(o.state, null);
  });

  it('max_connections exhausted is refusing, and a driver already connected keeps probing', async () => {
    const connected = driverFor(db);
    await up(connected);
    const held: Connection[] = [];
    try {
      // MariaDB keeps one connection beyond max_connections for SUPER users (our agent among them):
      // fill the normal slots as APP until 1040, then that extra slot as ADMIN.
      for (const creds of [APP, ADMIN]) {
        for (let i = 0; i <= MAX_CONNECTIONS; i++) {
          try {
            held.push(await db.connect(creds));
          } catch (err) {
            assert.equal(errnoOf(err), 1040);
            break;
          }
        }
      }
      const o = await driverFor(db).observe();
      assert.equal(o.health, 'refusing');
      assert.match(o.error ?? '', /1040/);
      assert.equal((await connected.observe()).health, 'up');
    } finally {
      for (const c of held) c.destroy();
    }
  });

  it('a paused (SIGSTOP) server is down by timeout, and the probe returns within about the timeout', async () => {
    const driver = driverFor(db);
    // The server frees the previous test's connections asynchronously.
    await waitFor('a free connection', async () => ((await driver.observe()).health === 'up' ? true : undefined), { timeoutMs: 5000 });
    db.pause();
    try {
      for (const what of ['established connection', 'new connection']) {
        const started = performance.now();
        const o = await driver.observe();
        const took = performance.now() - started;
        assert.equal(o.health, 'down', what);
        assert.ok(took >= TIMEOUT_MS * 0.9 && took < TIMEOUT_MS + 800, `${what}: probe took ${took} ms`);
      }
    } finally {
      db.resume();
    }
    await waitFor('the server to answer again', async () => ((await driver.observe()).health === 'up' ? true : undefined), { timeoutMs: 5000 });
  });

  it('a killed server is down at once, and the driver reconnects when it is back', async () => {
    const driver = driverFor(db);
    await up(driver);
    await db.kill();
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      const o = await driver.observe();
      const took = performance.now() - started;
      assert.equal(o.health, 'down');
      assert.ok(took < TIMEOUT_MS / 2, `probe took ${took} ms`);
    }
    await db.start();
    assert.equal((await up(driver)).serverId, db.serverId);
  });

  it('a killed server closes the driver\'s open connection: onConnectionLost fires in milliseconds; a paused one and our own close do not fire it', async () => {
    let lostAt: number | null = null;
    let lost = 0;
    const driver = connectNode(
      { host: db.host, port: db.port, user: ADMIN.user, password: ADMIN.password },
      { flavor: 'auto', connectTimeoutMs: TIMEOUT_MS, queryTimeoutMs: TIMEOUT_MS, onConnectionLost: () => { lost += 1; lostAt ??= performance.now(); } },
    );
    drivers.push(driver);
    await waitFor('the server to answer', async () => ((await driver.observe()).health === 'up' ? true : undefined), { timeoutMs: 5000 });
    db.pause();
    await sleep(300);
    db.resume();
    assert.equal(lost, 0, 'a paused server is not a dropped connection');
    await up(driver);
    const killed = performance.now();
    await db.kill();
    await waitFor('the dropped connection', async () => (lostAt !== null ? true : undefined), { timeoutMs: 2000, intervalMs: 5 });
    const tookMs = lostAt! - killed;
    assert.ok(tookMs < 100, `onConnectionLost came ${tookMs.toFixed(1)} ms after the kill`);
    assert.equal(await knock(db, 200), 'refused', 'nothing listens on a killed server\'s port');
    await db.start();
    assert.equal(await knock(db, 200), 'open');
    await up(driver);
    const before = lost;
    await driver.close();
    await sleep(100);
    assert.equal(lost, before, 'closing the driver is not a drop');
  });
});

describe('MysqlSession on a live server', () => {
  let cluster: MariaDbCluster;
  let db: MariaDbServer;

  before(async () => {
    cluster = await startMariaDb({ count: 1, primary: null });
    db = cluster.servers[0] as MariaDbServer;
  });
  after(() => cluster.stop());

  it('a query past its timeout is killed on the server, not left running', async () => {
    const session = new MysqlSession({ host: db.host, port: db.port, user: ADMIN.user, password: ADMIN.password }, { queryTimeoutMs: 300 });
    try {
      const started = performance.now();
      await assert.rejects(session.query('SELECT SLEEP(20) AS slept'), { code: 'PRIMACY_SESSION_TIMEOUT' });
      assert.ok(performance.now() - started < 1000);
      await waitFor(
        'the SLEEP to be gone from the processlist',
        async () => ((await db.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(20)%'")).length === 0 ? true : undefined),
        { timeoutMs: 2000 },
      );
      assert.deepEqual(await session.query('SELECT 1 AS one'), [{ one: 1 }]);
    } finally {
      await session.close();
    }
  });

  it('a killed connection (1927, not fatal to mysql2) is dropped and the next query reconnects', async () => {
    const session = new MysqlSession({ host: db.host, port: db.port, user: ADMIN.user, password: ADMIN.password });
    try {
      await session.query('SELECT 1');
      const before = session.threadId;
      assert.ok(before !== null);
      await db.query(`KILL CONNECTION ${before}`);
      await sleep(50);
      // MariaDB tells the idle client 1927 at once; the session forgets the connection on that error,
      // or, had the error not come yet, fails this query and reconnects for the next.
      const first = await session.query('SELECT 1 AS one').catch(() => null);
      const rows = first ?? (await session.query('SELECT 1 AS one'));
      assert.deepEqual(rows, [{ one: 1 }]);
      assert.notEqual(session.threadId, before);
    } finally {
      await session.close();
    }
  });
});
