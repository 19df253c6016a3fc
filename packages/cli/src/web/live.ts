/**
 * The I/O shell of `primacy web`: one etcd watch (of the cluster, or of the whole root) says which
 * clusters changed; those are read again in one fleet read (the ranges `primacy clusters` reads, and
 * ops/ and history/ where they changed), and a new state goes to `publish`. Reads are coalesced: one
 * round at a time, and whatever changed meanwhile makes one more.
 */
import { describeError, type OpRecord } from '@primacy/common';
import { decodeCluster, decodeOps } from '../cluster.js';
import { CliError } from '../errors.js';
import type { ClusterClient, FleetClient, KeysEvent } from '../etcd.js';
import { clusterPage, webState, type ClusterPage, type WebState } from './model.js';

/** How soon a failed read or an ended watch is tried again. */
export const RETRY_MS = 1000;

interface Ops {
  readonly ops: OpRecord[];
  readonly warnings: string[];
}

export class LiveClusters {
  private readonly pages = new Map<string, ClusterPage>();
  private readonly ops = new Map<string, Ops>();
  private readonly clients = new Map<string, ClusterClient>();
  /** Clusters to read again, and those whose ops/ or history/ changed too. */
  private dirty = new Set<string>();
  private opsDirty = new Set<string>();
  /** List the clusters under the root again: after a reconnect, keys may have come and gone unseen. */
  private relist = false;
  private problem: string | null = null;
  private running = false;
  private again = false;
  private retry: NodeJS.Timeout | null = null;
  private stopWatch: (() => Promise<void>) | null = null;
  private stopped = false;
  private state: WebState | null = null;

  constructor(
    private readonly fleet: FleetClient,
    private readonly only: string | null,
    private readonly actions: boolean,
    private readonly publish: (state: WebState) => void,
  ) {}

  /** The last state published. */
  get latest(): WebState {
    return this.state ?? this.make();
  }

  client(cluster: string): ClusterClient {
    let c = this.clients.get(cluster);
    if (!c) {
      c = this.fleet.cluster(cluster);
      this.clients.set(cluster, c);
    }
    return c;
  }

  /**
   * Reads which clusters there are, starts the watch, then reads each; all of it must succeed (a
   * CliError: exit 3 when etcd cannot be used, 4 for an unknown --cluster). A cluster that appeared
   * before the watch started is found by the relisting that the watch's `connected` asks for.
   */
  async start(): Promise<void> {
    // As a round: what the watch reports meanwhile is read in the round after it.
    this.running = true;
    try {
      // Read first: an unreachable etcd fails a read at once, where a watch waits for its deadline.
      const listed = this.only === null ? await this.fleet.listClusters() : null;
      if (this.only !== null) await this.client(this.only).readExisting();
      await this.watch();
      const names = listed?.names ?? [this.only!];
      await this.load(new Set(names), new Set(names), false, listed?.revision);
    } finally {
      this.running = false;
    }
    this.emit();
    if (this.again) this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.stopWatch?.();
  }

  private async watch(): Promise<void> {
    const prefix = this.only === null ? this.fleet.prefix : this.client(this.only).keys.prefix;
    this.stopWatch = await this.fleet.watchKeys(prefix, (e) => this.onWatch(e));
  }

  private onWatch(e: KeysEvent): void {
    if (this.stopped) return;
    switch (e.kind) {
      case 'keys':
        for (const key of e.keys) {
          const c = this.fleet.clusterOf(key);
          if (c === null || (this.only !== null && c !== this.only)) continue;
          this.dirty.add(c);
          const k = this.client(c).keys;
          if (key.startsWith(k.opsPrefix) || key.startsWith(k.historyPrefix)) this.opsDirty.add(c);
        }
        break;
      case 'connected':
        this.readAllAgain();
        break;
      case 'disconnected':
        // The watch reconnects by itself, and then reads everything again.
        this.problem = e.error.message;
        this.emit();
        return;
      case 'ended':
        this.problem = e.error.message;
        this.stopWatch = null;
        this.emit();
        this.rewatchLater();
        return;
    }
    this.schedule();
  }

  private readAllAgain(): void {
    if (this.only === null) this.relist = true;
    for (const c of this.only === null ? this.pages.keys() : [this.only]) {
      this.dirty.add(c);
      this.opsDirty.add(c);
    }
  }

  private rewatchLater(): void {
    setTimeout(() => {
      if (this.stopped) return;
      this.watch().then(
        () => {
          this.readAllAgain();
          this.schedule();
        },
        (err: unknown) => {
          this.problem = messageOf(err);
          this.emit();
          this.rewatchLater();
        },
      );
    }, RETRY_MS).unref();
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.round();
        } while (this.again && !this.stopped);
      } finally {
        this.running = false;
      }
    })();
  }

  private async round(): Promise<void> {
    const { dirty, opsDirty, relist } = this;
    if (dirty.size === 0 && !relist) return;
    this.dirty = new Set();
    this.opsDirty = new Set();
    this.relist = false;
    try {
      await this.load(dirty, opsDirty, relist);
      this.problem = null;
    } catch (err) {
      // Read it all again once etcd answers: nothing that changed is forgotten.
      for (const c of dirty) this.dirty.add(c);
      for (const c of opsDirty) this.opsDirty.add(c);
      this.relist ||= relist;
      this.problem = messageOf(err);
      this.retryLater();
    }
    if (!this.stopped) this.emit();
  }

  private retryLater(): void {
    if (this.retry || this.stopped) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.schedule();
    }, RETRY_MS);
  }

  /**
   * Reads the clusters named in one fleet read (one revision, one transaction per few dozen
   * clusters; with the listing first when relisting), all before changing any page, so that a failed
   * read leaves the last good state. ops/ and history/ only of the clusters whose records changed.
   */
  private async load(dirty: Set<string>, opsDirty: Set<string>, relist: boolean, listedAt?: string): Promise<void> {
    let at = listedAt;
    if (relist) {
      const listed = await this.fleet.listClusters();
      at = listed.revision;
      const names = new Set(listed.names);
      for (const c of names) {
        if (this.pages.has(c)) continue;
        dirty.add(c);
        opsDirty.add(c);
      }
      for (const c of this.pages.keys()) if (!names.has(c)) dirty.add(c);
    }
    const withOps = new Set([...dirty].filter((c) => opsDirty.has(c) || !this.ops.has(c)));
    const read = await this.fleet.readClusters([...dirty], { ...(at ? { at } : {}), withOps });
    const now = Date.now();
    for (const [cluster, raw] of read.clusters) {
      const view = decodeCluster(cluster, this.client(cluster).keys, raw);
      if (!view.exists && cluster !== this.only) {
        this.pages.delete(cluster);
        this.ops.delete(cluster);
        this.clients.delete(cluster);
        continue;
      }
      const records = read.ops.get(cluster);
      const ops = records ? decodeOps(records.ops, records.history) : this.ops.get(cluster)!;
      this.ops.set(cluster, ops);
      this.pages.set(cluster, clusterPage(view, ops.ops, ops.warnings, now));
    }
  }

  private make(): WebState {
    return webState({ root: this.fleet.where.root, only: this.only, actions: this.actions, problem: this.problem, pages: this.pages.values(), now: Date.now() });
  }

  private emit(): void {
    this.state = this.make();
    this.publish(this.state);
  }
}

function messageOf(err: unknown): string {
  return err instanceof CliError ? err.message : describeError(err);
}
