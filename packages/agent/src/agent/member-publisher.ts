/**
 * The member key: this agent's word to the cluster about its node, written under the agent's lease.
 * It is rewritten when something decisions act on changed, when the primary must answer for a member
 * that went down, when asked (`soon`), and in any case every publishRefreshMs on the primary and every
 * replicaPublishRefreshMs elsewhere.
 */
import type { AgentConfig, MemberState } from '@primacy/common';
import type { Clock } from '../clock.js';
import { withTimeout, type LeaseKeeper } from '../etcd/lease.js';
import type { ClusterStore } from '../etcd/store.js';
import { answerNeeded, buildMember, materiallyChanged, roleOf } from '../member.js';
import type { NodePlanInput } from '../plan.js';
import type { Counters } from '../view.js';
import type { NodeActions } from './actions.js';
import type { ClusterWatch } from './cluster-watch.js';
import type { EtcdHealth } from './etcd-health.js';
import type { NodeMonitor } from './node-monitor.js';

export interface MemberPublisherDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly counters: Counters;
  readonly store: ClusterStore;
  readonly keeper: LeaseKeeper;
  readonly etcdHealth: EtcdHealth;
  readonly monitor: NodeMonitor;
  readonly actions: NodeActions;
  readonly cluster: ClusterWatch;
  readonly apiUrl: () => string;
  /** Whether no other live agent runs as this node: nothing is published before. */
  readonly claimed: () => boolean;
}

export class MemberPublisher {
  private written: MemberState | null = null;
  private writtenAt = 0;
  private now = true;

  constructor(private readonly d: MemberPublisherDeps) {}

  /** The member state last written to etcd. */
  get member(): MemberState | null {
    return this.written;
  }

  /** Writes the member key on the next publish, whether or not anything changed. */
  soon(): void {
    this.now = true;
  }

  /** Publishes the node's state as `input` (the node plan's input) sees it, when it is due. */
  async publish(input: NodePlanInput): Promise<void> {
    const { config, clock, keeper, monitor, cluster } = this.d;
    const lease = keeper.current;
    if (!lease || !keeper.isLive() || !this.d.claimed()) return;
    const now = clock.now();
    const facts = this.d.actions.facts(input);
    const next = buildMember({
      cluster: config.cluster,
      node: config.node,
      host: config.mysql.advertiseHost ?? config.mysql.host,
      port: config.mysql.advertisePort ?? config.mysql.port,
      apiUrl: this.d.apiUrl(),
      observation: monitor.observation,
      downProbes: monitor.downProbes,
      role: roleOf(config.node, monitor.observation?.state, cluster.primary, cluster.switchoverTarget, facts.errant !== null),
      ...facts,
      serverGone: monitor.serverGone,
      lastAnswer: monitor.lastAnswer,
      downSinceRevision: monitor.downSinceRevision,
      priority: config.promotion.priority,
      noPromote: config.promotion.noPromote,
      now,
    });
    const refreshMs = cluster.primary?.node === config.node ? config.timings.publishRefreshMs : config.timings.replicaPublishRefreshMs;
    const due = now - this.writtenAt >= refreshMs;
    // While an operation runs, the coordinator waits on positions: the candidate's, the replicas' receipt of the fenced primary's last one.
    const switching = cluster.snapshot?.pendingOp?.outcome === 'running';
    const answer = (): boolean => answerNeeded(config.node, cluster.primary, this.written, monitor.lastAnswered?.seenRevision ?? null, cluster.snapshot?.members.values() ?? []);
    if (!this.now && !due && !answer() && !materiallyChanged(this.written, next, config.timings.maxLagMs, switching)) return;
    try {
      const put = await withTimeout(lease.put(this.d.store.keys.member(config.node)).value(JSON.stringify(next)).exec(), config.etcd.dialTimeoutMs);
      this.written = next;
      this.writtenAt = now;
      this.now = false;
      // The first write of a down period: its revision bounds when the server stopped answering, and goes out with the next write.
      if (next.health === 'down' && monitor.publishedDown(String(put.header.revision))) this.now = true;
      this.d.counters.memberWrites += 1;
      this.d.etcdHealth.recovered();
    } catch (err) {
      this.d.etcdHealth.failed(err);
    }
  }
}
