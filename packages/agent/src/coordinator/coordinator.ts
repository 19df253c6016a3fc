/**
 * The coordinator's shell: while this agent wins the election it turns each fresh snapshot into a
 * decision (decide.ts) and carries it out with writes fenced by its election key (invariant 2).
 * Every step of an operation is recorded in ops/<epoch> with its timing and reason (invariant 7).
 */
import { describeError, type AgentConfig, type CandidateVerdict, type FenceProof, type HookRun, type OpRecord, type OpStep, type Primary } from '@primacy/common';
import type { Clock } from '../clock.js';
import { isCoordinator } from '../etcd/election.js';
import type { Campaigner, ClusterSnapshot, ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import { fenceNode } from '../fencing.js';
import { connectNode } from '../node/index.js';
import { goneReason } from '../node/gone.js';
import { durabilityOf } from '../plan.js';
import { runFencingCommand } from './fencing-command.js';
import { HookRunner, describeHookRun, hookContext, hookSucceeded, postHookOf, preSwitchoverContext, withGateRun, withHookRuns } from '../hooks.js';
import type { Counters } from '../view.js';
import { decide } from './decide.js';
import type { Decision } from './model.js';

/** How many refused or aborted operations history/ keeps, and how often (in records) it is pruned. */
const HISTORY_KEEP = 500;
const HISTORY_PRUNE_EVERY = 25;

export interface CoordinatorDeps {
  readonly config: AgentConfig;
  readonly store: ClusterStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Counters;
  readonly onEtcdError: (err: unknown) => void;
}

export class Coordinator {
  private isActive = false;
  private lastLogged = '';
  private remembers = 0;
  private busy = false;
  /** The fencing command's last failed run, so that it is not run on every tick. */
  private lastCommand: { epoch: number; at: number; note: string } | null = null;
  /** The operator's hooks, run by whichever agent coordinates. */
  private readonly hooks: HookRunner;

  constructor(private readonly d: CoordinatorDeps) {
    this.hooks = new HookRunner({ config: d.config, clock: d.clock, log: d.log, role: 'coordinator' });
  }

  get active(): boolean {
    return this.isActive;
  }

  stepDown(reason: string): void {
    if (this.isActive) this.d.log.warn({ reason }, 'stepping down as coordinator');
    this.isActive = false;
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
      snap = await this.recordHookRuns(snap, token);
      const t = this.d.config.timings;
      const decision = decide({
        now: this.d.clock.now(),
        members: snap.members,
        primary: snap.primary,
        epoch: snap.epoch,
        config: snap.config,
        durabilityMode: durabilityOf(snap.config, this.d.config.replication.semiSync),
        durabilityRecord: snap.durability,
        fencingCommand: this.d.config.fencing.command !== undefined,
        configProblem: snap.invalid.find((e) => e.key === this.d.store.keys.config)?.why ?? null,
        primaryProblem: snap.invalid.find((e) => e.key === this.d.store.keys.primary)?.why ?? null,
        malformedRequests: snap.invalid.filter((e) => e.key.startsWith(this.d.store.keys.requestsPrefix)).map((e) => ({ id: e.key.slice(this.d.store.keys.requestsPrefix.length), why: e.why })),
        bootstrapPrimary: this.d.config.bootstrap.primary ?? null,
        currentOp: snap.currentOp,
        pendingOp: snap.pendingOp,
        requests: snap.requests,
        clients: snap.clients,
        salvages: snap.salvages,
        rejoins: snap.rejoins,
        memberCreated: snap.memberCreated,
        lastSeen: snap.lastSeen,
        timings: {
          antiFlapMs: t.antiFlapMs,
          maxLagMs: t.maxLagMs,
          revokeWaitMs: t.revokeWaitMs,
          switchoverCatchUpMs: t.switchoverCatchUpMs,
          clientPauseWaitMs: t.clientPauseWaitMs,
          relayApplyTimeoutMs: t.relayApplyTimeoutMs,
          failoverRetryMs: t.failoverRetryMs,
        },
      });
      await this.carryOut(decision, snap, token);
    } catch (err) {
      this.d.onEtcdError(err);
    } finally {
      this.busy = false;
    }
  }

  private logOnce(key: string, fn: () => void): void {
    if (key === this.lastLogged) return;
    this.lastLogged = key;
    fn();
  }

  private async carryOut(decision: Decision, snap: ClusterSnapshot, token: Campaigner): Promise<void> {
    const { store, log, clock } = this.d;
    const now = clock.now();
    const p = snap.primary;
    switch (decision.kind) {
      case 'none':
        return;
      case 'await':
        this.logOnce(decision.reason, () => log.info({ reason: decision.reason }, 'operation waiting'));
        return;
      case 'bootstrap-refused':
        this.logOnce(decision.reason, () => log.warn({ reason: decision.reason }, 'bootstrap refused'));
        return;
      case 'repair-refused':
        this.logOnce(decision.reason, () => log.error({ reason: decision.reason }, 'primary key unreadable'));
        return;
      case 'repair-primary': {
        const m = snap.members.get(decision.node);
        const s = m?.server;
        const op = snap.currentOp;
        if (!m || !s || !op) return;
        const primary: Primary = { node: m.node, host: m.host, port: m.port, epoch: decision.epoch, state: 'ready', since: now, gtid: s.gtid.executed, serverId: s.serverId, serverUuid: s.serverUuid };
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: primary },
          { key: store.keys.op(op.epoch), value: { ...op, steps: [...op.steps, step('primary repaired', now, now, 'ok', `the primary key could not be read; rebuilt: ${decision.reason}`)] } },
        ]);
        log.warn({ epoch: decision.epoch, member: m.node, reason: decision.reason, applied: ok }, 'the primary key could not be read and was rebuilt');
        return;
      }
      case 'request-dropped': {
        const key = store.keys.request(decision.id);
        const op: OpRecord = { ...this.newOp(snap, token, 'request', (p?.epoch ?? snap.epoch) + 1, p?.node ?? null, decision.reason), trigger: `request ${decision.id}`, endedAt: now, outcome: 'refused' };
        await store.commitDecision(token, snap.primaryModRevision, this.remembered(op), [key]);
        log.warn({ request: decision.id, reason: decision.reason }, 'malformed request removed');
        return;
      }
      case 'bootstrap': {
        const m = snap.members.get(decision.node);
        const s = m?.server;
        if (!m || !s) return;
        const epoch = snap.epoch + 1;
        const op = { ...this.newOp(snap, token, 'bootstrap', epoch, null, decision.reason), to: m.node, steps: [step('write primary', now, now, 'ok', `epoch ${epoch}, state promoting`)] };
        const primary: Primary = { node: m.node, host: m.host, port: m.port, epoch, state: 'promoting', since: now, gtid: s.gtid.executed, serverId: s.serverId, serverUuid: s.serverUuid };
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: primary },
          { key: store.keys.epoch, value: epoch },
          { key: store.keys.op(epoch), value: op },
        ]);
        log.info({ epoch, member: m.node, reason: decision.reason, applied: ok }, ok ? `bootstrap: ${m.node} becomes the first primary` : 'bootstrap write did not apply; re-reading');
        this.count('bootstrap', ok ? 'started' : 'raced');
        return;
      }
      case 'mark-ready': {
        if (!p) return;
        const op = snap.currentOp;
        const finished = op && op.epoch === p.epoch && op.outcome === 'running' ? op : null;
        // The primary turns ready and its operation ends in one transaction, so nobody sees one without the other.
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: { ...p, state: 'ready', since: now } },
          ...(finished
            ? [{ key: store.keys.op(finished.epoch), value: { ...finished, endedAt: now, outcome: 'done', steps: [...finished.steps, step('ready', finished.steps.at(-1)?.endedAt ?? now, now, 'ok', decision.reason)] } }]
            : []),
        ]);
        if (!ok) return;
        log.info({ epoch: p.epoch, member: p.node, reason: decision.reason }, `${p.node} is the ready primary`);
        if (!finished) return;
        this.count(finished.kind, 'done');
        const post = postHookOf(finished.kind);
        if (post) this.hooks.start(post, hookContext(this.d.config.cluster, { ...finished, outcome: 'done' }, p));
        return;
      }
      case 'failover-refused': {
        if (!p) return;
        const op: OpRecord = { ...this.newOp(snap, token, 'failover', p.epoch + 1, p.node, decision.reason), endedAt: now, outcome: 'refused' };
        await this.record(token, op);
        log.warn({ epoch: p.epoch, from: p.node, reason: decision.reason }, 'automatic failover refused');
        this.count('failover', 'refused');
        this.hooks.start('post-unsuccessful-failover', hookContext(this.d.config.cluster, op, null));
        return;
      }
      case 'failover-start': {
        if (!p) return;
        const r = decision.request;
        const op: OpRecord = {
          ...this.newOp(snap, token, 'failover', p.epoch + 1, p.node, decision.reason),
          ...(r ? { trigger: `request ${r.id}`, request: r, to: r.to } : {}),
          mustContain: decision.mustContain,
          // What the old primary promised about its writes, as last recorded: the record says what may be lost.
          durability: snap.durability && snap.durability.node === p.node && snap.durability.epoch === p.epoch ? snap.durability : null,
          steps: decision.proof
            ? [step('detect', now, now, 'ok', decision.reason), step('fence', now, now, 'ok', 'carried over from the aborted attempt'), step('fenced', now, now, 'ok', `${decision.proof.kind}: ${decision.proof.detail}`)]
            : [step('detect', now, now, 'ok', decision.reason), step('fence', now, null, 'running', 'the old primary must be proven fenced before anyone is promoted')],
          ...(decision.proof ? { proof: decision.proof } : {}),
          ...(decision.carriedRequest && !r ? { request: decision.carriedRequest, to: decision.carriedRequest.to } : {}),
        };
        // A candidate failed before it was ready: the operation that chose it ends here, aborted, in the same transaction.
        const cur = snap.currentOp;
        const superseded: OpRecord | null =
          cur && cur.epoch === p.epoch && cur.outcome === 'running'
            ? { ...cur, endedAt: now, outcome: 'aborted', reason: `${decision.reason}; epoch ${op.epoch} fails over from ${p.node}` }
            : null;
        // Fenced by the election key and by the primary key's revision: a stale view starts nothing.
        const ok = await store.commitDecision(
          token,
          snap.primaryModRevision,
          [{ key: store.keys.op(op.epoch), value: op }, ...(superseded ? [{ key: store.keys.op(superseded.epoch), value: superseded }] : [])],
          r ? [store.keys.request(r.id)] : [],
        );
        log.warn({ epoch: p.epoch, from: p.node, reason: decision.reason, applied: ok }, `failover of ${p.node} started`);
        // Never waited for: the failover goes on whatever the hook does, and its run is recorded when it ends.
        if (ok) this.hooks.start('pre-failover', hookContext(this.d.config.cluster, op, null));
        return;
      }
      case 'fence-old': {
        const op = snap.pendingOp;
        if (!p || !op) return;
        const tried = await this.tryFence(p, op);
        if (tried.proof) {
          await this.recordProof(token, snap, op, tried.proof);
          log.warn({ epoch: p.epoch, member: p.node, proof: tried.proof }, `${p.node} is proven fenced (${tried.proof.kind})`);
          return;
        }
        const detail = `${decision.waiting}; ${tried.notes.join('; ')}. ${decision.advice}`;
        const fence = op.steps.find((x) => x.name === 'fence' && x.outcome === 'running');
        // Recorded (and logged) once per distinct text, not on every attempt.
        if (fence && fence.detail !== detail) {
          await this.record(token, { ...op, steps: op.steps.map((x) => (x === fence ? { ...x, detail } : x)) });
          log.warn({ epoch: p.epoch, member: p.node, reason: detail }, `failover waits: cannot prove ${p.node} fenced`);
        }
        return;
      }
      case 'request-refused': {
        if (!p) return;
        const r = decision.request;
        const op: OpRecord = {
          ...this.newOp(snap, token, r.kind, p.epoch + 1, p.node, decision.reason),
          trigger: `request ${decision.id}`,
          request: { id: decision.id, to: r.to, force: r.force },
          to: r.to,
          endedAt: now,
          outcome: 'refused',
        };
        await store.commitDecision(token, snap.primaryModRevision, [{ key: store.keys.op(op.epoch), value: op }, ...this.remembered(op)], [store.keys.request(decision.id)]);
        log.warn({ request: decision.id, reason: decision.reason }, `${r.kind} request refused`);
        this.count(r.kind, 'refused');
        return;
      }
      case 'switchover-start': {
        if (!p) return;
        const r = decision.request;
        const gate = await this.preSwitchover(snap, token, decision, p);
        if (gate === 'stop') return;
        const started: OpRecord = {
          ...this.newOp(snap, token, 'switchover', p.epoch + 1, p.node, decision.reason),
          trigger: `request ${r.id}`,
          request: r,
          to: decision.to,
          candidates: decision.verdicts,
          // With no client registered there is nobody to wait for: the old primary demotes at once.
          steps:
            snap.clients.size === 0
              ? [step('choose', now, now, 'ok', decision.reason), step('clients paused', now, now, 'ok', 'no registered clients'), demoteStep(p.node, now)]
              : [step('choose', now, now, 'ok', decision.reason), step('hold writes', now, null, 'running', `waiting for ${[...snap.clients.keys()].join(', ')} to hold their writes`)],
        };
        const op = gate === null ? started : withGateRun(started, gate);
        // Clients hold their writes from here: the primary is `switching`.
        const ok = await store.commitDecision(
          token,
          snap.primaryModRevision,
          [
            { key: store.keys.primary, value: { ...p, state: 'switching', since: now } },
            { key: store.keys.op(op.epoch), value: op },
          ],
          [store.keys.request(r.id)],
        );
        log.warn({ epoch: p.epoch, from: p.node, to: decision.to, reason: decision.reason, applied: ok }, `switchover from ${p.node} to ${decision.to} started`);
        return;
      }
      case 'record-clients-paused': {
        const op = snap.pendingOp;
        if (!op || !p) return;
        const outcome = decision.silent.length === 0 ? 'ok' : 'failed';
        await this.record(token, { ...op, steps: [...closeRunning(op.steps, now), step('clients paused', op.startedAt, now, outcome, decision.reason), demoteStep(p.node, now)] });
        log.info({ paused: decision.paused, silent: decision.silent }, decision.reason);
        return;
      }
      case 'record-demoted': {
        const op = snap.pendingOp;
        if (!op) return;
        await this.record(token, {
          ...op,
          steps: [...closeRunning(op.steps, now), step('demoted', now, now, 'ok', decision.gtid), step('catch up', now, null, 'running', `${op.to} applies everything up to ${decision.gtid}`)],
        });
        log.info({ member: decision.node, gtid: decision.gtid }, decision.reason);
        return;
      }
      case 'switchover-promote': {
        const op = snap.pendingOp;
        const m = snap.members.get(decision.node);
        const s = m?.server;
        const old = p ? snap.members.get(p.node) : undefined;
        if (!p || !op || !m || !s) return;
        const demoted = op.steps.some((x) => x.name === 'demoted')
          ? []
          : [step('demoted', now, now, 'ok', decision.gtid), step('catch up', now, now, 'ok', `${m.node} already has everything up to ${decision.gtid}`)];
        const next: OpRecord = {
          ...op,
          coordinator: { node: this.d.config.node, revision: token.createRevision },
          catchUpFrom: { node: p.node, host: p.host, port: p.port, gtid: decision.gtid },
          members: { ...op.members, ...membersAt(snap) },
          steps: [...closeRunning(op.steps, now), ...demoted, step('write primary', now, now, 'ok', `epoch ${op.epoch}, state promoting; ${decision.reason}`)],
        };
        const primary: Primary = { node: m.node, host: m.host, port: m.port, epoch: op.epoch, state: 'promoting', since: now, gtid: decision.gtid, serverId: s.serverId, serverUuid: s.serverUuid };
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: primary },
          { key: store.keys.epoch, value: op.epoch },
          { key: store.keys.op(op.epoch), value: next },
        ]);
        log.info({ epoch: op.epoch, from: old?.node, to: m.node, reason: decision.reason, applied: ok }, `switchover: promoting ${m.node}`);
        return;
      }
      case 'switchover-abort': {
        const op = snap.pendingOp;
        if (!p || !op) return;
        const aborted: OpRecord = { ...op, endedAt: now, outcome: 'aborted', reason: `${op.reason}; aborted: ${decision.reason}`, steps: closeRunning(op.steps, now).map((x) => (x.endedAt === now && x.outcome === 'ok' ? { ...x, outcome: 'failed' as const } : x)) };
        // The old primary has every transaction: it takes writes again, at its own epoch.
        const puts = [{ key: store.keys.op(op.epoch), value: aborted }, ...this.remembered(aborted), ...(decision.restore && p.node === op.from ? [{ key: store.keys.primary, value: { ...p, state: 'ready', since: now } }] : [])];
        await store.commitDecision(token, snap.primaryModRevision, puts);
        log.warn({ reason: decision.reason }, 'switchover aborted; the old primary stays');
        this.count('switchover', 'aborted');
        return;
      }
      case 'record-fenced': {
        const op = snap.pendingOp;
        if (!op) return;
        const r = decision.request;
        const taken: OpRecord = r ? { ...op, trigger: `${op.trigger}; override ${r.id}`, request: { id: r.id, to: r.to, force: op.request?.force ?? false }, to: r.to ?? op.to } : op;
        await this.recordProof(token, snap, taken, decision.proof, r ? [store.keys.request(r.id)] : [], decision.revoke ?? null);
        log.warn({ from: decision.from, proof: decision.proof }, `${decision.from} is proven fenced (${decision.proof.kind})`);
        if (decision.revoke) log.warn({ from: decision.from, reason: decision.revoke }, `revoking: replicas stop receiving from ${decision.from}`);
        return;
      }
      case 'revoke': {
        const op = snap.pendingOp;
        if (!op) return;
        // From this step on, the replicas' agents stop receiving from the old primary.
        await this.record(token, { ...op, steps: [...op.steps, step('revoke', now, null, 'running', decision.reason)] });
        log.warn({ from: decision.from, reason: decision.reason }, `revoking: replicas stop receiving from ${decision.from}`);
        return;
      }
      case 'record-last-seen':
        await store.recordFenced(token, [{ key: store.keys.lastSeen, value: decision.record }]);
        return;
      case 'record-durability': {
        await store.recordFenced(token, [{ key: store.keys.durability, value: decision.record }]);
        log.info({ durability: decision.record }, decision.reason);
        return;
      }
      case 'note-diverged': {
        const op = snap.currentOp;
        if (!op) return;
        await this.record(token, { ...op, steps: [...op.steps, step(`diverged ${decision.node}`, now, now, 'failed', decision.reason)] });
        log.warn({ member: decision.node, reason: decision.reason }, `${decision.node} has diverged and stays out of rotation`);
        return;
      }
      case 'rejoin-start':
      case 'rejoin-held':
      case 'rejoin-progress':
      case 'rejoin-end':
        return this.carryOutRejoin(decision, snap, token);
      case 'note-applied': {
        const op = snap.currentOp;
        if (!op) return;
        await this.record(token, { ...op, applied: { node: decision.node, gtid: decision.gtid, at: now } });
        this.logOnce(`applying ${decision.node}`, () => log.info({ member: decision.node, reason: decision.reason }, `${decision.node} is applying its relay log`));
        return;
      }
      case 'failover-abort': {
        const op = snap.pendingOp;
        if (!op) return;
        const aborted: OpRecord = { ...op, endedAt: now, outcome: 'aborted', reason: `${op.reason}; aborted: ${decision.reason}`, candidates: decision.verdicts };
        await this.record(token, aborted);
        log.warn({ reason: decision.reason }, 'failover aborted; the primary stays');
        this.count('failover', 'aborted');
        this.hooks.start('post-unsuccessful-failover', hookContext(this.d.config.cluster, aborted, null));
        return;
      }
      case 'promote': {
        const op = snap.pendingOp;
        const m = snap.members.get(decision.node);
        const s = m?.server;
        if (!p || !op || !m || !s) return;
        const catchUp = decision.catchUpFrom ? snap.members.get(decision.catchUpFrom) : undefined;
        const catchUpFrom = decision.catchUpPosition ?? (catchUp?.server ? { node: catchUp.node, host: catchUp.host, port: catchUp.port, gtid: catchUp.server.gtid.received } : null);
        const steps = closeRunning(op.steps, now);
        const next: OpRecord = {
          ...op,
          coordinator: { node: this.d.config.node, revision: token.createRevision },
          to: m.node,
          catchUpFrom,
          candidates: decision.verdicts,
          members: { ...op.members, ...membersAt(snap) },
          steps: [...steps, step('choose', now, now, 'ok', decision.reason), step('write primary', now, now, 'ok', `epoch ${op.epoch}, state promoting`)],
        };
        const primary: Primary = { node: m.node, host: m.host, port: m.port, epoch: op.epoch, state: 'promoting', since: now, gtid: s.gtid.received, serverId: s.serverId, serverUuid: s.serverUuid };
        const ok = await store.commitDecision(token, snap.primaryModRevision, [
          { key: store.keys.primary, value: primary },
          { key: store.keys.epoch, value: op.epoch },
          { key: store.keys.op(op.epoch), value: next },
        ]);
        log.warn({ epoch: op.epoch, from: p.node, to: m.node, reason: decision.reason, fencedBy: decision.fencedBy, applied: ok }, `promoting ${m.node}`);
        return;
      }
    }
  }

  /** A rejoin's record under rejoin/<node>: started, held, advanced, ended (and then kept in history/ too). */
  private async carryOutRejoin(decision: Extract<Decision, { kind: 'rejoin-start' | 'rejoin-held' | 'rejoin-progress' | 'rejoin-end' }>, snap: ClusterSnapshot, token: Campaigner): Promise<void> {
    const { store, log, clock } = this.d;
    const now = clock.now();
    const p = snap.primary;
    const key = store.keys.rejoin(decision.node);
    const cur = snap.rejoins.get(decision.node);
    switch (decision.kind) {
      case 'rejoin-start': {
        const salvage = snap.salvages.get(decision.node);
        if (!p || !salvage) return;
        const r = decision.request;
        const detail = `${decision.node} rejoins by ${decision.method}: ${decision.allowed}`;
        const op: OpRecord = {
          ...this.newOp(snap, token, 'rejoin', p.epoch, decision.node, decision.allowed),
          to: p.node,
          ...(r ? { trigger: `request ${r.id}`, request: r } : {}),
          rejoin: { node: decision.node, method: decision.method, allowed: decision.allowed, salvageAt: salvage.at, salvageFolder: salvage.folder, gtids: salvage.gtids, source: decision.source, policy: snap.config.rejoin ?? null },
          steps: [step('decide', now, now, 'ok', detail)],
        };
        // Fenced by the primary key's revision too: a rejoin decided on a stale view starts nothing.
        const ok = await store.commitDecision(token, snap.primaryModRevision, [{ key, value: op }], r ? [store.keys.request(r.id)] : []);
        log.warn({ member: decision.node, method: decision.method, reason: decision.allowed, applied: ok }, `rejoin of ${decision.node} by ${decision.method} started`);
        if (ok) this.count('rejoin', 'started');
        return;
      }
      case 'rejoin-held': {
        const salvage = snap.salvages.get(decision.node);
        const method = snap.config.rejoin?.method;
        if (!p || !salvage || method === undefined || method === 'none') return;
        const op: OpRecord = {
          ...this.newOp(snap, token, 'rejoin', p.epoch, decision.node, decision.reason),
          to: p.node,
          endedAt: now,
          outcome: 'refused',
          rejoin: { node: decision.node, method, allowed: '', salvageAt: salvage.at, salvageFolder: salvage.folder, gtids: salvage.gtids, source: null, policy: snap.config.rejoin ?? null },
        };
        await store.recordFenced(token, [{ key, value: op }, ...this.remembered(op)]);
        log.warn({ member: decision.node, reason: decision.reason }, `rejoin of ${decision.node} by ${method} refused; it stays out of rotation`);
        this.count('rejoin', 'refused');
        return;
      }
      case 'rejoin-progress': {
        if (!cur) return;
        const last = cur.steps.at(-1);
        const steps = last?.name === decision.step && last.outcome === 'running'
          ? [...cur.steps.slice(0, -1), { ...last, detail: decision.detail }]
          : [...closeRunning(cur.steps, now), step(decision.step, now, null, 'running', decision.detail)];
        await store.recordFenced(token, [{ key, value: { ...cur, coordinator: { node: this.d.config.node, revision: token.createRevision }, steps } }]);
        return;
      }
      case 'rejoin-end': {
        if (!cur) return;
        const done = decision.outcome === 'done';
        const steps = cur.steps.map((x) => (x.outcome === 'running' ? { ...x, endedAt: now, outcome: done ? ('ok' as const) : ('failed' as const) } : x));
        const op: OpRecord = {
          ...cur,
          coordinator: { node: this.d.config.node, revision: token.createRevision },
          endedAt: now,
          outcome: decision.outcome,
          reason: `${cur.reason}; ${done ? 'done' : 'aborted'}: ${decision.reason}`,
          steps: [...steps, step(done ? 'rejoined' : 'aborted', now, now, done ? 'ok' : 'failed', decision.reason)],
        };
        const kept = done ? [{ key: store.keys.historyEntry(now, `${op.epoch}-rejoin-done`), value: op }] : this.remembered(op);
        await store.recordFenced(token, [{ key, value: op }, ...kept]);
        if (done) log.info({ member: decision.node, reason: decision.reason }, `${decision.node} rejoined`);
        else log.warn({ member: decision.node, reason: decision.reason }, `rejoin of ${decision.node} aborted; it stays out of rotation`);
        this.count('rejoin', decision.outcome);
        return;
      }
    }
  }

  /**
   * One round of the coordinator's own fencing: over SQL (sessions killed, read_only set and read
   * back), then the fencing command when one is configured and due. A proof, or what each said.
   */
  private async tryFence(p: Primary, op: OpRecord): Promise<{ proof: FenceProof | null; notes: string[] }> {
    const sql = await this.fenceOverSql(p);
    // The proof's time is when read_only was read back, not when the attempt began.
    const now = this.d.clock.now();
    if (sql.ok) return { proof: { kind: 'sql-fenced', detail: `the coordinator fenced ${p.node} over SQL: ${sql.detail}`, at: now, finalGtid: sql.gtid }, notes: [] };
    // The agents' own rule: a refusal from this host's own kernel means nothing listens there.
    const gone = goneReason(sql.detail, { host: p.host });
    if (gone !== null) return { proof: { kind: 'server-gone', detail: `the coordinator's connection to ${p.host}:${p.port}: ${gone}: ${sql.detail}`, at: now, finalGtid: null }, notes: [] };
    const notes = [`over SQL: ${sql.detail}`];
    const f = this.d.config.fencing;
    if (f.command === undefined) return { proof: null, notes: [...notes, 'no fencing command is configured'] };
    const last = this.lastCommand;
    if (last && last.epoch === op.epoch && now - last.at < f.retryMs) return { proof: null, notes: [...notes, last.note] };
    const run = await runFencingCommand(f.command, { cluster: this.d.config.cluster, node: p.node, host: p.host, port: p.port, epoch: p.epoch, failoverEpoch: op.epoch }, f.timeoutMs);
    this.d.log.warn({ member: p.node, command: f.command, outcome: run.outcome, ms: run.ms, tail: run.tail }, `fencing command for ${p.node}: ${run.outcome}`);
    const said = run.tail === '' ? '' : `: ${run.tail}`;
    if (run.ok) return { proof: { kind: 'fencing-command', detail: `the fencing command exited 0 in ${run.ms} ms${said}`, at: this.d.clock.now(), finalGtid: null }, notes: [] };
    const note = `the fencing command ${run.outcome} (tried again every ${f.retryMs} ms)${said}`;
    this.lastCommand = { epoch: op.epoch, at: now, note };
    return { proof: null, notes: [...notes, note] };
  }

  /** Records the proof: the fence step ends, and `fenced` says by what. Revoking follows as its own step. */
  /** `revoke`: the reason to start the revoke in the same write, or null to leave it to the next decision. */
  private async recordProof(token: Campaigner, snap: ClusterSnapshot, op: OpRecord, proof: FenceProof, deletes: string[] = [], revoke: string | null = null): Promise<void> {
    const now = this.d.clock.now();
    const steps = op.steps.map((x) => (x.name === 'fence' && x.outcome === 'running' ? { ...x, endedAt: now, outcome: 'ok' as const } : x));
    const fenced = step('fenced', now, now, 'ok', `${proof.kind}: ${proof.detail}`);
    const value: OpRecord = { ...op, proof, coordinator: { node: this.d.config.node, revision: token.createRevision }, steps: [...steps, fenced, ...(revoke === null ? [] : [step('revoke', now, null, 'running', revoke)])] };
    const ok = deletes.length > 0 ? await this.d.store.commitDecision(token, snap.primaryModRevision, [{ key: this.d.store.keys.op(op.epoch), value }], deletes) : await this.d.store.recordFenced(token, [{ key: this.d.store.keys.op(op.epoch), value }]);
    if (!ok) this.d.log.warn({ epoch: op.epoch }, 'the proof was not recorded (deposed or raced); re-reading');
  }

  /** Kills the old primary's client sessions and sets read_only over SQL, then reads it back, within the probe timeout. */
  private async fenceOverSql(p: Primary): Promise<{ ok: true; detail: string; gtid: string } | { ok: false; detail: string }> {
    const c = this.d.config;
    const driver = connectNode(
      { host: p.host, port: p.port, user: c.mysql.user, password: c.secrets.mysqlPassword },
      { flavor: c.mysql.flavor, connectTimeoutMs: c.timings.probeTimeoutMs, queryTimeoutMs: c.timings.probeTimeoutMs },
    );
    try {
      const { killed, gtid } = await fenceNode(driver, 1);
      this.d.counters.fencings += 1;
      return { ok: true, detail: `${killed} client sessions killed, read_only read back ON at ${gtid || 'an empty GTID position'}`, gtid };
    } catch (err) {
      return { ok: false, detail: describeError(err) };
    } finally {
      await driver.close().catch(() => undefined);
    }
  }

  /**
   * The pre-switchover hook is a gate, run before any write is held: the switchover waits for it
   * (later ticks find it running; none is blocked) and starts only on exit 0, with the run in its
   * record. Any other end aborts it: the request is consumed and the record says why. `stop` while
   * the hook runs or once it aborted the switchover; null when no such hook is configured.
   */
  private async preSwitchover(snap: ClusterSnapshot, token: Campaigner, decision: Extract<Decision, { kind: 'switchover-start' }>, p: Primary): Promise<HookRun | null | 'stop'> {
    const { log, store, config } = this.d;
    const r = decision.request;
    const key = `${r.id} ${decision.to}`;
    const to = snap.members.get(decision.to);
    const now = this.d.clock.now();
    const run = this.hooks.gate('pre-switchover', key, preSwitchoverContext(config.cluster, p, { node: decision.to, host: to?.host ?? null, port: to?.port ?? null }, decision.reason, now));
    if (run === 'running') {
      this.logOnce(`pre-switchover ${key}`, () => log.info({ request: r.id, to: decision.to }, 'switchover waits for its pre-switchover hook'));
      return 'stop';
    }
    if (run === null) return null;
    this.hooks.settle(key);
    if (hookSucceeded(run)) return run;
    const why = `the pre-switchover hook ${describeHookRun(run)}`;
    const op = withGateRun({ ...this.newOp(snap, token, 'switchover', p.epoch + 1, p.node, `${decision.reason}; aborted: ${why}`), trigger: `request ${r.id}`, request: r, to: decision.to, candidates: decision.verdicts, endedAt: now, outcome: 'aborted', steps: [step('choose', now, now, 'ok', decision.reason)] }, run);
    await store.commitDecision(token, snap.primaryModRevision, [{ key: store.keys.op(op.epoch), value: op }, ...this.remembered(op)], [store.keys.request(r.id)]);
    log.warn({ request: r.id, reason: why }, 'switchover aborted by its pre-switchover hook; the old primary stays');
    this.count('switchover', 'aborted');
    return 'stop';
  }

  /**
   * Hook runs that ended since (here, or on the new primary's agent, which publishes them in its
   * member key) go into their op records before anything is decided, so the snapshot decided on,
   * and every record written from it, has them.
   */
  private async recordHookRuns(snap: ClusterSnapshot, token: Campaigner): Promise<ClusterSnapshot> {
    const runs = [...this.hooks.finished, ...[...snap.members.values()].flatMap((m) => m.hooks ?? [])];
    const updated = runs.length === 0 ? [] : withHookRuns([snap.currentOp, snap.pendingOp], runs);
    if (updated.length === 0) return snap;
    for (const op of updated) await this.record(token, op);
    const latest = (op: OpRecord | null): OpRecord | null => (op && updated.find((u) => u.epoch === op.epoch)) ?? op;
    return { ...snap, currentOp: latest(snap.currentOp), pendingOp: latest(snap.pendingOp) };
  }

  private newOp(snap: ClusterSnapshot, token: Campaigner, kind: OpRecord['kind'], epoch: number, from: string | null, reason: string): OpRecord {
    const now = this.d.clock.now();
    return {
      epoch,
      kind,
      from,
      to: null,
      trigger: 'automatic',
      request: null,
      coordinator: { node: this.d.config.node, revision: token.createRevision },
      startedAt: now,
      endedAt: null,
      outcome: 'running',
      reason,
      catchUpFrom: null,
      mustContain: null,
      applied: null,
      proof: null,
      durability: null,
      fromAddress: snap.primary && snap.primary.node === from ? { host: snap.primary.host, port: snap.primary.port } : null,
      members: membersAt(snap),
      candidates: [],
      steps: [],
    };
  }

  /** Writes the op record, naming this coordinator: a record resumed by a new coordinator says so. */
  private async record(token: Campaigner, op: OpRecord): Promise<void> {
    const value = { ...op, coordinator: { node: this.d.config.node, revision: token.createRevision } };
    await this.d.store
      .recordFenced(token, [{ key: this.d.store.keys.op(op.epoch), value }, ...this.remembered(value)])
      .catch((err: unknown) => this.d.log.warn({ err: describeError(err) }, 'could not record the operation'));
  }

  /**
   * A refused or aborted operation is also kept under history/: the next operation of the same epoch
   * overwrites ops/<epoch>, and an operator asking why nothing happened at 3 a.m. needs every refusal.
   * The newest HISTORY_KEEP are kept.
   */
  private remembered(op: OpRecord): Array<{ key: string; value: OpRecord }> {
    if (op.outcome !== 'refused' && op.outcome !== 'aborted') return [];
    if (++this.remembers % HISTORY_PRUNE_EVERY === 0) {
      void this.d.store.pruneHistory(HISTORY_KEEP).catch((err: unknown) => this.d.log.warn({ err: describeError(err) }, 'could not prune history/'));
    }
    return [{ key: this.d.store.keys.historyEntry(op.endedAt ?? this.d.clock.now(), `${op.epoch}-${op.kind}-${op.outcome}`), value: op }];
  }

  private count(kind: string, outcome: string): void {
    const key = `${kind}:${outcome}`;
    this.d.counters.operations.set(key, (this.d.counters.operations.get(key) ?? 0) + 1);
  }
}

function step(name: string, startedAt: number, endedAt: number | null, outcome: OpStep['outcome'], detail: string): OpStep {
  return { name, startedAt, endedAt, outcome, detail };
}

function demoteStep(node: string, now: number): OpStep {
  return step('demote', now, null, 'running', `${node} turns read-only, drains and kills client sessions`);
}

function closeRunning(steps: readonly OpStep[], now: number): OpStep[] {
  return steps.map((s) => (s.outcome === 'running' ? { ...s, endedAt: now, outcome: 'ok' } : s));
}

/** The members' positions and semi-sync state as the coordinator saw them. */
function membersAt(snap: ClusterSnapshot): OpRecord['members'] {
  return Object.fromEntries(
    [...snap.members.values()].map((x) => [
      x.node,
      {
        health: x.health,
        gtid: x.server?.gtid.executed ?? null,
        received: x.server?.gtid.received ?? null,
        semiSync: x.server?.semiSync.sourceActive ? 'source' : x.server?.semiSync.replicaActive ? 'replica' : 'off',
        lastAnswer: x.lastAnswer,
        downSinceRevision: x.downSinceRevision,
      },
    ]),
  );
}

export type { CandidateVerdict };
