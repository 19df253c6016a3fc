/**
 * Failover under harder faults (issue 4): the coordinator dies mid-failover, a replica holds an
 * errant transaction, the old primary returns diverged, and etcd stops entirely. The same witnesses
 * as failover.test.ts: no acknowledged write lost, never two writable nodes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { finishWitnessed, startWitnessed, type ClusterOptions, type TestCluster, type WitnessedCluster } from './support/cluster.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

const running = (options: ClusterOptions = {}): Promise<WitnessedCluster> => startWitnessed(etcd, options);

const finish = finishWitnessed;

const readOnly = async (c: TestCluster, node: string): Promise<boolean> =>
  (await c.server(node).query<{ ro: number }>('SELECT @@global.read_only AS ro'))[0]?.ro === 1;

/** The node's replica applies `seconds` late (MASTER_DELAY); it still receives and acknowledges at once. */
async function delayApplier(c: TestCluster, node: string, seconds: number): Promise<void> {
  const conn = await c.server(node).connect();
  await conn.query('STOP SLAVE');
  await conn.query(`CHANGE MASTER TO MASTER_DELAY = ${seconds}`);
  await conn.query('START SLAVE');
  conn.destroy();
  // Let writes pile up in its relay log.
  await new Promise((r) => setTimeout(r, 1500));
}

describe('failover under harder faults', () => {
  test('the coordinator dies in the middle of a failover: the next one resumes it from its record', async () => {
    const run = await running({ coordinator: 'db2' });
    const { c } = run;
    const old = (await c.primary())!;
    assert.equal(old.node, 'db1');
    const watcher = await c.etcd.watch().key(c.keys.op(old.epoch + 1)).create();
    const opStarted = new Promise<number>((resolve) => watcher.on('put', () => resolve(Date.now())));
    await c.server('db1').kill();
    const startedAt = await opStarted;
    await c.agents.get('db2')!.kill();
    await watcher.cancel();
    // Its service manager restarts it; the op must not wait for its old lease to be forgotten to be safe.
    await c.restartAgent('db2');
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
    assert.notEqual(p.node, 'db1');
    const op = (await c.op(p.epoch))!;
    assert.equal(op.outcome, 'done');
    // The next coordinator resumes the record, or (when a replica did not answer in time, e.g. db2
    // still restarting) rolls it back and starts again; either way it finishes, and nothing is done twice.
    const resumed = op.startedAt <= startedAt;
    process.stdout.write(`# coordinator handover: the failover was ${resumed ? 'resumed' : 'rolled back and started again'} by ${op.coordinator.node}\n`);
    // db1's and db3's agents campaigned before db2's restarted one, so one of them coordinates now.
    assert.notEqual(op.coordinator.node, 'db2', `finished by the next coordinator: ${JSON.stringify(op.coordinator)}`);
    assert.equal(op.steps.filter((s) => s.name === 'write primary').length, 1, 'the promotion was written once');
    await finish(run);
  });

  test('a replica with an errant transaction is never chosen', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    // A write straight on db3 (SUPER ignores read_only on MariaDB), in a domain of its own so replication goes on.
    const conn = await c.server('db3').connect();
    await conn.query('SET SESSION gtid_domain_id = 9');
    await conn.query('CREATE TABLE app.errant (id INT PRIMARY KEY)');
    conn.destroy();
    // Not waited for in db3's member key: a steady replica republishes its positions only every
    // replicaPublishRefreshMs, and the failover must learn of them from what db3 publishes once the primary is gone.
    const [row] = await c.server('db3').query<{ g: string }>('SELECT @@GLOBAL.gtid_binlog_pos AS g');
    assert.match(row?.g ?? '', /9-3-1/);
    await c.server(old.node).kill();
    const p = await c.readyPrimary({ after: old.epoch });
    assert.equal(p.node, 'db2');
    const op = (await c.op(p.epoch))!;
    const db3 = op.candidates.find((v) => v.node === 'db3');
    assert.match(db3?.reason ?? '', /errant GTIDs 9-3-1/);
    assert.equal(db3?.eligible, false);
    assert.equal((await c.server('db2').query('SHOW TABLES FROM app LIKE \'errant\'')).length, 0, 'the errant write did not spread');
    await finish(run);
  });

  test('the old primary comes back with a transaction the new primary lacks: marked diverged, never rejoined', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    await c.agents.get(old.node)!.kill();
    const p = await c.readyPrimary({ after: old.epoch });
    // A write that slipped onto the fenced old primary (a SUPER session ignores read_only on MariaDB),
    // with semi-sync off there, since no replica would acknowledge it.
    await c.server(old.node).query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
    await c.server(old.node).query('INSERT INTO app.acks (id) VALUES (1000000)');
    const [{ s: extra } = { s: '' }] = await c.server(old.node).query<{ s: string }>('SELECT @@gtid_binlog_pos AS s');
    await c.restartAgent(old.node);
    const m = await waitFor('the old primary to be marked diverged', async () => {
      const m = await c.member(old.node);
      return m?.role === 'diverged' ? m : undefined;
    }, { timeoutMs: 15_000 });
    assert.equal(m.errant, extra);
    assert.equal(m.server?.replication, null, 'never rejoined silently');
    assert.equal(await readOnly(c, old.node), true);
    const noted = await waitFor('the op record to list it', async () => {
      const op = await c.op(p.epoch);
      return op?.steps.find((s) => s.name === `diverged ${old.node}`);
    }, { timeoutMs: 10_000 });
    assert.match(noted.detail, new RegExp(extra));
    // Stays out: still diverged a little later, and never promoted.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await c.member(old.node))?.role, 'diverged');
    assert.equal((await c.primary())?.node, p.node);
    await finish(run);
  });

  test('a candidate that cannot apply its relay log in time is replaced by the next one, which has all it received', async () => {
    const run = await running({ agentConfig: { timings: { relayApplyTimeoutMs: 1500 } } });
    const { c } = run;
    const old = (await c.primary())!;
    // db2 is preferred, and applies 20 s late: it receives (and acknowledges) everything but cannot apply it in time.
    await c.etcd.put(c.keys.config).value(JSON.stringify({ maxLagMs: 60_000, nodes: { db2: { priority: 10 } } }));
    await delayApplier(c, 'db2', 20);
    await c.server(old.node).kill();
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
    assert.equal(p.node, 'db3');
    assert.equal(p.epoch, old.epoch + 2);
    const first = (await c.op(old.epoch + 1))!;
    assert.deepEqual([first.from, first.to, first.outcome], [old.node, 'db2', 'aborted']);
    assert.match(first.reason, /db2 has not finished its promotion to epoch \d+ within 4500 ms/);
    const second = (await c.op(p.epoch))!;
    assert.deepEqual([second.kind, second.from, second.to, second.outcome], ['failover', 'db2', 'db3', 'done']);
    assert.ok(second.mustContain, 'the record keeps what db2 received');
    assert.equal(await readOnly(c, 'db2'), true);
    await finish(run);
  });

  test('a candidate that applies a relay log longer than the limit, steadily, is waited for and promoted, not replaced', async () => {
    const run = await running({ agentConfig: { timings: { relayApplyTimeoutMs: 1500 } } });
    const { c } = run;
    const old = (await c.primary())!;
    // db2 is preferred and applies 7 s late: at the kill it holds 7 s of writes (and heartbeats) to
    // apply, which it applies as their time comes, steadily; the limit without progress is 4.5 s.
    await c.etcd.put(c.keys.config).value(JSON.stringify({ maxLagMs: 60_000, nodes: { db2: { priority: 10 } } }));
    await delayApplier(c, 'db2', 7);
    await new Promise((r) => setTimeout(r, 6000));
    await c.server(old.node).kill();
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
    assert.deepEqual([p.node, p.epoch], ['db2', old.epoch + 1]);
    const op = (await c.op(p.epoch))!;
    assert.equal(op.outcome, 'done');
    assert.equal(op.applied?.node, 'db2', 'its progress was noted');
    const promoting = op.steps.find((s) => s.name === 'ready');
    assert.ok(promoting && promoting.endedAt! - promoting.startedAt > 4500, `waited ${promoting ? promoting.endedAt! - promoting.startedAt : '?'} ms, past the limit without progress`);
    await finish(run);
  });

  test('a stuck candidate that alone holds acknowledged writes is waited for, never replaced', async () => {
    const run = await running({ agentConfig: { timings: { relayApplyTimeoutMs: 1500 } } });
    const { c, writer } = run;
    const old = (await c.primary())!;
    await c.etcd.put(c.keys.config).value(JSON.stringify({ nodes: { db2: { priority: 10 } } }));
    // db3 stops receiving (its IO thread retries with a wrong password, which its agent leaves alone),
    // and db2 applies 15 s late (the refusal must come before that, even on a loaded machine): what db1 acknowledged from now on is only in db2's relay log.
    const db3 = await c.server('db3').connect();
    await db3.query('STOP SLAVE');
    await db3.query("CHANGE MASTER TO MASTER_PASSWORD = 'wrong'");
    await db3.query('START SLAVE');
    db3.destroy();
    await delayApplier(c, 'db2', 15);
    const killedAt = Date.now();
    await c.server(old.node).kill();
    const refused = await waitFor('the refusal to replace db2', async () => {
      const op = await c.op(old.epoch + 2);
      return op?.outcome === 'refused' ? op : undefined;
    }, { timeoutMs: 20_000 });
    assert.match(refused.reason, /no other replica has everything db2 received .* db2 keeps trying/);
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
    assert.deepEqual([p.node, p.epoch], ['db2', old.epoch + 1], 'db2 itself finished, once it had applied everything');
    await waitFor('a write on db2', () => writer.firstAckAfter(killedAt) ?? undefined, { timeoutMs: 10_000 });
    await finish(run);
  });

  test('a replica whose mysqld is down, then the primary killed: failover to the survivor, nothing acknowledged lost', async () => {
    const run = await running();
    const { c, writer } = run;
    const old = (await c.primary())!;
    await c.server('db3').kill();
    // db3's agent publishes when its down period began; db1's agent then republishes what it has, from a probe after that.
    const down = await waitFor('db3 seen down, with the revision its down period began', async () => {
      const m = await c.member('db3');
      return m?.health === 'down' && m.downSinceRevision !== null ? BigInt(m.downSinceRevision) : undefined;
    }, { timeoutMs: 10_000 });
    await waitFor('db1 to publish an answer from after that', async () => {
      const m = await c.member(old.node);
      return m?.lastAnswer && BigInt(m.lastAnswer.seenRevision) >= down ? true : undefined;
    }, { timeoutMs: 10_000 });
    const killedAt = Date.now();
    await c.server(old.node).kill();
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 20_000 });
    assert.equal(p.node, 'db2');
    const op = (await c.op(p.epoch))!;
    assert.equal(op.outcome, 'done');
    assert.equal(op.candidates.find((v) => v.node === 'db2')?.reason, 'chosen');
    const steps = op.steps.map((s) => `${s.name} +${s.startedAt - killedAt}`).join(', ');
    process.stdout.write(`# replica down, then primary killed: db2 ready ${p.since - killedAt} ms after the kill (${steps})\n`);
    // With no replica left to acknowledge, db2's first commits wait out the semi-sync timeout (10 s) before it falls back.
    await waitFor('a write on db2', () => writer.firstAckAfter(killedAt) ?? undefined, { timeoutMs: 25_000 });
    await c.server('db3').start();
    await finish(run);
  });

  test('a primary key overwritten with garbage: every node fences, then the coordinator rebuilds it and writes resume on the same primary', async () => {
    const run = await running();
    const { c, writer } = run;
    const old = (await c.primary())!;
    const brokenAt = Date.now();
    await c.etcd.put(c.keys.primary).value('{"node": 42');
    const p = await c.readyPrimary({ timeoutMs: 20_000 });
    assert.deepEqual([p.node, p.epoch], [old.node, old.epoch], 'the same primary, at the same epoch');
    await waitFor('writes to resume', () => writer.firstAckAfter(brokenAt + 1) ?? undefined, { timeoutMs: 15_000 });
    const op = (await c.op(old.epoch))!;
    const repaired = op.steps.find((s) => s.name === 'primary repaired');
    assert.ok(repaired, JSON.stringify(op.steps));
    process.stdout.write(`# primary key repaired ${repaired.startedAt - brokenAt} ms after it was overwritten\n`);
    // The repair holds, and the witnesses watch it for a while (it is over in milliseconds).
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual([(await c.primary())?.node, (await c.primary())?.epoch], [old.node, old.epoch]);
    await finish(run);
  });

  test('etcd stopped entirely for 10 s: the primary fences itself, and writes resume on it when etcd returns', async () => {
    const run = await running();
    const { c, writer } = run;
    const old = (await c.primary())!;
    const stoppedAt = Date.now();
    await Promise.all(etcd.members.map((m) => m.kill()));
    const fencedAt = await waitFor('the primary to fence itself', async () => ((await readOnly(c, old.node)) ? Date.now() : undefined), { timeoutMs: 8000, intervalMs: 20 });
    const fencedAfter = fencedAt - stoppedAt;
    assert.ok(fencedAfter < 5000, `fenced ${fencedAfter} ms after etcd stopped, inside the lease TTL`);
    const ackedWhileFenced = () => [...writer.acked.values()].filter((t) => t > fencedAt + 100).length;
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - stoppedAt))));
    assert.equal(ackedWhileFenced(), 0, 'no write is acknowledged while the primary is fenced');
    const restartedAt = Date.now();
    await Promise.all(etcd.members.map((m) => m.start({ waitForHealth: false })));
    const p = await c.readyPrimary({ timeoutMs: 30_000 });
    await waitFor('writes to resume', () => writer.firstAckAfter(restartedAt) ?? undefined, { timeoutMs: 30_000 });
    const resumedAfter = (writer.firstAckAfter(restartedAt) ?? 0) - restartedAt;
    process.stdout.write(`# etcd outage: fenced after ${fencedAfter} ms; writes resumed ${resumedAfter} ms after etcd returned; primary ${p.node} epoch ${p.epoch} (was ${old.node} epoch ${old.epoch})\n`);
    await finish(run);
  });
});
