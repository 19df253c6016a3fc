/**
 * What the agent knows of its own server from probing it: the last observation that counts, how
 * many probes in a row found it down, whether it is provably gone, and the last state it answered
 * with. One slow probe is not a failure: a server seen down for fewer probes than configured keeps
 * its last state, unless it is provably gone.
 */
import type { AgentConfig, LastAnswer, NodeState } from '@primacy/common';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { NodeDriver, Observation } from '../node/driver.js';
import { goneReason } from '../node/gone.js';
import type { Counters } from '../view.js';

/** The last state the server answered with, and the etcd revision read before that probe began. */
export interface Answered {
  readonly state: NodeState;
  readonly seenRevision: string;
}

export class NodeMonitor {
  private current: Observation | null = null;
  /** When `current` was taken (clock ms). */
  private takenAt = -Infinity;
  private down = 0;
  private gone: string | null = null;
  private answered: Answered | null = null;
  /** The revision of the first publication of the current down period; null while the server answers. */
  private downSince: string | null = null;

  constructor(
    private readonly driver: NodeDriver,
    private readonly config: AgentConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {}

  get observation(): Observation | null {
    return this.current;
  }
  /** How old the observation is (ms). */
  get age(): number {
    return this.clock.now() - this.takenAt;
  }
  /** Consecutive probes that found the server down. */
  get downProbes(): number {
    return this.down;
  }
  /** Why the server is provably gone (not merely silent); null while it answers or proves nothing. */
  get serverGone(): string | null {
    return this.gone;
  }
  get lastAnswered(): Answered | null {
    return this.answered;
  }
  get downSinceRevision(): string | null {
    return this.downSince;
  }
  /** The server's state, while it answers. */
  get server(): NodeState | null {
    return this.current?.health === 'up' ? this.current.state : null;
  }
  get answering(): boolean {
    return this.current?.health === 'up';
  }
  /** Not answering, not provably gone, and last seen writable: it may still take writes. */
  get mayBeWritable(): boolean {
    return this.current?.health !== 'up' && this.gone === null && this.answered?.state.readOnly === false;
  }
  /** The last answered probe's positions, as the member key carries them. */
  get lastAnswer(): LastAnswer | null {
    const a = this.answered;
    return a && { executed: a.state.gtid.executed, received: a.state.gtid.received, seenRevision: a.seenRevision };
  }

  /**
   * Probes the server. `seenRevision` is the etcd revision read before the probe: what the probe
   * finds, the server had after it. Returns what the probe saw, whether or not it counts yet.
   */
  async probe(seenRevision: string): Promise<Observation> {
    const o = await this.driver.observe();
    this.takenAt = this.clock.now();
    this.counters.probes += 1;
    this.counters.probeLatency.observe(o.probeMs);
    if (o.health === 'down') {
      this.counters.probeFailures += 1;
      this.down += 1;
    } else this.down = 0;
    const prev = this.current;
    if (prev?.health !== o.health) this.log[o.health === 'up' ? 'info' : 'warn']({ health: o.health, err: o.error }, `server is ${o.health}`);
    if (o.health === 'up') {
      if (o.state) this.answered = { state: o.state, seenRevision };
      this.downSince = null;
    }
    const gone = o.health === 'down' ? goneReason(o.error, this.config.mysql) : null;
    if (gone !== this.gone) this.log[gone ? 'warn' : 'info']({ gone }, gone ? `server is gone: ${gone}` : 'server no longer provably gone');
    this.gone = gone;
    if (o.health === 'down' && gone === null && this.down < this.config.timings.downAfterProbes && prev) return o;
    this.current = o;
    return o;
  }

  /** An observation taken by an action (a promotion observes the node when it is done). */
  adopt(o: Observation): void {
    this.current = o;
    this.takenAt = this.clock.now();
  }

  /** A member key saying "down" was written at `revision`: true when it is the down period's first (it goes out with the next write). */
  publishedDown(revision: string): boolean {
    if (this.downSince !== null) return false;
    this.downSince = revision;
    return true;
  }
}
