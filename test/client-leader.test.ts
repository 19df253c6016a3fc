/**
 * A watcher connected to an etcd member that loses its quorum learns that it is cut off (issue 10):
 * its watch asks for a leader, so the member fails it with "no leader" instead of serving a frozen
 * view in silence, and it is reported and read again once a quorum is back.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterKeys, type Primary } from '@primacy/common';
import { watchPrimary } from '@primacy/client';
import { cleanupAll, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

const primary = (epoch: number): Primary => ({ node: `db${epoch}`, host: '127.0.0.1', port: 3300 + epoch, epoch, state: 'ready', since: Date.now(), gtid: '', serverId: epoch, serverUuid: null });

test('a watch on a member that lost its quorum says so, and follows the primary again once the quorum is back', async () => {
  const keys = clusterKeys('leader');
  const admin = etcd.client();
  await admin.put(keys.primary).value(JSON.stringify(primary(1)));
  const [lonely, ...others] = etcd.members as [(typeof etcd.members)[number], ...typeof etcd.members];
  const watch = watchPrimary({ etcd: [lonely.endpoint], cluster: 'leader' });
  const warnings: string[] = [];
  watch.on('warning', (e) => warnings.push(e.message));
  try {
    await waitFor('the first primary', () => (watch.current()?.epoch === 1 ? true : undefined), { timeoutMs: 10_000 });
    const cutAt = Date.now();
    await Promise.all(others.map((m) => m.kill()));
    const said = await waitFor('a warning that the member has no leader', () => warnings.find((w) => /no leader/i.test(w)), { timeoutMs: 20_000 });
    process.stdout.write(`# cut-off watch reported ${Date.now() - cutAt} ms after the quorum was lost: ${said}\n`);
    await Promise.all(others.map((m) => m.start({ waitForHealth: false })));
    await waitFor('a quorum again', async () => admin.put(keys.primary).value(JSON.stringify(primary(2))).then(() => true, () => undefined), { timeoutMs: 30_000 });
    await waitFor('the watch to follow the new primary', () => (watch.current()?.epoch === 2 ? true : undefined), { timeoutMs: 20_000 });
  } finally {
    await watch.close();
  }
});
