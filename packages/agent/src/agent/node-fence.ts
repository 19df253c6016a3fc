/**
 * Fencing of the agent's own node (DESIGN.md invariants 1, 3 and 4): read_only set and read back,
 * client sessions killed, and the demotion of a switchover. It owns whether this agent fenced the
 * node and read it back, for which failover, and the last fence failure, so that a fence retried on
 * every loop is logged once, not every time.
 */
import { describeError, type AgentConfig, type NodeState } from '@primacy/common';
import { sleep, type Clock } from '../clock.js';
import { demoteNode, fenceNode, StrictWaitError } from '../fencing.js';
import type { Logger } from '../log.js';
import type { NodeDriver } from '../node/driver.js';
import { readPid } from '../node/gone.js';
import type { Counters } from '../view.js';
import type { NodeMonitor } from './node-monitor.js';

export interface NodeFenceDeps {
  readonly driver: NodeDriver;
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Counters;
  readonly monitor: NodeMonitor;
  readonly publishSoon: () => void;
}

export class NodeFence {
  /** The node was fenced and read back read-only by this agent (cleared when it is made writable or replicates). */
  private fenced = false;
  /** The failover (by epoch) for which that fence was done. */
  private fencedFor: number | null = null;
  /** The last fence failure, logged once until it changes or a fence succeeds. */
  private lastFenceError: string | null = null;

  constructor(private readonly d: NodeFenceDeps) {}

  /** The failover this agent's fence counts for, while no probe has seen the node writable since. */
  get state(): { readonly fenced: boolean; readonly forEpoch: number | null } {
    return { fenced: this.fenced, forEpoch: this.fenced ? this.fencedFor : null };
  }

  /** What the member key says: only a fence this agent read back counts, and only while no probe has seen the node writable since. */
  facts(server: NodeState | null): { readonly fenced: boolean; readonly fencedFor: number | null } {
    const fenced = this.fenced && server?.readOnly !== false;
    return { fenced, fencedFor: fenced ? this.fencedFor : null };
  }

  /** A fence of a server that does not answer is retried on every loop: its start is said once, not every time. */
  get quiet(): boolean {
    return !this.d.monitor.answering && this.lastFenceError !== null;
  }

  /** A fence action failed: logged once per distinct error. */
  failed(line: string): void {
    if (line !== this.lastFenceError) this.d.log.error({ action: 'fence', err: line }, 'node action fence failed; trying again on every loop until read_only reads back ON');
    this.lastFenceError = line;
  }

  /** A probe answered: a node seen writable is not fenced, whatever was done to it before. */
  observed(state: NodeState | null): void {
    if (state?.readOnly === false) this.clear();
  }

  /** The node was made writable, or replicates: no fence of this agent's holds any more. */
  clear(): void {
    this.fenced = false;
    this.fencedFor = null;
  }

  async demote(reason: string): Promise<void> {
    const { killed } = await demoteNode(this.d.driver, this.d.config.timings.drainMs);
    this.fenced = true;
    this.fencedFor = null;
    this.d.log.warn({ reason, killed }, 'node demoted: read-only, drained, client sessions killed');
  }

  /**
   * Fences the node and reads read_only back. A server that does not answer gets one attempt: the
   * loop tries again, and keeps probing and publishing in between.
   */
  async fence(reason: string, forEpoch: number | null): Promise<void> {
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
        await this.fence(reason, this.fencedFor);
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
    await this.fence(reason, null).catch((err: unknown) => this.d.log.error({ err: describeError(err) }, 'self-fencing failed; the node loop tries again'));
  }
}
