/**
 * The agent's view of its cluster: the last linearizable snapshot of the cluster's keys, kept current
 * by a watch on the cluster's prefix (a hint only: every change is re-read) and by a re-read on a
 * timer. Each fresh snapshot is handed to `onSnapshot` (the node loop's wake-up, the coordinator).
 */
import type { Etcd3 } from 'etcd3';
import { MemberStateSchema, type AgentConfig, type Durability, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { sleep, type Clock } from '../clock.js';
import { watchHints } from '../etcd/election.js';
import type { ClusterKeys } from '@primacy/common';
import type { ClusterSnapshot, ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import { materiallyChanged } from '../member.js';
import { durabilityOf } from '../plan.js';
import type { EtcdHealth } from './etcd-health.js';

/** How often an agent re-reads the cluster when nothing runs and no watch event came. */
const IDLE_REFRESH_MS = 1000;

/**
 * The same while the watch on the cluster's keys is up and no decision waits on the clock (no refused
 * or aborted operation pending): every change wakes the loop then, and this re-read is a safety net.
 */
const WATCHED_IDLE_REFRESH_MS = 5000;

/**
 * The same for an agent that neither coordinates nor runs the primary: its node acts only on keys
 * the watch reports at once (the primary, the operation, the election), so the net can be wider.
 */
const WATCHED_IDLE_REFRESH_REPLICA_MS = 15_000;

export interface ClusterWatchDeps {
  readonly etcd: Etcd3;
  readonly store: ClusterStore;
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly etcdHealth: EtcdHealth;
  /** Whether the agent's lease is live: a lapsed one is not worth a watch. */
  readonly leaseLive: () => boolean;
  readonly stopping: AbortSignal;
  /** Called with every fresh snapshot and the one before it. */
  readonly onSnapshot: (snap: ClusterSnapshot, prev: ClusterSnapshot | null) => Promise<void>;
}

export class ClusterWatch {
  private snap: ClusterSnapshot | null = null;
  private readAt = 0;
  private unwatch: (() => Promise<void>) | null = null;
  private readonly reportedInvalid = new Set<string>();

  constructor(private readonly d: ClusterWatchDeps) {}

  get snapshot(): ClusterSnapshot | null {
    return this.snap;
  }
  /** How old the snapshot is (ms). */
  get age(): number {
    return this.d.clock.now() - this.readAt;
  }
  /** The revision of the last snapshot ('0' before the first). */
  get revision(): string {
    return this.snap?.revision ?? '0';
  }
  get primary(): Primary | null {
    return this.snap?.primary ?? null;
  }
  /** The primary's member key, if it has one. */
  get primaryMember(): MemberState | null {
    const p = this.primary;
    return p ? (this.snap?.members.get(p.node) ?? null) : null;
  }
  /** The agent that wins the election, as the snapshot shows it. */
  get coordinatorNode(): string | null {
    return this.snap?.campaigners[0]?.node ?? null;
  }
  /** The switchover under way, if any. */
  get runningSwitchover(): OpRecord | null {
    return runningSwitchover(this.snap);
  }
  /** The target of the switchover under way, with where to reach its server; null when none runs. */
  get switchoverTarget(): { node: string; host: string; port: number } | null {
    const op = this.runningSwitchover;
    const m = op?.to ? this.snap?.members.get(op.to) : undefined;
    return m ? { node: m.node, host: m.host, port: m.port } : null;
  }
  /** The cluster's durability: the etcd config's, else this agent's own `replication.semiSync`. */
  get durability(): { mode: Durability; timeoutMs: number } {
    const r = this.d.config.replication;
    return { mode: durabilityOf(this.snap?.config, r.semiSync), timeoutMs: r.semiSyncTimeoutMs };
  }
  /** Whether an operation runs or the primary is not ready: others wait on this node's state. */
  get busy(): boolean {
    return this.snap?.pendingOp?.outcome === 'running' || this.snap?.primary?.state !== 'ready';
  }

  /** Reads the cluster now (linearizable) and hands the snapshot on. Throws when etcd fails. */
  async refresh(): Promise<void> {
    const snap = await this.d.store.snapshot();
    this.readAt = this.d.clock.now();
    this.d.etcdHealth.recovered();
    const prev = this.snap;
    this.snap = snap;
    for (const e of snap.invalid) {
      if (this.reportedInvalid.has(e.message)) continue;
      this.reportedInvalid.add(e.message); // once per distinct bad value, not on every read
      this.d.log.warn({ key: e.key }, e.message);
    }
    await this.d.onSnapshot(snap, prev);
  }

  /**
   * Keeps the snapshot current until the agent stops. A watch on the cluster's keys wakes it;
   * otherwise it re-reads every second (every 5 s while the watch is up and nothing is pending), or
   * every probe interval while an operation runs (the coordinator's waits are bounded in time).
   */
  async run(): Promise<void> {
    let wake: (() => void) | null = null;
    let dirty = false;
    const hint = (key?: string, value?: string | null): void => {
      if (key !== undefined && !concernsAgent(key, this.d.store.keys, this.d.config.node, this.snap, value, this.d.config.timings.maxLagMs)) return;
      dirty = true;
      wake?.();
    };
    const { stopping, etcdHealth } = this.d;
    while (!stopping.aborted) {
      if (this.unwatch === null && this.d.leaseLive()) {
        this.unwatch = await watchHints(this.d.etcd, this.d.store.keys.prefix, hint, () => {
          // A cancelled watch (compaction, a lost member) is re-read now and re-created on the next turn.
          this.unwatch = null;
          hint();
        }).catch((err: unknown) => {
          etcdHealth.failed(err);
          return null;
        });
      }
      dirty = false;
      try {
        if (this.d.leaseLive() || !etcdHealth.reachable) await this.refresh();
      } catch (err) {
        etcdHealth.failed(err);
      }
      if (dirty) continue;
      const busy = this.busy || (this.snap?.requests.size ?? 0) > 0;
      const wait = new AbortController();
      wake = () => wait.abort();
      const onStop = (): void => wait.abort();
      stopping.addEventListener('abort', onStop, { once: true });
      const watched = this.unwatch !== null && etcdHealth.reachable && !this.snap?.pendingOp;
      const watchedIdle = decidesOnMembers(this.d.config.node, this.snap) ? WATCHED_IDLE_REFRESH_MS : WATCHED_IDLE_REFRESH_REPLICA_MS;
      await sleep(busy ? this.d.config.timings.probeIntervalMs : watched ? watchedIdle : IDLE_REFRESH_MS, wait.signal);
      stopping.removeEventListener('abort', onStop);
      wake = null;
    }
  }

  async close(): Promise<void> {
    await this.unwatch?.();
  }
}

/**
 * Whether `self` reads other members' keys for its decisions: the coordinator decides on all of
 * them, the primary's agent answers for a member that went down (answerNeeded), and while the primary
 * is not ready or an operation runs, every agent waits on the others' state.
 */
export function decidesOnMembers(self: string, snap: ClusterSnapshot | null): boolean {
  const steady = steadyCluster(snap);
  if (steady === null) return true;
  return steady.campaigners[0]?.node === self || steady.primary!.node === self;
}

/**
 * Whether a change of `key` (a watch hint, with the value it was put with; null for a delete) is
 * worth a re-read for `self`. Only member keys in a steady cluster (primary ready, no operation
 * running) are ever skipped:
 * - a member key rewritten with nothing in it that decisions act on (only positions, exact lag and
 *   times moved: `materiallyChanged`), by every agent; the coordinator's `last-seen` record takes the
 *   positions from its next idle re-read;
 * - by a steady replica's agent, also the other replicas' member keys and its own echo.
 * That saves most of a fleet's re-reads; every key outside members/ is always re-read.
 */
export function concernsAgent(key: string, keys: ClusterKeys, self: string, snap: ClusterSnapshot | null, value?: string | null, maxLagMs = 10_000): boolean {
  if (!key.startsWith(keys.membersPrefix) || steadyCluster(snap) === null) return true;
  const next = value ? memberOf(value) : null;
  const before = next === null ? undefined : snap!.members.get(next.node);
  if (next !== null && before !== undefined && key === keys.member(next.node) && !materiallyChanged(before, next, maxLagMs)) return false;
  if (decidesOnMembers(self, snap)) return true;
  return key === keys.member(snap!.primary!.node);
}

/** The snapshot when the primary is ready and no operation runs; null otherwise. */
function steadyCluster(snap: ClusterSnapshot | null): ClusterSnapshot | null {
  return snap !== null && snap.primary?.state === 'ready' && snap.pendingOp?.outcome !== 'running' ? snap : null;
}

/** A member value as a watch event carries it; null when it cannot be read (the re-read reports it). */
function memberOf(value: string): MemberState | null {
  try {
    const parsed = MemberStateSchema.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The switchover under way in `snap`, if any. */
export function runningSwitchover(snap: ClusterSnapshot | null): OpRecord | null {
  const op = snap?.pendingOp;
  return op?.kind === 'switchover' && op.outcome === 'running' ? op : null;
}
