/**
 * Planned switchover against 3 real MariaDB servers with semi-sync and a 3-member etcd (issue 5):
 * the happy path, the abort path (the candidate cannot catch up: the old primary takes writes again),
 * refusals, and the primary's agent handing over when it is stopped. A client writes throughout; no
 * acknowledged write is lost and two nodes are never writable at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OpRecordSchema, RequestSchema, type OperatorRequest } from '@primacy/common';
import { cleanupAll, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { finishWitnessed, startWitnessed, type ClusterOptions, type TestCluster, type WitnessedCluster, type Writer } from './support/cluster.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

const running = (options: ClusterOptions = {}): Promise<WitnessedCluster> => startWitnessed(etcd, options);

const finish = finishWitnessed;

async function request(c: TestCluster, r: Partial<OperatorRequest> & Pick<OperatorRequest, 'kind'>): Promise<string> {
  const id = `${Date.now()}-test`;
  const value = RequestSchema.parse({ to: null, force: false, requestedAt: Date.now(), by: 'test', ...r });
  await c.etcd.put(c.keys.request(id)).value(JSON.stringify(value));
  return id;
}

/** The longest gap between consecutive acknowledgements inside [from, to]. */
function longestGap(writer: Writer, from: number, to: number): number {
  const times = [...writer.acked.values()].filter((t) => t >= from - 1000 && t <= to + 1000).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

describe('switchover', () => {
  test('to a named replica: it catches up, is promoted at the next epoch, and the old primary follows it', async () => {
    const run = await running();
    const { c, writer } = run;
    const old = (await c.primary())!;
    const asked = Date.now();
    const id = await request(c, { kind: 'switchover', to: 'db2' });
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 20_000 });
    const done = Date.now();
    assert.equal(p.node, 'db2');
    assert.equal(p.epoch, old.epoch + 1);
    const op = (await c.op(p.epoch))!;
    assert.deepEqual([op.kind, op.outcome, op.from, op.to, op.trigger], ['switchover', 'done', 'db1', 'db2', `request ${id}`]);
    assert.deepEqual(op.steps.map((s) => s.name), ['choose', 'clients paused', 'demote', 'demoted', 'catch up', 'write primary', 'ready']);
    assert.equal(await c.etcd.get(c.keys.request(id)).string(), null, 'the request was consumed');
    await waitFor('a write on the new primary', () => writer.firstAckAfter(done) ?? undefined, { timeoutMs: 10_000 });
    await waitFor('the old primary to replicate from the new one', async () => ((await c.member('db1'))?.role === 'replica' ? true : undefined), { timeoutMs: 15_000 });
    process.stdout.write(`# switchover: ${done - asked} ms from request to ready; longest gap between acknowledged writes ${longestGap(writer, asked, done)} ms\n`);
    await finish(run);
  });

  test('aborts when the candidate cannot catch up in time: the old primary takes writes again', async () => {
    const run = await running({ agentConfig: { timings: { switchoverCatchUpMs: 2000 } } });
    const { c, writer } = run;
    const old = (await c.primary())!;
    // db3 applies 30 s late: it receives everything but cannot execute it in time.
    const db3 = await c.server('db3').connect();
    await db3.query('STOP SLAVE');
    await db3.query('CHANGE MASTER TO MASTER_DELAY = 30');
    await db3.query('START SLAVE');
    db3.destroy();
    await new Promise((r) => setTimeout(r, 1500));
    await request(c, { kind: 'switchover', to: 'db3', force: true });
    const op = await waitFor('the switchover to abort', async () => {
      const op = await c.op(old.epoch + 1);
      return op?.outcome === 'aborted' ? op : undefined;
    }, { timeoutMs: 20_000 });
    assert.match(op.reason, /did not catch up/);
    const p = await c.readyPrimary({ timeoutMs: 10_000 });
    assert.deepEqual([p.node, p.epoch], [old.node, old.epoch], 'the old primary stays, at its epoch');
    const abortedAt = Date.now();
    await waitFor('writes to resume on the old primary', () => writer.firstAckAfter(abortedAt) ?? undefined, { timeoutMs: 10_000 });
    const [row] = await c.server('db3').query<{ ro: number }>('SELECT @@global.read_only AS ro');
    assert.equal(row?.ro, 1, 'the candidate never became writable');
    await c.server('db3').query('STOP SLAVE');
    await c.server('db3').query('CHANGE MASTER TO MASTER_DELAY = 0');
    await c.server('db3').query('START SLAVE');
    await finish(run);
  });

  test('is refused, with the reason, for a no-promote node, an unknown node, or the primary itself', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    const refusal = async (r: Partial<OperatorRequest>): Promise<string> => {
      await request(c, { kind: 'switchover', ...r });
      const op = await waitFor('the refusal', async () => {
        const op = await c.op(old.epoch + 1);
        return op?.outcome === 'refused' && op.request?.to === (r.to ?? null) ? op : undefined;
      }, { timeoutMs: 10_000 });
      return op.reason;
    };
    await c.etcd.put(c.keys.config).value(JSON.stringify({ nodes: { db3: { noPromote: true } } }));
    assert.match(await refusal({ to: 'db3' }), /db3 cannot be promoted: marked no-promote/);
    assert.match(await refusal({ to: 'db9' }), /no member named db9/);
    assert.match(await refusal({ to: 'db1' }), /db1 is already the primary/);
    // ops/<epoch + 1> kept only the last of them; history/ keeps each one.
    const kept = Object.values(await c.etcd.getAll().prefix(c.keys.historyPrefix).strings()).map((v) => OpRecordSchema.parse(JSON.parse(v)));
    assert.deepEqual(kept.map((o) => [o.outcome, o.request?.to]), [['refused', 'db3'], ['refused', 'db9'], ['refused', 'db1']]);
    const p = (await c.primary())!;
    assert.deepEqual([p.node, p.epoch, p.state], [old.node, old.epoch, 'ready']);
    await finish(run);
  });

  test('stopping the primary\'s agent hands over through a switchover', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    await c.agents.get(old.node)!.stop();
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 15_000 });
    const op = (await c.op(p.epoch))!;
    assert.equal(op.kind, 'switchover');
    assert.match(op.trigger, /request .*-stop-db1/);
    const [row] = await c.server(old.node).query<{ ro: number }>('SELECT @@global.read_only AS ro');
    assert.equal(row?.ro, 1);
    await finish(run);
  });
});
