/**
 * The coordinator's decisions: a pure function from the cluster as etcd shows it, and the time, to
 * one decision. The shell around it reads a fresh snapshot, calls `decide`, and carries the decision
 * out with a write fenced by the election key.
 */
import {
  GtidParseError,
  gtidContains,
  mostAdvanced,
  parseGtid,
  type CandidateVerdict,
  type ClientRegistration,
  type ClusterConfig,
  type Flavor,
  type GtidPosition,
  type MemberState,
  type OpRecord,
  type OperatorRequest,
  type Primary,
} from '@primacy/common';
import { chooseCandidate, detectFailure, detectStalledPromotion, holdersOf, refuseAutomatic } from './failover.js';
import { chooseSwitchoverCandidate, continueSwitchover } from './switchover.js';

export interface ClusterView {
  readonly now: number;
  readonly members: ReadonlyMap<string, MemberState>;
  readonly primary: Primary | null;
  readonly epoch: number;
  readonly config: ClusterConfig;
  /**
   * Why the etcd `config` key, which exists, cannot be read; null when it can (or is absent). Its
   * defaults would silently unpause the cluster and forget no-promote marks, so nothing is started
   * automatically, and no request is taken, until it is fixed.
   */
  readonly configProblem?: string | null;
  /** The node named by the coordinator's own config for bootstrap, if any. */
  readonly bootstrapPrimary: string | null;
  /** ops/<epoch of the primary>, and ops/<that + 1>: an operation under way or the last refused one. */
  readonly currentOp: OpRecord | null;
  readonly pendingOp: OpRecord | null;
  /** Operator requests waiting to be taken, by id (ids sort by time). */
  readonly requests: ReadonlyMap<string, OperatorRequest>;
  /** Registered clients (proxies, application instances) that report when they hold their writes. */
  readonly clients: ReadonlyMap<string, ClientRegistration>;
  readonly timings: {
    readonly antiFlapMs: number;
    readonly maxLagMs: number;
    readonly revokeWaitMs: number;
    readonly switchoverCatchUpMs: number;
    readonly clientPauseWaitMs: number;
    /** One promotion attempt's wait for the relay log; a candidate not ready within it plus a grace is stalled. */
    readonly relayApplyTimeoutMs: number;
    /** After an automatic failover aborted, the next attempt for the same primary waits this long. */
    readonly failoverRetryMs: number;
  };
}

/** Beyond the relay-log wait, what the other steps of a promotion may take before it counts as stalled. */
export const PROMOTION_GRACE_MS = 3_000;

export interface RequestRef {
  readonly id: string;
  readonly to: string | null;
  readonly force: boolean;
}

export type Decision =
  | { readonly kind: 'none' }
  | { readonly kind: 'bootstrap'; readonly node: string; readonly reason: string }
  | { readonly kind: 'bootstrap-refused'; readonly reason: string }
  | { readonly kind: 'mark-ready'; readonly node: string; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'failover-start'; readonly from: string; readonly reason: string; readonly request: RequestRef | null; readonly mustContain: string | null }
  | { readonly kind: 'request-refused'; readonly id: string; readonly request: OperatorRequest; readonly reason: string }
  | { readonly kind: 'switchover-start'; readonly from: string; readonly to: string; readonly request: RequestRef; readonly reason: string; readonly verdicts: CandidateVerdict[] }
  | { readonly kind: 'record-demoted'; readonly node: string; readonly gtid: string; readonly reason: string }
  | { readonly kind: 'record-clients-paused'; readonly paused: readonly string[]; readonly silent: readonly string[]; readonly reason: string }
  | { readonly kind: 'switchover-promote'; readonly node: string; readonly gtid: string; readonly reason: string }
  | { readonly kind: 'switchover-abort'; readonly restore: boolean; readonly reason: string }
  | { readonly kind: 'failover-refused'; readonly from: string; readonly reason: string }
  | { readonly kind: 'await'; readonly reason: string }
  | { readonly kind: 'fence-old'; readonly from: string; readonly reason: string }
  | { readonly kind: 'record-fenced'; readonly from: string; readonly reason: string }
  | { readonly kind: 'note-diverged'; readonly node: string; readonly reason: string }
  | {
      readonly kind: 'promote';
      readonly node: string;
      readonly catchUpFrom: string | null;
      readonly fencedBy: string;
      readonly reason: string;
      readonly verdicts: CandidateVerdict[];
    }
  | { readonly kind: 'failover-abort'; readonly reason: string; readonly verdicts: CandidateVerdict[] };

const NONE: Decision = { kind: 'none' };

export function decide(v: ClusterView): Decision {
  if (v.primary === null) return decideBootstrap(v);
  const p = v.primary;
  const op = v.pendingOp;
  if (op && op.outcome === 'running' && op.kind === 'failover') return continueFailover(v, p, op);
  if (op && op.outcome === 'running' && op.kind === 'switchover') return continueSwitchover(v, p, op);
  if (p.state === 'ready') {
    const request = [...v.requests.entries()].sort(([a], [b]) => a.localeCompare(b))[0];
    if (request) return decideRequest(v, p, request[0], request[1]);
    return decideFailover(v, p);
  }
  if (p.state === 'promoting') {
    const m = v.members.get(p.node);
    if (m && promotionDone(m, p.epoch)) {
      return { kind: 'mark-ready', node: p.node, epoch: p.epoch, reason: `${p.node} is writable and writes heartbeats of epoch ${p.epoch}` };
    }
    // A candidate whose agent or server dies while it is being promoted is failed like any primary.
    return decideFailover(v, p);
  }
  return NONE;
}

/** The candidate's agent reports the promotion finished: writable, replication cleared, heartbeat of this epoch. */
export function promotionDone(m: MemberState, epoch: number): boolean {
  const s = m.server;
  return m.health === 'up' && s !== null && !s.readOnly && s.replication === null && s.heartbeatEpoch === epoch;
}

/**
 * The first primary: the node the config names, or else the one node with no replication source
 * whose GTID position contains every other member's. Anything less clear is refused with a reason.
 */
export function decideBootstrap(v: ClusterView): Decision {
  const up = [...v.members.values()].filter((m) => m.health === 'up' && m.server !== null);
  if (up.length === 0) return { kind: 'bootstrap-refused', reason: 'no member reports a reachable server yet' };
  const positions = new Map<string, GtidPosition>();
  for (const m of up) {
    const p = positionOf(m);
    if (p === null) return { kind: 'bootstrap-refused', reason: `${m.node} reports a GTID position that cannot be read` };
    positions.set(m.node, p);
  }

  if (v.bootstrapPrimary !== null) {
    const named = v.members.get(v.bootstrapPrimary);
    if (!named || named.health !== 'up') {
      return { kind: 'bootstrap-refused', reason: `the configured primary ${v.bootstrapPrimary} is not reachable` };
    }
    const mine = positions.get(named.node);
    const behind = up.filter((m) => m.node !== named.node && mine && !gtidContains(mine, positions.get(m.node) ?? mine));
    if (behind.length > 0) {
      return {
        kind: 'bootstrap-refused',
        reason: `the configured primary ${named.node} lacks transactions that ${behind.map((m) => m.node).join(', ')} ha${behind.length > 1 ? 've' : 's'}`,
      };
    }
    return { kind: 'bootstrap', node: named.node, reason: `the config names ${named.node} as the first primary` };
  }

  const sources = up.filter((m) => m.server?.replication === null);
  if (sources.length === 0) return { kind: 'bootstrap-refused', reason: 'every reachable node replicates from somewhere; name the first primary in the config' };
  if (sources.length > 1) {
    return {
      kind: 'bootstrap-refused',
      reason: `ambiguous: ${sources.map((m) => m.node).join(' and ')} have no replication source; name the first primary in the config (bootstrap.primary)`,
    };
  }
  const only = sources[0]!;
  const all = up.map((m) => positions.get(m.node)!);
  const best = mostAdvanced(all);
  if ('diverged' in best) return { kind: 'bootstrap-refused', reason: 'the members\' GTID positions have diverged; no node has every transaction' };
  const bestNode = up[best.index]!;
  if (!gtidContains(positions.get(only.node)!, positions.get(bestNode.node)!)) {
    return { kind: 'bootstrap-refused', reason: `${only.node} has no replication source but ${bestNode.node} is more advanced` };
  }
  return { kind: 'bootstrap', node: only.node, reason: `${only.node} is the only node without a replication source and has every transaction` };
}

/** A member's executed GTID position; null when it has none or it cannot be parsed. */
export function positionOf(m: MemberState, which: 'executed' | 'received' = 'executed'): GtidPosition | null {
  const s = m.server;
  if (!s) return null;
  try {
    return parseGtid(s.flavor, s.gtid[which]);
  } catch (err) {
    if (err instanceof GtidParseError) return null;
    throw err;
  }
}

/**
 * A ready primary, or a candidate being promoted: is it failed, and may an automatic failover start
 * (invariant 9)? A candidate failing before it is ready belongs to the failover that chose it, so
 * the anti-flapping window (which counts from a finished failover) does not hold it back.
 */
function decideFailover(v: ClusterView, p: Primary): Decision {
  const failure = detectFailure(p, v.members) ?? detectStalledPromotion(p, v.members, v.now, v.timings.relayApplyTimeoutMs + PROMOTION_GRACE_MS);
  if (!failure) return noteDiverged(v);
  const last = v.pendingOp;
  if (last?.kind === 'failover' && last.outcome === 'aborted' && last.from === p.node && last.request === null && v.now - (last.endedAt ?? 0) < v.timings.failoverRetryMs) {
    return { kind: 'await', reason: `the failover of ${p.node} aborted (${last.reason}); trying again ${v.timings.failoverRetryMs} ms after` };
  }
  const holders = failure.mustContain === undefined ? null : holdersOf(failure.mustContain, v.members, p.node);
  const refusal =
    configRefusal(v) ??
    refuseAutomatic(v.config, v.currentOp, v.now, v.timings.antiFlapMs) ??
    (holders?.length === 0 ? `no other replica has everything ${p.node} received (${failure.mustContain}), which may hold acknowledged writes; ${p.node} keeps trying` : null);
  if (refusal === null) return { kind: 'failover-start', from: p.node, reason: failure.reason, request: null, mustContain: failure.mustContain ?? null };
  const reason = `${failure.reason}; failover refused: ${refusal}`;
  // A refusal is recorded once; it is re-evaluated on every tick and recorded again only when its reason changes.
  if (v.pendingOp?.outcome === 'refused' && v.pendingOp.reason === reason) return NONE;
  return { kind: 'failover-refused', from: p.node, reason };
}

/**
 * The steps of a failover under way (invariants 4 and 5), each safe to repeat: fence the old primary,
 * then revoke (replicas keep receiving until the fence, so they get its last transactions), then choose.
 */
function continueFailover(v: ClusterView, p: Primary, op: OpRecord): Decision {
  const from = op.from ?? p.node;
  if (p.node !== from || p.epoch + 1 !== op.epoch) return { kind: 'failover-abort', reason: `the primary changed to ${p.node} (epoch ${p.epoch}) during the failover`, verdicts: [] };

  const fenced = op.steps.find((s) => s.name === 'fenced');
  if (!fenced) {
    const old = v.members.get(from);
    const sqlFence = op.steps.find((s) => s.name === 'fence over SQL');
    let fencedBy: string | null = null;
    if (old?.fenced) fencedBy = `${from}'s agent reported its node fenced`;
    else if (sqlFence?.outcome === 'ok') fencedBy = `the coordinator fenced ${from} over SQL`;
    else if (!old && sqlFence) fencedBy = `${from}'s lease expired, so its agent has fenced it or is gone; SQL fencing failed: ${sqlFence.detail}`;
    if (fencedBy !== null) return { kind: 'record-fenced', from, reason: fencedBy };
    if (!sqlFence) return { kind: 'fence-old', from, reason: old ? `${from}'s agent has not reported its node fenced` : `${from} has no agent` };
    return { kind: 'await', reason: `waiting for ${from}'s agent to report its node fenced` };
  }

  const answering = [...v.members.values()].filter((m) => m.node !== from && m.health === 'up' && m.server !== null);
  const revoked = answering.filter((m) => m.revokedEpoch === op.epoch);
  const waiting = answering.filter((m) => m.revokedEpoch !== op.epoch).map((m) => m.node);
  if (waiting.length > 0 && v.now - (fenced.endedAt ?? fenced.startedAt) < v.timings.revokeWaitMs) {
    return { kind: 'await', reason: `waiting for ${waiting.join(', ')} to stop receiving from ${from}` };
  }
  const fencedBy = fenced.detail;

  const known = new Set([...Object.keys(op.members), ...v.members.keys()]);
  known.delete(from);
  const answered = new Set(revoked.map((m) => m.node));
  const silent = [...known].filter((n) => !answered.has(n)).sort();
  const oldGtid = op.members[from]?.gtid ?? null;
  const flavor = revoked[0]?.server?.flavor;
  let oldPrimaryGtid: GtidPosition | null = null;
  if (oldGtid !== null && flavor) {
    try {
      oldPrimaryGtid = parseGtid(flavor, oldGtid);
    } catch (err) {
      if (!(err instanceof GtidParseError)) throw err;
    }
  }
  const required = requiredPosition(op, flavor);
  if (typeof required === 'string') return { kind: 'failover-abort', reason: required, verdicts: [] };
  const choice = chooseCandidate({
    answering: revoked,
    silent,
    oldPrimaryGtid,
    config: v.config,
    maxLagMs: v.timings.maxLagMs,
    force: op.request?.force ?? false,
    preferred: op.request?.to ?? null,
    required,
  });
  if (!choice.ok) return { kind: 'failover-abort', reason: choice.reason, verdicts: choice.verdicts };
  return { kind: 'promote', node: choice.node, catchUpFrom: choice.catchUpFrom, fencedBy, reason: choice.reason, verdicts: choice.verdicts };
}

/** The op's `mustContain` as a position; a string when it cannot be read (the failover must not go on blind). */
function requiredPosition(op: OpRecord, flavor: Flavor | undefined): { node: string; position: GtidPosition } | null | string {
  if (op.mustContain === null) return null;
  if (!flavor) return `no replica that answered reports its flavor, so ${op.mustContain} cannot be checked`;
  try {
    return { node: op.from ?? 'the old primary', position: parseGtid(flavor, op.mustContain) };
  } catch (err) {
    if (!(err instanceof GtidParseError)) throw err;
    return `the position the new primary must contain (${op.mustContain}) cannot be read: ${err.message}`;
  }
}

/** A member that found itself diverged from this epoch's primary is named, with its extra GTIDs, in the epoch's record. */
function noteDiverged(v: ClusterView): Decision {
  const op = v.currentOp;
  if (!op) return NONE;
  for (const m of v.members.values()) {
    if (m.errant === null || op.steps.some((s) => s.name === `diverged ${m.node}`)) continue;
    return { kind: 'note-diverged', node: m.node, reason: `${m.node} has transactions ${v.primary?.node ?? 'the primary'} lacks: ${m.errant}; it stays out of rotation until an operator rejoins it` };
  }
  return NONE;
}

/** The refusal that an unreadable `config` key imposes, or null. */
function configRefusal(v: ClusterView): string | null {
  return v.configProblem ? `the etcd config key cannot be read (${v.configProblem}); fix or delete it` : null;
}

/** An operator's request, taken when the primary is ready and nothing else runs. */
function decideRequest(v: ClusterView, p: Primary, id: string, r: OperatorRequest): Decision {
  const ref: RequestRef = { id, to: r.to, force: r.force };
  const unreadable = configRefusal(v);
  if (unreadable !== null) return { kind: 'request-refused', id, request: r, reason: unreadable };
  if (r.to !== null && !v.members.has(r.to)) return { kind: 'request-refused', id, request: r, reason: `no member named ${r.to}` };
  if (r.to === p.node) return { kind: 'request-refused', id, request: r, reason: `${r.to} is already the primary` };
  if (r.kind === 'switchover') {
    const choice = chooseSwitchoverCandidate(v, p, r.to, r.force);
    if (!choice.ok) return { kind: 'request-refused', id, request: r, reason: choice.reason };
    return { kind: 'switchover-start', from: p.node, to: choice.node, request: ref, reason: choice.reason, verdicts: choice.verdicts };
  }
  if (r.kind === 'failover') {
    if (r.to === null) return { kind: 'request-refused', id, request: r, reason: 'a manual failover needs --to NODE' };
    return { kind: 'failover-start', from: p.node, reason: `operator request ${id}: fail over to ${r.to}${r.force ? ' (forced)' : ''}`, request: ref, mustContain: null };
  }
  return { kind: 'request-refused', id, request: r, reason: `${r.kind} requests are not supported yet` };
}
