/**
 * The CLI's only I/O with etcd: one consistent read of a cluster, op records, the config
 * read-modify-write, request writes and watches. Every failure to talk to etcd becomes exit code 3
 * (TLS files or a password that cannot be read are usage errors, found before any call).
 */
import { Range, type Etcd3, type IKeyValue, type IRequestOp, type IResponseOp, type Watcher } from 'etcd3';
import {
  ClusterConfigSchema,
  OpRecordSchema,
  PrimarySchema,
  clusterKeys,
  decodeValue,
  encodeValue,
  isValidName,
  type ClusterConfig,
  type ClusterKeys,
  type Durability,
  type OpRecord,
  type OperatorRequest,
} from '@primacy/common';
import type { EtcdWhere, Target } from './args.js';
import { connectEtcd } from './connect.js';
import { Decoder, decodeCluster, decodeOps, type ClusterView, type RawCluster, type RawKv } from './cluster.js';
import { withMaintenance } from './config-edit.js';
import { CliError, etcdFailure, refused, unknownCluster } from './errors.js';
import type { OpFeed } from './request.js';

/** Each call's deadline; a whole read is also cut off a little later, whatever etcd3 retries. */
export const CALL_TIMEOUT_MS = 2_000;
const READ_DEADLINE_MS = 2_500;

function rawKv(kv: IKeyValue): RawKv {
  return { key: kv.key.toString(), value: kv.value.toString(), createRevision: String(kv.create_revision), modRevision: String(kv.mod_revision) };
}

function rangeOp(r: { key: string; prefix?: boolean; sort?: 'Create' | 'Key'; order?: 'Ascend' | 'Descend'; limit?: number; countOnly?: boolean }): IRequestOp {
  const range = r.prefix ? Range.prefix(r.key) : null;
  return {
    request_range: {
      key: range ? range.start : Buffer.from(r.key),
      ...(range ? { range_end: range.end } : {}),
      ...(r.sort ? { sort_target: r.sort, sort_order: r.order ?? 'Ascend' } : {}),
      ...(r.limit ? { limit: r.limit } : {}),
      ...(r.countOnly ? { count_only: true } : {}),
    },
  };
}

/** Cancels a watch, giving up after a second: an unreachable etcd must not hold the CLI. */
async function cancelSoon(watcher: Watcher): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([watcher.cancel().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
  clearTimeout(timer);
}

/** Runs one etcd call; any failure is etcd being unreachable (exit 3), and it never takes long. */
async function callEtcd<T>(target: EtcdWhere, what: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${READ_DEADLINE_MS} ms`)), READ_DEADLINE_MS);
  });
  try {
    return await Promise.race([what(), deadline]);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw etcdFailure(target, err);
  } finally {
    clearTimeout(timer);
  }
}

export class ClusterClient {
  readonly keys: ClusterKeys;
  private readonly client: Etcd3;
  /** False when the connection is a FleetClient's, which closes it. */
  private readonly ownsClient: boolean;

  constructor(
    readonly target: Target,
    connection?: Etcd3,
  ) {
    this.keys = clusterKeys(target.cluster, target.root);
    this.client = connection ?? connectEtcd(target, CALL_TIMEOUT_MS);
    this.ownsClient = connection === undefined;
  }

  private call<T>(what: () => Promise<T>): Promise<T> {
    return callEtcd(this.target, what);
  }

  /** The whole cluster at one revision: one transaction of range reads (its compare is irrelevant). */
  async readRaw(): Promise<RawCluster> {
    const k = this.keys;
    const ops = [
      rangeOp({ key: k.prefix, prefix: true, countOnly: true }),
      rangeOp({ key: k.membersPrefix, prefix: true }),
      rangeOp({ key: `${k.election}/`, prefix: true, sort: 'Create', order: 'Ascend' }),
      rangeOp({ key: k.primary }),
      rangeOp({ key: k.epoch }),
      rangeOp({ key: k.config }),
      rangeOp({ key: k.opsPrefix, prefix: true, sort: 'Key', order: 'Descend', limit: 1 }),
      rangeOp({ key: k.requestsPrefix, prefix: true }),
      rangeOp({ key: k.durability }),
      rangeOp({ key: k.salvagePrefix, prefix: true }),
      rangeOp({ key: k.rejoinPrefix, prefix: true }),
    ];
    const res = await this.call(() => this.client.if(k.epoch, 'Version', '>', 0).then(...ops).else(...ops).commit());
    const r = (i: number): IKeyValue[] => (res.responses[i] as IResponseOp | undefined)?.response_range?.kvs ?? [];
    const one = (i: number): RawKv | null => {
      const kv = r(i)[0];
      return kv ? rawKv(kv) : null;
    };
    return {
      revision: String(res.header.revision),
      keyCount: Number((res.responses[0] as IResponseOp | undefined)?.response_range?.count ?? 0),
      members: r(1).map(rawKv),
      election: r(2).map(rawKv),
      primary: one(3),
      epoch: one(4),
      config: one(5),
      lastOp: one(6),
      requests: r(7).map(rawKv),
      durability: one(8),
      salvages: r(9).map(rawKv),
      rejoins: r(10).map(rawKv),
    };
  }

  async read(): Promise<ClusterView> {
    return decodeCluster(this.target.cluster, this.keys, await this.readRaw());
  }

  /** Reads the cluster and insists it exists (exit 4 otherwise). */
  async readExisting(): Promise<ClusterView> {
    const view = await this.read();
    if (!view.exists) throw unknownCluster(this.target.cluster, this.keys.prefix, this.target.endpoints);
    return view;
  }

  async readOps(): Promise<{ ops: OpRecord[]; warnings: string[] }> {
    const [ops, history] = await Promise.all([
      this.call(() => this.client.getAll().prefix(this.keys.opsPrefix).sort('Key', 'Ascend').exec()),
      this.call(() => this.client.getAll().prefix(this.keys.historyPrefix).sort('Key', 'Ascend').exec()),
    ]);
    return decodeOps(ops.kvs.map(rawKv), history.kvs.map(rawKv));
  }

  /** One op record: null when there is none; a malformed one is a warning and null. */
  async readOp(epoch: number): Promise<{ op: OpRecord | null; warnings: string[] }> {
    const key = this.keys.op(epoch);
    const raw = await this.call(() => this.client.get(key).exec());
    const d = new Decoder();
    const kv = raw.kvs[0];
    return { op: d.decode(OpRecordSchema, kv ? rawKv(kv) : null), warnings: d.warnings };
  }

  /** Sets `paused` in the config key, keeping every other field. */
  setPaused(paused: boolean): Promise<'changed' | 'unchanged'> {
    return this.updateConfig((fields, c) => (c.paused === paused ? null : { ...fields, paused }));
  }

  /** Sets `durability` in the config key, keeping every other field. */
  setDurability(mode: Durability): Promise<'changed' | 'unchanged'> {
    return this.updateConfig((fields, c) => (c.durability === mode ? null : { ...fields, durability: mode }));
  }

  /** Sets or clears `nodes.<node>.maintenance` in the config key, keeping every other field. */
  setMaintenance(node: string, on: boolean): Promise<'changed' | 'unchanged'> {
    return this.updateConfig((fields, c) => ((c.nodes[node]?.maintenance === true) === on ? null : { ...withMaintenance(fields, node, on) }));
  }

  /** The config key as stored (null when there is none), and the revision it was read at. */
  async readConfig(): Promise<{ kv: RawKv | null; revision: string }> {
    const res = await this.call(() => this.client.get(this.keys.config).exec());
    const kv = res.kvs[0];
    return { kv: kv ? rawKv(kv) : null, revision: String(res.header.revision) };
  }

  /**
   * Writes the config key only if its mod revision is still `modRevision` ('0': it must not exist):
   * a change made by someone else since it was read is refused, not overwritten. Returns the
   * revision written at, or null when the compare failed.
   */
  async writeConfig(value: string, modRevision: string): Promise<string | null> {
    const key = this.keys.config;
    const res = await this.call(() => this.client.if(key, 'Mod', '==', modRevision).then(this.client.put(key).value(value)).commit());
    return res.succeeded ? String(res.header.revision) : null;
  }

  /**
   * Writes what `change` makes of the config key's fields, keeping every other field (even ones
   * this version does not know), with a compare on the key's mod revision; retried when someone
   * else wrote in between. `change` gets the stored fields and the config with defaults filled,
   * and returns null when there is nothing to write.
   */
  private async updateConfig(change: (fields: Record<string, unknown>, current: ClusterConfig) => Record<string, unknown> | null): Promise<'changed' | 'unchanged'> {
    const key = this.keys.config;
    for (let attempt = 0; attempt < 5; attempt++) {
      const res = await this.call(() => this.client.get(key).exec());
      const kv = res.kvs[0];
      let fields: Record<string, unknown> = {};
      let current = ClusterConfigSchema.parse({});
      if (kv) {
        const r = decodeValue(ClusterConfigSchema, key, kv.value.toString());
        if (r && !r.ok) throw refused(`${r.error.message}; fix or delete that key, then try again`);
        fields = JSON.parse(kv.value.toString()) as Record<string, unknown>;
        if (r?.ok) current = r.value;
      }
      const next = change(fields, current);
      if (next === null) return 'unchanged';
      if ((await this.writeConfig(encodeValue(next), kv ? String(kv.mod_revision) : '0')) !== null) return 'changed';
    }
    throw refused(`${key} kept changing under us; try again`);
  }

  /** Writes the request only if no key of that id exists; returns the revision it was written at. */
  async writeRequest(id: string, request: OperatorRequest): Promise<string> {
    const key = this.keys.request(id);
    const res = await this.call(() =>
      this.client
        .if(key, 'Version', '==', 0)
        .then(this.client.put(key).value(encodeValue(request)))
        .commit(),
    );
    if (!res.succeeded) throw refused(`request ${id} already exists; try again`);
    return String(res.header.revision);
  }

  /** Watches every key of the cluster; `onChange` is called once per batch of events. */
  async watchCluster(onChange: () => void, onError: (err: unknown) => void): Promise<() => Promise<void>> {
    const watcher = await this.call(() => this.client.watch().prefix(this.keys.prefix).create());
    watcher.on('data', () => onChange());
    watcher.on('connected', () => onChange());
    watcher.on('error', (err) => onError(err));
    return () => cancelSoon(watcher);
  }

  /** The events that answer a request, from the revision after it was written. */
  requestFeed(requestId: string, fromRevision: string): OpFeed {
    const k = this.keys;
    const requestKey = k.request(requestId);
    let stopWatch: (() => Promise<void>) | null = null;
    let stopped = false;
    return {
      start: (onEvent, onError) => {
        const emit = (kv: IKeyValue, deleted: boolean): void => {
          const key = kv.key.toString();
          if (key === requestKey && deleted) return onEvent({ kind: 'request-gone' });
          if (deleted) return;
          const value = kv.value.toString();
          if (key === k.primary) {
            const r = decodeValue(PrimarySchema, key, value);
            if (r) onEvent(r.ok ? { kind: 'primary', primary: r.value } : { kind: 'warning', message: r.error.message });
          } else if (key.startsWith(k.opsPrefix) || key.startsWith(k.rejoinPrefix)) {
            const r = decodeValue(OpRecordSchema, key, value);
            if (r) onEvent(r.ok ? { kind: 'op', op: r.value } : { kind: 'warning', message: r.error.message });
          }
        };
        this.client
          .watch()
          .prefix(k.prefix)
          .startRevision(String(BigInt(fromRevision) + 1n))
          .create()
          .then((watcher) => {
            if (stopped) return void cancelSoon(watcher);
            watcher.on('put', (kv) => emit(kv, false));
            watcher.on('delete', (kv) => emit(kv, true));
            watcher.on('error', (err) => onError(etcdFailure(this.target, err)));
            stopWatch = () => cancelSoon(watcher);
          })
          .catch((err: unknown) => onError(etcdFailure(this.target, err)));
      },
      stop: async () => {
        stopped = true;
        await stopWatch?.();
      },
      withdraw: async () => {
        const res = await this.call(() => this.client.if(requestKey, 'Version', '>', 0).then(this.client.delete().key(requestKey)).commit());
        return res.succeeded;
      },
    };
  }

  close(): void {
    if (this.ownsClient) this.client.close();
  }
}

/**
 * What a watch under a prefix says: the keys of one batch of events; (re)connected; lost its
 * connection (it reconnects by itself); or ended (a server-side cancel, such as compaction: watch again).
 */
export type KeysEvent =
  | { readonly kind: 'keys'; readonly keys: readonly string[] }
  | { readonly kind: 'connected' }
  | { readonly kind: 'disconnected' | 'ended'; readonly error: CliError };

/**
 * Every cluster under a key root over one connection, for `primacy web`: which clusters there are,
 * a client for each, and a watch that says which keys changed.
 */
export class FleetClient {
  readonly prefix: string;
  private readonly client: Etcd3;

  constructor(readonly where: EtcdWhere) {
    this.prefix = `${where.root.replace(/\/+$/, '')}/`;
    this.client = connectEtcd(where, CALL_TIMEOUT_MS);
  }

  /** The clusters with a key under the root, by name: one keys-only ranged read. */
  async clusterNames(): Promise<string[]> {
    const keys = await callEtcd(this.where, () => this.client.getAll().prefix(this.prefix).keys());
    return [...new Set(keys.map((k) => this.clusterOf(k)).filter((c): c is string => c !== null))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  }

  /** Every key under the root with its value, at one revision: one ranged read, however many clusters there are. */
  async readRoot(): Promise<{ revision: string; kvs: RawKv[] }> {
    const res = await callEtcd(this.where, () => this.client.getAll().prefix(this.prefix).exec());
    return { revision: String(res.header.revision), kvs: res.kvs.map(rawKv) };
  }

  /** The cluster a key belongs to; null for a key outside any valid cluster name. */
  clusterOf(key: string): string | null {
    if (!key.startsWith(this.prefix)) return null;
    const name = key.slice(this.prefix.length).split('/', 1)[0] ?? '';
    return isValidName(name) ? name : null;
  }

  cluster(name: string): ClusterClient {
    return new ClusterClient({ ...this.where, cluster: name }, this.client);
  }

  /** Watches every key under `prefix`. */
  async watchKeys(prefix: string, onEvent: (e: KeysEvent) => void): Promise<() => Promise<void>> {
    const creating = this.client.watch().prefix(prefix).create();
    let watcher: Watcher;
    try {
      watcher = await callEtcd(this.where, () => creating);
    } catch (err) {
      // Past the deadline it may still be made: cancel it then.
      void creating.then(cancelSoon, () => undefined);
      throw err;
    }
    watcher.on('data', (res) => onEvent({ kind: 'keys', keys: res.events.map((e) => e.kv.key.toString()) }));
    watcher.on('connected', () => onEvent({ kind: 'connected' }));
    watcher.on('disconnected', (err) => onEvent({ kind: 'disconnected', error: etcdFailure(this.where, err) }));
    watcher.on('error', (err) => onEvent({ kind: 'ended', error: etcdFailure(this.where, err) }));
    return () => cancelSoon(watcher);
  }

  close(): void {
    this.client.close();
  }
}
