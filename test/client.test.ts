/**
 * @primacy/client against real etcd and real MariaDB (issue 6).
 *
 * Two kinds of setups:
 * - "synthetic": two unwired MariaDB servers and a cluster name no agent serves. The test writes the
 *   `primary` key, read_only and the heartbeat row itself, so each rule of the pool (holding during
 *   `switching`, the heartbeat and server-id checks, 1290, a killed statement) is exercised exactly.
 * - a real cluster (3 MariaDB, 3 agents, the 3-member etcd): the watch across a kill -9 of the
 *   primary and the loss of the etcd member serving its stream; a pool writing through a failover
 *   and through a switchover, with its registration.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import type { RowDataPacket } from 'mysql2/promise';
import { ClientRegistrationSchema, PrimarySchema, clusterKeys, type ClientRegistration, type MemberState, type OperatorRequest, type Primary } from '@primacy/common';
import { ClientError, OutcomeUnknownError, createPool, registerClient, watchPrimary, type PrimaryPool, type PrimaryWatch, type Queryable } from '@primacy/client';
import { APP, cleanupAll, sleep, startEtcd, startMariaDb, startProxy, waitFor, type EtcdCluster, type MariaDbCluster, type MariaDbServer } from './harness/index.js';
import { WritableWatch, startCluster, type TestCluster } from './support/cluster.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

const APP_CONNECTION = { user: APP.user, password: APP.password, database: 'app' };
const INSERT = 'INSERT INTO app.client_rows (id, server_id, at) VALUES (?, @@server_id, NOW(6))';
const CREATE_ROWS = 'CREATE TABLE IF NOT EXISTS app.client_rows (id INT PRIMARY KEY, server_id INT NOT NULL, at TIMESTAMP(6) NOT NULL)';
const GRANT_HEARTBEAT = `GRANT SELECT ON primacy.heartbeat TO '${APP.user}'@'127.0.0.1'`;

/** Whether a promise has settled, without waiting for it. */
function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

function assertClientError(err: unknown, code: string, pattern?: RegExp): void {
  assert.ok(err instanceof ClientError, `expected a ClientError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
}

async function appSessions(s: MariaDbServer): Promise<number> {
  const [row] = await s.query<{ n: number }>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'app'");
  return Number(row?.n ?? 0);
}

async function rowsOn(s: MariaDbServer): Promise<Map<number, { serverId: number; at: number }>> {
  const rows = await s.query<{ id: number; server_id: number; at_ms: number }>('SELECT id, server_id, FLOOR(UNIX_TIMESTAMP(at) * 1000) AS at_ms FROM app.client_rows');
  return new Map(rows.map((r) => [Number(r.id), { serverId: Number(r.server_id), at: Number(r.at_ms) }]));
}

// ---------------------------------------------------------------------------------------------
// Synthetic clusters: the test plays coordinator and agents.

let db: MariaDbCluster;
let synCount = 0;

interface Synthetic {
  readonly name: string;
  readonly etcd: Etcd3;
  put(server: MariaDbServer, epoch: number, state: Primary['state'], over?: Partial<Primary>): Promise<Primary>;
  /** Makes `server` writable with a heartbeat at `epoch`, as an agent does when it promotes. */
  promote(server: MariaDbServer, epoch: number): Promise<void>;
  heartbeat(server: MariaDbServer, epoch: number): Promise<void>;
  fence(server: MariaDbServer): Promise<void>;
}

function synthetic(): Synthetic {
  const name = `syn${++synCount}`;
  const keys = clusterKeys(name);
  const client = etcd.client();
  const heartbeat = (s: MariaDbServer, epoch: number) =>
    s.query('INSERT INTO primacy.heartbeat (id, epoch, node, ts) VALUES (1, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), node = VALUES(node), ts = VALUES(ts)', [epoch, s.name]).then(() => undefined);
  return {
    name,
    etcd: client,
    async put(s, epoch, state, over = {}) {
      const p = PrimarySchema.parse({ node: s.name, host: s.host, port: s.port, epoch, state, since: Date.now(), gtid: '', serverId: s.serverId, serverUuid: null, ...over });
      await client.put(keys.primary).value(JSON.stringify(p));
      return p;
    },
    async promote(s, epoch) {
      await s.query('SET GLOBAL read_only = 0');
      await heartbeat(s, epoch);
    },
    heartbeat,
    async fence(s) {
      await s.query('SET GLOBAL read_only = 1');
    },
  };
}

function synPool(s: Synthetic, over: Record<string, unknown> = {}): PrimaryPool {
  return createPool({ etcd: etcd.endpoints, cluster: s.name, connection: APP_CONNECTION, holdWritesMs: 10_000, ...over });
}

async function waitState(pool: PrimaryPool, node: string, epoch: number, state: Primary['state']): Promise<void> {
  await waitFor(`the pool to see ${node} ${state} at epoch ${epoch}`, () => {
    const p = pool.primary();
    return p?.node === node && p.epoch === epoch && p.state === state ? true : undefined;
  }, { timeoutMs: 10_000, intervalMs: 10 });
}

describe('client, synthetic cluster', () => {
  before(async () => {
    db = await startMariaDb({ count: 2, primary: null, semiSync: false });
    for (const s of db.servers) {
      // Unwired servers: each gets its own copy of what replication would carry.
      await s.query('CREATE TABLE IF NOT EXISTS primacy.heartbeat (id TINYINT NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL, node VARCHAR(64) NOT NULL, ts TIMESTAMP(6) NOT NULL)');
      await s.query(CREATE_ROWS);
      await s.query(GRANT_HEARTBEAT);
    }
  });

  after(async () => {
    await db?.stop();
  });

  test('switching holds new statements, which then go to the new primary; the old primary\'s connections are closed', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    await s.put(db1, 1, 'ready');
    const pool = synPool(s);
    try {
      await pool.query(INSERT, [101]);
      assert.equal((await rowsOn(db1)).get(101)?.serverId, db1.serverId);
      assert.ok((await appSessions(db1)) >= 1, 'the pool keeps an idle connection');
      await s.put(db1, 1, 'switching');
      await waitState(pool, 'db1', 1, 'switching');
      await waitFor('the idle connection to the switching primary to close', async () => ((await appSessions(db1)) === 0 ? true : undefined), { timeoutMs: 5_000 });
      const heldAt = Date.now();
      const held = pool.query(INSERT, [102]);
      const done = settled(held);
      await sleep(700);
      assert.equal(done(), false, 'the statement is held while the primary is switching');
      await s.fence(db1);
      await s.promote(db2, 2);
      await s.put(db2, 2, 'promoting');
      await sleep(200);
      assert.equal(done(), false, 'still held while the next primary is promoting');
      await s.put(db2, 2, 'ready');
      await held;
      const heldMs = Date.now() - heldAt;
      assert.equal((await rowsOn(db2)).get(102)?.serverId, db2.serverId, 'the held statement ran on the new primary');
      assert.equal((await rowsOn(db1)).has(102), false, 'and not on the old one');
      assert.ok(heldMs >= 900, `held ${heldMs} ms`);
      assert.equal(await appSessions(db1), 0, 'nothing went back to the old primary');
      await pool.query(INSERT, [103]);
      assert.equal((await rowsOn(db2)).get(103)?.serverId, db2.serverId);
    } finally {
      await pool.end();
    }
  });

  test('a statement held longer than holdWritesMs fails with PRIMACY_E_NO_PRIMARY, unsent', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    await s.put(db1, 1, 'switching');
    const pool = synPool(s, { holdWritesMs: 600 });
    try {
      const started = Date.now();
      const err = await rejection(pool.query(INSERT, [201]));
      const tookMs = Date.now() - started;
      assertClientError(err, 'PRIMACY_E_NO_PRIMARY', /db1 \(epoch 1\) is switching; the statement was not sent/);
      assert.ok(tookMs >= 550 && tookMs < 5_000, `failed after ${tookMs} ms`);
      assert.equal((await rowsOn(db1)).has(201), false);
      assert.equal(pool.stats().connectionsOpened['db1'], undefined, 'no connection was even opened');
      // No primary at all: the same error, saying so.
      const none = createPool({ etcd: etcd.endpoints, cluster: `${s.name}-none`, connection: APP_CONNECTION, holdWritesMs: 300 });
      assertClientError(await rejection(none.query('SELECT 1')), 'PRIMACY_E_NO_PRIMARY', /etcd names no primary/);
      await none.end();
    } finally {
      await pool.end();
    }
  });

  test('a new connection waits, bounded, for the heartbeat to reach the primary\'s epoch, and is never used while it is older', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db1);
    await s.promote(db2, 4);
    // etcd says epoch 5 while the node's heartbeat still says 4.
    await s.put(db2, 5, 'ready');
    const pool = synPool(s, { heartbeatWaitMs: 3_000 });
    try {
      const write = pool.query(INSERT, [301]);
      await sleep(400);
      assert.equal((await rowsOn(db2)).has(301), false, 'nothing was sent while the heartbeat lagged');
      await s.heartbeat(db2, 5);
      await write;
      assert.equal((await rowsOn(db2)).get(301)?.serverId, db2.serverId);
    } finally {
      await pool.end();
    }
    // A heartbeat that never catches up: the statement fails, never sent.
    await s.put(db2, 6, 'ready');
    const stale = synPool(s, { heartbeatWaitMs: 200, holdWritesMs: 900 });
    try {
      assertClientError(await rejection(stale.query(INSERT, [302])), 'PRIMACY_E_STALE_PRIMARY', /heartbeat says epoch 5 but etcd names it primary of epoch 6/);
      assert.equal((await rowsOn(db2)).has(302), false);
      assert.ok(stale.stats().rejectedConnections >= 1);
    } finally {
      await stale.end();
    }
    await s.fence(db2);
  });

  test('a server that is not the one etcd names, or is read-only, gets no statement', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    // etcd names db1's address with db2's server id: a restarted or replaced server.
    await s.put(db1, 1, 'ready', { serverId: db2.serverId });
    const pool = synPool(s, { holdWritesMs: 700 });
    try {
      assertClientError(await rejection(pool.query(INSERT, [401])), 'PRIMACY_E_STALE_PRIMARY', new RegExp(`etcd names server_id ${db2.serverId} but the server has ${db1.serverId}`));
      assert.equal((await rowsOn(db1)).has(401), false);
      // The right id, but the server is read-only (fenced before etcd moved on).
      await s.put(db2, 2, 'ready');
      assertClientError(await rejection(pool.query(INSERT, [402])), 'PRIMACY_E_NO_PRIMARY', /db2 \(epoch 2\): PRIMACY_E_NOT_PRIMARY: db2 \(epoch 2\) is read-only/);
      assert.equal((await rowsOn(db2)).has(402), false);
    } finally {
      await pool.end();
    }
  });

  test('1290 on a connection in use: the statement waits for the next primary and runs there once', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    await s.put(db1, 1, 'ready');
    const pool = synPool(s);
    try {
      await pool.query(INSERT, [501]);
      // db1 is fenced behind etcd's back: the pool's idle connection still points at it.
      await s.fence(db1);
      const write = pool.query(INSERT, [502]);
      await waitFor('the pool to meet the read-only node', () => (pool.stats().readOnlyRetries === 1 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
      await s.promote(db2, 2);
      await s.put(db2, 2, 'ready');
      await write;
      assert.equal((await rowsOn(db2)).get(502)?.serverId, db2.serverId);
      assert.equal((await rowsOn(db1)).has(502), false);
      // Read-only again with no new primary: after holdWritesMs, a clear error, nothing retried blindly.
      const short = synPool(s, { holdWritesMs: 500 });
      await short.query('SELECT 1');
      await s.fence(db2);
      assertClientError(await rejection(short.query(INSERT, [503])), 'PRIMACY_E_NOT_PRIMARY', /read-only \(1290\) and no new primary appeared/);
      await short.end();
    } finally {
      await pool.end();
    }
  });

  test('a connection killed mid-statement: PRIMACY_E_OUTCOME_UNKNOWN, never retried, and the pool carries on', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    await s.put(db1, 1, 'ready');
    const pool = synPool(s);
    try {
      await pool.query(INSERT, [601]);
      const slow = rejection(pool.query('INSERT INTO app.client_rows (id, server_id, at) SELECT 602 + SLEEP(3), @@server_id, NOW(6)'));
      const victim = await waitFor('the slow statement to run', async () => {
        const [row] = await db1.query<{ id: number }>("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = 'app' AND INFO LIKE '%SLEEP(3)%'");
        return row?.id;
      }, { timeoutMs: 5_000, intervalMs: 20 });
      await db1.query(`KILL CONNECTION ${Number(victim)}`);
      const err = await slow;
      assert.ok(err instanceof OutcomeUnknownError, String(err));
      assert.equal(err.node, 'db1');
      assert.match(err.message, /may or may not have been executed/);
      assert.equal(pool.stats().outcomeUnknown, 1);
      await pool.query(INSERT, [603]);
      assert.equal((await rowsOn(db1)).get(603)?.serverId, db1.serverId);
      // A transaction on a connection whose primary changed: the next statement fails unsent.
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(INSERT, [604]);
      await s.put(db1, 1, 'switching');
      await waitState(pool, 'db1', 1, 'switching');
      assertClientError(await rejection(conn.query(INSERT, [605])), 'PRIMACY_E_STALE_PRIMARY', /no longer the ready primary/);
      assertClientError(await rejection(conn.query('SELECT 1')), 'PRIMACY_E_CONNECTION_CLOSED');
      conn.release();
      const rows = await rowsOn(db1);
      assert.equal(rows.has(604) || rows.has(605), false, 'the abandoned transaction did not commit');
    } finally {
      await pool.end();
      await s.fence(db1);
    }
  });

  test('reader(): replicas within maxReplicaLagMs, else the primary', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.fence(db2);
    await s.promote(db1, 1);
    await s.put(db1, 1, 'ready');
    const keys = clusterKeys(s.name);
    const putMember = (lagMs: number) => s.etcd.put(keys.member('db2')).value(JSON.stringify(replicaMember(s.name, db2, db1, lagMs)));
    const pool = synPool(s, { maxReplicaLagMs: 500 });
    const serverIdOf = async (q: Queryable) => {
      const [rows] = await q.query<RowDataPacket[]>('SELECT @@server_id AS id');
      return Number(rows[0]?.id);
    };
    try {
      await putMember(20);
      await waitFor('the pool to see the replica', () => (pool.watch.replicas().length === 1 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
      assert.deepEqual(pool.watch.replicas().map((r) => [r.node, r.lagMs]), [['db2', 20]]);
      assert.equal(await serverIdOf(pool.reader()), db2.serverId, 'a fresh replica serves reads');
      assert.equal(await serverIdOf(pool), db1.serverId, 'statements without reader() go to the primary');
      await putMember(5_000);
      await waitFor('the lag to reach the pool', () => (pool.watch.replicas()[0]?.lagMs === 5_000 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
      assert.equal(await serverIdOf(pool.reader()), db1.serverId, 'a lagging replica serves none');
      await s.etcd.delete().key(keys.member('db2'));
      await waitFor('the replica to leave', () => (pool.watch.replicas().length === 0 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
      await waitFor('the replica\'s connections to close', async () => ((await appSessions(db2)) === 0 ? true : undefined), { timeoutMs: 5_000 });
    } finally {
      await pool.end();
      await s.fence(db1);
    }
  });

  test('registerClient: writesPaused follows switching and ready, with the epoch, under its own lease', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    await s.put(db1, 3, 'ready');
    const reg = registerClient({ etcd: etcd.endpoints, cluster: s.name, id: 'proxy-a', ttlSeconds: 3 });
    const key = clusterKeys(s.name).client('proxy-a');
    const read = async (): Promise<ClientRegistration | null> => {
      const raw = await s.etcd.get(key).string();
      return raw === null ? null : ClientRegistrationSchema.parse(JSON.parse(raw));
    };
    const expect = (paused: boolean, epoch: number) =>
      waitFor(`clients/proxy-a to say writesPaused ${paused} at epoch ${epoch}`, async () => {
        const r = await read();
        return r?.writesPaused === paused && r.epoch === epoch ? r : undefined;
      }, { timeoutMs: 5_000, intervalMs: 10 });
    try {
      await reg.ready();
      const first = await expect(false, 3);
      assert.equal(first.id, 'proxy-a');
      const lease = await s.etcd.get(key).exec();
      assert.notEqual(lease.kvs[0]?.lease, '0', 'the key lives under a lease');
      await s.put(db1, 3, 'switching');
      await expect(true, 3);
      await s.put(db2, 4, 'promoting');
      await expect(true, 4);
      await s.put(db2, 4, 'ready');
      await expect(false, 4);
    } finally {
      await reg.close();
    }
    assert.equal(await read(), null, 'closing revokes the lease, and the key goes with it');
  });

  test('watchPrimary: a malformed value is reported, not thrown; an older epoch is never reported; a compacted watch reads again', async () => {
    const s = synthetic();
    const [db1, db2] = [db.servers[0]!, db.servers[1]!];
    const keys = clusterKeys(s.name);
    const first = new URL(etcd.endpoints[0]!);
    const proxy = await startProxy({ targetHost: first.hostname, targetPort: Number(first.port) });
    await s.put(db1, 5, 'ready');
    const w = watchPrimary({ etcd: [`http://127.0.0.1:${proxy.port}`], cluster: s.name });
    const reported: Array<Primary | null> = [];
    const errors: string[] = [];
    w.on('primary', (p) => reported.push(p));
    w.on('error', (e) => errors.push(e.message));
    const warnings: string[] = [];
    w.on('warning', (e) => warnings.push(e.message));
    const seen = (epoch: number, state: Primary['state']) =>
      waitFor(`the watch to report epoch ${epoch} ${state}`, () => (w.current()?.epoch === epoch && w.current()?.state === state ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    try {
      await w.ready();
      assert.equal(w.current()?.epoch, 5);
      await s.etcd.put(keys.primary).value('{"node": "db1", "epoch": "not a number"');
      await waitFor('the malformed value to be reported', () => (errors.length > 0 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
      assert.match(errors[0]!, /ignoring malformed value at .*\/primary: not JSON/);
      assert.equal(w.current()?.epoch, 5, 'the last good value stays');
      await s.put(db2, 4, 'ready');
      await s.put(db2, 6, 'promoting');
      await seen(6, 'promoting');
      assert.ok(reported.every((p) => p === null || p.epoch >= 5), JSON.stringify(reported.map((p) => p?.epoch)));
      // Cut the watch off, move on and compact past its revision, then let it back.
      proxy.cut({ mode: 'reset' });
      await s.put(db2, 6, 'ready');
      await s.put(db1, 7, 'ready');
      const head = await s.etcd.get(keys.primary).exec();
      await s.etcd.kv.compact({ revision: head.header.revision });
      proxy.restore();
      await seen(7, 'ready');
      assert.ok(warnings.some((m) => /etcd cancelled the watch/.test(m)), `the watch was cancelled and read again: ${warnings.join(' | ')}`);
      const epochs = reported.filter((p): p is Primary => p !== null).map((p) => p.epoch);
      assert.deepEqual(epochs, [...epochs].sort((a, b) => a - b), 'epochs never go back');
    } finally {
      await w.close();
      await proxy.close();
    }
  });
});

/** A member value as the replica's agent would publish it. */
function replicaMember(cluster: string, s: MariaDbServer, source: MariaDbServer, lagMs: number): MemberState {
  return {
    node: s.name,
    cluster,
    agentVersion: 'test',
    host: s.host,
    port: s.port,
    apiUrl: 'http://127.0.0.1:1',
    updatedAt: Date.now(),
    health: 'up',
    error: null,
    downProbes: 0,
    probeMs: 1,
    role: 'replica',
    fenced: false,
    fencedFor: null,
    serverGone: null,
    lastAnswer: null,
    downSinceRevision: null,
    errant: null,
    revokedEpoch: null,
    revokedAttempt: null,
    priority: 0,
    noPromote: false,
    server: {
      flavor: 'mariadb',
      version: '10.11',
      serverId: s.serverId,
      serverUuid: null,
      readOnly: true,
      superReadOnly: null,
      logBin: true,
      gtid: { executed: '', received: '' },
      replication: { sourceHost: source.host, sourcePort: source.port, ioState: 'running', sqlRunning: true, lastIoError: '', lastSqlError: '', autoPosition: true, secondsBehind: 0 },
      lagMs,
      heartbeatEpoch: 1,
      semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
      connections: 1,
      maxConnections: 100,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Real clusters: agents decide, the client follows.

/** Writes rows through the pool, one at a time per lane, recording each acknowledged id and each unknown outcome. */
class PoolWriter {
  readonly acked = new Map<number, { at: number; startedAt: number }>();
  readonly unknown = new Set<number>();
  readonly errors: string[] = [];
  private next = 1;
  private stopped = false;
  private lanes: Promise<void>[] = [];

  constructor(private readonly pool: PrimaryPool) {}

  start(lanes = 2): this {
    for (let i = 0; i < lanes; i++) this.lanes.push(this.run());
    return this;
  }

  ackedAfter(t: number): number {
    return [...this.acked.values()].filter((a) => a.at >= t).length;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const id = this.next++;
      const startedAt = Date.now();
      try {
        await this.pool.query(INSERT, [id]);
        this.acked.set(id, { at: Date.now(), startedAt });
      } catch (err) {
        if (err instanceof OutcomeUnknownError) this.unknown.add(id);
        else this.errors.push(err instanceof ClientError ? err.toLine() : String(err));
        await sleep(10);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.lanes);
  }
}

async function realCluster(): Promise<TestCluster> {
  const c = await startCluster(etcd);
  const p = (await c.primary())!;
  await c.server(p.node).query(CREATE_ROWS);
  await c.server(p.node).query(GRANT_HEARTBEAT);
  await c.db.waitForReplication(15_000);
  return c;
}

/** Every acknowledged id is on `node`; rows written by `oldServerId` all predate `fencedAt`. */
async function checkRows(c: TestCluster, node: string, writer: PoolWriter, oldServerId: number, fencedAt: number): Promise<void> {
  const rows = await rowsOn(c.server(node));
  const missing = [...writer.acked.keys()].filter((id) => !rows.has(id));
  assert.deepEqual(missing, [], `every acknowledged write is on ${node} (${writer.acked.size} acknowledged)`);
  const late = [...rows.entries()].filter(([, r]) => r.serverId === oldServerId && r.at > fencedAt + 5);
  assert.deepEqual(late, [], 'no row was written on the old primary after it was fenced');
}

async function memberId(name: string): Promise<string> {
  const res = await fetch(`${etcd.endpoints.find((_, i) => etcd.members[i]!.isRunning())}/v3/cluster/member/list`, { method: 'POST', body: '{}' });
  const body = (await res.json()) as { members: Array<{ ID: string; name: string }> };
  const found = body.members.find((m) => m.name === name);
  assert.ok(found, `etcd member ${name}`);
  return found.ID;
}

/**
 * Requests a switchover to `to` and waits for it; on a loaded machine the coordinator may refuse it
 * or abort it (a candidate not caught up in time), and then it is asked once more.
 */
async function switchover(c: TestCluster, old: Primary, to: string): Promise<Primary> {
  for (let attempt = 1; ; attempt++) {
    const request: OperatorRequest = { kind: 'switchover', to, force: false, unfenced: false, requestedAt: Date.now(), by: 'client-test' };
    await c.etcd.put(c.keys.request(`${Date.now()}-client`)).value(JSON.stringify(request));
    const outcome = await waitFor('the switchover to end', async () => {
      const p = await c.primary();
      if (p && p.state === 'ready' && p.epoch > old.epoch) return p;
      const op = await c.op(old.epoch + 1);
      return op && (op.outcome === 'refused' || op.outcome === 'aborted') && op.startedAt >= request.requestedAt - 1000 ? op : undefined;
    }, { timeoutMs: 40_000, intervalMs: 20 });
    if ('state' in outcome) return outcome;
    if (attempt >= 2) throw new Error(`the switchover was ${outcome.outcome} twice: ${outcome.reason}`);
    process.stdout.write(`# switchover ${outcome.outcome} (${outcome.reason}); asking again\n`);
    await c.readyPrimary({ timeoutMs: 20_000 });
    await sleep(1_000);
  }
}

describe('client, real cluster', () => {
  test('watchPrimary and a pool follow a kill -9 of the primary\'s mysqld, while the etcd member serving the watch is killed', async () => {
    const c = await realCluster();
    const witness = new WritableWatch(c).start();
    const w: PrimaryWatch = watchPrimary({ etcd: etcd.endpoints, cluster: c.name });
    const events: Primary[] = [];
    w.on('primary', (p) => p && events.push(p));
    const iterated: Array<Primary | null> = [];
    const iterating = (async () => {
      for await (const p of w) iterated.push(p);
    })();
    const pool = createPool({ etcd: etcd.endpoints, cluster: c.name, connection: APP_CONNECTION });
    const opened: Array<{ node: string; at: number }> = [];
    pool.on('connection', (info) => opened.push({ node: info.node, at: info.at }));
    const writer = new PoolWriter(pool).start();
    let killedMember: EtcdCluster['members'][number] | undefined;
    try {
      await w.ready();
      const first = w.current();
      assert.ok(first, 'a primary at start');
      assert.deepEqual(first, await c.primary());
      assert.equal(first.state, 'ready');
      await waitFor('the replicas to be reported', () => (w.replicas().length === 2 ? true : undefined), { timeoutMs: 10_000 });
      assert.deepEqual(w.replicas().map((r) => r.node).sort(), ['db1', 'db2', 'db3'].filter((n) => n !== first.node));
      await waitFor('acknowledged writes', () => (writer.acked.size >= 20 ? true : undefined), { timeoutMs: 15_000 });

      // The etcd member serving the watch stream goes away.
      const streamMember = await waitFor('the watch stream\'s member', () => w.streamMember ?? undefined, { timeoutMs: 5_000 });
      for (const m of etcd.members) if ((await memberId(m.name).catch(() => '')) === streamMember) killedMember = m;
      assert.ok(killedMember, `the member ${streamMember} serves the watch`);
      await killedMember.kill();

      const killedAt = Date.now();
      await c.server(first.node).kill();
      const next = await c.readyPrimary({ after: first.epoch, timeoutMs: 30_000 });
      await waitFor('the watch to report the new primary', () => (w.current()?.epoch === next.epoch && w.current()?.state === 'ready' ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      assert.equal(w.current()?.node, next.node);
      assert.notEqual(next.node, first.node);
      await waitFor('writes on the new primary', () => (writer.ackedAfter(killedAt) >= 20 ? true : undefined), { timeoutMs: 20_000 });
      await writer.stop();

      const epochs = events.map((p) => p.epoch);
      assert.deepEqual(epochs, [...epochs].sort((a, b) => a - b), `epochs never go back: ${epochs.join(', ')}`);
      assert.equal(events[0]?.epoch, first.epoch);
      assert.ok(epochs.includes(next.epoch));
      const iteratedEpochs = iterated.filter((p): p is Primary => p !== null).map((p) => p.epoch);
      assert.equal(iteratedEpochs[0], first.epoch, 'the iterator starts with the current primary');
      assert.equal(iteratedEpochs.at(-1), next.epoch);
      assert.deepEqual(iteratedEpochs, [...iteratedEpochs].sort((a, b) => a - b));

      assert.deepEqual(opened.filter((o) => o.node === first.node && o.at >= killedAt), [], 'no connection to the old primary after the kill');
      assert.ok(writer.unknown.size <= 2, `outcomes unknown: ${[...writer.unknown].join(', ')}`);
      await c.db.waitForReplication(15_000).catch(() => undefined);
      await checkRows(c, next.node, writer, c.server(first.node).serverId, killedAt);
      process.stdout.write(
        `# failover: ${writer.acked.size} acknowledged, ${writer.unknown.size} unknown, errors: ${[...new Set(writer.errors.map((e) => e.split(':')[0]))].join(', ') || 'none'}; ` +
          `stats ${JSON.stringify(pool.stats())}\n`,
      );
    } finally {
      await writer.stop();
      await witness.stop();
      await pool.end();
      await w.close();
      await iterating;
      if (killedMember && !killedMember.isRunning()) await killedMember.start();
      await c.stop();
    }
    assert.deepEqual(witness.violations, [], 'two nodes were never writable at once');
  });

  test('a registered pool writes through a switchover: it holds while switching, says so in clients/<id>, and resumes on the new primary', async () => {
    const c = await realCluster();
    for (const s of c.db.servers) await s.query('SET GLOBAL userstat = 1');
    const pool = createPool({ etcd: etcd.endpoints, cluster: c.name, connection: APP_CONNECTION, register: { id: 'app-1' } });
    const regKey = c.keys.client('app-1');
    const registrations: ClientRegistration[] = [];
    const regWatch = await c.etcd.watch().key(regKey).create();
    regWatch.on('put', (kv) => registrations.push(ClientRegistrationSchema.parse(JSON.parse(kv.value.toString()))));
    const states: Array<{ state: Primary['state']; epoch: number; at: number }> = [];
    pool.watch.on('primary', (p) => p && states.push({ state: p.state, epoch: p.epoch, at: Date.now() }));
    const writer = new PoolWriter(pool).start();
    try {
      await pool.registration!.ready();
      const old = (await c.primary())!;
      await waitFor('acknowledged writes', () => (writer.acked.size >= 20 ? true : undefined), { timeoutMs: 15_000 });
      const to = ['db1', 'db2', 'db3'].find((n) => n !== old.node)!;
      await waitFor(`${to} to replicate`, () => (pool.watch.replicas().some((r) => r.node === to) ? true : undefined), { timeoutMs: 15_000 });
      const next = await switchover(c, old, to);
      assert.equal(next.node, to);
      const op = (await c.op(next.epoch))!;
      const demoted = op.steps.find((s) => s.name === 'demoted');
      assert.ok(demoted, JSON.stringify(op.steps));
      const readyAt = Date.now();
      await waitFor('writes on the new primary', () => (writer.ackedAfter(readyAt) >= 20 ? true : undefined), { timeoutMs: 20_000 });

      // The old primary: the pool closed its connections and opened none since.
      const oldServer = c.server(old.node);
      await waitFor('no app session on the old primary', async () => ((await appSessions(oldServer)) === 0 ? true : undefined), { timeoutMs: 10_000 });
      const stat = async () => {
        const [row] = await oldServer.query<{ c: number }>("SELECT TOTAL_CONNECTIONS AS c FROM information_schema.USER_STATISTICS WHERE USER = 'app'");
        return Number(row?.c ?? 0);
      };
      const connectionsBefore = await stat();
      await sleep(1_500);
      await writer.stop();
      assert.equal(await stat(), connectionsBefore, 'no new connection reached the old primary');

      const switching = states.findLast((s) => s.state === 'switching' && s.epoch === old.epoch);
      assert.ok(switching, `the pool saw switching: ${JSON.stringify(states)}`);
      const paused = registrations.findLast((r) => r.writesPaused && r.epoch === old.epoch);
      assert.ok(paused, `clients/app-1 said writesPaused at epoch ${old.epoch}: ${JSON.stringify(registrations)}`);
      assert.ok(paused.updatedAt >= switching.at - 50, 'after the switch began');
      const resumed = registrations.at(-1);
      assert.deepEqual([resumed?.writesPaused, resumed?.epoch], [false, next.epoch], 'and resumed at the new epoch');

      // Statements started while the primary was switching were held, then ran on the new primary.
      const rows = await rowsOn(c.server(next.node));
      const heldIds = [...writer.acked.entries()].filter(([, a]) => a.startedAt > switching.at + 20).map(([id]) => id);
      for (const id of heldIds) assert.notEqual(rows.get(id)?.serverId, oldServer.serverId, `write ${id}, started during the switch, went to the new primary`);
      await checkRows(c, next.node, writer, oldServer.serverId, demoted.endedAt ?? demoted.startedAt);
      assert.ok(writer.unknown.size <= 2, `outcomes unknown: ${[...writer.unknown].join(', ')}`);
      process.stdout.write(
        `# switchover: ${writer.acked.size} acknowledged, ${writer.unknown.size} unknown, errors: ${[...new Set(writer.errors.map((e) => e.split(':')[0]))].join(', ') || 'none'}; ` +
          `registrations ${registrations.map((r) => `${r.writesPaused ? 'paused' : 'writing'}@${r.epoch}`).join(' → ')}\n`,
      );
    } finally {
      await writer.stop();
      await regWatch.cancel().catch(() => undefined);
      await pool.end();
      await c.stop();
    }
  });
});
