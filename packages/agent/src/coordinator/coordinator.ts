/**
 * The coordinator's shell: while this agent wins the election it turns each fresh snapshot into a
 * decision (decide.ts) and carries it out with writes fenced by its election key (invariant 2).
 */
import { describeError, type AgentConfig, type OpRecord } from '@primacy/common';
import type { Clock } from '../clock.js';
import { isCoordinator } from '../etcd/election.js';
import type { Campaigner, ClusterSnapshot, ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import type { Counters } from '../view.js';
import { decide, type Decision } from './decide.js';

export interface CoordinatorDeps {
  readonly config: AgentConfig;
  readonly store: ClusterStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Counters;
  readonly token: () => Campaigner | null;
  readonly onEtcdError: (err: unknown) => void;
}

export class Coordinator {
  private isActive = false;
  private lastRefusal = '';
  private busy = false;

  constructor(private readonly d: CoordinatorDeps) {}

  get active(): boolean {
    return this.isActive;
  }

  stepDown(reason: string): void {
    if (this.isActive) this.d.log.warn({ reason }, 'stepping down as coordinator');
    this.isActive = false;
  }

  /** Whether an operation in progress has revoked `node`'s replication (failover, later issues). */
  holdsReplication(_node: string): boolean {
    return false;
  }

  async tick(snap: ClusterSnapshot, token: Campaigner | null): Promise<void> {
    const winning = isCoordinator(snap.campaigners, token);
    if (winning !== this.isActive) {
      this.isActive = winning;
      if (winning) this.d.log.info({ revision: token?.createRevision }, 'elected coordinator');
    }
    if (!winning || !token || this.busy) return;
    this.busy = true;
    try {
      const decision = decide({
        now: this.d.clock.now(),
        members: snap.members,
        primary: snap.primary,
        epoch: snap.epoch,
        config: snap.config,
        bootstrapPrimary: this.d.config.bootstrap.primary ?? null,
      });
      await this.carryOut(decision, snap, token);
    } catch (err) {
      this.d.onEtcdError(err);
    } finally {
      this.busy = false;
    }
  }

  private async carryOut(decision: Decision, snap: ClusterSnapshot, token: Campaigner): Promise<void> {
    const { store, log, clock } = this.d;
    const now = clock.now();
    switch (decision.kind) {
      case 'none':
        return;
      case 'bootstrap-refused':
        if (decision.reason !== this.lastRefusal) log.warn({ reason: decision.reason }, 'bootstrap refused');
        this.lastRefusal = decision.reason;
        return;
      case 'bootstrap': {
        const m = snap.members.get(decision.node);
        const s = m?.server;
        if (!m || !s) return;
        const epoch = snap.epoch + 1;
        const op: OpRecord = {
          epoch,
          kind: 'bootstrap',
          from: null,
          to: decision.node,
          trigger: 'automatic',
          coordinator: { node: this.d.config.node, revision: token.createRevision },
          startedAt: now,
          endedAt: null,
          outcome: 'running',
          reason: decision.reason,
          members: Object.fromEntries(
            [...snap.members.values()].map((x) => [x.node, { health: x.health, gtid: x.server?.gtid.executed ?? null, received: x.server?.gtid.received ?? null, semiSync: x.server?.semiSync.sourceActive ? 'source' : x.server?.semiSync.replicaActive ? 'replica' : 'off' }]),
          ),
          candidates: [...snap.members.values()].map((x) => ({ node: x.node, gtid: x.server?.gtid.executed ?? null, eligible: x.node === decision.node, reason: x.node === decision.node ? decision.reason : 'not chosen' })),
          steps: [{ name: 'write primary', startedAt: now, endedAt: now, outcome: 'ok', detail: `epoch ${epoch}, state promoting` }],
        };
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: { node: m.node, host: m.host, port: m.port, epoch, state: 'promoting', since: now, gtid: s.gtid.executed, serverId: s.serverId, serverUuid: s.serverUuid } },
          { key: store.keys.epoch, value: epoch },
          { key: store.keys.op(epoch), value: op },
        ]);
        log.child({ epoch }).info({ node: m.node, reason: decision.reason, applied: ok }, ok ? `bootstrap: ${m.node} becomes the first primary` : 'bootstrap write did not apply; re-reading');
        this.count('bootstrap', ok ? 'started' : 'raced');
        return;
      }
      case 'mark-ready': {
        const p = snap.primary;
        if (!p) return;
        const ok = await store.commitDecision(token, snap.primaryModRevision, [{ key: store.keys.primary, value: { ...p, state: 'ready', since: now } }]);
        if (!ok) return;
        log.child({ epoch: p.epoch }).info({ node: p.node, reason: decision.reason }, `${p.node} is the ready primary`);
        const op = snap.lastOp;
        if (op && op.epoch === p.epoch && op.outcome === 'running') {
          await store
            .recordFenced(token, store.keys.op(op.epoch), {
              ...op,
              endedAt: now,
              outcome: 'done',
              steps: [...op.steps, { name: 'mark ready', startedAt: now, endedAt: now, outcome: 'ok', detail: decision.reason }],
            })
            .catch((err: unknown) => log.warn({ err: describeError(err) }, 'could not record the finished operation'));
          this.count(op.kind, 'done');
        }
        return;
      }
    }
  }

  private count(kind: string, outcome: string): void {
    const key = `${kind}:${outcome}`;
    this.d.counters.operations.set(key, (this.d.counters.operations.get(key) ?? 0) + 1);
  }
}
