/**
 * The node loop: probe, publish, act, heartbeat, one step at a time, so that node actions never
 * overlap. It plans on the last known state and acts only after a fresh read of the cluster agrees
 * (watches are hints). A change in etcd that concerns this node (`wake`) runs it at once.
 */
import { sleep, type Clock } from '../clock.js';
import { planNodeAction, type NodePlanInput } from '../plan.js';
import { isLocalEndpoint } from '../node/gone.js';
import { knock } from '../node/knock.js';
import type { AgentConfig } from '@primacy/common';
import type { NodeActions } from './actions.js';
import type { ClusterWatch } from './cluster-watch.js';
import type { EtcdHealth } from './etcd-health.js';
import type { MemberPublisher } from './member-publisher.js';
import type { NodeMonitor } from './node-monitor.js';

/** The probe interval while an operation is under way. */
const OPERATION_PROBE_MS = 50;

/** A cluster snapshot younger than this is not read again before a node action. */
const FRESH_SNAPSHOT_MS = 100;

/** An observation this young, taken by the action just done, is published without probing again. */
const FRESH_OBSERVATION_MS = 10;

/** After the server dropped a connection: knock on its port this often ... */
const KNOCK_EVERY_MS = 5;
/** ... each knock bounded by this ... */
const KNOCK_TIMEOUT_MS = 50;
/** ... for at most this long, unless it is refused first ... */
const KNOCK_FOR_MS = 1000;
/** ... and at most once in this long. */
const KNOCK_COOLDOWN_MS = 5000;

export interface NodeLoopDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly monitor: NodeMonitor;
  readonly publisher: MemberPublisher;
  readonly actions: NodeActions;
  readonly cluster: ClusterWatch;
  readonly etcdHealth: EtcdHealth;
  /** What the node plan decides on, as the agent knows it now. */
  readonly planInput: () => NodePlanInput;
  readonly leaseLive: () => boolean;
  readonly claimed: () => boolean;
  readonly stopping: AbortSignal;
}

export class NodeLoop {
  private wakeUp: ((cluster: boolean) => void) | null = null;
  /** A knock found the server gone while the loop was busy: the next sleep is skipped. */
  private gonePending = false;
  /** A change in etcd came while the loop was busy: it acts again before it sleeps. */
  private wakePending = false;
  private knocking = false;
  private knockedAt = -Infinity;

  constructor(private readonly d: NodeLoopDeps) {}

  /**
   * A change in etcd that concerns this node: the loop acts on it now if it sleeps, or right after
   * the step it is in (a wake-up that came while it probed or published used to wait for the next
   * pace, up to 50 ms, at every step of a failover).
   */
  wake(): void {
    if (this.wakeUp) this.wakeUp(true);
    else this.wakePending = true;
  }

  /**
   * The server closed a connection of the agent's. A crashed mysqld closes every connection as it
   * exits, and its listening socket with them; a probe sent in that moment can hang on a server
   * that accepted the connection but will never answer. So the loop is not woken to probe: the
   * port is knocked on every KNOCK_EVERY_MS for up to KNOCK_FOR_MS, and only a refused knock (the
   * server is gone) wakes the loop, whose probe then sees the refusal. A server that still listens
   * is probed at the usual pace. Only for a server on this host (a refusal elsewhere proves
   * nothing), and at most once per KNOCK_COOLDOWN_MS.
   */
  serverDropped(): void {
    const now = this.d.clock.now();
    if (this.knocking || now - this.knockedAt < KNOCK_COOLDOWN_MS || !isLocalEndpoint(this.d.config.mysql)) return;
    this.knockedAt = now;
    this.knocking = true;
    void this.knockUntilGone(now + KNOCK_FOR_MS).finally(() => {
      this.knocking = false;
    });
  }

  private async knockUntilGone(until: number): Promise<void> {
    const { clock, config, stopping } = this.d;
    while (!stopping.aborted && clock.now() < until) {
      if ((await knock(config.mysql, KNOCK_TIMEOUT_MS)) === 'refused') {
        if (this.wakeUp) this.wakeUp(false);
        else this.gonePending = true;
        return;
      }
      await sleep(KNOCK_EVERY_MS, stopping);
    }
  }

  async run(): Promise<void> {
    const { config, clock, monitor, publisher, actions, cluster, stopping } = this.d;
    const interval = config.timings.probeIntervalMs;
    let hurried = false;
    let woken = false;
    while (!stopping.aborted) {
      const started = clock.now();
      // Woken by a change in etcd (a switchover, a promotion), act at once on an observation at most one
      // probe interval old; the probe and the publish of its result follow at once.
      const actFirst = woken && monitor.age < interval;
      woken = false;
      const actedFirst = actFirst && (await this.act());
      if (actFirst) await actions.promotion.awaitDemotedPosition();
      // An action that observed the node itself (a promotion does) is published without probing again.
      if (monitor.age > FRESH_OBSERVATION_MS) await this.probe();
      await publisher.publish(this.d.planInput());
      const acted = actFirst ? actedFirst : await this.act();
      await actions.promotion.heartbeat();
      actions.promotion.runPostHook();
      // After an action, probe and publish its result at once (others wait on it), but never twice in a row.
      hurried = !actFirst && acted && !hurried;
      if (hurried) continue;
      if (this.gonePending) {
        this.gonePending = false;
        continue;
      }
      if (this.wakePending) {
        this.wakePending = false;
        woken = true;
        continue;
      }
      const wait = new AbortController();
      this.wakeUp = (cluster) => {
        woken ||= cluster;
        wait.abort();
      };
      const onStop = (): void => wait.abort();
      stopping.addEventListener('abort', onStop, { once: true });
      // While an operation runs, others wait on this node's state: probe faster.
      const pace = cluster.busy ? Math.min(interval, OPERATION_PROBE_MS) : interval;
      await sleep(Math.max(0, pace - (clock.now() - started)), wait.signal);
      stopping.removeEventListener('abort', onStop);
      this.wakeUp = null;
    }
  }

  private async probe(): Promise<void> {
    // Read before the probe: what the probe finds, the server had after this revision.
    const o = await this.d.monitor.probe(this.d.cluster.revision);
    this.d.actions.fence.observed(o.state);
  }

  /** Plans on the last known state; acts only after a fresh read agrees (watches are hints). */
  private async act(): Promise<boolean> {
    const { cluster, actions } = this.d;
    // A diverged node's recovery goes by what this loop's actions know of it (salvage, rejoin).
    const input = (): NodePlanInput => ({ ...this.d.planInput(), recovery: actions.recoveryInput() });
    if (planNodeAction(input()).kind === 'none') return false;
    // A snapshot read moments ago (it is what woke this loop) is current enough; promotion re-reads anyway.
    if (this.d.leaseLive() && cluster.age > FRESH_SNAPSHOT_MS) {
      try {
        await cluster.refresh();
      } catch (err) {
        this.d.etcdHealth.failed(err);
        return false;
      }
    }
    const action = planNodeAction(input());
    if (action.kind === 'none') return false;
    // Until no other live agent runs as this node, the only action is the safe one: fencing.
    if (!this.d.claimed() && action.kind !== 'fence') return false;
    return actions.run(action);
  }
}
