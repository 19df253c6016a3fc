/**
 * The actions on the agent's own node: fence, demote, revoke, repoint, promote, semi-sync settings,
 * heartbeat. It owns what those actions leave behind: whether this agent fenced the node (and read it
 * back) and for which failover, whether it found the node diverged, which failover attempt it revoked
 * for, and the last failures, so that a failing action is logged once, not on every loop.
 */
import { describeError, gtidContains, parseGtid, type AgentConfig, type HookRun, type MemberState, type NodeState } from '@primacy/common';
import { sleep, type Clock } from '../clock.js';
import type { ClusterSnapshot, ClusterStore } from '../etcd/store.js';
import { demoteNode, fenceNode, StrictWaitError } from '../fencing.js';
import type { Logger } from '../log.js';
import type { NodeDriver } from '../node/driver.js';
import { readPid } from '../node/gone.js';
import { revokedFor, sourceTimeoutFor, type NodeAction, type NodePlanInput, type RecoveryInput } from '../plan.js';
import { Recovery } from './recovery.js';
import type { Counters } from '../view.js';
import { HookRunner, hookContext, postHookDue } from '../hooks.js';
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
class StillApplying extends Error {}

export interface NodeActionsDeps {
  readonly driver: NodeDriver;
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Counters;
  readonly store: ClusterStore;
  readonly monitor: NodeMonitor;
  readonly cluster: ClusterWatch;
  readonly leaseLive: () => boolean;
  /** Something changed that the member key must show at once. */
  readonly publishSoon: () => void;
}

/** What the member key says of the actions done: see MemberState. */
export interface ActionFacts {
  readonly fenced: boolean;
  readonly fencedFor: number | null;
  readonly errant: string | null;
  readonly revokedEpoch: number | null;
  readonly revokedAttempt: number | null;
  /** The post hooks this agent ran as the new primary, until the coordinator records them. */
  readonly hooks: readonly HookRun[];
  readonly salvageProblem: string | null;
  readonly rejoin: MemberState['rejoin'];
}

export class NodeActions {
  /** The node was fenced and read back read-only by this agent (cleared when it is made writable or replicates). */
  private fenced = false;
  /** The failover (by epoch) for which that fence was done. */
  private fencedFor: number | null = null;
  private errant: string | null = null;
  private revokedEpoch: number | null = null;
  private revokedAttempt: number | null = null;
  /** A semi-sync reconcile that failed, and when: it is not retried in a loop. */
  private semiSyncFailed: { reason: string; at: number } | null = null;
  /** The last fence failure, logged once until it changes or a fence succeeds. */
  private lastFenceError: string | null = null;
  private lastHeartbeatAt = 0;
  /** The node carries no reseed mark (checked before it first replicates in this agent's life). */
  private reseedChecked = false;
  /** The last "still applying" message of a promotion, logged once. */
  private lastApplying: string | null = null;
  /** The epoch this agent last promoted its node to, and the last one it ran its post hook for. */
  private promotedEpoch: number | null = null;
  private hookedEpoch: number | null = null;
  /** The new primary's own hooks (a VIP follows writes); their runs go out in the member key. */
  private readonly hooks: HookRunner;

  /** Salvage and rejoin of this node when it diverged: long runs, in the background of the node loop. */
  private readonly recovery: Recovery;

  constructor(private readonly d: NodeActionsDeps) {
    this.hooks = new HookRunner({ config: d.config, clock: d.clock, log: d.log, role: 'new-primary', onFinished: d.publishSoon });
    this.recovery = new Recovery({ ...d, rejoined: () => this.rejoined() });
  }

  /** What the node plan's recovery goes by, as this agent knows it now. */
  recoveryInput(): RecoveryInput {
    return this.recovery.input();
  }

  /** A rejoin made the node replicate from the primary again: it is no longer diverged. */
  private rejoined(): void {
    this.errant = null;
    this.unfence();
    this.revokedEpoch = null;
    this.revokedAttempt = null;
  }

  /** The failover this agent's fence counts for, while no probe has seen the node writable since. */
  get fence(): { readonly fenced: boolean; readonly forEpoch: number | null } {
    return { fenced: this.fenced, forEpoch: this.fenced ? this.fencedFor : null };
  }
  get diverged(): boolean {
    return this.errant !== null;
  }
  get errantGtids(): string | null {
    return this.errant;
  }

  /** What goes into the member key; `input` is the plan input it is published with. */
  facts(input: NodePlanInput): ActionFacts {
    const revoked = revokedFor(input);
    if (revoked) {
      this.revokedEpoch = revoked.epoch;
      this.revokedAttempt = revoked.attempt;
    }
    // Only a fence this agent read back counts, and only while no probe has seen the node writable since.
    const fenced = this.fenced && input.server?.readOnly !== false;
    return {
      fenced,
      fencedFor: fenced ? this.fencedFor : null,
      errant: this.errant,
      revokedEpoch: this.revokedEpoch,
      revokedAttempt: this.revokedAttempt,
      hooks: this.hooks.finished,
      salvageProblem: this.recovery.salvageProblem,
      rejoin: this.recovery.report,
    };
  }

  /** A probe answered: a node seen writable is not fenced, whatever was done to it before. */
  observed(state: NodeState | null): void {
    if (state?.readOnly === false) this.unfence();
  }

  /** Carries out one planned action; failures are logged (a fence's once per distinct error) and reported as false. */
  async run(action: Exclude<NodeAction, { kind: 'none' }>): Promise<boolean> {
    const failed = this.semiSyncFailed;
    if (action.kind === 'semi-sync' && failed?.reason === action.reason && this.d.clock.now() - failed.at < SEMI_SYNC_RETRY_MS) return false;
    const log = this.d.log;
    // A fence of a server that does not answer is retried on every loop: say so once, not every time.
    const quiet = action.kind === 'fence' && !this.d.monitor.answering && this.lastFenceError !== null;
    if (!quiet) log.info({ action: action.kind, reason: action.reason }, `node action: ${action.kind}`);
    try {
      await this.carryOut(action);
      this.d.publishSoon();
      return true;
    } catch (err) {
      if (err instanceof StillApplying) {
        // The loop publishes the progress at once (GTID positions alone are not worth a write outside
        // an operation record's wait, and the coordinator replaces a candidate it sees standing still),
        // then the promotion is tried again.
        this.d.publishSoon();
        if (err.message !== this.lastApplying) log.info({ executed: this.d.monitor.observation?.state?.gtid.executed }, err.message);
        this.lastApplying = err.message;
        return true;
      }
      const line = describeError(err);
      if (action.kind === 'semi-sync') this.semiSyncFailed = { reason: action.reason, at: this.d.clock.now() };
      if (action.kind === 'fence') {
        if (line !== this.lastFenceError) log.error({ action: action.kind, err: line }, 'node action fence failed; trying again on every loop until read_only reads back ON');
        this.lastFenceError = line;
      } else log.error({ action: action.kind, err: line }, `node action ${action.kind} failed`);
      return false;
    }
  }

  private async carryOut(action: NodeAction): Promise<void> {
    const { driver, config } = this.d;
    switch (action.kind) {
      case 'none':
        return;
      case 'fence':
        return this.fenceNow(action.reason, action.forEpoch ?? null);
      case 'revoke':
        return driver.stopReplicaIo(config.timings.revokeWaitMs);
      case 'demote': {
        const { killed } = await demoteNode(driver, config.timings.drainMs);
        this.fenced = true;
        this.fencedFor = null;
        this.d.log.warn({ reason: action.reason, killed }, 'node demoted: read-only, drained, client sessions killed');
        return;
      }
      case 'diverged':
        this.errant = action.errant;
        return;
      case 'salvage':
        return this.recovery.startSalvage(action.reason);
      case 'rejoin':
        return this.recovery.startRejoin(action.record);
      case 'semi-sync':
        if (action.source) await driver.setSemiSyncSource(true, action.timeoutMs);
        else {
          await driver.setSemiSyncSource(false, action.timeoutMs);
          await driver.setSemiSyncReplica(action.replica);
        }
        this.semiSyncFailed = null;
        this.d.log.info({ reason: action.reason }, "semi-sync settings follow the cluster's durability");
        return;
      case 'replicate':
        await this.refuseHalfReseeded();
        this.unfence();
        // Receiving again: a revoke of an earlier failover attempt no longer holds.
        this.revokedEpoch = null;
        this.revokedAttempt = null;
        await driver.setSemiSyncSource(false, config.replication.semiSyncTimeoutMs);
        await driver.setSemiSyncReplica(this.d.cluster.durability.mode !== 'async');
        await driver.replicateFrom({ host: action.host, port: action.port, user: config.replication.user, password: config.secrets.replicationPassword });
        return;
      case 'promote':
        return this.promote(action.epoch);
    }
  }

  /**
   * A reseed that did not finish (this agent's, or an earlier run's that was killed) leaves a mark
   * on the node: it holds partial data and must never replicate or serve as if whole. Checked once,
   * before the node first replicates in this agent's life (a mark is only ever made by a reseed);
   * a marked node is kept diverged, with the reason, until a reseed finishes.
   */
  private async refuseHalfReseeded(): Promise<void> {
    if (this.reseedChecked) return;
    const mark = await this.d.driver.readReseedMark();
    if (mark === null) {
      this.reseedChecked = true;
      return;
    }
    this.errant = `a reseed from ${mark.source} started at ${mark.startedAt.toISOString()} did not finish: the node holds partial data (primacy rejoin ${this.d.config.node} --method reseed)`;
    throw new Error(`not replicating: ${this.errant}`);
  }

  private unfence(): void {
    this.fenced = false;
    this.fencedFor = null;
  }

  /** The candidate's part of a promotion (DESIGN.md invariants 1 and 5). Each step is safe to repeat. */
  private async promote(epoch: number): Promise<void> {
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
    this.unfence();
    this.errant = null;
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

  /**
   * Fences the node and reads read_only back. A server that does not answer gets one attempt: the
   * loop tries again, and keeps probing and publishing in between.
   */
  private async fenceNow(reason: string, forEpoch: number | null): Promise<void> {
    let fenced: Awaited<ReturnType<typeof fenceNode>>;
    try {
      fenced = await fenceNode(this.d.driver, this.d.monitor.answering ? 3 : 1);
    } catch (err) {
      if (err instanceof StrictWaitError) this.haltServer(err);
      throw err;
    }
    const { killed, gtid } = fenced;
    this.fenced = true;
    this.fencedFor = forEpoch;
    this.lastFenceError = null;
    this.d.counters.fencings += 1;
    this.d.publishSoon();
    this.d.log.warn({ reason, killed, gtid, forEpoch }, 'node fenced: client sessions killed, read_only set and read back');
  }

  /**
   * Strict commits that no replica can acknowledge wait on this node, and killing any session would
   * acknowledge them: the server itself is stopped (SIGKILL of the pid in mysql.pidFile), so their
   * clients get an error; they stay in its binary log, for the rejoin to salvage. Without a pid file
   * the agent can only leave them waiting, and says so.
   */
  private haltServer(err: StrictWaitError): void {
    const log = this.d.log;
    const file = this.d.config.mysql.pidFile;
    const pid = file === undefined ? null : readPid(file);
    if (pid === null) {
      log.error({ waiting: err.waiting }, `${err.message}; set mysql.pidFile so that the agent can`);
      return;
    }
    try {
      process.kill(pid, 'SIGKILL');
      log.warn({ waiting: err.waiting, pid }, `mysqld (pid ${pid}) killed: ${err.message}`);
    } catch (killErr) {
      log.error({ waiting: err.waiting, pid, err: describeError(killErr) }, `could not kill mysqld: ${err.message}`);
    }
  }

  /** Tries to fence until it succeeds or `deadline` passes; failures are logged, never thrown. */
  async fenceUntil(reason: string, deadline: number): Promise<boolean> {
    for (;;) {
      try {
        await this.fenceNow(reason, this.fencedFor);
        return true;
      } catch (err) {
        if (this.d.clock.now() >= deadline) {
          this.d.log.error({ err: describeError(err) }, 'could not fence the node; no promotion happens without another proof');
          return false;
        }
        await sleep(100);
      }
    }
  }

  /** The lease lapsed: a node last seen read-only needs nothing (a replica's read sessions are left alone); any other, or one not seen, is fenced. */
  async selfFence(reason: string): Promise<void> {
    const o = this.d.monitor.observation;
    if (o?.health === 'up' && o.state?.readOnly) return;
    await this.fenceNow(reason, null).catch((err: unknown) => this.d.log.error({ err: describeError(err) }, 'self-fencing failed; the node loop tries again'));
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
