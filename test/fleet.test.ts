/**
 * The fleet read of `primacy clusters`, `status --all` and `primacy web` against a real etcd, with
 * clusters written as their agents and coordinators would (no MariaDB needed: these read etcd
 * only): history/ and old ops/ records are not read and change nothing, every request of one read
 * is at one revision, and the web page has every cluster after one read.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { clusterKeys } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { cleanupAll, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { T0, clusterKvs, op, primary } from '../packages/cli/src/testing/fixtures.js';
import { FleetClient, type FleetTuning } from '../packages/cli/src/etcd.js';
import { fleetModel, groupByCluster, type FleetJson } from '../packages/cli/src/fleet.js';
import { LiveClusters } from '../packages/cli/src/web/live.js';
import type { WebState } from '../packages/cli/src/web/model.js';

let etcd: EtcdCluster;
let client: Etcd3;
const where = (root: string) => ({ endpoints: etcd.endpoints, root, tls: null, auth: null });
const name = (i: number) => `c${String(i).padStart(4, '0')}`;

async function putAll(kvs: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
  // As campaigns make them: the coordinator's election key first, each later one at a later revision.
  const election = (suffix: string) => (kv: { key: string }) => /\/election\/lease-\d$/.test(kv.key) && kv.key.endsWith(suffix);
  await putBatches(kvs.filter((kv) => !/\/election\//.test(kv.key)));
  for (const suffix of ['9', '8', '7']) await putBatches(kvs.filter(election(suffix)));
}

async function putBatches(kvs: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
  // etcd takes at most 128 operations in one transaction.
  const batches: Array<typeof kvs> = [];
  for (let i = 0; i < kvs.length; i += 100) batches.push(kvs.slice(i, i + 100));
  for (let i = 0; i < batches.length; i += 8) {
    await Promise.all(batches.slice(i, i + 8).map((b) => client.if('/none', 'Version', '>', -1).then(...b.map((kv) => client.put(kv.key).value(kv.value))).commit()));
  }
}

/**
 * `n` clusters under `root` at epoch 60, each with `history` older operations kept twice over, as
 * years of switchovers leave them: in history/ and in ops/<epoch>.
 */
function fleetKvs(root: string, n: number, history: number): Array<{ key: string; value: string }> {
  return Array.from({ length: n }, (_, i) => {
    const k = clusterKeys(name(i), root);
    const old = Array.from({ length: history }, (_, j) => op({ epoch: j + 3, kind: 'switchover', outcome: j % 2 ? 'done' : 'aborted' }));
    return [
      ...clusterKvs(name(i), { lastOp: op({ epoch: 60 }), primary: i === 3 ? null : primary('db2', { epoch: 60 }) }, root),
      ...old.map((o, j) => ({ key: k.historyEntry(T0 - (history - j) * 60_000, `${o.epoch}-switchover-${o.outcome}`), value: JSON.stringify(o) })),
      ...old.map((o) => ({ key: k.op(o.epoch), value: JSON.stringify(o) })),
    ];
  }).flat();
}

/** What a user sees of a fleet, without what changes from read to read. */
function seen(f: FleetJson): unknown {
  return { ...f, root: null, revision: null, readAt: null };
}

async function cli(argv: string[], root: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, isTTY: false, env: { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_ROOT: root } };
  const code = await main(argv, io);
  return { code, out, err };
}

before(async () => {
  etcd = await startEtcd({ members: 1 });
  client = etcd.client({ grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
});

after(async () => {
  await etcd?.stop();
  await cleanupAll();
});

describe('the fleet read', () => {
  test('1,000 clusters: 50 history/ and 50 old ops/ records each change nothing in the output and are not read', async (t) => {
    await putAll(fleetKvs('/bare', 1000, 0));
    await putAll(fleetKvs('/aged', 1000, 50));
    const seenBy = new Map<string, { model: FleetJson; keys: number; bytes: number }>();
    for (const root of ['/bare', '/aged']) {
      const fleet = new FleetClient(where(root));
      try {
        await fleet.readFleet();
        const timings: number[] = [];
        let read = await fleet.readFleet();
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          read = await fleet.readFleet();
          timings.push(performance.now() - started);
        }
        const cliTimings: number[] = [];
        let out = '';
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          const r = await cli(['clusters', '--json'], root);
          cliTimings.push(performance.now() - started);
          assert.equal(r.code, 0, r.err);
          out = r.out;
        }
        const c = read.cost;
        const total = await client.getAll().prefix(`${root}/`).count();
        // For comparison, the read this replaced: every key-value under the root in one range.
        const rootTimings: number[] = [];
        let rootBytes = 0;
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          const all = await client.getAll().prefix(`${root}/`).exec();
          rootTimings.push(performance.now() - started);
          rootBytes = all.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
        }
        t.diagnostic(`${root}: one range of the whole root: ${(rootBytes / 1e6).toFixed(2)} MB, best of 3 ${Math.min(...rootTimings).toFixed(0)} ms`);
        t.diagnostic(
          `${root}: ${total} keys in etcd; read ${c.keys} key-values (${(c.bytes / 1e6).toFixed(2)} MB) and listed ${c.listedKeys} keys (${(c.listedBytes / 1e6).toFixed(2)} MB) in ${c.requests} requests; ` +
            `the read best of 3 ${Math.min(...timings).toFixed(0)} ms, primacy clusters --json best of 3 ${Math.min(...cliTimings).toFixed(0)} ms`,
        );
        assert.equal(read.clusters.size, 1000);
        // 3 members, 3 election keys, primary, epoch and the newest op; c0003 has no primary.
        assert.equal(c.keys, 1000 * 9 - 1);
        // The listing's pages, one more that finds the end, and 1,000 clusters of 5 ranges in transactions of 128 at most.
        assert.ok(c.requests <= Math.ceil(total / 10_000) + 1 + Math.ceil(1000 / 25), `${c.requests} requests`);
        seenBy.set(root, { model: JSON.parse(out) as FleetJson, keys: c.keys, bytes: c.bytes });
      } finally {
        fleet.close();
      }
    }
    const bare = seenBy.get('/bare')!;
    const aged = seenBy.get('/aged')!;
    assert.deepEqual(seen(aged.model), seen(bare.model), 'the same clusters, health and notes');
    assert.equal(aged.model.clusters.length, 1000);
    assert.deepEqual([aged.model.clusters[3]!.cluster, aged.model.clusters[3]!.health], ['c0003', 'down']);
    assert.deepEqual(aged.model.clusters[0]!.primary?.epoch, 60);
    assert.deepEqual([aged.keys, aged.bytes], [bare.keys, bare.bytes], 'not one history/ or old ops/ value read');
  });

  test('a paged read: every page and transaction at the first one\'s revision, whatever is written between them', async () => {
    const root = '/paged';
    await putAll(fleetKvs(root, 6, 2));
    const expectedKvs = (await client.getAll().prefix(`${root}/`).exec()).kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), createRevision: String(kv.create_revision), modRevision: String(kv.mod_revision) }));
    const expected = fleetModel(root, '0', groupByCluster(root, '0', expectedKvs), T0);
    let writes = 0;
    const between: FleetTuning['betweenRequests'] = async () => {
      writes++;
      // Between pages: a cluster appears, one loses its primary, one goes away.
      await client.put(`${root}/${name(100 + writes)}/primary`).value(JSON.stringify(primary('db1')));
      await client.put(clusterKeys(name(0), root).primary).value(JSON.stringify(primary('db1', { state: 'promoting', epoch: 9 })));
      await client.delete().prefix(clusterKeys(name(5), root).prefix);
    };
    const fleet = new FleetClient(where(root), { listPage: 7, maxTxnOps: 10, parallel: 1, betweenRequests: between });
    try {
      const read = await fleet.readFleet();
      // 6 clusters of 14 keys: 7 pages of 7 keys-only (each goes on past its last key's cluster; the
      // 7th finds nothing more), then 3 transactions of 2 clusters (5 ranges each).
      assert.deepEqual([read.cost.requests, read.cost.listedKeys], [7 + 3, 42]);
      assert.equal(writes, 6 + 1 + 2, 'written between every two requests');
      const model = fleetModel(root, '0', read.clusters, T0);
      assert.deepEqual(model, expected, 'the fleet as it was at the first page');
      assert.ok([...read.clusters.values()].every((c) => c.revision === read.revision));
    } finally {
      fleet.close();
    }
    const now = new FleetClient(where(root));
    try {
      const later = fleetModel(root, '0', (await now.readFleet()).clusters, T0);
      assert.equal(later.clusters.length, 6 - 1 + writes, 'the writes did happen');
      assert.equal(later.clusters[0]!.primary?.state, 'promoting');
    } finally {
      now.close();
    }
  });
});

describe('primacy web over every cluster', () => {
  test('every cluster after one fleet read; a change is one more transaction', async () => {
    const root = '/web';
    await putAll(fleetKvs(root, 40, 3));
    const fleet = new FleetClient(where(root));
    const states: WebState[] = [];
    const live = new LiveClusters(fleet, null, false, (s) => states.push(s));
    try {
      await live.start();
      const atStart = { ...fleet.spent };
      assert.equal(live.latest.clusters.length, 40);
      assert.deepEqual(live.latest.clusters.map((c) => c.cluster).slice(0, 2), ['c0000', 'c0001']);
      // Each cluster's history: the bootstrap, the last op, and 3 older ones kept in history/ and ops/.
      assert.equal(live.latest.clusters[0]!.history.length, 2 + 3 + 1);
      // The listing, then 40 clusters of 7 ranges (with ops/ and history/) in transactions of 128 ranges at most.
      assert.equal(atStart.requests, 1 + Math.ceil(40 / Math.floor(128 / 7)));
      // The watch's `connected` may ask for one more listing: wait until no read has been made for 500 ms.
      let settled = -1;
      await waitFor('reads to settle', () => (settled === (settled = fleet.spent.requests) ? true : undefined), { timeoutMs: 10_000, intervalMs: 500 });
      await client.put(clusterKeys(name(7), root).primary).value(JSON.stringify(primary('db1', { epoch: 3 })));
      await waitFor('the page to show the new primary', () => live.latest.clusters[7]!.status.primary?.node === 'db1' || undefined, { timeoutMs: 10_000 });
      assert.equal(fleet.spent.requests - settled, 1, 'one transaction for the one cluster that changed');
    } finally {
      await live.stop();
      fleet.close();
    }
  });
});
