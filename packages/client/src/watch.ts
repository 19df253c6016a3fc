/**
 * watchPrimary: the client's picture of its cluster's primary and healthy replicas, kept current
 * from etcd. It reads first, then watches the cluster prefix from the read's revision; when etcd
 * cancels the watch (compaction) or a read fails, it reads again and watches again. etcd3 moves a
 * broken watch stream to another member by itself, from the last revision it saw.
 *
 * Watches are hints (DESIGN.md, invariant 6): the pool calls `refresh()`, a linearizable read,
 * whenever a node disagrees with what the watch says.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { MemberStateSchema, PrimarySchema, clusterKeys, decodeValue, keyName, type ClusterKeys, type EtcdValueError, type MemberState, type Primary } from '@primacy/common';
import { ClientError, ClientErrorCodes, oneLine } from './errors.js';
import { cancelWatcher, etcdHandle, type EtcdHandle } from './etcd.js';
import { etcdAccessError, type EtcdConnection } from './etcd-access.js';
import { compileWatchOptions, type CompiledWatchOptions, type WatchOptions } from './options.js';
import { EMPTY_VIEW, applyPrimary, healthyReplicas, sameReplicas, type PrimaryView, type Replica } from './topology.js';

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 1_000;
const CANCEL_WAIT_MS = 1_000;

export interface PrimaryWatchEvents {
  /** The primary changed (any field, state included); null when the key is absent. */
  primary: [primary: Primary | null];
  /** The healthy replicas changed (membership or lag). */
  replicas: [replicas: readonly Replica[]];
  /** A malformed value in etcd: reported and ignored. Emitted only when someone listens. */
  error: [error: EtcdValueError];
  /** etcd could not be read or the watch was cancelled; the watch keeps trying. Also an ignored older epoch. */
  warning: [error: ClientError];
}

interface MemberEntry {
  readonly revision: number;
  /** null: deleted at `revision`. */
  readonly state: MemberState | null;
}

export class PrimaryWatch extends EventEmitter<PrimaryWatchEvents> implements AsyncIterable<Primary | null> {
  readonly cluster: string;
  readonly keys: ClusterKeys;
  readonly #options: CompiledWatchOptions;
  readonly #etcd: EtcdHandle;
  /** The connection the watch made its client from; null for a borrowed client. */
  readonly #connection: EtcdConnection | null;
  #lastEtcdError: ClientError | null = null;
  #view: PrimaryView = EMPTY_VIEW;
  readonly #members = new Map<string, MemberEntry>();
  #replicas: readonly Replica[] = [];
  #changes = 0;
  #primaryChanged = false;
  #closed = false;
  readonly #closing = new AbortController();
  #watcher: Watcher | null = null;
  #endFollow: (() => void) | null = null;
  #refreshing: Promise<void> | null = null;
  #streamMember: string | null = null;
  #ready = false;
  readonly #readyWaiters = new Set<() => void>();
  readonly #changeWaiters = new Set<() => void>();
  readonly #loop: Promise<void>;

  constructor(options: CompiledWatchOptions) {
    super();
    this.#options = options;
    this.cluster = options.cluster;
    this.keys = clusterKeys(options.cluster, options.root);
    this.#etcd = etcdHandle(options.etcd, options.etcdTimeoutMs);
    this.#connection = this.#etcd.owned ? (options.etcd as EtcdConnection) : null;
    this.#loop = this.#run();
  }

  /** The etcd client this watch reads with (the registration shares it). */
  get etcd(): Etcd3 {
    return this.#etcd.client;
  }

  /** The primary as last seen; null before the first read or when there is none. */
  current(): Primary | null {
    return this.#view.primary;
  }

  /** Healthy replicas as last seen, by node name. */
  replicas(): readonly Replica[] {
    return this.#replicas;
  }

  /** How many primary changes have been reported; a waiter compares it to see whether one came. */
  get changes(): number {
    return this.#changes;
  }

  /** The id of the etcd member that serves the watch stream now (as etcd's member list prints it), for diagnostics. */
  get streamMember(): string | null {
    return this.#streamMember;
  }

  /** Why the last read of etcd failed; null once a read succeeds. */
  get lastEtcdError(): ClientError | null {
    return this.#lastEtcdError;
  }

  get isReady(): boolean {
    return this.#ready;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves once the first read has succeeded; rejects after `timeoutMs`, or as soon as etcd refuses
   * the client's TLS or user (PRIMACY_E_ETCD_AUTH_FAILED). The watch keeps trying either way.
   */
  async ready(timeoutMs = 10_000): Promise<this> {
    if (this.#ready) return this;
    if (this.#closed) throw new ClientError(ClientErrorCodes.WATCH_CLOSED, 'the watch is closed');
    const deadline = Date.now() + timeoutMs;
    while (!this.#ready && !this.#closed && this.#lastEtcdError?.code !== ClientErrorCodes.ETCD_AUTH_FAILED) {
      if (!(await this.#waitOn(this.#readyWaiters, deadline))) break;
    }
    if (this.#ready) return this;
    if (this.#closed) throw new ClientError(ClientErrorCodes.WATCH_CLOSED, 'the watch was closed before etcd answered');
    const last = this.#lastEtcdError;
    if (last?.code === ClientErrorCodes.ETCD_AUTH_FAILED) throw new ClientError(last.code, `${last.message} (the watch keeps trying)`, { cause: last.cause });
    throw new ClientError(
      ClientErrorCodes.ETCD_UNREACHABLE,
      `etcd did not answer within ${timeoutMs} ms; check the endpoints (the watch keeps trying)${last ? `: ${last.message}` : ''}`,
      { cause: last ?? undefined },
    );
  }

  /**
   * Reads the primary and members again now, linearizably, and applies what changed (an older epoch
   * is still never reported). Concurrent calls share one read; failures are reported as warnings.
   */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#refreshing ??= this.#read()
      .then(
        () => undefined,
        (err: unknown) => this.#warn(ClientErrorCodes.ETCD_UNREACHABLE, `re-reading the primary failed: ${oneLine(err)}`, err),
      )
      .finally(() => {
        this.#refreshing = null;
      });
    return this.#refreshing;
  }

  /** Resolves true when a primary change after `seen` (a value of `changes`) is reported, false at `deadline` or on close. */
  async nextChange(seen: number, deadline: number): Promise<boolean> {
    while (this.#changes <= seen) {
      if (this.#closed || Date.now() >= deadline) return false;
      await this.#waitOn(this.#changeWaiters, deadline);
    }
    return true;
  }

  /** Yields the current primary once etcd has answered, then every change, until `close()`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Primary | null> {
    const queue: Array<Primary | null> = [];
    let wake: (() => void) | null = null;
    let first = true;
    let done = false;
    const onPrimary = (p: Primary | null): void => {
      queue.push(p);
      wake?.();
    };
    const finish = (): void => {
      done = true;
      this.off('primary', onPrimary);
      wake?.();
    };
    this.on('primary', onPrimary);
    this.#closing.signal.addEventListener('abort', finish, { once: true });
    const iterator: AsyncIterableIterator<Primary | null> = {
      next: async () => {
        if (first && !done) {
          while (!this.#ready && !done) await new Promise<void>((resolve) => this.#readyWaiters.add((wake = resolve)));
          first = false;
          queue.length = 0; // the current value already includes every change before it
          if (!done) return { done: false, value: this.current() };
        }
        while (queue.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
        if (queue.length > 0) return { done: false, value: queue.shift() as Primary | null };
        return { done: true, value: undefined };
      },
      return: async () => {
        finish();
        this.#closing.signal.removeEventListener('abort', finish);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Stops watching; closes the etcd client if the watch made it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#endFollow?.();
    for (const w of [...this.#readyWaiters, ...this.#changeWaiters]) w();
    const watcher = this.#watcher;
    if (watcher) await cancelWatcher(this.#etcd.client, watcher, CANCEL_WAIT_MS);
    // A read in flight ends at its deadline (when the client has one); do not wait for ever.
    const giveUp = new AbortController();
    await Promise.race([this.#loop, sleep(2 * this.#options.etcdTimeoutMs + CANCEL_WAIT_MS, giveUp.signal)]);
    giveUp.abort();
    if (this.#etcd.owned) this.#etcd.client.close();
  }

  async #run(): Promise<void> {
    let retryMs = FIRST_RETRY_MS;
    while (!this.#closed) {
      try {
        const revision = await this.#read();
        retryMs = FIRST_RETRY_MS;
        await this.#follow(revision);
      } catch (err) {
        if (this.#closed) return;
        const refused = etcdAccessError(this.#connection, err);
        this.#lastEtcdError = refused ?? new ClientError(ClientErrorCodes.ETCD_UNREACHABLE, `reading the cluster from etcd failed: ${oneLine(err)}`, { cause: err });
        if (refused) {
          for (const w of [...this.#readyWaiters]) w();
          this.#readyWaiters.clear();
        }
        this.#warn(this.#lastEtcdError.code, `${this.#lastEtcdError.message}; retrying in ${retryMs} ms`, err);
        await sleep(retryMs, this.#closing.signal);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    }
  }

  /** One linearizable read of the primary and the members; returns the lower of the two revisions. */
  async #read(): Promise<number> {
    const client = this.#etcd.client;
    const [p, m] = await Promise.all([client.get(this.keys.primary).exec(), client.getAll().prefix(this.keys.membersPrefix).exec()]);
    if (this.#closed) return 0;
    this.#lastEtcdError = null;
    const primaryRevision = Number(p.header.revision);
    const membersRevision = Number(m.header.revision);
    const kv = p.kvs[0];
    if (kv) this.#applyPrimaryValue(kv.value, Number(kv.mod_revision));
    else this.#applyPrimaryValue(null, primaryRevision);
    const present = new Set<string>();
    for (const mkv of m.kvs) {
      const node = keyName(this.keys.membersPrefix, mkv.key.toString('utf8'));
      present.add(node);
      this.#applyMember(node, mkv.value, Number(mkv.mod_revision));
    }
    for (const node of [...this.#members.keys()]) if (!present.has(node)) this.#applyMember(node, null, membersRevision);
    this.#publish();
    if (!this.#ready) {
      this.#ready = true;
      for (const w of this.#readyWaiters) w();
      this.#readyWaiters.clear();
    }
    return Math.min(primaryRevision, membersRevision);
  }

  /** Watches the cluster prefix from `revision + 1` until etcd cancels the watch or the watch closes. */
  async #follow(revision: number): Promise<void> {
    if (this.#closed) return;
    const watcher = this.#etcd.client.watch().prefix(this.keys.prefix).startRevision(String(revision + 1)).watcher();
    this.#watcher = watcher;
    try {
      await new Promise<void>((resolve) => {
        this.#endFollow = resolve;
        watcher.on('connected', (res: IWatchResponse) => (this.#streamMember = res.header.member_id));
        watcher.on('data', (res: IWatchResponse) => {
          this.#streamMember = res.header.member_id;
          this.#onWatch(res);
        });
        watcher.on('error', (err: unknown) => {
          this.#warn(ClientErrorCodes.ETCD_UNREACHABLE, `etcd cancelled the watch (${oneLine(err)}); reading again`, err);
          resolve();
        });
        watcher.on('disconnected', (err: unknown) => {
          this.#streamMember = null;
          this.#warn(ClientErrorCodes.ETCD_UNREACHABLE, `watch stream lost (${oneLine(err)}); reconnecting`, err);
        });
      });
    } finally {
      this.#endFollow = null;
      this.#watcher = null;
      if (!this.#closed) await cancelWatcher(this.#etcd.client, watcher, CANCEL_WAIT_MS);
    }
  }

  #onWatch(res: IWatchResponse): void {
    if (this.#closed) return;
    for (const ev of res.events) {
      const key = ev.kv.key.toString('utf8');
      const revision = Number(ev.kv.mod_revision);
      const value = ev.type === 'Delete' ? null : ev.kv.value;
      if (key === this.keys.primary) this.#applyPrimaryValue(value, revision);
      else if (key.startsWith(this.keys.membersPrefix)) this.#applyMember(keyName(this.keys.membersPrefix, key), value, revision);
    }
    this.#publish();
  }

  #applyPrimaryValue(raw: IKeyValue['value'] | null, revision: number): void {
    let value: Primary | null = null;
    if (raw !== null) {
      const decoded = decodeValue(PrimarySchema, this.keys.primary, raw);
      if (decoded && !decoded.ok) {
        // Keep the primary we had; remember the revision so a re-read does not report it again.
        if (revision > this.#view.revision) {
          this.#reportMalformed(decoded.error);
          this.#view = { ...this.#view, revision };
        }
        return;
      }
      value = decoded?.value ?? null;
    }
    const update = applyPrimary(this.#view, value, revision);
    this.#view = update.view;
    if (update.kind === 'changed') this.#primaryChanged = true;
    if (update.kind === 'ignored') this.#warn(ClientErrorCodes.STALE_PRIMARY, `ignored a primary value: ${update.why}`);
  }

  #applyMember(node: string, raw: IKeyValue['value'] | null, revision: number): void {
    const known = this.#members.get(node);
    if (known && revision <= known.revision) return;
    if (raw === null) {
      this.#members.set(node, { revision, state: null });
      return;
    }
    const decoded = decodeValue(MemberStateSchema, this.keys.member(node), raw);
    if (!decoded) return;
    if (!decoded.ok) {
      this.#reportMalformed(decoded.error);
      // A member we cannot read serves no reads.
      this.#members.set(node, { revision, state: null });
      return;
    }
    this.#members.set(node, { revision, state: decoded.value });
  }

  /** Emits what changed since the last publish: the primary first, then the replicas. */
  #publish(): void {
    if (this.#primaryChanged) {
      this.#primaryChanged = false;
      this.#changes += 1;
      const p = this.#view.primary;
      for (const w of this.#changeWaiters) w();
      this.#changeWaiters.clear();
      this.emit('primary', p);
    }
    const states: MemberState[] = [];
    for (const e of this.#members.values()) if (e.state) states.push(e.state);
    const replicas = healthyReplicas(states, this.#view.primary);
    if (!sameReplicas(replicas, this.#replicas)) {
      this.#replicas = Object.freeze(replicas);
      this.emit('replicas', this.#replicas);
    }
  }

  #reportMalformed(err: EtcdValueError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #warn(code: ClientError['code'], message: string, cause?: unknown): void {
    if (this.#closed || this.listenerCount('warning') === 0) return;
    this.emit('warning', new ClientError(code, message, { cause }));
  }

  #waitOn(set: Set<() => void>, deadline: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        set.delete(wake);
        resolve(ok);
      };
      const wake = (): void => done(true);
      const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
      set.add(wake);
    });
  }
}

/** Starts watching a cluster's primary and replicas. Listen to 'primary', or iterate, or call `current()` after `ready()`. */
export function watchPrimary(options: WatchOptions): PrimaryWatch {
  return new PrimaryWatch(compileWatchOptions(options));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
