/**
 * Whether etcd answers, as every part of the agent sees it: one place counts and logs its failures
 * (once per distinct error, not on every call) and its recovery.
 */
import { describeError } from '@primacy/common';
import type { Logger } from '../log.js';
import type { Counters, EtcdView } from '../view.js';

export class EtcdHealth {
  private state: EtcdView = { reachable: false, lastError: null };

  constructor(
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {}

  get view(): EtcdView {
    return { ...this.state };
  }

  get reachable(): boolean {
    return this.state.reachable;
  }

  readonly failed = (err: unknown): void => {
    this.counters.etcdErrors += 1;
    const line = describeError(err);
    if (this.state.reachable || this.state.lastError !== line) this.log.warn({ err: line }, 'etcd call failed');
    this.state = { reachable: false, lastError: line };
  };

  readonly recovered = (): void => {
    if (!this.state.reachable) this.log.info('etcd reachable');
    this.state = { reachable: true, lastError: null };
  };
}
