/**
 * The whole cluster down at once, then back one node at a time (issue 11), on live MariaDB and etcd.
 * Three orders: a replica that was behind first (it waits; the node whose position contains
 * everyone's last published one is promoted when it comes back), the last primary first (it takes
 * writes again at its epoch), and, with `restartUnsafe`, the replica that was behind first (it is
 * promoted, the failover record says writes may have been lost, and the old primary, back later,
 * is diverged).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LastSeenRecordSchema, OpRecordSchema, type LastSeenRecord, type OpRecord } from '@primacy/common';
import { APP, cleanupAll, sleep, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { binlogPos } from './support/checksums.js';
import { startCluster, type TestCluster } from './support/cluster.js';

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd({ members: 1 });
});
after(cleanupAll);

/** The sequence number of a one-domain, one-server MariaDB position. */
const seq = (gtid: string): number => Number(/^0-\d+-(\d+)$/.exec(gtid)?.[1] ?? -1);

async function lastSeen(c: TestCluster): Promise<LastSeenRecord | null> {
  const raw = await c.etcd.get(c.keys.lastSeen).string();
  return raw === null ? null : LastSeenRecordSchema.parse(JSON.parse(raw));
}

async function opAt(c: TestCluster, epoch: number): Promise<OpRecord | null> {
  const raw = await c.etcd.get(c.keys.op(epoch)).string();
  return raw === null ? null : OpRecordSchema.parse(JSON.parse(raw));
}

async function stopNode(c: TestCluster, node: string): Promise<void> {
  await c.agents.get(node)!.kill();
  await c.server(node).kill();
}

async function startNode(c: TestCluster, node: string): Promise<void> {
  await c.server(node).start();
  await c.restartAgent(node);
}

/**
 * `behind` goes down first; the primary commits `rows` more (the other replica acknowledges them)
 * and the coordinator's last-seen record shows them; then every other node goes down too, and the
 * test waits until no member key is left.
 */
async function wholeClusterDown(c: TestCluster, behind: string, rows: number[]): Promise<{ primary: string; epoch: number; last: string }> {
  await c.settled(30_000);
  const p = (await c.primary())!;
  await stopNode(c, behind);
  const primary = c.server(p.node);
  for (const id of rows) await primary.query('INSERT INTO app.acks (id) VALUES (?)', [id], { creds: APP });
  const last = await binlogPos(primary);
  await waitFor('the last-seen record to show the primary\'s last writes', async () => (seq((await lastSeen(c))?.nodes[p.node]?.executed ?? '') >= seq(last) ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
  await Promise.all(c.db.servers.map((s) => s.name).filter((n) => n !== behind).map((n) => stopNode(c, n)));
  await waitFor('every member key gone with its lease', async () => ((await c.etcd.getAll().prefix(c.keys.membersPrefix).keys()).length === 0 ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 });
  return { primary: p.node, epoch: p.epoch, last };
}

describe('the whole cluster down, back one node at a time', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster(etcd, { coordinator: 'db3', agentConfig: { timings: { antiFlapMs: 0 } } });
  });
  after(() => c.stop());

  test('by default the replica that was behind waits; the node that holds everything is promoted', { timeout: 240_000 }, async () => {
    const down = await wholeClusterDown(c, 'db2', [1, 2, 3, 4, 5]);
    assert.equal(down.primary, 'db1');
    await startNode(c, 'db2');
    // db2 lacks db1's last writes: whatever the coordinator decides, it is not a promotion.
    // Until db2's agent has probed its server, the refusal says no node answers yet; then it names db2.
    const refused = await waitFor('the failover refused while db2 alone is back', async () => {
      const op = await opAt(c, down.epoch + 1);
      return op?.outcome === 'refused' && / db2 has /.test(op.reason) ? op : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    // The primary's heartbeats move its position on after the test's last write: at least that one.
    const waitedFor = /the whole cluster was down \(db1, db3 not back\): waiting for db1 \(the last primary\) or for a node whose position contains everyone's last published one \((0-1-\d+)\); db2 has /.exec(refused.reason);
    assert.ok(waitedFor, refused.reason);
    assert.ok(seq(waitedFor[1]!) >= seq(down.last), `${waitedFor[1]} contains ${down.last}`);
    await sleep(3000);
    const still = (await c.primary())!;
    assert.equal(still.node, 'db1');
    assert.equal(still.epoch, down.epoch, 'nobody was promoted');

    await startNode(c, 'db3');
    const next = await c.readyPrimary({ after: down.epoch, timeoutMs: 60_000 });
    assert.equal(next.node, 'db3', 'db3 received every write of db1');
    const op = (await opAt(c, next.epoch))!;
    assert.ok(op.mustContain !== null && seq(op.mustContain) >= seq(down.last), `mustContain ${op.mustContain} contains ${down.last}`);
    await startNode(c, 'db1');
    await c.settled(60_000);
    const rows = await c.server('db3').query<{ id: number }>('SELECT id FROM app.acks WHERE id <= 5 ORDER BY id');
    assert.deepEqual(rows.map((r) => r.id), [1, 2, 3, 4, 5]);
    assert.equal((await c.member('db1'))?.role, 'replica');
  });

  test('the last primary back first takes writes again at its epoch; nothing fails over', { timeout: 240_000 }, async () => {
    const down = await wholeClusterDown(c, 'db1', [6, 7]);
    assert.equal(down.primary, 'db3');
    await startNode(c, 'db3');
    const p = await c.readyPrimary({ timeoutMs: 60_000 });
    assert.equal(p.node, 'db3');
    assert.equal(p.epoch, down.epoch);
    await waitFor('db3 writable again', async () => ((await c.server('db3').query<{ ro: number }>('SELECT @@GLOBAL.read_only AS ro'))[0]?.ro === 0 ? true : undefined), { timeoutMs: 30_000 });
    await startNode(c, 'db1');
    await startNode(c, 'db2');
    await c.settled(60_000);
    assert.equal((await c.primary())?.epoch, down.epoch, 'no failover');
    assert.equal((await opAt(c, down.epoch + 1))?.outcome !== 'running', true);
  });

  test('restartUnsafe promotes the first node back and says writes may have been lost', { timeout: 240_000 }, async () => {
    await c.etcd.put(c.keys.config).value(JSON.stringify({ restartUnsafe: true }));
    const down = await wholeClusterDown(c, 'db2', [11, 12, 13]);
    assert.equal(down.primary, 'db3');
    await startNode(c, 'db2');
    const next = await c.readyPrimary({ after: down.epoch, timeoutMs: 60_000 });
    assert.equal(next.node, 'db2');
    const op = (await opAt(c, next.epoch))!;
    // Decided when db2's agent is back: its server may not have answered a probe yet.
    const unsafe = /restartUnsafe: the whole cluster was down and db1, (?:db2, )?db3 are not back; no node back holds everyone's last published position \((0-3-\d+)\), so writes may have been lost$/.exec(op.reason);
    assert.ok(unsafe, op.reason);
    assert.ok(seq(unsafe[1]!) >= seq(down.last));
    // The old primary comes back with the writes db2 never had: it is diverged, not silently replicating.
    await startNode(c, 'db3');
    const m = await waitFor('db3 reported diverged', async () => {
      const x = await c.member('db3');
      return x?.errant ? x : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(m.role, 'diverged');
  });
});
