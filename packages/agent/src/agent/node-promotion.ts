/**
 * The agent's node as the primary, or becoming it: the candidate's part of a promotion, the
 * primary's heartbeat and post hooks, the semi-sync settings that follow the cluster's durability,
 * and a switchover target's wait for the demoted primary's position. It owns what those leave
 * behind: the epoch it promoted to and ran the post hook for, the hooks' runs, the last heartbeat,
 * the last "still applying" message and the last failed semi-sync reconcile.
 */
import { describeError, gtidContains, parseGtid, type AgentConfig, type HookRun } from '@primacy/common';
import type { Clock } from '../clock.js';
import type { ClusterSnapshot, ClusterStore } from '../etcd/store.js';
import { HookRunner, hookContext, postHookDue } from '../hooks.js';
import type { Logger } from '../log.js';
import type { NodeDriver } from '../node/driver.js';
import { sourceTimeoutFor, type NodeAction } from '../plan.js';
import { runningSwitchover, type ClusterWatch } from './cluster-watch.js';
import type { NodeMonitor } from './node-monitor.js';

/** A failed semi-sync reconcile is tried again after this long. */
const SEMI_SYNC_RETRY_MS = 30_000;

/** How long a switchover's target waits to have applied the demoted primary's position before it probes anyway. */
const CATCH_UP_PEEK_MS = 100;

/**
 * How long one promotion attempt waits for the relay log (or the catch-up) before it hands back to
 * the node loop, which publishes how far the node got and tries again: the coordinator sees a
 * candidate that applies steadily, and replaces only one that stands still (detectStalledPromotion).
 */
const APPLY_WAIT_MS = 1000;

/** A promotion attempt ended because the node still applies what it must have first; not a failure. */
export class StillApplying extends Error {}

export interface NodePromotionDeps {
  readonly driver: NodeDriver;
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly store: ClusterStore;
  readonly monitor: NodeMonitor;
  readonly cluster: ClusterWatch;
  readonly leaseLive: () => boolean;
  readonly publishSoon: () => void;
  /** The node was made writable as the primary: no fence of this agent's holds, and it is not diverged. */
  readonly madeWritable: () => void;
}

type SemiSyncAction = Extract<NodeAction, { kind: 'semi-sync' }>;

export class NodePromotion {
  /** A semi-sync reconcile that failed, and when: it is not retried in a loop. */
  private semiSyncFailed: { reason: string; at: number } | null = null;
  private lastHeartbeatAt = 0;
  /** The last "still applying" message of a promotion, logged once. */
  private lastApplying: string | null = null;
  /** The epoch this agent last promoted its node to, and the last one it ran its post hook for. */
  private promotedEpoch: number | null = null;
  private hookedEpoch: number | null = null;
  /** The new primary's own hooks (a VIP follows writes); their runs go out in the member key. */
  private readonly hooks: HookRunner;

  constructor(private readonly d: NodePromotionDeps) {
    this.hooks = new HookRunner({ config: d.config, clock: d.clock, log: d.log, role: 'new-primary', onFinished: d.publishSoon });
  }

  /** The post hooks this agent ran as the new primary, until the coordinator records them. */
  get hookRuns(): readonly HookRun[] {
    return this.hooks.finished;
  }

  /** The same reconcile failed a moment ago: it waits for its retry. */
  semiSyncHeld(action: SemiSyncAction): boolean {
    const failed = this.semiSyncFailed;
    return failed?.reason === action.reason && this.d.clock.now() - failed.at < SEMI_SYNC_RETRY_MS;
  }

  async setSemiSync(action: SemiSyncAction): Promise<void> {
    const { driver } = this.d;
    try {
      if (action.source) await driver.setSemiSyncSource(true, action.timeoutMs);
      else {
        await driver.setSemiSyncSource(false, action.timeoutMs);
        await driver.setSemiSyncReplica(action.replica);
      }
    } catch (err) {
      this.semiSyncFailed = { reason: action.reason, at: this.d.clock.now() };
      throw err;
    }
    this.semiSyncFailed = null;
    this.d.log.info({ reason: action.reason }, "semi-sync settings follow the cluster's durability");
  }

  /** A promotion attempt handed back while the node applies: its progress is published at once, and said once. */
  stillApplying(err: StillApplying): void {
    // GTID positions alone are not worth a write outside an operation record's wait, and the
    // coordinator replaces a candidate it sees standing still; then the promotion is tried again.
    this.d.publishSoon();
    if (err.message !== this.lastApplying) this.d.log.info({ executed: this.d.monitor.observation?.state?.gtid.executed }, err.message);
    this.lastApplying = err.message;
  }

  /** The candidate's part of a promotion (DESIGN.md invariants 1 and 5). Each step is safe to repeat. */
  async promote(epoch: number): Promise<void> {
    const { driver, config, clock, monitor } = this.d;
    const t = config.timings;
    const s = monitor.observation?.state;
    const op = this.d.cluster.snapshot?.currentOp;
    const catchUp = op?.epoch === epoch ? op.catchUpFrom : null;
    // How long each step took, logged when the promotion is done: where a slow promotion spends its time.
    const took: Record<string, number> = {};
    let mark = clock.now();
    const step = (name: string): void => {
      const now = clock.now();
      took[name] = now - mark;
      mark = now;
    };
    const wait = Math.min(APPLY_WAIT_MS, t.relayApplyTimeoutMs);
    let replicating = s?.replication != null;
    if (s && catchUp && !gtidContains(parseGtid(s.flavor, s.gtid.executed), parseGtid(s.flavor, catchUp.gtid))) {
      replicating = true;
      // A candidate that is behind first takes what it lacks from the node that has it.
      const r = s.replication;
      const pointed = r !== null && r.sourceHost === catchUp.host && r.sourcePort === catchUp.port && r.ioState !== 'stopped';
      if (!pointed) await driver.replicateFrom({ host: catchUp.host, port: catchUp.port, user: config.replication.user, password: config.secrets.replicationPassword });
      if (!(await driver.waitForGtid(catchUp.gtid, wait))) throw new StillApplying(`catching up with ${catchUp.node} (${catchUp.gtid}) before the promotion to epoch ${epoch}`);
      step('catchUp');
    } else if (s?.replication) {
      if (!(await driver.waitForRelayApplied(wait))) throw new StillApplying(`applying the relay log before the promotion to epoch ${epoch}`);
      step('relayApplied');
    }
    // The waits above can be long: make sure, on a fresh read, that this node is still the one to
    // promote. The read runs while replication is cleared; nothing is made writable before it answers.
    const check = this.promotionStillOurs(epoch);
    check.catch(() => undefined);
    if (replicating) {
      await driver.resetReplication();
      step('resetReplication');
    }
    const durability = this.d.cluster.durability;
    if (durability.mode !== 'async') await driver.setSemiSyncSource(true, sourceTimeoutFor(durability));
    step('semiSyncSource');
    await check;
    if (!this.d.leaseLive()) throw new Error('lease lost during promotion');
    step('etcdCheck');
    await driver.setReadOnly(false);
    // This agent made its node the writable primary of `epoch`: its post hook is due once etcd says ready.
    this.promotedEpoch = epoch;
    this.d.madeWritable();
    step('writable');
    await driver.writeHeartbeat(epoch, config.node);
    this.lastHeartbeatAt = clock.now();
    step('heartbeat');
    // Publish the finished promotion at once: the coordinator waits for it to mark the primary ready.
    monitor.adopt(await driver.observe());
    step('observe');
    this.d.log.info({ epoch, took }, `promoted to epoch ${epoch}`);
  }

  /** As the new primary: its post hook, once etcd names it the ready primary of the epoch it promoted itself to. Never waited for. */
  runPostHook(): void {
    const p = this.d.cluster.primary;
    const op = this.d.cluster.snapshot?.currentOp ?? null;
    const name = postHookDue(this.d.config.node, p, op, this.promotedEpoch, this.hookedEpoch);
    if (name === null || p === null || op === null) return;
    this.hookedEpoch = p.epoch;
    this.hooks.start(name, hookContext(this.d.config.cluster, op, p));
  }

  /** Throws unless etcd, read now, still names this node the primary of `epoch` and no failover away from it has started. */
  private async promotionStillOurs(epoch: number): Promise<void> {
    const self = this.d.config.node;
    const { primary, next } = await this.d.store.readPromotion(epoch);
    if (primary?.node !== self || primary.epoch !== epoch || primary.state === 'switching') throw new Error(`no longer the primary to promote (etcd names ${primary?.node ?? 'none'}, epoch ${primary?.epoch ?? 0})`);
    // A promotion that took too long is failed over by the coordinator; once that has started, stop.
    if (next?.kind === 'failover' && next.outcome === 'running' && next.from === self) throw new Error(`the coordinator is failing over away from this node (epoch ${next.epoch}): ${next.reason}`);
  }

  /**
   * As the target of a running switchover, once the old primary reports itself demoted: wait
   * (briefly) until its final position is applied, so that the probe and publish that follow show it
   * rather than the next probe's.
   */
  async awaitDemotedPosition(): Promise<void> {
    const gtid = demotedBefore(this.d.cluster.snapshot, this.d.config.node);
    if (gtid === null || gtid === '') return;
    await this.d.driver.waitForGtid(gtid, CATCH_UP_PEEK_MS).catch(() => false);
  }

  /** The primary writes its heartbeat every heartbeatIntervalMs while it is writable and its lease is live. */
  async heartbeat(): Promise<void> {
    const { config, clock, driver } = this.d;
    const p = this.d.cluster.primary;
    const s = this.d.monitor.observation?.state;
    const now = clock.now();
    if (!p || p.node !== config.node || p.state === 'switching' || !s || s.readOnly || !this.d.leaseLive()) return;
    if (now - this.lastHeartbeatAt < config.timings.heartbeatIntervalMs) return;
    this.lastHeartbeatAt = now;
    await driver.writeHeartbeat(p.epoch, config.node).catch((err: unknown) => this.d.log.warn({ err: describeError(err) }, 'heartbeat write failed'));
  }
}

/** As the target of a running switchover: the old primary's final position, once it reports itself demoted. */
export function demotedBefore(snap: ClusterSnapshot | null, self: string): string | null {
  const op = runningSwitchover(snap);
  if (op?.to !== self || op.from === null) return null;
  const old = snap?.members.get(op.from);
  return old?.fenced && old.server?.readOnly ? old.server.gtid.executed : null;
}
