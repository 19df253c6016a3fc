/**
 * Automatic failover, decided purely: is the primary failed, may it be replaced, and by whom.
 * The rules follow DESIGN.md invariants 4, 5, 8 and 9; each has a table test in failover.test.ts.
 */
import { errantGtids, gtidContains, gtidMissing, formatGtid, isInMaintenance, mariaStateMissing, mostAdvanced, parseGtid, withoutOrigin, type ClusterConfig, type CandidateVerdict, type GtidPosition, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { isPointedAt, positionOf } from './position.js';

export interface Failure {
  readonly reason: string;
  /** What the replacement must contain: set for a stalled candidate, whose received writes may be acknowledged. */
  readonly mustContain?: string;
}

/**
 * The primary is failed when its agent is gone (its lease expired, so nobody guards it), or when its
 * agent has seen the server down for the configured probes and no replica still receives from it.
 * "Alive but refusing" (1040 and the like) and auth errors never count.
 */
export function detectFailure(p: Primary, members: ReadonlyMap<string, MemberState>): Failure | null {
  const m = members.get(p.node);
  if (!m) return { reason: `the agent of ${p.node} is gone: its lease expired or was revoked` };
  if (m.health !== 'down') return null;
  const receiving = [...members.values()].filter(
    (r) => r.node !== p.node && r.server?.replication?.ioState === 'running' && isPointedAt(r, p),
  );
  if (receiving.length > 0) return null;
  return { reason: `${p.node}'s agent sees its server down (${m.error ?? 'no answer'}) and no replica receives from it` };
}

/**
 * A candidate that is up but has not finished its promotion within `limitMs` (its relay log does not
 * apply, or a step keeps failing) is failed too. The limit counts from the promotion's start, or
 * from the last time its executed position was seen to advance (`appliedAt`, the op record's
 * `applied.at`): a candidate that applies a long relay log steadily is not stalled. Its agent
 * waits `relayApplyTimeoutMs` without progress, so the limit is that plus a grace. Its received
 * position goes with the failure: the replacement must contain it.
 */
export function detectStalledPromotion(p: Primary, members: ReadonlyMap<string, MemberState>, now: number, limitMs: number, appliedAt: number | null = null): Failure | null {
  const m = members.get(p.node);
  const since = Math.max(p.since, appliedAt ?? p.since);
  if (p.state !== 'promoting' || !m || m.health !== 'up' || now - since <= limitMs) return null;
  const received = m.server?.gtid.received ?? '';
  const progressed = appliedAt !== null && appliedAt > p.since ? ` (its applied position last moved ${now - appliedAt} ms ago)` : '';
  return {
    reason: `${p.node} has not finished its promotion to epoch ${p.epoch} within ${limitMs} ms${progressed}`,
    ...(received !== '' ? { mustContain: received } : {}),
  };
}



/** Why an automatic failover may not start now, or null when it may (invariant 9). */
export function refuseAutomatic(config: ClusterConfig, currentOp: OpRecord | null, now: number, antiFlapMs: number): string | null {
  if (config.paused) return 'the cluster is paused';
  const window = config.antiFlapMs ?? antiFlapMs;
  if (currentOp?.kind === 'failover' && currentOp.outcome === 'done' && currentOp.endedAt !== null && now - currentOp.endedAt < window) {
    // No elapsed time in the text: the same refusal must read the same on every tick, so it is recorded once.
    return `anti-flapping: the last failover (epoch ${currentOp.epoch}) ended at ${new Date(currentOp.endedAt).toISOString()}, inside the ${Math.round(window / 1000)} s window`;
  }
  return null;
}

export interface ChoiceInput {
  /** The members that answered the revoke, without the old primary. */
  readonly answering: readonly MemberState[];
  /** Nodes known to the cluster, without the old primary, that did not answer. */
  readonly silent: readonly string[];
  /** The old primary's last known executed position, if any. */
  readonly oldPrimaryGtid: GtidPosition | null;
  readonly config: ClusterConfig;
  readonly maxLagMs: number;
  readonly force: boolean;
  /** An operator's choice; null lets the rules pick. */
  readonly preferred: string | null;
  /** The new primary must contain this position (a stalled candidate's received writes); null: no such rule. */
  readonly required?: { readonly node: string; readonly position: GtidPosition } | null;
}

export type Choice =
  | { readonly ok: true; readonly node: string; readonly reason: string; readonly catchUpFrom: string | null; readonly verdicts: CandidateVerdict[] }
  | { readonly ok: false; readonly reason: string; readonly verdicts: CandidateVerdict[] };

/** Major.minor as a number pair, so 10.11 > 10.6 and 8.4 > 8.0. */
export function majorVersion(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function olderMajor(a: [number, number], b: [number, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/**
 * The candidate is the replica with the most advanced received GTID position, by exact set
 * arithmetic (invariant 5), among those the rules allow (invariant 8). Priority breaks ties. A
 * preferred node that is behind first catches up from the most advanced one.
 */
export function chooseCandidate(i: ChoiceInput): Choice {
  const verdicts = new Map<string, CandidateVerdict>();
  const received = new Map<string, GtidPosition>();
  for (const m of i.answering) {
    const p = positionOf(m, 'received');
    if (p) received.set(m.node, p);
  }
  // Silent nodes might hold acknowledged writes nobody else has, unless the required position already
  // bounds them: a stalled candidate was chosen when all answered, and nothing was written since.
  if (i.silent.length > 0 && !i.force && !i.required) {
    return { ok: false, reason: `too few nodes answer to know which is most advanced: ${i.silent.join(', ')} did not`, verdicts: [] };
  }
  const usable = i.answering.filter((m) => received.has(m.node));
  if (usable.length === 0) return { ok: false, reason: 'no replica answered with a readable GTID position', verdicts: [] };

  const newest = usable.map((m) => majorVersion(m.server?.version ?? '')).reduce((a, b) => (olderMajor(a, b) ? b : a));
  const lags = usable.map((m) => m.server?.lagMs).filter((l): l is number => typeof l === 'number');
  const minLag = lags.length > 0 ? Math.min(...lags) : 0;
  const maxLag = i.config.maxLagMs ?? i.maxLagMs;

  for (const m of usable) {
    const s = m.server!;
    const pos = received.get(m.node)!;
    const others = [...received.entries()].filter(([n]) => n !== m.node).map(([, p]) => p);
    if (i.oldPrimaryGtid) others.push(i.oldPrimaryGtid);
    // What a stalled candidate received came from the primary before it: not errant on the node that wrote it.
    if (i.required) others.push(i.required.position);
    const errant = m.errant ?? (errantGtids(positionOf(m) ?? pos, s, others) || mariaStateErrant(m, usable, i.oldPrimaryGtid));
    const noPromote = m.noPromote || i.config.nodes[m.node]?.noPromote === true;
    const lag = s.lagMs === null ? null : s.lagMs - minLag;
    const refusal =
      m.role === 'diverged' || m.errant !== null ? `diverged: errant GTIDs ${errant || 'found by its agent'}`
      : errant !== '' ? `errant GTIDs ${errant}`
      : noPromote ? 'marked no-promote'
      : !s.logBin ? 'binary log is off'
      : olderMajor(majorVersion(s.version), newest) ? `older major version ${s.version}`
      : lag !== null && lag > maxLag ? `lags ${lag} ms behind the others, over the ${maxLag} ms limit`
      : null;
    // An operator's --force overrides the rules; the verdict still says what it overrode. Maintenance
    // is no rule but the operator's own word, taken back with primacy maintenance NODE off.
    const maintenance = isInMaintenance(i.config, m.node);
    const eligible = !maintenance && (refusal === null || i.force);
    verdicts.set(m.node, { node: m.node, gtid: s.gtid.received, eligible, reason: maintenance ? 'in maintenance' : (refusal ?? 'eligible') });
  }

  // A node with errant GTIDs is neither a candidate nor a source to catch up from: its extra writes would spread.
  const isErrant = (m: MemberState): boolean => /^(diverged|errant)/.test(verdicts.get(m.node)!.reason);
  const sources = usable.filter((m) => !isErrant(m));
  if (sources.length === 0) return { ok: false, reason: 'every replica that answered has errant GTIDs', verdicts: [...verdicts.values()] };
  const best = mostAdvanced(sources.map((m) => received.get(m.node)!));
  // A node left out for its own errant writes may still hold the old primary's last (acknowledged) ones: never drop those silently.
  const held = 'index' in best && !i.force ? heldOnlyByErrant(usable.filter(isErrant), received, received.get(sources[best.index]!.node)!) : null;
  if (held) return { ok: false, reason: held, verdicts: [...verdicts.values()] };
  if ('diverged' in best && !i.force) {
    return { ok: false, reason: 'the replicas\' received positions have diverged: none has every transaction', verdicts: [...verdicts.values()] };
  }
  const bestNode = 'index' in best ? sources[best.index]!.node : null;
  const r = i.required;
  if (r && !i.force && (bestNode === null || !gtidContains(received.get(bestNode)!, r.position))) {
    return { ok: false, reason: `no replica has everything ${r.node} received (${formatGtid(r.position)}), which may hold acknowledged writes`, verdicts: [...verdicts.values()] };
  }
  const eligible = usable.filter((m) => verdicts.get(m.node)!.eligible);
  const advanced = (m: MemberState): boolean => bestNode !== null && gtidContains(received.get(m.node)!, received.get(bestNode)!);
  // Highest priority first; within one priority the most advanced; then by name, so the choice is stable.
  const ranked = [...eligible].sort(
    (a, b) => priorityOf(b, i.config) - priorityOf(a, i.config) || Number(advanced(b)) - Number(advanced(a)) || a.node.localeCompare(b.node),
  );
  if (i.preferred !== null && !eligible.some((m) => m.node === i.preferred)) {
    const v = verdicts.get(i.preferred);
    return { ok: false, reason: v ? `${i.preferred} cannot be promoted: ${v.reason}` : `${i.preferred} did not answer`, verdicts: [...verdicts.values()] };
  }
  const pick = i.preferred !== null ? eligible.find((m) => m.node === i.preferred)! : ranked[0];
  if (!pick) return { ok: false, reason: 'no replica may be promoted', verdicts: finish(verdicts, null, bestNode) };
  const catchUpFrom = advanced(pick) || bestNode === null ? null : bestNode;
  const why = catchUpFrom
    ? `${pick.node} is preferred (priority ${priorityOf(pick, i.config)}); it first catches up from ${catchUpFrom}, the most advanced`
    : `${pick.node} has the most advanced received GTID position ${pick.server!.gtid.received}` +
      (ranked.filter(advanced).length > 1 ? '; tie on position; chosen by priority, then name' : '');
  return { ok: true, node: pick.node, reason: why, catchUpFrom, verdicts: finish(verdicts, pick.node, bestNode) };
}

/**
 * MariaDB: what the node wrote itself that its binlog state shows and no other answering node's
 * state (nor the old primary's position) has. Positions keep one GTID per domain and hide such a
 * write once the node received a later one from the primary; `gtid_binlog_state` keeps every
 * (domain, server) pair.
 */
function mariaStateErrant(m: MemberState, usable: readonly MemberState[], oldPrimary: GtidPosition | null): string {
  const mine = m.server?.gtid.binlogState;
  if (m.server?.flavor !== 'mariadb' || mine === undefined || mine === '') return '';
  const others = usable.filter((o) => o.node !== m.node).map((o) => o.server?.gtid.binlogState ?? o.server?.gtid.executed ?? '');
  if (oldPrimary) others.push(formatGtid(oldPrimary));
  try {
    const missing = mariaStateMissing(mine, others.filter(Boolean).join(','));
    return missing.split(',').filter((g) => g !== '' && Number(g.split('-')[1]) === m.server!.serverId).join(',');
  } catch {
    return ''; // a state that cannot be read proves nothing here; positions were checked already
  }
}

/** Why the most advanced eligible position lacks what an errant node received from elsewhere; null when it has it all. */
function heldOnlyByErrant(errant: readonly MemberState[], received: ReadonlyMap<string, GtidPosition>, best: GtidPosition): string | null {
  for (const m of errant) {
    const pos = received.get(m.node);
    if (!pos || !m.server) continue;
    try {
      const foreign = withoutOrigin(m.server.flavor, formatGtid(pos), m.server);
      if (foreign === '' || gtidContains(best, parseGtid(m.server.flavor, foreign))) continue;
      return `${m.node} has errant GTIDs, and also received ${gtidMissing(parseGtid(m.server.flavor, foreign), best)} that no eligible replica has, which may hold acknowledged writes; promoting a less advanced node would lose them (--force overrides)`;
    } catch {
      continue;
    }
  }
  return null;
}

function priorityOf(m: MemberState, config: ClusterConfig): number {
  return config.nodes[m.node]?.priority ?? m.priority;
}

/** Verdicts as recorded: why the chosen one won and why each other one did not. */
function finish(verdicts: Map<string, CandidateVerdict>, chosen: string | null, best: string | null): CandidateVerdict[] {
  return [...verdicts.values()].map((v) => {
    if (v.node === chosen) return { ...v, reason: 'chosen' };
    if (!v.eligible) return v;
    return { ...v, eligible: true, reason: v.node === best ? 'most advanced, but another was preferred by priority' : 'less advanced or lower priority' };
  });
}
