/**
 * primacy-agent: the thin shell around the pure decisions. One sequential loop owns the node (probe,
 * publish, act), the lease keeper owns the lease, and while this agent wins the election a second
 * loop coordinates the cluster. Every action on the node or on the cluster is preceded by a fresh,
 * linearizable read of etcd.
 */
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { describeError, gtidContains, parseGtid, type AgentConfig, type Durability, type LastAnswer, type MemberState, type NodeState, type OpRecord, type OperatorRequest, type Primary } from '@primacy/common';
import { systemClock, sleep, type Clock } from './clock.js';
import { Coordinator } from './coordinator/coordinator.js';
import { connectEtcd } from './etcd/connect.js';
import { campaign, watchHints } from './etcd/election.js';
import { LeaseKeeper, withTimeout } from './etcd/lease.js';
import { ClusterStore, type Campaigner, type ClusterSnapshot } from './etcd/store.js';
import { startHttpApi, type HttpApi } from './http.js';
import { demoteNode, fenceNode, StrictWaitError } from './fencing.js';
import { createLogger, type Logger } from './log.js';
import { buildMember, materiallyChanged, publishedApiUrl, type Role } from './member.js';
import { connectNode } from './node/index.js';
import type { NodeDriver, Observation } from './node/driver.js';
import { durabilityOf, planNodeAction, revokedFor, sourceTimeoutFor, type NodeAction, type NodePlanInput } from './plan.js';
import { goneReason, readPid } from './node/gone.js';
import { newCounters, type AgentView, type Counters } from './view.js';

/** How long a stopping primary's agent waits for its switchover (systemd gives it 15 s in deploy/). */
const HANDOVER_MS = 10_000;

/** How long a stopping agent keeps trying to fence a node that may take writes. */
const STOP_FENCE_MS = 3000;

/** A failed semi-sync reconcile is tried again after this long. */
const SEMI_SYNC_RETRY_MS = 30_000;

/** The probe interval while an operation is under way. */
const OPERATION_PROBE_MS = 50;

/** How often an agent re-reads the cluster when nothing runs and no watch event came. */
const IDLE_REFRESH_MS = 1000;

/**
 * The same while the watch on the cluster's keys is up and no decision waits on the clock (no refused
 * or aborted operation pending): every change wakes the loop then, and this re-read is a safety net.
 */
const WATCHED_IDLE_REFRESH_MS = 5000;

/** A cluster snapshot younger than this is not read again before a node action. */
const FRESH_SNAPSHOT_MS = 100;
/** How long a switchover's target waits to have applied the demoted primary's position before it probes anyway. */
const CATCH_UP_PEEK_MS = 100;
/** An observation this young, taken by the action just done, is published without probing again. */
const FRESH_OBSERVATION_MS = 10;

export interface AgentDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly driver?: NodeDriver;
  /** The agent cannot run at all (another live agent already runs as this node): one line for the operator. */
  readonly onFatal?: (line: string) => void;
}

/** How long a start-up watches another lease on this node's member key, to tell a live agent from a dead one. */
const CLAIM_WATCH_MS = 1800;

export class Agent {
  readonly config: AgentConfig;
  readonly counters: Counters = newCounters();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly driver: NodeDriver;
  private readonly etcd: Etcd3;
  private readonly store: ClusterStore;
  private readonly keeper: LeaseKeeper;
  private readonly coordinator: Coordinator;
  private readonly stopping = new AbortController();
  private readonly onFatal: (line: string) => void;
  /** Resolves once no other live agent runs as this node; nothing is published, campaigned or done before. */
  private claimed: Promise<void> = Promise.resolve();
  private isClaimed = false;
  private http: HttpApi | null = null;
  private loops: Promise<unknown>[] = [];
  private unwatch: (() => Promise<void>) | null = null;

  private startedAt = 0;
  private observation: Observation | null = null;
  /** When `observation` was taken (clock ms). */
  private observedAt = -Infinity;
  private downProbes = 0;
  private member: MemberState | null = null;
  private memberWrittenAt = 0;
  private primary: Primary | null = null;
  private primaryMember: MemberState | null = null;
  private snapshot: ClusterSnapshot | null = null;
  private snapshotAt = 0;
  private revokedEpoch: number | null = null;
  private revokedAttempt: number | null = null;
  private wakeNodeLoop: (() => void) | null = null;
  private readonly reportedInvalid = new Set<string>();
  private campaigner: Campaigner | null = null;
  private coordinatorNode: string | null = null;
  private etcdState = { reachable: false, lastError: null as string | null };
  /** The node was fenced and read back read-only by this agent (cleared when it is made writable or replicates). */
  private fenced = false;
  /** The failover (by epoch) for which that fence was done. */
  private fencedFor: number | null = null;
  /** Why the server is provably gone (not merely silent); null while it answers or proves nothing. */
  private serverGone: string | null = null;
  /**
   * The last state the server answered with (one last seen writable may still be, while it does not
   * answer), and the etcd revision read before that probe began.
   */
  private lastAnswered: { readonly state: NodeState; readonly seenRevision: string } | null = null;
  /** The revision of the first publication of the current down period; null while the server answers. */
  private downSinceRevision: string | null = null;
  private snapshotRevision = '0';
  /** A semi-sync reconcile that failed, and when: it is not retried in a loop. */
  private semiSyncFailed: { reason: string; at: number } | null = null;
  /** The last fence failure, logged once until it changes or a fence succeeds. */
  private lastFenceError: string | null = null;
  private errant: string | null = null;
  private lastHeartbeatAt = 0;
  private publishNow = true;

  constructor(config: AgentConfig, deps: AgentDeps = {}) {
    this.config = config;
    this.clock = deps.clock ?? systemClock;
    this.onFatal = deps.onFatal ?? ((line) => this.log.fatal(line));
    this.log = deps.logger ?? createLogger({ level: config.log.level, cluster: config.cluster, node: config.node, epoch: () => this.primary?.epoch ?? null });
    this.driver =
      deps.driver ??
      connectNode(
        { host: config.mysql.host, port: config.mysql.port, socket: config.mysql.socket, user: config.mysql.user, password: config.secrets.mysqlPassword },
        { flavor: config.mysql.flavor, connectTimeoutMs: config.timings.probeTimeoutMs, queryTimeoutMs: config.timings.probeTimeoutMs },
      );
    this.etcd = connectEtcd(config);
    this.store = new ClusterStore(this.etcd, config.cluster, config.etcd.root);
    this.keeper = new LeaseKeeper(this.etcd, { ttlS: config.timings.leaseTtlS, marginMs: config.timings.fenceMarginMs, callTimeoutMs: config.etcd.dialTimeoutMs });
    this.coordinator = new Coordinator({
      config,
      store: this.store,
      clock: this.clock,
      log: this.log,
      counters: this.counters,
      onEtcdError: (err) => this.etcdFailed(err),
    });
  }

  /**
   * The API's URL as published: the configured advertiseUrl; else the listen address, unless that is
   * every address (0.0.0.0, ::), which nobody can reach: then the node's advertised host or its name.
   */
  get apiUrl(): string {
    return publishedApiUrl(this.config.http, this.http?.url ?? null, this.config.mysql.advertiseHost ?? hostname());
  }

  view(): AgentView {
    return {
      config: this.config,
      startedAt: this.startedAt,
      observation: this.observation,
      downProbes: this.downProbes,
      member: this.member,
      primary: this.primary,
      lease: { id: this.keeper.id, deadline: this.keeper.deadline },
      etcd: { ...this.etcdState },
      coordinator: { self: this.coordinator.active, node: this.coordinatorNode },
      switchoverTo: this.switchoverTarget(),
    };
  }

  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    this.http = await startHttpApi({ host: this.config.http.host, port: this.config.http.port, view: () => this.view(), counters: this.counters, logger: this.log });
    this.claimed = this.claimNode();
    this.keeper.on('granted', (lease, id) => {
      this.log.info({ lease: id }, 'lease granted');
      this.publishNow = true;
      void this.claimed.then(() => this.joinElection(lease, id));
    });
    this.keeper.on('lapsed', (reason) => {
      this.counters.leaseLosses += 1;
      this.coordinator.stepDown(reason);
      this.log.warn({ reason }, 'lease lapsed: fencing the node if it is writable');
      void this.selfFence(reason);
    });
    this.keeper.on('restored', () => {
      this.publishNow = true;
      this.log.info('lease restored: etcd kept it and its keys; resuming');
    });
    this.keeper.on('lost', (reason) => {
      this.campaigner = null;
      this.log.warn({ reason }, 'lease lost with its keys; a new one follows');
    });
    this.keeper.on('etcdError', (err) => this.etcdFailed(err));
    this.keeper.on('etcdOk', () => this.etcdRecovered());
    void this.claimed.then(() => {
      this.isClaimed = true;
    });
    this.loops = [this.keeper.run(), this.nodeLoop(), this.claimed.then(() => this.clusterLoop())];
    this.log.info({ api: this.apiUrl }, 'agent started');
  }

  /**
   * SIGTERM. A replica's agent leaves at once (its lease is revoked, so others see it go). The
   * primary's agent first hands over through a planned switchover; if that does not finish in time it
   * fences its node (read-only, sessions killed) and leaves, and the cluster fails over.
   */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const isPrimary = this.primary?.node === this.config.node && this.observation?.state?.readOnly === false;
    if (isPrimary && this.keeper.isLive()) await this.handOver();
    this.stopping.abort();
    // Fence whatever may take writes: the primary (whether or not its server answers now) and any node
    // last seen writable. A server that does not answer is tried until STOP_FENCE_MS; if that fails,
    // the agent leaves anyway, and the cluster waits for another proof before it promotes anyone.
    if (this.primary?.node === this.config.node || this.lastAnswered?.state.readOnly === false) {
      await this.fenceUntil('the agent is stopping and could not hand over; the cluster fails over', this.clock.now() + STOP_FENCE_MS);
    }
    this.coordinator.stepDown('the agent is stopping');
    await this.keeper.stop({ revoke: true });
    await Promise.allSettled(this.loops);
    await this.unwatch?.();
    await this.http?.close();
    await this.driver.close();
    this.etcd.close();
    this.log.info('agent stopped');
  }

  /**
   * Refuses to run beside another live agent of the same node name: two agents publishing one
   * member key, each for its own server, would let the coordinator promote or fence the wrong one.
   * A key under another lease that etcd keeps renewing belongs to a live agent; one whose lease
   * runs down is this agent's own earlier run (killed), and is taken over. Retries while etcd is away.
   */
  private async claimNode(): Promise<void> {
    const key = this.store.keys.member(this.config.node);
    while (!this.stopping.signal.aborted) {
      try {
        const kv = (await this.etcd.get(key).exec()).kvs[0];
        const other = kv && String(kv.lease) !== '0' ? String(kv.lease) : null;
        if (other === null) return;
        const ttl = async (): Promise<number> => Number((await this.etcd.leaseClient.leaseTimeToLive({ ID: other })).TTL);
        const first = await ttl();
        if (first <= 0) return;
        await sleep(CLAIM_WATCH_MS, this.stopping.signal);
        const last = await ttl();
        // A lease nobody renews loses at least a second in this time; a renewed one does not.
        if (last < first) return;
        let holder = 'unknown';
        try {
          holder = (JSON.parse(kv!.value.toString()) as { apiUrl?: string }).apiUrl ?? holder;
        } catch {
          // the key's value is checked elsewhere; the refusal stands
        }
        const line = `another live agent already runs as node ${this.config.node} in cluster ${this.config.cluster} (its API: ${holder}, lease ${other}); give each agent its own node name`;
        this.log.error(line);
        this.onFatal(line);
        await new Promise<never>(() => undefined); // nothing runs after a refusal
      } catch (err) {
        this.etcdFailed(err);
        await sleep(1000, this.stopping.signal);
      }
    }
  }

  /** Asks for a switchover away from this node and waits, bounded, for another node to be named primary. */
  private async handOver(): Promise<boolean> {
    const id = `${this.clock.now()}-stop-${this.config.node}`;
    const key = this.store.keys.request(id);
    const deadline = this.clock.now() + HANDOVER_MS;
    this.log.warn({ request: id }, 'stopping: handing over through a planned switchover');
    try {
      const request: OperatorRequest = { kind: 'switchover', to: null, force: false, unfenced: false, requestedAt: this.clock.now(), by: `agent ${this.config.node} (stopping)` };
      await this.etcd.put(key).value(JSON.stringify(request));
      while (this.clock.now() < deadline) {
        await sleep(100);
        const { primary } = await this.store.readPrimary();
        if (primary && primary.node !== this.config.node) {
          this.log.info({ to: primary.node, epoch: primary.epoch }, 'handed over');
          return true;
        }
        const op = this.snapshot?.pendingOp;
        if (op?.request?.id === id && (op.outcome === 'refused' || op.outcome === 'aborted')) break;
      }
    } catch (err) {
      this.etcdFailed(err);
    }
    await this.etcd.delete().key(key).catch(() => undefined);
    this.log.warn('no handover: fencing the node and leaving; the cluster fails over');
    return false;
  }

  private etcdFailed(err: unknown): void {
    this.counters.etcdErrors += 1;
    const line = describeError(err);
    if (this.etcdState.reachable || this.etcdState.lastError !== line) this.log.warn({ err: line }, 'etcd call failed');
    this.etcdState = { reachable: false, lastError: line };
  }

  private etcdRecovered(): void {
    if (!this.etcdState.reachable) this.log.info('etcd reachable');
    this.etcdState = { reachable: true, lastError: null };
  }

  private async joinElection(lease: Parameters<typeof campaign>[1], id: string): Promise<void> {
    try {
      this.campaigner = await campaign(this.store, lease, id, this.config.node);
      await this.refreshCluster();
    } catch (err) {
      this.etcdFailed(err);
    }
  }

  /** Probe, publish, act: one step at a time, so node actions never overlap. */
  private async nodeLoop(): Promise<void> {
    const interval = this.config.timings.probeIntervalMs;
    let hurried = false;
    let woken = false;
    while (!this.stopping.signal.aborted) {
      const started = this.clock.now();
      // Woken by a change in etcd (a switchover, a promotion), act at once on an observation at most one
      // probe interval old; the probe and the publish of its result follow at once.
      const actFirst = woken && started - this.observedAt < interval;
      woken = false;
      const actedFirst = actFirst && (await this.act());
      if (actFirst) await this.awaitDemotedPosition();
      // An action that observed the node itself (a promotion does) is published without probing again.
      if (this.clock.now() - this.observedAt > FRESH_OBSERVATION_MS) await this.probe();
      await this.publish();
      const acted = actFirst ? actedFirst : await this.act();
      await this.heartbeat();
      // After an action, probe and publish its result at once (others wait on it), but never twice in a row.
      hurried = !actFirst && acted && !hurried;
      if (hurried) continue;
      const wait = new AbortController();
      this.wakeNodeLoop = () => {
        woken = true;
        wait.abort();
      };
      const onStop = () => wait.abort();
      this.stopping.signal.addEventListener('abort', onStop, { once: true });
      // While an operation runs, others wait on this node's state: probe faster.
      const pace = this.snapshot?.pendingOp?.outcome === 'running' || this.primary?.state !== 'ready' ? Math.min(interval, OPERATION_PROBE_MS) : interval;
      await sleep(Math.max(0, pace - (this.clock.now() - started)), wait.signal);
      this.stopping.signal.removeEventListener('abort', onStop);
      this.wakeNodeLoop = null;
    }
  }

  private async probe(): Promise<void> {
    // Read before the probe: what the probe finds, the server had after this revision.
    const seenRevision = this.snapshotRevision;
    const o = await this.driver.observe();
    this.observedAt = this.clock.now();
    this.counters.probes += 1;
    this.counters.probeLatency.observe(o.probeMs);
    if (o.health === 'down') {
      this.counters.probeFailures += 1;
      this.downProbes += 1;
    } else this.downProbes = 0;
    const prev = this.observation;
    if (prev?.health !== o.health) this.log[o.health === 'up' ? 'info' : 'warn']({ health: o.health, err: o.error }, `server is ${o.health}`);
    if (o.health === 'up') {
      if (o.state) this.lastAnswered = { state: o.state, seenRevision };
      this.downSinceRevision = null;
    }
    // A node seen writable is not fenced, whatever was done to it before.
    if (o.state?.readOnly === false) {
      this.fenced = false;
      this.fencedFor = null;
    }
    // A server seen down for fewer probes than configured keeps its last state: one slow probe is not a
    // failure. A provably gone one is (a refused connection on this host, an exited process).
    const gone = o.health === 'down' ? goneReason(o.error, this.config.mysql) : null;
    if (gone !== this.serverGone) this.log[gone ? 'warn' : 'info']({ gone }, gone ? `server is gone: ${gone}` : 'server no longer provably gone');
    this.serverGone = gone;
    if (o.health === 'down' && gone === null && this.downProbes < this.config.timings.downAfterProbes && prev) return;
    this.observation = o;
  }

  private role(): Role {
    const s = this.observation?.state;
    const p = this.primary;
    if (this.errant) return 'diverged';
    if (!s || !p) return 'unknown';
    if (p.node === this.config.node) return s.readOnly ? 'unknown' : 'primary';
    const r = s.replication;
    // While the primary is switching, a replica may already follow the switchover's target.
    const to = p.state === 'switching' ? (this.switchoverTarget() ?? null) : null;
    const follows = (e: { host: string; port: number } | null): boolean => e !== null && r !== null && r.sourceHost === e.host && r.sourcePort === e.port;
    return follows(p) || follows(to) ? 'replica' : 'unknown';
  }

  private async publish(): Promise<void> {
    const lease = this.keeper.current;
    if (!lease || !this.keeper.isLive() || !this.isClaimed) return;
    const now = this.clock.now();
    const input = this.planInput(this.primary);
    const revoked = revokedFor(input);
    if (revoked) {
      this.revokedEpoch = revoked.epoch;
      this.revokedAttempt = revoked.attempt;
    }
    // Only a fence this agent read back counts, and only while no probe has seen the node writable since.
    const fenced = this.fenced && input.server?.readOnly !== false;
    const next = buildMember({
      cluster: this.config.cluster,
      node: this.config.node,
      host: this.config.mysql.advertiseHost ?? this.config.mysql.host,
      port: this.config.mysql.advertisePort ?? this.config.mysql.port,
      apiUrl: this.apiUrl,
      observation: this.observation,
      downProbes: this.downProbes,
      role: this.role(),
      fenced,
      fencedFor: fenced ? this.fencedFor : null,
      serverGone: this.serverGone,
      lastAnswer: this.lastAnswer(),
      downSinceRevision: this.downSinceRevision,
      errant: this.errant,
      revokedEpoch: this.revokedEpoch,
      revokedAttempt: this.revokedAttempt,
      priority: this.config.promotion.priority,
      noPromote: this.config.promotion.noPromote,
      now,
    });
    const due = now - this.memberWrittenAt >= this.config.timings.publishRefreshMs;
    // While an operation runs, the coordinator waits on positions: the candidate's, the replicas' receipt of the fenced primary's last one.
    const switching = this.snapshot?.pendingOp?.outcome === 'running';
    if (!this.publishNow && !due && !this.answerNeeded() && !materiallyChanged(this.member, next, this.config.timings.maxLagMs, switching)) return;
    try {
      const put = await withTimeout(lease.put(this.store.keys.member(this.config.node)).value(JSON.stringify(next)).exec(), this.config.etcd.dialTimeoutMs);
      this.member = next;
      this.memberWrittenAt = now;
      this.publishNow = false;
      // The first write of a down period: its revision bounds when the server stopped answering, and goes out with the next write.
      if (next.health === 'down' && this.downSinceRevision === null) {
        this.downSinceRevision = String(put.header.revision);
        this.publishNow = true;
      }
      this.counters.memberWrites += 1;
      this.etcdRecovered();
    } catch (err) {
      this.etcdFailed(err);
    }
  }

  /**
   * The primary republishes its positions once a member went down after its last publication: a
   * replica whose server has been down since before this probe cannot hold anything newer than what
   * the primary had then, and the coordinator may then fail over without it (decide.ts).
   */
  /** The last answered probe's positions, as the member key carries them. */
  private lastAnswer(): LastAnswer | null {
    const a = this.lastAnswered;
    return a && { executed: a.state.gtid.executed, received: a.state.gtid.received, seenRevision: a.seenRevision };
  }

  private answerNeeded(): boolean {
    if (this.primary?.node !== this.config.node || this.lastAnswered === null) return false;
    const published = BigInt(this.member?.lastAnswer?.seenRevision ?? '0');
    const now = BigInt(this.lastAnswered.seenRevision);
    for (const m of this.snapshot?.members.values() ?? []) {
      if (m.node === this.config.node || m.downSinceRevision === null) continue;
      const down = BigInt(m.downSinceRevision);
      if (down > published && now >= down) return true;
    }
    return false;
  }

  private planInput(primary: Primary | null): NodePlanInput {
    const o = this.observation;
    const op = this.snapshot?.pendingOp;
    const failover =
      op && primary && op.kind === 'failover' && op.outcome === 'running' && op.from === primary.node && op.epoch === primary.epoch + 1
        ? { epoch: op.epoch, from: op.from, revoke: op.steps.some((s) => s.name === 'revoke'), startedAt: op.startedAt }
        : null;
    return {
      self: this.config.node,
      leaseLive: this.keeper.isLive(),
      server: o?.health === 'up' ? o.state : null,
      mayBeWritable: o?.health !== 'up' && this.serverGone === null && this.lastAnswered?.state.readOnly === false,
      fencedFor: this.fenced ? this.fencedFor : null,
      durability: this.durability(),
      primary,
      primaryMember: this.primaryMember,
      diverged: this.errant !== null,
      failover,
      // No visible switchover record (say, a coordinator changing hands) must not keep a switching primary writable.
      demoteAllowed: runningSwitchover(this.snapshot)?.steps.some((s) => s.name === 'clients paused') ?? true,
      switchoverTo: this.switchoverTarget(),
    };
  }

  /** The cluster's durability: the etcd config's, else this agent's own `replication.semiSync`. */
  private durability(): { mode: Durability; timeoutMs: number } {
    return { mode: durabilityOf(this.snapshot?.config, this.config.replication.semiSync), timeoutMs: this.config.replication.semiSyncTimeoutMs };
  }

  /** The target of the switchover under way, with where to reach its server; null when none runs. */
  private switchoverTarget(): NodePlanInput['switchoverTo'] {
    const op = runningSwitchover(this.snapshot);
    const m = op?.to ? this.snapshot?.members.get(op.to) : undefined;
    return m ? { node: m.node, host: m.host, port: m.port } : null;
  }

  /** Plans on the last known state; acts only after a fresh read agrees (watches are hints). */
  private async act(): Promise<boolean> {
    if (planNodeAction(this.planInput(this.primary)).kind === 'none') return false;
    // A snapshot read moments ago (it is what woke this loop) is current enough; promotion re-reads anyway.
    if (this.keeper.isLive() && this.clock.now() - this.snapshotAt > FRESH_SNAPSHOT_MS) {
      try {
        await this.refreshCluster();
      } catch (err) {
        this.etcdFailed(err);
        return false;
      }
    }
    const action = planNodeAction(this.planInput(this.primary));
    if (action.kind === 'none') return false;
    // Until no other live agent runs as this node, the only action is the safe one: fencing.
    if (!this.isClaimed && action.kind !== 'fence') return false;
    const failed = this.semiSyncFailed;
    if (action.kind === 'semi-sync' && failed?.reason === action.reason && this.clock.now() - failed.at < SEMI_SYNC_RETRY_MS) return false;
    const log = this.log;
    // A fence of a server that does not answer is retried on every loop: say so once, not every time.
    const quiet = action.kind === 'fence' && this.observation?.health !== 'up' && this.lastFenceError !== null;
    if (!quiet) log.info({ action: action.kind, reason: action.reason }, `node action: ${action.kind}`);
    try {
      await this.carryOut(action);
      this.publishNow = true;
      return true;
    } catch (err) {
      const line = describeError(err);
      if (action.kind === 'semi-sync') this.semiSyncFailed = { reason: action.reason, at: this.clock.now() };
      if (action.kind === 'fence') {
        if (line !== this.lastFenceError) log.error({ action: action.kind, err: line }, 'node action fence failed; trying again on every loop until read_only reads back ON');
        this.lastFenceError = line;
      } else log.error({ action: action.kind, err: line }, `node action ${action.kind} failed`);
      return false;
    }
  }

  private async carryOut(action: NodeAction): Promise<void> {
    switch (action.kind) {
      case 'none':
        return;
      case 'fence':
        return this.fence(action.reason, action.forEpoch ?? null);
      case 'revoke':
        return this.driver.stopReplicaIo(this.config.timings.revokeWaitMs);
      case 'demote': {
        const { killed } = await demoteNode(this.driver, this.config.timings.drainMs);
        this.fenced = true;
        this.fencedFor = null;
        this.log.warn({ reason: action.reason, killed }, 'node demoted: read-only, drained, client sessions killed');
        return;
      }
      case 'diverged':
        this.errant = action.errant;
        return;
      case 'semi-sync':
        if (action.source) await this.driver.setSemiSyncSource(true, action.timeoutMs);
        else {
          await this.driver.setSemiSyncSource(false, action.timeoutMs);
          await this.driver.setSemiSyncReplica(action.replica);
        }
        this.semiSyncFailed = null;
        this.log.info({ reason: action.reason }, 'semi-sync settings follow the cluster\'s durability');
        return;
      case 'replicate':
        this.fenced = false;
        this.fencedFor = null;
        // Receiving again: a revoke of an earlier failover attempt no longer holds.
        this.revokedEpoch = null;
        this.revokedAttempt = null;
        await this.driver.setSemiSyncSource(false, this.config.replication.semiSyncTimeoutMs);
        await this.driver.setSemiSyncReplica(this.durability().mode !== 'async');
        await this.driver.replicateFrom({ host: action.host, port: action.port, user: this.config.replication.user, password: this.config.secrets.replicationPassword });
        return;
      case 'promote':
        return this.promote(action.epoch);
    }
  }

  /** The candidate's part of a promotion (DESIGN.md invariants 1 and 5). Each step is safe to repeat. */
  private async promote(epoch: number): Promise<void> {
    const t = this.config.timings;
    const s = this.observation?.state;
    const op = this.snapshot?.currentOp;
    const catchUp = op?.epoch === epoch ? op.catchUpFrom : null;
    // How long each step took, logged when the promotion is done: where a slow promotion spends its time.
    const took: Record<string, number> = {};
    let mark = this.clock.now();
    const step = (name: string): void => {
      const now = this.clock.now();
      took[name] = now - mark;
      mark = now;
    };
    let replicating = s?.replication != null;
    if (s && catchUp && !gtidContains(parseGtid(s.flavor, s.gtid.executed), parseGtid(s.flavor, catchUp.gtid))) {
      replicating = true;
      // A candidate that is behind first takes what it lacks from the node that has it.
      const r = s.replication;
      const pointed = r !== null && r.sourceHost === catchUp.host && r.sourcePort === catchUp.port && r.ioState !== 'stopped';
      if (!pointed) await this.driver.replicateFrom({ host: catchUp.host, port: catchUp.port, user: this.config.replication.user, password: this.config.secrets.replicationPassword });
      if (!(await this.driver.waitForGtid(catchUp.gtid, t.relayApplyTimeoutMs))) throw new Error(`could not catch up with ${catchUp.node} within ${t.relayApplyTimeoutMs} ms`);
      step('catchUp');
    } else if (s?.replication) {
      if (!(await this.driver.waitForRelayApplied(t.relayApplyTimeoutMs))) throw new Error(`relay log not applied within ${t.relayApplyTimeoutMs} ms`);
      step('relayApplied');
    }
    // The waits above can be long: make sure, on a fresh read, that this node is still the one to
    // promote. The read runs while replication is cleared; nothing is made writable before it answers.
    const check = this.promotionStillOurs(epoch);
    check.catch(() => undefined);
    if (replicating) {
      await this.driver.resetReplication();
      step('resetReplication');
    }
    const durability = this.durability();
    if (durability.mode !== 'async') await this.driver.setSemiSyncSource(true, sourceTimeoutFor(durability));
    step('semiSyncSource');
    await check;
    if (!this.keeper.isLive()) throw new Error('lease lost during promotion');
    step('etcdCheck');
    await this.driver.setReadOnly(false);
    this.fenced = false;
    this.fencedFor = null;
    this.errant = null;
    step('writable');
    await this.driver.writeHeartbeat(epoch, this.config.node);
    this.lastHeartbeatAt = this.clock.now();
    step('heartbeat');
    // Publish the finished promotion at once: the coordinator waits for it to mark the primary ready.
    this.observation = await this.driver.observe();
    this.observedAt = this.clock.now();
    step('observe');
    this.log.info({ epoch, took }, `promoted to epoch ${epoch}`);
  }

  /**
   * What in etcd the node loop reacts to at once: the primary, the operation under way, and, for the
   * target of a switchover, the old primary reporting itself demoted.
   */
  private wakeKey(snap: ClusterSnapshot): string {
    const old = this.demotedBefore(snap);
    return JSON.stringify([snap.primary, snap.pendingOp, old]);
  }

  /** As the target of a running switchover: the old primary's final position, once it reports itself demoted. */
  private demotedBefore(snap: ClusterSnapshot | null): string | null {
    const op = runningSwitchover(snap);
    if (op?.to !== this.config.node || op.from === null) return null;
    const old = snap?.members.get(op.from);
    return old?.fenced && old.server?.readOnly ? old.server.gtid.executed : null;
  }

  /**
   * The coordinator promotes a switchover's target once it has published everything the demoted
   * primary has. Rather than wait for the next probe, wait (briefly) until that is applied, so that the
   * probe and publish that follow show it.
   */
  private async awaitDemotedPosition(): Promise<void> {
    const gtid = this.demotedBefore(this.snapshot);
    if (gtid === null || gtid === '') return;
    await this.driver.waitForGtid(gtid, CATCH_UP_PEEK_MS).catch(() => false);
  }

  /** Throws unless etcd, read now, still names this node the primary of `epoch` and no failover away from it has started. */
  private async promotionStillOurs(epoch: number): Promise<void> {
    const { primary, next } = await this.store.readPromotion(epoch);
    if (primary?.node !== this.config.node || primary.epoch !== epoch || primary.state === 'switching') throw new Error(`no longer the primary to promote (etcd names ${primary?.node ?? 'none'}, epoch ${primary?.epoch ?? 0})`);
    // A promotion that took too long is failed over by the coordinator; once that has started, stop.
    if (next?.kind === 'failover' && next.outcome === 'running' && next.from === this.config.node) throw new Error(`the coordinator is failing over away from this node (epoch ${next.epoch}): ${next.reason}`);
  }

  /**
   * Fences the node and reads read_only back. A server that does not answer gets one attempt: the
   * loop tries again, and keeps probing and publishing in between.
   */
  private async fence(reason: string, forEpoch: number | null = null): Promise<void> {
    let fenced: Awaited<ReturnType<typeof fenceNode>>;
    try {
      fenced = await fenceNode(this.driver, this.observation?.health === 'up' ? 3 : 1);
    } catch (err) {
      if (err instanceof StrictWaitError) this.haltServer(err);
      throw err;
    }
    const { killed, gtid } = fenced;
    this.fenced = true;
    this.fencedFor = forEpoch;
    this.lastFenceError = null;
    this.counters.fencings += 1;
    this.publishNow = true;
    this.log.warn({ reason, killed, gtid, forEpoch }, 'node fenced: client sessions killed, read_only set and read back');
  }

  /**
   * Strict commits that no replica can acknowledge wait on this node, and killing any session would
   * acknowledge them: the server itself is stopped (SIGKILL of the pid in mysql.pidFile), so their
   * clients get an error; they stay in its binary log, for the rejoin to salvage. Without a pid file
   * the agent can only leave them waiting, and says so.
   */
  private haltServer(err: StrictWaitError): void {
    const file = this.config.mysql.pidFile;
    const pid = file === undefined ? null : readPid(file);
    if (pid === null) {
      this.log.error({ waiting: err.waiting }, `${err.message}; set mysql.pidFile so that the agent can`);
      return;
    }
    try {
      process.kill(pid, 'SIGKILL');
      this.log.warn({ waiting: err.waiting, pid }, `mysqld (pid ${pid}) killed: ${err.message}`);
    } catch (killErr) {
      this.log.error({ waiting: err.waiting, pid, err: describeError(killErr) }, `could not kill mysqld: ${err.message}`);
    }
  }

  /** Tries to fence until it succeeds or `deadline` passes; failures are logged, never thrown. */
  private async fenceUntil(reason: string, deadline: number): Promise<boolean> {
    for (;;) {
      try {
        await this.fence(reason, this.fencedFor);
        return true;
      } catch (err) {
        if (this.clock.now() >= deadline) {
          this.log.error({ err: describeError(err) }, 'could not fence the node; no promotion happens without another proof');
          return false;
        }
        await sleep(100);
      }
    }
  }

  private async selfFence(reason: string): Promise<void> {
    // A node last seen read-only needs nothing (a replica's read sessions are left alone); any other, or one not seen, is fenced.
    if (this.observation?.health === 'up' && this.observation.state?.readOnly) return;
    await this.fence(reason).catch((err: unknown) => this.log.error({ err: describeError(err) }, 'self-fencing failed; the node loop tries again'));
  }

  private async heartbeat(): Promise<void> {
    const p = this.primary;
    const s = this.observation?.state;
    const now = this.clock.now();
    if (!p || p.node !== this.config.node || p.state === 'switching' || !s || s.readOnly || !this.keeper.isLive()) return;
    if (now - this.lastHeartbeatAt < this.config.timings.heartbeatIntervalMs) return;
    this.lastHeartbeatAt = now;
    await this.driver.writeHeartbeat(p.epoch, this.config.node).catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'heartbeat write failed'));
  }

  /** Keeps the primary, the coordinator's identity, and the coordinator loop current. */
  /**
   * Keeps the primary, the coordinator's identity, and the coordinator loop current. A watch on the
   * cluster's keys wakes it; otherwise it re-reads every second, or every probe interval while an
   * operation runs (the coordinator's waits are bounded in time).
   */
  private async clusterLoop(): Promise<void> {
    let wake: (() => void) | null = null;
    let dirty = false;
    const hint = (): void => {
      dirty = true;
      wake?.();
    };
    while (!this.stopping.signal.aborted) {
      if (this.unwatch === null && this.keeper.isLive()) {
        this.unwatch = await watchHints(this.etcd, this.store.keys.prefix, hint, () => {
          // A cancelled watch (compaction, a lost member) is re-read now and re-created on the next turn.
          this.unwatch = null;
          hint();
        }).catch((err: unknown) => {
          this.etcdFailed(err);
          return null;
        });
      }
      dirty = false;
      try {
        if (this.keeper.isLive() || !this.etcdState.reachable) await this.refreshCluster();
      } catch (err) {
        this.etcdFailed(err);
      }
      if (dirty) continue;
      const busy = this.snapshot?.pendingOp?.outcome === 'running' || this.snapshot?.primary?.state !== 'ready' || (this.snapshot?.requests.size ?? 0) > 0;
      const wait = new AbortController();
      wake = () => wait.abort();
      const onStop = (): void => wait.abort();
      this.stopping.signal.addEventListener('abort', onStop, { once: true });
      const watched = this.unwatch !== null && this.etcdState.reachable && !this.snapshot?.pendingOp;
      await sleep(busy ? this.config.timings.probeIntervalMs : watched ? WATCHED_IDLE_REFRESH_MS : IDLE_REFRESH_MS, wait.signal);
      this.stopping.signal.removeEventListener('abort', onStop);
      wake = null;
    }
  }

  private async refreshCluster(): Promise<void> {
    const snap = await this.store.snapshot();
    this.snapshotAt = this.clock.now();
    this.snapshotRevision = snap.revision;
    this.etcdRecovered();
    const prev = this.snapshot;
    this.snapshot = snap;
    if (prev && this.wakeKey(prev) !== this.wakeKey(snap)) this.wakeNodeLoop?.();
    for (const e of snap.invalid) {
      if (this.reportedInvalid.has(e.message)) continue;
      this.reportedInvalid.add(e.message); // once per distinct bad value, not on every read
      this.log.warn({ key: e.key }, e.message);
    }
    this.primary = snap.primary;
    this.primaryMember = snap.primary ? (snap.members.get(snap.primary.node) ?? null) : null;
    this.coordinatorNode = snap.campaigners[0]?.node ?? null;
    // A lapsed lease coordinates nothing, though its election key may still stand.
    await this.coordinator.tick(snap, this.keeper.isLive() ? this.campaigner : null);
  }
}

/** The switchover under way in `snap`, if any. */
function runningSwitchover(snap: ClusterSnapshot | null): OpRecord | null {
  const op = snap?.pendingOp;
  return op?.kind === 'switchover' && op.outcome === 'running' ? op : null;
}
