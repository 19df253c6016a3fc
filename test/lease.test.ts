/**
 * The agent's lease keeper against a real 3-member etcd (issue 3): it keeps its lease through the
 * loss of the raft leader, again and again. A follower holds keepalives until a new leader is
 * elected, usually within 1–2 s, but a split vote can take 3–4 s: longer than the keeper's own
 * deadline (TTL 5 s − 1.5 s margin, from the send time of the last acknowledged keepalive). Then the
 * lease lapses (the agent fences) and must be restored, the same lease, as soon as etcd answers.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseKeeper } from '../packages/agent/src/etcd/lease.js';
import { cleanupAll, sleep, startEtcd, type EtcdCluster } from './harness/index.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

test('the lease keeper never reaches its deadline while the etcd leader is killed and restarted, three times', async (t) => {
  const client = etcd.client({ dialTimeout: 1000 });
  const keeper = new LeaseKeeper(client, { ttlS: 5, marginMs: 1500, callTimeoutMs: 1000 });
  let lapses = 0;
  let restores = 0;
  const lost: string[] = [];
  keeper.on('lapsed', () => (lapses += 1));
  keeper.on('restored', () => (restores += 1));
  keeper.on('lost', (reason) => lost.push(reason));
  let lastOk = Date.now();
  let longestSilence = 0;
  keeper.on('etcdOk', () => {
    longestSilence = Math.max(longestSilence, Date.now() - lastOk);
    lastOk = Date.now();
  });
  const running = keeper.run();
  try {
    const granted = Date.now();
    while (keeper.id === null && Date.now() - granted < 5000) await sleep(20);
    assert.ok(keeper.id !== null, 'a lease was granted');
    const id = keeper.id;
    let least = Infinity;
    for (let round = 1; round <= 3; round++) {
      const leader = await etcd.leader();
      const killedAt = Date.now();
      await leader.kill();
      void (async () => {
        for (;;) {
          const now = await etcd.leader().catch(() => null);
          if (now !== null && now !== leader) return t.diagnostic(`round ${round}: a new leader after ${Date.now() - killedAt} ms`);
          await sleep(20);
        }
      })();
      const end = Date.now() + 5000;
      while (Date.now() < end) {
        if (keeper.isLive()) least = Math.min(least, keeper.deadline - Date.now());
        await sleep(20);
      }
      await leader.start();
      await sleep(1000);
    }
    t.diagnostic(`least time left before the keeper's deadline: ${Math.round(least)} ms; longest time without an acknowledged keepalive: ${longestSilence} ms; lapsed ${lapses} times`);
    assert.deepEqual(lost, [], 'etcd never dropped the lease');
    assert.equal(keeper.id, id, 'the same lease throughout');
    assert.equal(restores, lapses, 'every lapse was restored');
    assert.equal(keeper.isLive(), true);
  } finally {
    await keeper.stop({ revoke: true });
    await running;
    client.close();
  }
});

test('etcd frozen for 4 s: the lease lapses at the keeper\'s deadline, then etcd still has it and it is restored', async (t) => {
  const client = etcd.client({ dialTimeout: 1000 });
  const keeper = new LeaseKeeper(client, { ttlS: 5, marginMs: 1500, callTimeoutMs: 1000 });
  const events: string[] = [];
  keeper.on('lapsed', () => events.push('lapsed'));
  keeper.on('restored', () => events.push('restored'));
  keeper.on('lost', () => events.push('lost'));
  const running = keeper.run();
  try {
    const granted = Date.now();
    while (keeper.id === null && Date.now() - granted < 5000) await sleep(20);
    const id = keeper.id;
    assert.ok(id !== null, 'a lease was granted');
    await sleep(1000);
    for (const m of etcd.members) m.pause();
    const frozenAt = Date.now();
    while (keeper.isLive() && Date.now() - frozenAt < 5000) await sleep(10);
    const lapsedAfter = Date.now() - frozenAt;
    assert.ok(!keeper.isLive() && lapsedAfter < 3600, `lapsed ${lapsedAfter} ms after etcd froze, inside TTL − margin`);
    await sleep(4000 - lapsedAfter);
    for (const m of etcd.members) m.resume();
    const resumedAt = Date.now();
    while (!keeper.isLive() && Date.now() - resumedAt < 10_000) await sleep(10);
    t.diagnostic(`lapsed ${lapsedAfter} ms after etcd froze; restored ${Date.now() - resumedAt} ms after it resumed`);
    assert.deepEqual(events, ['lapsed', 'restored']);
    assert.equal(keeper.id, id, 'the same lease');
  } finally {
    if (events.length < 2) for (const m of etcd.members) m.resume(); // SIGCONT to a running process is harmless
    await keeper.stop({ revoke: true });
    await running;
    client.close();
  }
});

test('routine keepalives share one long-lived stream: a handful of LeaseKeepAlive streams for many keepalives, and etcd says when the lease is gone', async (t) => {
  const client = etcd.client({ dialTimeout: 1000 });
  const keeper = new LeaseKeeper(client, { ttlS: 5, marginMs: 1500, callTimeoutMs: 1000 });
  const lost: string[] = [];
  keeper.on('lost', (reason) => lost.push(reason));
  const counts = async (): Promise<{ streams: number; keepalives: number }> => {
    const texts = await Promise.all(etcd.members.filter((m) => m.isRunning()).map(async (m) => (await fetch(`${m.endpoint}/metrics`)).text()));
    const sum = (name: string): number =>
      texts.reduce((a, text) => a + Number(new RegExp(`^${name}\\{[^}]*grpc_method="LeaseKeepAlive"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0), 0);
    return { streams: sum('grpc_server_started_total'), keepalives: sum('grpc_server_msg_received_total') };
  };
  const running = keeper.run();
  try {
    while (keeper.id === null) await sleep(20);
    const before = await counts();
    await sleep(4000);
    const after = await counts();
    const keepalives = after.keepalives - before.keepalives;
    const streams = after.streams - before.streams;
    t.diagnostic(`${keepalives} keepalives over ${streams} new streams in 4 s`);
    assert.ok(keepalives >= 6, `${keepalives} keepalives in 4 s (one every 500 ms)`);
    assert.ok(streams <= 1, `${streams} new LeaseKeepAlive streams for ${keepalives} keepalives`);
    assert.ok(keeper.isLive());
    // Revoked behind the keeper's back: the answer on the shared stream (TTL 0) says the lease is gone.
    await client.leaseClient.leaseRevoke({ ID: keeper.id! });
    const revokedAt = Date.now();
    while (lost.length === 0 && Date.now() - revokedAt < 3000) await sleep(20);
    assert.deepEqual(lost, ['etcd says the lease is gone']);
  } finally {
    await keeper.stop({ revoke: true });
    await running;
  }
});

test('a steady keeper renews every TTL/4, and every TTL/10 again as soon as it is not steady', async (t) => {
  const client = etcd.client({ dialTimeout: 1000 });
  let steady = true;
  const keeper = new LeaseKeeper(client, { ttlS: 5, marginMs: 1500, callTimeoutMs: 1000, steady: () => steady });
  let acks = 0;
  keeper.on('etcdOk', () => (acks += 1));
  const running = keeper.run();
  try {
    while (keeper.id === null) await sleep(20);
    const count = async (ms: number): Promise<number> => {
      const from = acks;
      await sleep(ms);
      return acks - from;
    };
    // Let the interval in progress end at the cadence being measured.
    await sleep(1300);
    const steadyAcks = await count(5000);
    steady = false;
    await sleep(1300);
    const busyAcks = await count(5000);
    t.diagnostic(`acknowledged keepalives in 5 s: ${steadyAcks} steady, ${busyAcks} not steady`);
    assert.ok(steadyAcks >= 3 && steadyAcks <= 5, `${steadyAcks} keepalives in 5 s at TTL/4 (1.25 s)`);
    assert.ok(busyAcks >= 8 && busyAcks <= 11, `${busyAcks} keepalives in 5 s at TTL/10 (500 ms)`);
    // The rarer renewal leaves the deadline rule as it was: at least TTL − margin − 1.25 s ahead.
    assert.ok(keeper.deadline - Date.now() > 5000 - 1500 - 1250 - 200, `deadline ${keeper.deadline - Date.now()} ms ahead`);
  } finally {
    await keeper.stop({ revoke: true });
    await running;
    client.close();
  }
});
