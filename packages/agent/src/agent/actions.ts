/**
 * The actions on the agent's own node, each carried out by the part that owns what it leaves behind:
 * NodeFence (fence, demote: whether this agent fenced the node, for which failover), NodeReplication
 * (replicate, revoke, diverged: the errant GTIDs, the revoked attempt), NodePromotion (promote,
 * semi-sync, heartbeat, post hooks) and Recovery (salvage, rejoin). NodeActions only routes a planned
 * action to its part, logs its failure, and gathers what the member key says of them all.
 */
import { describeError, type AgentConfig, type HookRun, type MemberState } from '@primacy/common';
import type { Clock } from '../clock.js';
import type { ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import type { NodeDriver } from '../node/driver.js';
import type { NodeAction, NodePlanInput, RecoveryInput } from '../plan.js';
import type { Counters } from '../view.js';
import type { ClusterWatch } from './cluster-watch.js';
import { NodeFence } from './node-fence.js';
import type { NodeMonitor } from './node-monitor.js';
import { NodePromotion, StillApplying } from './node-promotion.js';
import { NodeReplication } from './node-replication.js';
import { Recovery } from './recovery.js';

export { demotedBefore } from './node-promotion.js';

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
  readonly fence: NodeFence;
  readonly replication: NodeReplication;
  readonly promotion: NodePromotion;
  /** Salvage and rejoin of this node when it diverged: long runs, in the background of the node loop. */
  readonly recovery: Recovery;

  constructor(private readonly d: NodeActionsDeps) {
    const fence = (this.fence = new NodeFence(d));
    const replication = (this.replication = new NodeReplication({ ...d, replicating: () => fence.clear() }));
    this.promotion = new NodePromotion({
      ...d,
      madeWritable: () => {
        fence.clear();
        replication.cleared();
      },
    });
    this.recovery = new Recovery({
      ...d,
      rejoined: () => {
        replication.rejoined();
        fence.clear();
      },
    });
  }

  /** What the node plan's recovery goes by, as this agent knows it now. */
  recoveryInput(): RecoveryInput {
    return this.recovery.input();
  }

  /** What goes into the member key; `input` is the plan input it is published with. */
  facts(input: NodePlanInput): ActionFacts {
    return {
      ...this.fence.facts(input.server),
      ...this.replication.facts(input),
      hooks: this.promotion.hookRuns,
      salvageProblem: this.recovery.salvageProblem,
      rejoin: this.recovery.report,
    };
  }

  /** Carries out one planned action; failures are logged (a fence's once per distinct error) and reported as false. */
  async run(action: Exclude<NodeAction, { kind: 'none' }>): Promise<boolean> {
    if (action.kind === 'semi-sync' && this.promotion.semiSyncHeld(action)) return false;
    const log = this.d.log;
    if (!(action.kind === 'fence' && this.fence.quiet)) log.info({ action: action.kind, reason: action.reason }, `node action: ${action.kind}`);
    try {
      await this.carryOut(action);
      this.d.publishSoon();
      return true;
    } catch (err) {
      if (err instanceof StillApplying) {
        this.promotion.stillApplying(err);
        return true;
      }
      const line = describeError(err);
      if (action.kind === 'fence') this.fence.failed(line);
      else log.error({ action: action.kind, err: line }, `node action ${action.kind} failed`);
      return false;
    }
  }

  private async carryOut(action: Exclude<NodeAction, { kind: 'none' }>): Promise<void> {
    switch (action.kind) {
      case 'fence':
        return this.fence.fence(action.reason, action.forEpoch ?? null);
      case 'demote':
        return this.fence.demote(action.reason);
      case 'revoke':
        return this.replication.revoke();
      case 'replicate':
        return this.replication.replicate(action);
      case 'diverged':
        return this.replication.markDiverged(action.errant);
      case 'promote':
        return this.promotion.promote(action.epoch);
      case 'semi-sync':
        return this.promotion.setSemiSync(action);
      case 'salvage':
        return this.recovery.startSalvage(action.reason);
      case 'rejoin':
        return this.recovery.startRejoin(action.record);
    }
  }
}
