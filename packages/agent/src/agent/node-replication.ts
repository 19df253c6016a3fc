/**
 * The agent's node as a replica: it replicates from the primary, stops receiving for a failover
 * (revoke), and is found diverged. It owns what those leave behind: the errant GTIDs it found (or
 * why a half-reseeded node must not replicate), the failover attempt it revoked for, and whether the
 * node was checked for a reseed mark in this agent's life.
 */
import type { AgentConfig } from '@primacy/common';
import type { NodeDriver } from '../node/driver.js';
import { revokedFor, type NodeAction, type NodePlanInput } from '../plan.js';
import type { ClusterWatch } from './cluster-watch.js';

export interface NodeReplicationDeps {
  readonly driver: NodeDriver;
  readonly config: AgentConfig;
  readonly cluster: ClusterWatch;
  /** The node is about to replicate: no fence of this agent's holds any more. */
  readonly replicating: () => void;
}

export class NodeReplication {
  private errant: string | null = null;
  private revokedEpoch: number | null = null;
  private revokedAttempt: number | null = null;
  /** The node carries no reseed mark (checked before it first replicates in this agent's life). */
  private reseedChecked = false;

  constructor(private readonly d: NodeReplicationDeps) {}

  get diverged(): boolean {
    return this.errant !== null;
  }

  /** What the member key says of it; `input` is the plan input it is published with. */
  facts(input: NodePlanInput): { readonly errant: string | null; readonly revokedEpoch: number | null; readonly revokedAttempt: number | null } {
    const revoked = revokedFor(input);
    if (revoked) {
      this.revokedEpoch = revoked.epoch;
      this.revokedAttempt = revoked.attempt;
    }
    return { errant: this.errant, revokedEpoch: this.revokedEpoch, revokedAttempt: this.revokedAttempt };
  }

  markDiverged(errant: string): void {
    this.errant = errant;
  }

  /** The node was made writable as the primary, or a rejoin made it replicate: it is no longer diverged. */
  cleared(): void {
    this.errant = null;
  }

  /** A rejoin made the node replicate from the primary again: no longer diverged, and no revoke holds. */
  rejoined(): void {
    this.errant = null;
    this.revokedEpoch = null;
    this.revokedAttempt = null;
  }

  revoke(): Promise<void> {
    return this.d.driver.stopReplicaIo(this.d.config.timings.revokeWaitMs);
  }

  async replicate(action: Extract<NodeAction, { kind: 'replicate' }>): Promise<void> {
    const { driver, config } = this.d;
    await this.refuseHalfReseeded();
    this.d.replicating();
    // Receiving again: a revoke of an earlier failover attempt no longer holds.
    this.revokedEpoch = null;
    this.revokedAttempt = null;
    await driver.setSemiSyncSource(false, config.replication.semiSyncTimeoutMs);
    await driver.setSemiSyncReplica(this.d.cluster.durability.mode !== 'async');
    await driver.replicateFrom({ host: action.host, port: action.port, user: config.replication.user, password: config.secrets.replicationPassword });
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
}
