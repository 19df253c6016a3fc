// The harness's own tests. Facts the other integration tests rely on and that these check:
// - MariaDB 10.11 with read_only=ON refuses a write by APP (table grants only) with 1290, and lets
//   ADMIN (SUPER) write; so fencing tests must write as APP.
// - semi-sync is built in and the harness sets the lossless wait point AFTER_SYNC (10.11's default is AFTER_COMMIT).
// - a server restarted after kill -9 comes back read-only, and replicas reconnect within MASTER_CONNECT_RETRY.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'mysql2/promise';
import { after, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import {
  ADMIN,
  APP,
  cleanupAll,
  ER_READ_ONLY,
  harnessRoot,
  livePids,
  sleep,
  startEtcd,
  startMariaDb,
  startProxy,
  waitFor,
  withTimeout,
  type MariaDbServer,
} from './harness/index.js';

after(cleanupAll);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function errno(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'errno' in error ? error.errno : undefined;
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

/** 'pending', or what the promise settled with, so that a failure says what came back. */
async function settlesWithin<T>(promise: Promise<T>, ms: number): Promise<string> {
  promise.catch(() => undefined);
  return Promise.race([
    promise.then((value) => `settled with ${JSON.stringify(Array.isArray(value) ? value[0] : value)}`, (error: unknown) => `failed with ${errorCode(error) ?? ''} ${error instanceof Error ? error.message : String(error)}`),
    sleep(ms).then(() => 'pending'),
  ]);
}

async function timed<T>(what: string, diagnostic: (message: string) => void, start: () => Promise<T>): Promise<T> {
  const begin = performance.now();
  const value = await start();
  diagnostic(`${what} took ${Math.round(performance.now() - begin)} ms`);
  return value;
}

async function slaveThreads(server: MariaDbServer): Promise<string> {
  const [status] = await server.query('SHOW SLAVE STATUS');
  return `${String(status?.['Slave_IO_Running'])}/${String(status?.['Slave_SQL_Running'])}`;
}

test('etcd: one member starts healthy and serves', async (t) => {
  const etcd = await timed('etcd with 1 member', (m) => t.diagnostic(m), () => startEtcd({ members: 1 }));
  t.after(() => etcd.stop());
  assert.equal(etcd.members.length, 1);
  assert.match(etcd.endpoints[0] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = etcd.client();
  await client.put('primacy-test/one').value('1');
  assert.equal(await client.get('primacy-test/one').string(), '1');
});

test('etcd: 3 members keep serving writes after the leader is killed, and it rejoins', async (t) => {
  const etcd = await timed('etcd with 3 members', (m) => t.diagnostic(m), () => startEtcd({ members: 3 }));
  t.after(() => etcd.stop());
  const client = etcd.client();
  await client.put('primacy-test/k').value('before');
  assert.equal(await client.get('primacy-test/k').string(), 'before');

  const leader = await etcd.leader();
  await leader.kill();
  assert.equal(leader.isRunning(), false);
  assert.equal(isAlive(leader.pid), false);

  // Until the survivors elect a new leader (one to two election timeouts) writes fail, and a write
  // that reached a follower meanwhile is dropped and waits for its deadline: so short deadlines.
  const begin = performance.now();
  await waitFor(
    'a put after the leader was killed',
    async () => {
      await client.put('primacy-test/k').value('after').options({ deadline: Date.now() + 1_000 });
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  t.diagnostic(`first successful put ${Math.round(performance.now() - begin)} ms after killing leader ${leader.name}`);
  assert.equal(await client.get('primacy-test/k').string(), 'after');
  assert.notEqual((await etcd.leader()).name, leader.name);

  await leader.start();
  const direct = etcd.client({ hosts: [leader.endpoint] });
  assert.equal(await direct.get('primacy-test/k').string(), 'after');
});

test('mariadb: 3 servers, primary 0; app writes replicate, read_only refuses app but not SUPER', async (t) => {
  const db = await timed('3 MariaDB servers with replication wired', (m) => t.diagnostic(m), () =>
    startMariaDb({ count: 3, primary: 0 }),
  );
  t.after(() => db.stop());
  const [primary, ...replicas] = db.servers;
  assert.ok(primary);
  assert.deepEqual(db.servers.map((s) => [s.name, s.serverId]), [['db1', 1], ['db2', 2], ['db3', 3]]);
  assert.equal(db.primaryIndex, 0);

  const [flags] = await primary.query<{ ro: number; strict: number; format: string; wait: string }>(
    'SELECT @@read_only AS ro, @@gtid_strict_mode AS strict, @@binlog_format AS format, @@rpl_semi_sync_master_wait_point AS wait',
  );
  assert.deepEqual(flags, { ro: 0, strict: 1, format: 'ROW', wait: 'AFTER_SYNC' });

  const app = await primary.connect(APP);
  await app.query('CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(20))');
  await app.query('INSERT INTO app.items VALUES (1, ?), (2, ?)', ['one', 'two']);
  await db.waitForReplication(5_000);
  for (const replica of replicas) {
    assert.equal(await slaveThreads(replica), 'Yes/Yes');
    const rows = await replica.query('SELECT id, name FROM app.items ORDER BY id');
    assert.deepEqual(rows, [{ id: 1, name: 'one' }, { id: 2, name: 'two' }], replica.name);
    const [ro] = await replica.query<{ ro: number }>('SELECT @@read_only AS ro');
    assert.equal(ro?.ro, 1);
  }

  // The fact the fencing tests rely on: on MariaDB 10.11 read_only binds a user with only table
  // grants (1290) and does not bind one with SUPER.
  const replica = replicas[0];
  assert.ok(replica);
  const appOnReplica = await replica.connect(APP);
  await assert.rejects(appOnReplica.query('INSERT INTO app.items VALUES (3, ?)', ['three']), (error: unknown) => {
    assert.equal(errno(error), ER_READ_ONLY);
    return true;
  });
  const adminOnReplica = await replica.connect(ADMIN);
  // Not binlogged, so the replica gets no GTID of its own that would break strict mode later.
  await adminOnReplica.query('SET SESSION sql_log_bin = 0');
  await adminOnReplica.query('INSERT INTO app.items VALUES (3, ?)', ['three']);
  await adminOnReplica.query('DELETE FROM app.items WHERE id = 3');
});

test('mariadb: semi-sync on every server, commits acknowledged by replicas', async (t) => {
  const db = await timed('3 MariaDB servers with semi-sync', (m) => t.diagnostic(m), () =>
    startMariaDb({ count: 3, semiSync: true }),
  );
  t.after(() => db.stop());
  const primary = db.servers[0];
  assert.ok(primary);
  const status = async (name: string) =>
    (await primary.query<{ Value: string }>('SHOW GLOBAL STATUS LIKE ?', [name]))[0]?.Value;
  assert.equal(await status('Rpl_semi_sync_master_status'), 'ON');
  assert.equal(await status('Rpl_semi_sync_master_clients'), '2');
  for (const replica of db.servers.slice(1)) {
    const [row] = await replica.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'");
    assert.equal(row?.Value, 'ON', replica.name);
  }
  const before = Number(await status('Rpl_semi_sync_master_yes_tx'));
  await primary.query('CREATE TABLE app.acked (id INT PRIMARY KEY)', [], { creds: APP });
  await primary.query('INSERT INTO app.acked VALUES (1)', [], { creds: APP });
  assert.equal(Number(await status('Rpl_semi_sync_master_yes_tx')), before + 2);
});

test('proxy: a cut isolates MariaDB and etcd until restore', async (t) => {
  const [db, etcd] = await Promise.all([startMariaDb({ count: 1 }), startEtcd({ members: 1 })]);
  t.after(() => Promise.all([db.stop(), etcd.stop()]));
  const server = db.servers[0];
  const member = etcd.members[0];
  assert.ok(server && member);

  const sqlProxy = await startProxy({ targetHost: server.host, targetPort: server.port });
  const viaProxy = (connectTimeout: number) =>
    createConnection({ host: sqlProxy.host, port: sqlProxy.port, ...ADMIN, connectTimeout });
  const held = await viaProxy(2_000);
  t.after(() => held.destroy());
  held.on('error', () => undefined);
  assert.deepEqual((await held.query('SELECT 1 AS one'))[0], [{ one: 1 }]);
  assert.equal(sqlProxy.connections, 1);

  sqlProxy.cut();
  assert.equal(sqlProxy.state, 'blackhole');
  const frozen = held.query('SELECT 2 AS two');
  assert.equal(await settlesWithin(frozen, 500), 'pending', 'an open connection hangs');
  const connectBegin = performance.now();
  await assert.rejects(viaProxy(500), (error: unknown) => {
    assert.equal(errorCode(error), 'ETIMEDOUT');
    return true;
  });
  assert.ok(performance.now() - connectBegin >= 450, 'a new connection hangs until its own timeout');

  sqlProxy.restore();
  assert.deepEqual((await withTimeout(frozen, 5_000, 'the held query after restore'))[0], [{ two: 2 }]);
  const fresh = await viaProxy(2_000);
  assert.deepEqual((await fresh.query('SELECT 3 AS three'))[0], [{ three: 3 }]);

  sqlProxy.cut({ mode: 'reset' });
  const resetBegin = performance.now();
  await assert.rejects(fresh.query('SELECT 4'));
  await assert.rejects(viaProxy(2_000));
  assert.ok(performance.now() - resetBegin < 1_000, 'reset fails at once');
  sqlProxy.restore();
  const again = await viaProxy(2_000);
  assert.deepEqual((await again.query('SELECT 5 AS five'))[0], [{ five: 5 }]);
  again.destroy();
  fresh.destroy();

  const etcdPort = Number(new URL(member.endpoint).port);
  const etcdProxy = await startProxy({ targetHost: '127.0.0.1', targetPort: etcdPort });
  const client = etcd.client({ hosts: [`http://${etcdProxy.host}:${etcdProxy.port}`] });
  await client.put('primacy-test/proxy').value('through');
  etcdProxy.cut();
  await assert.rejects(
    withTimeout(client.get('primacy-test/proxy').options({ deadline: Date.now() + 1_000 }).string(), 3_000, 'a cut etcd get'),
  );
  etcdProxy.restore();
  const value = await waitFor('an etcd get after restore', () => client.get('primacy-test/proxy').string(), {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  assert.equal(value, 'through');
  await Promise.all([sqlProxy.close(), etcdProxy.close()]);
});

test('mariadb: kill -9 then start; replication resumes for a replica and for the primary', async (t) => {
  const db = await startMariaDb({ count: 3 });
  t.after(() => db.stop());
  const [primary, , replica] = db.servers;
  assert.ok(primary && replica);
  await primary.query('CREATE TABLE app.log (id INT PRIMARY KEY)', [], { creds: APP });
  await primary.query('INSERT INTO app.log VALUES (1)', [], { creds: APP });
  await db.waitForReplication(5_000);

  const oldPid = replica.pid;
  await replica.kill();
  assert.equal(replica.isRunning(), false);
  assert.equal(isAlive(oldPid), false);
  await primary.query('INSERT INTO app.log VALUES (2)', [], { creds: APP });
  await timed('restart of a killed replica', (m) => t.diagnostic(m), () => replica.start());
  assert.notEqual(replica.pid, oldPid);
  await db.waitForReplication(10_000);
  assert.deepEqual(await replica.query('SELECT id FROM app.log ORDER BY id'), [{ id: 1 }, { id: 2 }]);

  await primary.kill();
  await timed('restart of a killed primary', (m) => t.diagnostic(m), () => primary.start());
  const [ro] = await primary.query<{ ro: number }>('SELECT @@read_only AS ro');
  assert.equal(ro?.ro, 1, 'a restarted server is read-only until someone makes it writable');
  for (const r of db.servers.slice(1)) {
    // The replicas retry every MASTER_CONNECT_RETRY (1 s).
    await waitFor(`${r.name} reconnected`, async () => ((await slaveThreads(r)) === 'Yes/Yes' ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
  }
  await primary.query('SET GLOBAL read_only = OFF');
  await primary.query('INSERT INTO app.log VALUES (3)', [], { creds: APP });
  await db.waitForReplication(5_000);
  assert.deepEqual(await replica.query('SELECT id FROM app.log ORDER BY id'), [{ id: 1 }, { id: 2 }, { id: 3 }]);
});

test('mariadb: a paused server hangs queries, which complete after resume', async (t) => {
  const db = await startMariaDb({ count: 1 });
  t.after(() => db.stop());
  const server = db.servers[0];
  assert.ok(server);
  const connection = await server.connect();
  server.pause();
  const pending = connection.query('SELECT 42 AS answer');
  assert.equal(await settlesWithin(pending, 500), 'pending');
  await assert.rejects(server.connect(ADMIN, { connectTimeout: 300 }), (error: unknown) => {
    assert.equal(errorCode(error), 'ETIMEDOUT');
    return true;
  });
  server.resume();
  assert.deepEqual((await withTimeout(pending, 5_000, 'the query after resume'))[0], [{ answer: 42 }]);
  assert.equal(server.isRunning(), true);
});

test('a failed start reports the end of the server log', async () => {
  await assert.rejects(startMariaDb({ count: 1, serverOptions: { 'no-such-option': 1 } }), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.match(error.message, /did not start/);
    assert.match(error.message, /unknown variable 'no-such-option=1'/);
    return true;
  });
});

test('cleanupAll leaves no started process alive and removes the temp folder', async () => {
  const [etcd, db] = await Promise.all([startEtcd({ members: 1 }), startMariaDb({ count: 2 })]);
  const paused = db.servers[1];
  assert.ok(paused);
  paused.pause();
  const client: Etcd3 = etcd.client();
  await client.put('primacy-test/bye').value('1');
  const root = harnessRoot();
  const pids = livePids();
  assert.ok(pids.length >= 3, `expected at least 3 live processes, saw ${pids.length}`);
  for (const pid of [...etcd.members.map((m) => m.pid), ...db.servers.map((s) => s.pid)]) {
    assert.ok(pids.includes(pid));
  }

  await withTimeout(cleanupAll(), 15_000, 'cleanupAll');

  assert.deepEqual(livePids(), []);
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} is still alive`);
  assert.equal(existsSync(root), false);
  // Nothing else on the machine runs from our folder either.
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    assert.ok(!cmdline.includes(root), `pid ${entry} still runs from ${root}`);
  }
});
