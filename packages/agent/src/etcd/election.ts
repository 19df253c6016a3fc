/**
 * The coordinator election. Every agent puts `election/<lease>` under its own lease; the oldest key
 * (lowest create revision) coordinates. Using the agent's one lease means the election key, the
 * member key and the coordinator's fencing token all end together when the agent dies or is cut off.
 */
import type { Etcd3, Lease } from 'etcd3';
import type { Campaigner, ClusterStore } from './store.js';

export async function campaign(store: ClusterStore, lease: Lease, leaseId: string, node: string): Promise<Campaigner> {
  const key = `${store.keys.election}/${BigInt(leaseId).toString(16)}`;
  await store.client
    .if(key, 'Create', '==', 0)
    .then(lease.put(key).value(node))
    .commit();
  const kv = (await store.client.get(key).exec()).kvs[0];
  if (!kv) throw new Error(`election key ${key} vanished right after it was written`);
  return { key, node, createRevision: String(kv.create_revision), lease: String(kv.lease) };
}

/** Calls `onChange` with the key whenever a key of the cluster changes: a hint to re-read. `onError` when the watch ends. */
export async function watchHints(client: Etcd3, prefix: string, onChange: (key: string, value: string | null) => void, onError: () => void): Promise<() => Promise<void>> {
  const watcher = await client.watch().prefix(prefix).create();
  watcher.on('put', (kv) => onChange(kv.key.toString(), kv.value.toString()));
  watcher.on('delete', (kv) => onChange(kv.key.toString(), null));
  watcher.on('error', () => {
    void watcher.cancel().catch(() => undefined);
    onError();
  });
  return async () => {
    await watcher.cancel().catch(() => undefined);
  };
}

/** Whether `self` is the coordinator according to the election keys, oldest first. */
export function isCoordinator(campaigners: readonly Campaigner[], self: Campaigner | null): boolean {
  const first = campaigners[0];
  return self !== null && first !== undefined && first.key === self.key && first.createRevision === self.createRevision;
}
