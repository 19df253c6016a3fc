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
import { byName, clusterFromRanges, clusterRanges, listingResume, prefixEnd } from './fleet.js';
import type { OpFeed } from './request.js';

/** Each call's deadline; a whole read is also cut off a little later, whatever etcd3 retries. */
export const CALL_TIMEOUT_MS = 2_000;
const READ_DEADLINE_MS = 2_500;

function rawKv(kv: IKeyValue): RawKv {
  return { key: kv.key.toString(), value: kv.value.toString(), createRevision: String(kv.create_revision), modRevision: String(kv.mod_revision) };
}

function rangeOp(r: { key: string; prefix?: boolean; end?: string; sort?: 'Create' | 'Key'; order?: 'Ascend' | 'Descend'; limit?: number; countOnly?: boolean; revision?: string }): IRequestOp {
  const range = r.prefix ? Range.prefix(r.key) : null;
  return {
    request_range: {
      key: range ? range.start : Buffer.from(r.key),
      ...(range ? { range_end: range.end } : r.end !== undefined ? { range_end: Buffer.from(r.end) } : {}),
      ...(r.revision ? { revision: r.revision } : {}),
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

/** What fleet reads cost: requests sent, the keys listed (keys only) and their bytes, and the key-values read and theirs. */
export interface ReadCost {
  requests: number;
  listedKeys: number;
  listedBytes: number;
  keys: number;
  bytes: number;
}

function noCost(): ReadCost {
  return { requests: 0, listedKeys: 0, listedBytes: 0, keys: 0, bytes: 0 };
}

/** A read of clusters under the root, all at one revision. */
export interface FleetRead {
  readonly revision: string;
  /** By name, in order; one for every name asked for (keyCount 0: no such cluster). */
  readonly clusters: ReadonlyMap<string, RawCluster>;
  /** Every ops/ and history/ record of the clusters asked for with `withOps`. */
  readonly ops: ReadonlyMap<string, { ops: RawKv[]; history: RawKv[] }>;
  readonly cost: ReadCost;
}

export interface FleetTuning {
  /** Keys per page of the keys-only listing. */
  readonly listPage: number;
  /** Ranges per transaction: etcd's --max-txn-ops, 128 by default. */
  readonly maxTxnOps: number;
  /** Transactions in flight at once. */
  readonly parallel: number;
  /** Called between the requests of one read (tests write keys there). */
  readonly betweenRequests: (() => Promise<void>) | null;
}

export const FLEET_TUNING: FleetTuning = Object.freeze({ listPage: 10_000, maxTxnOps: 128, parallel: 4, betweenRequests: null });

/** A read at a revision that etcd compacted meanwhile: read again at a new one. */
function compacted(err: unknown): boolean {
  const cause = err instanceof CliError ? err.cause : err;
  return /required revision has been compacted/i.test(cause instanceof Error ? cause.message : String(cause));
}

const PINNED_ATTEMPTS = 3;

/** Runs `tasks` with at most `parallel` in flight, in their order. */
async function inTurn<T>(tasks: ReadonlyArray<() => Promise<T>>, parallel: number): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, tasks.length) }, lane));
  return out;
}

/**
 * Every cluster under a key root over one connection, for `primacy clusters`, `status --all` and
 * `primacy web`: which clusters there are (a keys-only listing), and their keys but for history
 * (transactions of ranges that skip it), every request of one read at the revision of its first.
 */
export class FleetClient {
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly tuning: FleetTuning;
  /** What every fleet read of this client has cost so far. */
  readonly spent: ReadCost = noCost();

  constructor(
    readonly where: EtcdWhere,
    tuning: Partial<FleetTuning> = {},
  ) {
    this.prefix = `${where.root.replace(/\/+$/, '')}/`;
    this.client = connectEtcd(where, CALL_TIMEOUT_MS);
    this.tuning = { ...FLEET_TUNING, ...tuning };
  }

  /** The clusters with a key under the root, by name. */
  async clusterNames(): Promise<string[]> {
    return (await this.listClusters()).names;
  }

  /**
   * The clusters under the root at one revision (`at`, or the first page's): a keys-only listing in
   * pages, each going on past the cluster of the last key, so one read costs about a key per record.
   */
  async listClusters(at?: string): Promise<{ revision: string; names: string[]; cost: ReadCost }> {
    const cost = noCost();
    const names = new Set<string>();
    const end = Buffer.from(prefixEnd(this.prefix));
    let revision = at;
    let from = this.prefix;
    for (;;) {
      const pin = revision;
      const res = await callEtcd(this.where, () =>
        this.client.kv.range({ key: Buffer.from(from), range_end: end, keys_only: true, limit: this.tuning.listPage, ...(pin ? { revision: pin } : {}) }),
      );
      revision ??= String(res.header.revision);
      this.count(cost, { ...noCost(), requests: 1, listedKeys: res.kvs.length, listedBytes: res.kvs.reduce((n, kv) => n + kv.key.length, 0) });
      for (const kv of res.kvs) {
        const key = kv.key.toString();
        const name = this.clusterOf(key);
        if (name !== null && key.length > this.prefix.length + name.length) names.add(name);
      }
      const last = res.kvs.at(-1);
      if (!res.more || !last) break;
      from = listingResume(this.where.root, last.key.toString());
      await this.tuning.betweenRequests?.();
    }
    return { revision: revision!, names: [...names].sort(byName), cost };
  }

  /**
   * The clusters named, at revision `at` (or at the revision of the first transaction), from the
   * ranges of `clusterRanges`: no history/, no ops/ but the newest, unless in `withOps`.
   */
  async readClusters(names: readonly string[], o: { at?: string; withOps?: ReadonlySet<string> } = {}): Promise<FleetRead> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.readClustersAt(names, o.at, o.withOps ?? new Set());
      } catch (err) {
        if (o.at !== undefined || attempt >= PINNED_ATTEMPTS || !compacted(err)) throw err;
      }
    }
  }

  /** Every cluster under the root: the listing, then its clusters at the listing's revision. */
  async readFleet(): Promise<FleetRead> {
    for (let attempt = 1; ; attempt++) {
      try {
        const listed = await this.listClusters();
        await this.tuning.betweenRequests?.();
        const read = await this.readClustersAt(listed.names, listed.revision, new Set());
        const c = read.cost;
        return { ...read, cost: { ...c, requests: listed.cost.requests + c.requests, listedKeys: listed.cost.listedKeys, listedBytes: listed.cost.listedBytes } };
      } catch (err) {
        if (attempt >= PINNED_ATTEMPTS || !compacted(err)) throw err;
      }
    }
  }

  private async readClustersAt(names: readonly string[], at: string | undefined, withOps: ReadonlySet<string>): Promise<FleetRead> {
    const cost = noCost();
    const planned = names.map((name) => {
      const keys = clusterKeys(name, this.where.root);
      return { name, keys, ranges: clusterRanges(keys, withOps.has(name)) };
    });
    // Whole clusters per transaction, as many as its ranges allow.
    const batches: Array<typeof planned> = [];
    let ops = Infinity;
    for (const p of planned) {
      if (ops + p.ranges.length > this.tuning.maxTxnOps) {
        batches.push([]);
        ops = 0;
      }
      batches.at(-1)!.push(p);
      ops += p.ranges.length;
    }
    let revision = at;
    const send = async (batch: typeof planned, pin: string | undefined): Promise<IResponseOp[]> => {
      const success = batch.flatMap((p) => p.ranges.map((r) => rangeOp({ key: r.key, end: r.end, ...(r.limit ? { limit: r.limit } : {}), ...(r.descend ? { sort: 'Key', order: 'Descend' } : {}), ...(r.countOnly ? { countOnly: true } : {}), ...(pin ? { revision: pin } : {}) })));
      const res = await callEtcd(this.where, () => this.client.kv.txn({ success }));
      revision ??= String(res.header.revision);
      const kvs = res.responses.flatMap((r) => r.response_range?.kvs ?? []);
      this.count(cost, { ...noCost(), requests: 1, keys: kvs.length, bytes: kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0) });
      return res.responses;
    };
    const answers: IResponseOp[][] = [];
    // Unpinned, the first transaction sets the revision that the others read at.
    if (revision === undefined && batches.length > 0) answers.push(await send(batches[0]!, undefined));
    const rest = batches.slice(answers.length);
    const pin = revision;
    answers.push(
      ...(await inTurn(
        rest.map((b, i) => async () => {
          if (i > 0 || answers.length > 0) await this.tuning.betweenRequests?.();
          return send(b, pin);
        }),
        this.tuning.parallel,
      )),
    );
    const clusters = new Map<string, RawCluster>();
    const opsOf = new Map<string, { ops: RawKv[]; history: RawKv[] }>();
    const rev = revision ?? '0';
    batches.forEach((batch, b) => {
      let i = 0;
      for (const p of batch) {
        const mine = answers[b]!.slice(i, i + p.ranges.length).map((r) => r.response_range);
        i += p.ranges.length;
        const read = clusterFromRanges(p.keys, rev, { count: Number(mine[0]?.count ?? 0), kvs: mine.slice(1).map((r) => (r?.kvs ?? []).map(rawKv)) });
        clusters.set(p.name, read.raw);
        if (read.ops) opsOf.set(p.name, read.ops);
      }
    });
    const sorted = new Map([...clusters].sort(([a], [b]) => byName(a, b)));
    return { revision: rev, clusters: sorted, ops: opsOf, cost };
  }

  private count(cost: ReadCost, add: ReadCost): void {
    for (const c of [cost, this.spent]) {
      c.requests += add.requests;
      c.listedKeys += add.listedKeys;
      c.listedBytes += add.listedBytes;
      c.keys += add.keys;
      c.bytes += add.bytes;
    }
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
