/**
 * primacy-agent: the thin shell around the pure decisions, composed of parts that each own their
 * state (docs/architecture.md has the picture):
 * - NodeMonitor: what probing the server found;  NodeActions: what acting on it left behind;
 * - MemberPublisher: the member key;  NodeLoop: probe, publish, act, one step at a time;
 * - ClusterWatch: the cluster's keys, watched and re-read;  Candidacy: node claim, lease, election;
 * - the Coordinator, which decides for the cluster while this agent wins the election.
 * This class only wires them together, builds the node plan's input from them, and starts and stops.
 */
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { AgentConfig } from '@primacy/common';
import { systemClock, type Clock } from './clock.js';
import { Coordinator } from './coordinator/coordinator.js';
import { connectEtcd } from './etcd/connect.js';
import { LeaseKeeper } from './etcd/lease.js';
import { ClusterStore, type ClusterSnapshot } from './etcd/store.js';
import { startHttpApi, type HttpApi } from './http.js';
import { createLogger, type Logger } from './log.js';
import { publishedApiUrl } from './member.js';
import { connectNode } from './node/index.js';
import type { NodeDriver } from './node/driver.js';
import type { NodePlanInput } from './plan.js';
import { newCounters, type AgentView, type Counters } from './view.js';
import { demotedBefore, NodeActions } from './agent/actions.js';
import { Candidacy } from './agent/candidacy.js';
import { ClusterWatch, decidesOnMembers } from './agent/cluster-watch.js';
import { EtcdHealth } from './agent/etcd-health.js';
import { MemberPublisher } from './agent/member-publisher.js';
import { NodeLoop } from './agent/node-loop.js';
import { NodeMonitor } from './agent/node-monitor.js';

/** How long a stopping agent keeps trying to fence a node that may take writes. */
const STOP_FENCE_MS = 3000;

export interface AgentDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly driver?: NodeDriver;
  /** The agent cannot run at all (another live agent already runs as this node): one line for the operator. */
  readonly onFatal?: (line: string) => void;
}

export class Agent {
  readonly config: AgentConfig;
  readonly counters: Counters = newCounters();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly driver: NodeDriver;
  private readonly etcd: Etcd3;
  private readonly keeper: LeaseKeeper;
  private readonly etcdHealth: EtcdHealth;
  private readonly monitor: NodeMonitor;
  private readonly cluster: ClusterWatch;
  private readonly actions: NodeActions;
  private readonly publisher: MemberPublisher;
  private readonly nodeLoop: NodeLoop;
  private readonly candidacy: Candidacy;
  private readonly coordinator: Coordinator;
  private readonly stopping = new AbortController();
  private http: HttpApi | null = null;
  private loops: Promise<unknown>[] = [];
  private startedAt = 0;

  constructor(config: AgentConfig, deps: AgentDeps = {}) {
    this.config = config;
    const clock = (this.clock = deps.clock ?? systemClock);
    const counters = this.counters;
    const log = (this.log = deps.logger ?? createLogger({ level: config.log.level, cluster: config.cluster, node: config.node, epoch: () => this.cluster.primary?.epoch ?? null }));
    const driver = (this.driver =
      deps.driver ??
      connectNode(
        { host: config.mysql.host, port: config.mysql.port, socket: config.mysql.socket, user: config.mysql.user, password: config.secrets.mysqlPassword },
        { flavor: config.mysql.flavor, connectTimeoutMs: config.timings.probeTimeoutMs, queryTimeoutMs: config.timings.probeTimeoutMs, heartbeatIntervalMs: config.timings.heartbeatIntervalMs, onConnectionLost: () => this.nodeLoop.serverDropped() },
      ));
    const etcd = (this.etcd = connectEtcd(config));
    const store = new ClusterStore(etcd, config.cluster, config.etcd.root);
    // A steady replica's agent (it neither wins the election nor runs the primary) renews less often; `this.cluster` exists by the first renewal.
    const steady = (): boolean => !decidesOnMembers(config.node, this.cluster.snapshot);
    const keeper = (this.keeper = new LeaseKeeper(etcd, {
      ttlS: config.timings.leaseTtlS,
      marginMs: config.timings.fenceMarginMs,
      callTimeoutMs: config.etcd.dialTimeoutMs,
      steady,
      // Routine keepalives go to the etcd leader's configured endpoint: a follower forwards each to it (issue 13).
      leaderRoute: { endpoints: config.etcd.endpoints, connect: (endpoint) => connectEtcd(config, [endpoint]) },
    }));
    const leaseLive = (): boolean => keeper.isLive();
    const stopping = this.stopping.signal;
    const etcdHealth = (this.etcdHealth = new EtcdHealth(log, counters));
    this.coordinator = new Coordinator({ config, store, clock, log, counters, onEtcdError: etcdHealth.failed });
    const monitor = (this.monitor = new NodeMonitor(driver, config, clock, log, counters));
    const cluster = (this.cluster = new ClusterWatch({ etcd, store, config, clock, log, etcdHealth, leaseLive, stopping, onSnapshot: (snap, prev) => this.onSnapshot(snap, prev) }));
    const publishSoon = (): void => this.publisher.soon();
    const actions = (this.actions = new NodeActions({ driver, config, clock, log, counters, store, monitor, cluster, leaseLive, publishSoon }));
    const candidacy = (this.candidacy = new Candidacy({
      etcd,
      store,
      keeper,
      config,
      clock,
      log,
      counters,
      etcdHealth,
      cluster,
      stopping,
      onFatal: deps.onFatal ?? ((line) => log.fatal(line)),
      onLease: publishSoon,
      onLapsed: (reason) => {
        this.coordinator.stepDown(reason);
        log.warn({ reason }, 'lease lapsed: fencing the node if it is writable');
        void actions.fence.selfFence(reason);
      },
    }));
    const claimed = (): boolean => candidacy.claimed;
    this.publisher = new MemberPublisher({ config, clock, counters, store, keeper, etcdHealth, monitor, actions, cluster, apiUrl: () => this.apiUrl, claimed });
    this.nodeLoop = new NodeLoop({ config, clock, monitor, publisher: this.publisher, actions, cluster, etcdHealth, planInput: () => this.planInput(), leaseLive, claimed, stopping });
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
      observation: this.monitor.observation,
      downProbes: this.monitor.downProbes,
      member: this.publisher.member,
      primary: this.cluster.primary,
      lease: { id: this.keeper.id, deadline: this.keeper.deadline },
      etcd: this.etcdHealth.view,
      coordinator: { self: this.coordinator.active, node: this.cluster.coordinatorNode },
      switchoverTo: this.cluster.switchoverTarget,
    };
  }

  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    this.http = await startHttpApi({ host: this.config.http.host, port: this.config.http.port, view: () => this.view(), counters: this.counters, logger: this.log });
    this.candidacy.start();
    this.loops = [this.keeper.run(), this.nodeLoop.run(), this.candidacy.whenClaimed.then(() => this.cluster.run())];
    this.log.info({ api: this.apiUrl }, 'agent started');
  }

  /**
   * SIGTERM. A replica's agent leaves at once (its lease is revoked, so others see it go). The
   * primary's agent first hands over through a planned switchover; if that does not finish in time it
   * fences its node (read-only, sessions killed) and leaves, and the cluster fails over.
   */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const primary = this.cluster.primary;
    const isPrimary = primary?.node === this.config.node && this.monitor.observation?.state?.readOnly === false;
    if (isPrimary && this.keeper.isLive()) await this.candidacy.handOver();
    this.stopping.abort();
    // Fence whatever may take writes: the primary (whether or not its server answers now) and any node
    // last seen writable. A server that does not answer is tried until STOP_FENCE_MS; if that fails,
    // the agent leaves anyway, and the cluster waits for another proof before it promotes anyone.
    if (this.cluster.primary?.node === this.config.node || this.monitor.lastAnswered?.state.readOnly === false) {
      await this.actions.fence.fenceUntil('the agent is stopping and could not hand over; the cluster fails over', this.clock.now() + STOP_FENCE_MS);
    }
    this.coordinator.stepDown('the agent is stopping');
    await this.keeper.stop({ revoke: true });
    await Promise.allSettled(this.loops);
    await this.cluster.close();
    await this.http?.close();
    await this.driver.close();
    this.etcd.close();
    this.log.info('agent stopped');
  }

  /** A fresh snapshot: wake the node loop if it concerns this node, then let the coordinator decide. */
  private async onSnapshot(snap: ClusterSnapshot, prev: ClusterSnapshot | null): Promise<void> {
    if (prev && this.wakeKey(prev) !== this.wakeKey(snap)) this.nodeLoop.wake();
    await this.coordinator.tick(snap, this.candidacy.coordinating);
  }

  /**
   * What in etcd the node loop reacts to at once: the primary, the operation under way, the primary's
   * health as its own agent reports it, and, for the target of a switchover, the old primary reporting
   * itself demoted. The primary's health is there so that a replica, whose IO thread saw the primary
   * vanish at the same moment, probes and says so at once: the coordinator fails over only once no
   * replica still receives from the primary, and would otherwise wait for the replicas' next probes.
   */
  private wakeKey(snap: ClusterSnapshot): string {
    const p = snap.primary ? snap.members.get(snap.primary.node) : undefined;
    return JSON.stringify([snap.primary, snap.pendingOp, p?.health ?? null, p?.serverGone ?? null, demotedBefore(snap, this.config.node)]);
  }

  /** The node plan's input: what each part knows now. */
  private planInput(): NodePlanInput {
    const { monitor, actions, cluster } = this;
    const primary = cluster.primary;
    const snap = cluster.snapshot;
    const op = snap?.pendingOp;
    const failover =
      op && primary && op.kind === 'failover' && op.outcome === 'running' && op.from === primary.node && op.epoch === primary.epoch + 1
        ? { epoch: op.epoch, from: op.from, revoke: op.steps.some((s) => s.name === 'revoke'), startedAt: op.startedAt }
        : null;
    return {
      self: this.config.node,
      leaseLive: this.keeper.isLive(),
      server: monitor.server,
      mayBeWritable: monitor.mayBeWritable,
      fencedFor: actions.fence.state.forEpoch,
      durability: cluster.durability,
      primary,
      primaryMember: cluster.primaryMember,
      diverged: actions.replication.diverged,
      failover,
      // No visible switchover record (say, a coordinator changing hands) must not keep a switching primary writable.
      demoteAllowed: cluster.runningSwitchover?.steps.some((s) => s.name === 'clients paused') ?? true,
      switchoverTo: cluster.switchoverTarget,
    };
  }
}
