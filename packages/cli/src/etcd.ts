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
  type ClusterConfig,
  type ClusterKeys,
  type Durability,
  type OpRecord,
  type OperatorRequest,
} from '@primacy/common';
import type { Target } from './args.js';
import { connectEtcd } from './connect.js';
import { Decoder, decodeCluster, decodeOps, type ClusterView, type RawCluster, type RawKv } from './cluster.js';
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

export class ClusterClient {
  readonly keys: ClusterKeys;
  private readonly client: Etcd3;

  constructor(readonly target: Target) {
    this.keys = clusterKeys(target.cluster, target.root);
    this.client = connectEtcd(target, CALL_TIMEOUT_MS);
  }

  /** Runs one etcd call; any failure is etcd being unreachable (exit 3), and it never takes long. */
  private async call<T>(what: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${READ_DEADLINE_MS} ms`)), READ_DEADLINE_MS);
    });
    try {
      return await Promise.race([what(), deadline]);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw etcdFailure(this.target, err);
    } finally {
      clearTimeout(timer);
    }
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
    return this.updateConfig({ paused }, (c) => c.paused === paused);
  }

  /** Sets `durability` in the config key, keeping every other field. */
  setDurability(mode: Durability): Promise<'changed' | 'unchanged'> {
    return this.updateConfig({ durability: mode }, (c) => c.durability === mode);
  }

  /**
   * Writes `patch` over the config key, keeping every other field (even ones this version does not
   * know), with a compare on the key's mod revision; retried when someone else wrote in between.
   * `already` says, of the current config (defaults filled), that there is nothing to write.
   */
  private async updateConfig(patch: Partial<ClusterConfig>, already: (current: ClusterConfig) => boolean): Promise<'changed' | 'unchanged'> {
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
      if (already(current)) return 'unchanged';
      const modRevision = kv ? String(kv.mod_revision) : '0';
      const txn = await this.call(() =>
        this.client
          .if(key, 'Mod', '==', modRevision)
          .then(this.client.put(key).value(encodeValue({ ...fields, ...patch })))
          .commit(),
      );
      if (txn.succeeded) return 'changed';
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
          } else if (key.startsWith(k.opsPrefix)) {
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
    this.client.close();
  }
}
