/**
 * Automatic failover against 3 real MariaDB servers with semi-sync AFTER_SYNC and a 3-member etcd
 * (issue 4). Every scenario runs a writer that records each acknowledged write and a poller that
 * checks every node's read_only every 20 ms; each asserts that no acknowledged write was lost and
 * that two nodes were never writable at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mariaStateMissing } from '@primacy/common';
import { APP, cleanupAll, startEtcd, startProxy, waitFor, type EtcdCluster } from './harness/index.js';
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

async function failedOverFrom(c: TestCluster, from: string, epoch: number, timeoutMs = 20_000) {
  const p = await c.readyPrimary({ after: epoch, timeoutMs });
  assert.notEqual(p.node, from);
  const op = await c.op(p.epoch);
  assert.equal(op?.kind, 'failover');
  assert.equal(op?.from, from);
  assert.equal(op?.to, p.node);
  assert.equal(op?.outcome, 'done');
  return { p, op: op! };
}

describe('failover', () => {
  test('kill -9 of the primary\'s mysqld: a replica takes over, and the old primary rejoins as a replica', async () => {
    const run = await running();
    const { c, writer } = run;
    const old = (await c.primary())!;
    const killedAt = Date.now();
    await c.server(old.node).kill();
    const { p, op } = await failedOverFrom(c, old.node, old.epoch);
    await waitFor('a write on the new primary', () => writer.firstAckAfter(killedAt) ?? undefined, { timeoutMs: 10_000 });
    assert.ok(op.candidates.some((v) => v.node === p.node && v.reason === 'chosen'), JSON.stringify(op.candidates));
    assert.deepEqual(op.steps.map((s) => s.name), ['detect', 'fence', 'fenced', 'revoke', 'choose', 'write primary', 'ready']);
    // A refused connection on the agent's own host is the proof: mysqld is gone, not merely silent.
    assert.equal(op.proof?.kind, 'server-gone', JSON.stringify(op.proof));
    assert.ok(op.steps.every((s) => s.endedAt !== null && s.outcome !== 'running'), JSON.stringify(op.steps));
    // The old primary comes back read-only. If everything it has is on the new primary it replicates
    // from it; if a commit was cut off by the kill, its crash recovery keeps a transaction nobody else
    // has, and it must stay out, marked diverged. The servers themselves say which case this is.
    await c.server(old.node).start();
    const back = await waitFor('the old primary to come back', async () => {
      const m = await c.member(old.node);
      return m?.role === 'replica' || m?.role === 'diverged' ? m : undefined;
    }, { timeoutMs: 15_000 });
    const state = async (node: string) => (await c.server(node).query<{ s: string }>('SELECT @@gtid_binlog_state AS s'))[0]!.s;
    const extra = mariaStateMissing(await state(old.node), await state(p.node));
    assert.equal(back.server?.readOnly, true);
    if (extra === '') {
      assert.equal(back.role, 'replica');
      assert.equal(back.server?.replication?.sourcePort, p.port);
    } else {
      assert.equal(back.role, 'diverged');
      assert.equal(back.errant, extra);
    }
    await finish(run);
  });

  test('kill -9 of the primary\'s agent while mysqld lives: fenced over SQL, then failed over', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    await c.agents.get(old.node)!.kill();
    const { op } = await failedOverFrom(c, old.node, old.epoch);
    // An expired lease proves nothing: the proof is the coordinator's own fence, read back.
    assert.equal(op.proof?.kind, 'sql-fenced', JSON.stringify(op.proof));
    assert.match(op.proof?.detail ?? '', /read_only read back ON/);
    assert.equal((await c.server(old.node).query<{ ro: number }>('SELECT @@global.read_only AS ro'))[0]?.ro, 1);
    // The old primary comes back with nothing the new primary lacks: fenced before the replicas were
    // revoked, everything in its binlog reached them. Its agent, restarted, rejoins it as a replica.
    const p = (await c.primary())!;
    await c.restartAgent(old.node);
    const back = await waitFor('the old primary to rejoin as a replica', async () => {
      const m = await c.member(old.node);
      return m?.role === 'replica' || m?.role === 'diverged' ? m : undefined;
    }, { timeoutMs: 20_000 });
    assert.equal(back.role, 'replica', `rejoined, not diverged: ${back.errant ?? ''}`);
    assert.equal(back.errant, null);
    assert.equal(back.server?.readOnly, true);
    assert.equal(back.server?.replication?.sourcePort, p.port);
    await finish(run);
  });

  test('SIGSTOP of the primary\'s agent: failed over; when it wakes it does not take writes', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    const agent = c.agents.get(old.node)!;
    agent.pause();
    const { p } = await failedOverFrom(c, old.node, old.epoch);
    agent.resume();
    // Woken, it finds another primary: its node stays read-only and it either rejoins as a replica or,
    // if a write was cut off mid-commit when it was fenced, stays out marked diverged.
    const back = await waitFor('the woken agent to publish again', async () => {
      const m = await c.member(old.node);
      return m && (m.role === 'replica' || m.role === 'diverged') ? m : undefined;
    }, { timeoutMs: 15_000 });
    assert.equal(back.server?.readOnly, true);
    assert.equal((await c.primary())?.node, p.node);
    await finish(run);
  });

  test('the primary\'s agent cut off from etcd fences its node before any promotion', async () => {
    const proxies = new Map<string, Awaited<ReturnType<typeof startProxy>>>();
    for (const node of ['db1', 'db2', 'db3']) {
      const first = new URL(etcd.endpoints[0]!);
      proxies.set(node, await startProxy({ targetHost: first.hostname, targetPort: Number(first.port) }));
    }
    const run = await running({ etcdEndpointsFor: (node) => [`http://127.0.0.1:${proxies.get(node)!.port}`] });
    const { c } = run;
    const old = (await c.primary())!;
    const cutAt = Date.now();
    proxies.get(old.node)!.cut();
    const fencedAt = await waitFor('the isolated primary to turn read-only', async () => {
      const [row] = await c.server(old.node).query<{ ro: number }>('SELECT @@global.read_only AS ro');
      return row?.ro === 1 ? Date.now() : undefined;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    const { p } = await failedOverFrom(c, old.node, old.epoch);
    const promotedAt = p.since;
    assert.ok(fencedAt <= promotedAt, `fenced ${fencedAt - cutAt} ms after the cut, promoted ${promotedAt - cutAt} ms after`);
    assert.ok(fencedAt - cutAt < 5000, `fenced within the lease TTL (${fencedAt - cutAt} ms)`);
    proxies.get(old.node)!.restore();
    await waitFor('the isolated agent to rejoin as a replica', async () => ((await c.member(old.node))?.role === 'replica' ? true : undefined), { timeoutMs: 20_000 });
    await finish(run);
    for (const proxy of proxies.values()) await proxy.close();
  });

  test('"too many connections" on the primary is not a failure', async () => {
    const run = await running({ maxConnections: 20 });
    const { c } = run;
    const old = (await c.primary())!;
    const server = c.server(old.node);
    const hogs: Array<Awaited<ReturnType<typeof server.connect>>> = [];
    for (let i = 0; i < 40; i++) {
      try {
        hogs.push(await server.connect(APP, { connectTimeout: 500 }));
      } catch {
        break;
      }
    }
    // MariaDB keeps one more connection for SUPER users: take it, drop the agent's own connections
    // from it, and take the slots they freed, until the agent's reconnects meet error 1040. The agent
    // reconnects every probe, so this repeats until it is seen refusing.
    // The agent may have reconnected into that extra slot meanwhile (a probe timed out under load):
    // then give one application slot back for the spare, and take it from the agent below.
    const connectSpare = async (tries: number): Promise<Awaited<ReturnType<typeof server.connect>>> => {
      try {
        return await server.connect(undefined, { connectTimeout: 500 });
      } catch (err) {
        if (tries <= 1 || hogs.length === 0) throw err;
        hogs.pop()!.destroy();
        await new Promise((r) => setTimeout(r, 100));
        return connectSpare(tries - 1);
      }
    };
    const spare = await connectSpare(6);
    const refusing = await waitFor('the primary\'s agent to see it refusing', async () => {
      const [agentSessions] = await spare.query("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = 'primacy' AND ID <> CONNECTION_ID()");
      for (const { id } of agentSessions as Array<{ id: number }>) await spare.query(`KILL CONNECTION ${id}`).catch(() => undefined);
      for (let i = 0; i < 10; i++) {
        try {
          hogs.push(await server.connect(undefined, { connectTimeout: 500 }));
        } catch {
          break;
        }
      }
      const m = await c.member(old.node);
      return m?.health === 'refusing' ? m : undefined;
    }, { timeoutMs: 20_000, intervalMs: 300 });
    assert.match(refusing.error ?? '', /1040|too many connections/i);
    await new Promise((r) => setTimeout(r, 3000));
    const now = (await c.primary())!;
    assert.deepEqual([now.node, now.epoch], [old.node, old.epoch]);
    assert.equal(await c.op(old.epoch + 1), null, 'no failover was even considered');
    for (const h of [...hogs, spare]) h.destroy();
    await finish(run);
  });

  test('paused: no failover, and the refusal is recorded', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: true }));
    await c.server(old.node).kill();
    const refused = await waitFor('the refusal', async () => {
      const op = await c.op(old.epoch + 1);
      return op?.outcome === 'refused' ? op : undefined;
    }, { timeoutMs: 10_000 });
    assert.match(refused.reason, /paused/);
    assert.equal((await c.primary())?.node, old.node);
    // Resuming lets the failover proceed.
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: false }));
    await failedOverFrom(c, old.node, old.epoch);
    await finish(run);
  });

  test('a second failure inside the anti-flapping window is refused with the reason', async () => {
    const run = await running();
    const { c } = run;
    const first = (await c.primary())!;
    await c.server(first.node).kill();
    const { p: second } = await failedOverFrom(c, first.node, first.epoch);
    await c.server(second.node).kill();
    const refused = await waitFor('the anti-flapping refusal', async () => {
      const op = await c.op(second.epoch + 1);
      return op?.outcome === 'refused' ? op : undefined;
    }, { timeoutMs: 10_000 });
    assert.match(refused.reason, /anti-flapping/);
    assert.equal((await c.primary())?.node, second.node);
    await c.server(second.node).start();
    await waitFor('the second primary to come back and be writable again', async () => {
      const [row] = await c.server(second.node).query<{ ro: number }>('SELECT @@global.read_only AS ro');
      return row?.ro === 0 ? true : undefined;
    }, { timeoutMs: 15_000 });
    await finish(run);
  });

  test('losing one etcd member causes no failover', async () => {
    const run = await running();
    const { c } = run;
    const old = (await c.primary())!;
    const victim = await etcd.leader();
    await victim.kill();
    await new Promise((r) => setTimeout(r, 8000));
    const now = (await c.primary())!;
    assert.deepEqual([now.node, now.epoch, now.state], [old.node, old.epoch, 'ready']);
    await victim.start();
    await finish(run);
  });
});
