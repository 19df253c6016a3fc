/**
 * The coordinator's decisions: a pure function from the cluster as etcd shows it, and the time, to
 * one decision. The shell around it reads a fresh snapshot, calls `decide`, and carries the decision
 * out with a write fenced by the election key.
 */
import { GtidParseError, formatGtid, gtidContains, isInMaintenance, mergeGtid, mostAdvanced, parseGtid, type CandidateVerdict, type Flavor, type GtidPosition, type MemberState, type OpRecord, type OperatorRequest, type Primary } from '@primacy/common';
import { chooseCandidate, detectFailure, detectStalledPromotion, refuseAutomatic } from './failover.js';
import { PROMOTION_GRACE_MS, type ClusterView, type Decision, type RequestRef } from './model.js';
import { holdersOf, isPointedAt, positionOf, promotionDone } from './position.js';
import { agentProof, agentSays, hasRevoked, nextDurability, operatorAdvice, strictProof, strictRecord } from './proof.js';
import { autoRejoin, chooseRejoin, continueRejoin } from './rejoin.js';
import { lastSeenUpdate, restartRule } from './restart.js';
import { chooseSwitchoverCandidate, continueSwitchover } from './switchover.js';

const NONE: Decision = { kind: 'none' };

export function decide(v: ClusterView): Decision {
  const bad = v.malformedRequests?.[0];
  if (bad) return { kind: 'request-dropped', id: bad.id, reason: `the request ${bad.id} cannot be read (${bad.why}); removed` };
  if (v.primary === null) return v.primaryProblem ? decideRepair(v, v.primaryProblem) : decideBootstrap(v);
  const p = v.primary;
  const op = v.pendingOp;
  if (op && op.outcome === 'running' && op.kind === 'failover') return continueFailover(v, p, op);
  if (op && op.outcome === 'running' && op.kind === 'switchover') return continueSwitchover(v, p, op);
  if (p.state === 'ready') {
    const request = [...v.requests.entries()].sort(([a], [b]) => a.localeCompare(b))[0];
    if (request) return decideRequest(v, p, request[0], request[1]);
    // A failed primary comes first: a rejoin's progress never delays its detection.
    const failover = decideFailover(v, p);
    if (failover.kind !== 'none') return failover;
    // Last-seen positions are kept only while the primary answers: after the whole cluster was down,
    // the record must stay what it was before, or the nodes coming back would look seen before.
    const primaryUp = v.members.get(p.node)?.health === 'up';
    return continueRejoin(v, p) ?? autoRejoin(v, p) ?? (primaryUp ? lastSeenUpdate(v) : null) ?? NONE;
  }
  if (p.state === 'promoting') {
    const m = v.members.get(p.node);
    if (m && promotionDone(m, p.epoch)) {
      return { kind: 'mark-ready', node: p.node, epoch: p.epoch, reason: `${p.node} is writable and writes heartbeats of epoch ${p.epoch}` };
    }
    // A candidate whose agent or server dies while it is being promoted is failed like any primary.
    const failed = decideFailover(v, p);
    if (failed.kind !== 'none') return failed;
    return noteApplied(v, p, m) ?? NONE;
  }
  return NONE;
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

/**
 * A `primary` key that cannot be read fences every node (their agents see no primary). It is
 * rebuilt, at the same epoch and `ready`, only from evidence that leaves no doubt: the newest
 * operation finished promoting that node, nothing runs after it, its agent reports it at that
 * epoch's heartbeat, and no member reports a later one.
 */
export function decideRepair(v: ClusterView, problem: string): Decision {
  const refuse = (why: string): Decision => ({ kind: 'repair-refused', reason: `the primary key cannot be read (${problem}) and cannot be rebuilt: ${why}; fix it with etcdctl` });
  const op = v.currentOp;
  if (!op || op.epoch !== v.epoch || op.outcome !== 'done' || op.to === null) return refuse(`the newest operation (epoch ${v.epoch}) did not finish a promotion`);
  if (v.pendingOp?.outcome === 'running') return refuse(`an operation of epoch ${v.pendingOp.epoch} is under way`);
  const m = v.members.get(op.to);
  if (!m?.server || m.health !== 'up') return refuse(`${op.to}, promoted at epoch ${op.epoch}, does not answer`);
  if (m.server.heartbeatEpoch !== op.epoch) return refuse(`${op.to}'s heartbeat is of epoch ${m.server.heartbeatEpoch ?? 'none'}, not ${op.epoch}`);
  const later = [...v.members.values()].filter((x) => (x.server?.heartbeatEpoch ?? 0) > op.epoch).map((x) => x.node);
  if (later.length > 0) return refuse(`${later.join(', ')} report a later epoch`);
  return { kind: 'repair-primary', node: op.to, epoch: op.epoch, reason: `${op.to} finished its promotion to epoch ${op.epoch} (${op.kind}) and reports that epoch's heartbeat` };
}


/** How often, at most, a candidate's progress through its relay log is written to its op record. */
export const APPLIED_NOTE_MS = 1000;

/**
 * The candidate's executed position moved since the op record last noted it (and the note is at
 * least APPLIED_NOTE_MS old): note it, so that a candidate applying a long relay log steadily is
 * not taken for stalled (detectStalledPromotion counts from the last progress).
 */
function noteApplied(v: ClusterView, p: Primary, m: MemberState | undefined): Decision | null {
  const op = v.currentOp;
  const gtid = m?.health === 'up' ? m.server?.gtid.executed : undefined;
  if (!op || op.epoch !== p.epoch || op.to !== p.node || gtid === undefined) return null;
  const last = op.applied?.node === p.node ? op.applied : null;
  if (last?.gtid === gtid || (last !== null && v.now - last.at < APPLIED_NOTE_MS)) return null;
  if (last === null && v.now - p.since < APPLIED_NOTE_MS) return null;
  return { kind: 'note-applied', node: p.node, gtid, reason: `${p.node} applies its relay log before its promotion: executed ${gtid}` };
}

/**
 * A ready primary, or a candidate being promoted: is it failed, and may an automatic failover start
 * (invariant 9)? A candidate failing before it is ready belongs to the failover that chose it, so
 * the anti-flapping window (which counts from a finished failover) does not hold it back.
 */
function decideFailover(v: ClusterView, p: Primary): Decision {
  const applied = v.currentOp?.epoch === p.epoch && v.currentOp.applied?.node === p.node ? v.currentOp.applied.at : null;
  const failure = detectFailure(p, v.members) ?? detectStalledPromotion(p, v.members, v.now, v.timings.relayApplyTimeoutMs + PROMOTION_GRACE_MS, applied);
  if (!failure) return (p.state === 'ready' ? recordDurability(v, p) : null) ?? noteDiverged(v);
  const last = v.pendingOp;
  if (last?.kind === 'failover' && last.outcome === 'aborted' && last.from === p.node && last.request === null && v.now - (last.endedAt ?? 0) < v.timings.failoverRetryMs) {
    return { kind: 'await', reason: `the failover of ${p.node} aborted (${last.reason}); trying again ${v.timings.failoverRetryMs} ms after` };
  }
  const restart = restartRule(v, p);
  const mustContain = candidateHolds(v, p, failure.mustContain) ?? restart?.mustContain ?? null;
  const holders = mustContain === null ? null : holdersOf(mustContain, v.members, p.node);
  const refusal =
    configRefusal(v) ??
    refuseAutomatic(v.config, v.currentOp, v.now, v.timings.antiFlapMs) ??
    restart?.refusal ??
    (holders?.length === 0 ? `no other replica has everything ${p.node} received (${mustContain}), which may hold acknowledged writes; ${p.node} keeps trying` : null);
  if (refusal === null) {
    // An operator's override or a fencing command stays true across a retry; a fence the old primary's agent may have undone since does not.
    const kept = last?.kind === 'failover' && last.outcome === 'aborted' && last.from === p.node && last.epoch === p.epoch + 1 && (last.proof?.kind === 'operator' || last.proof?.kind === 'fencing-command') ? last : null;
    return {
      kind: 'failover-start',
      from: p.node,
      reason: restart?.unsafe ? `${failure.reason}; ${restart.unsafe}` : failure.reason,
      request: null,
      mustContain,
      ...(kept?.proof ? { proof: kept.proof } : {}),
      ...(kept?.request ? { carriedRequest: kept.request } : {}),
    };
  }
  const reason = `${failure.reason}; failover refused: ${refusal}`;
  // A refusal is recorded once; it is re-evaluated on every tick and recorded again only when its reason changes.
  if (v.pendingOp?.outcome === 'refused' && v.pendingOp.reason === reason) return NONE;
  return { kind: 'failover-refused', from: p.node, reason };
}

/**
 * The steps of a failover under way (invariants 4 and 5), each safe to repeat: prove the old primary
 * fenced; let the replicas receive its last transactions; revoke; choose. Strict semi-sync revokes
 * first, since the revoke is its proof.
 */
function continueFailover(v: ClusterView, p: Primary, op: OpRecord): Decision {
  const from = op.from ?? p.node;
  if (p.node !== from || p.epoch + 1 !== op.epoch) return { kind: 'failover-abort', reason: `the primary changed to ${p.node} (epoch ${p.epoch}) during the failover`, verdicts: [] };
  const old = v.members.get(from);
  const known = [...new Set([...Object.keys(op.members), ...v.members.keys()])].filter((n) => n !== from).sort();
  const revoke = op.steps.find((s) => s.name === 'revoke');

  if (op.proof === null) {
    const proof = agentProof(old, op, v.now);
    if (proof) return revokeAtOnce(v, p, op, { kind: 'record-fenced', from, proof, reason: proof.detail });
    const override = unfencedRequest(v);
    if (override) {
      const [id, r] = override;
      const to = r.to !== null && v.members.has(r.to) ? r.to : null;
      const detail = `operator override (request ${id}, by ${r.by}): ${from} was not proven fenced; the operator says it takes no writes`;
      return revokeAtOnce(v, p, op, { kind: 'record-fenced', from, proof: { kind: 'operator', detail, at: v.now, finalGtid: null }, reason: detail, request: { id, to } });
    }
    const mode = v.durabilityMode ?? 'semi-sync';
    const strict = strictRecord(mode, v.durabilityRecord ?? null, from, p.epoch);
    const waiting = [agentSays(old)];
    if (strict) {
      // The old primary's server is not seen answering: no fence is coming from it, and a revoke is the proof.
      if (!revoke && old?.health !== 'up') return { kind: 'revoke', from, reason: `strict semi-sync: the replicas stop receiving from ${from} first, which proves it fenced` };
      if (revoke) {
        const r = strictProof(strict, known, v.members, op, v.now);
        if ('proof' in r) return { kind: 'record-fenced', from, proof: r.proof, reason: r.proof.detail };
        waiting.push(`strict semi-sync: ${r.missing}`);
      }
    } else {
      waiting.push(mode === 'strict' ? `strict semi-sync was not confirmed on ${from} before it failed` : `durability is ${mode}: a revoked ${from} could still acknowledge writes${mode === 'semi-sync' ? ' once semi-sync falls back' : ''}`);
    }
    return { kind: 'fence-old', from, reason: `${from} must be proven fenced before anyone is promoted`, waiting: `cannot prove ${from} fenced: ${waiting.join('; ')}`, advice: operatorAdvice(from, v.fencingCommand ?? false, mode) };
  }

  const answering = [...v.members.values()].filter((m) => m.node !== from && m.health === 'up' && m.server !== null);
  if (!revoke) {
    // The replicas still receiving from the fenced primary first take its last transactions (bounded).
    const lacking = catchingUp(op.proof.finalGtid, answering, p);
    if (lacking.length > 0 && v.now - op.proof.at < v.timings.revokeWaitMs) {
      return { kind: 'await', reason: `waiting for ${lacking.join(', ')} to receive ${from}'s last transactions (${op.proof.finalGtid})` };
    }
    return { kind: 'revoke', from, reason: lacking.length > 0 ? `${lacking.join(', ')} did not receive ${from}'s last transactions within ${v.timings.revokeWaitMs} ms` : `${from} is fenced (${op.proof.kind})` };
  }

  const revoked = answering.filter((m) => hasRevoked(m, op));
  const waiting = answering.filter((m) => !hasRevoked(m, op)).map((m) => m.node);
  if (waiting.length > 0 && v.now - (revoke.startedAt) < v.timings.revokeWaitMs) {
    return { kind: 'await', reason: `waiting for ${waiting.join(', ')} to stop receiving from ${from}` };
  }
  const fencedBy = `${op.proof.kind}: ${op.proof.detail}`;

  const answered = new Set(revoked.map((m) => m.node));
  // A node in maintenance is not waited for: the operator took it out (its answer still counts when it gives one).
  const unanswered = known.filter((n) => !answered.has(n) && !isInMaintenance(v.config, n));
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
  // A semi-sync replica without an agent is invisible, yet may hold the only copy of an acknowledged write.
  const acking = op.durability && op.durability.node === from && op.durability.state === 'active' ? op.durability.clients : 0;
  if (acking > known.length && !(op.request?.force ?? false)) {
    return { kind: 'failover-abort', reason: `${from} had ${acking} semi-sync replicas connected, but only ${known.length} replica${known.length === 1 ? ' is' : 's are'} known to the cluster (${known.join(', ') || 'none'}); one without an agent may hold acknowledged writes (--force overrides)`, verdicts: [] };
  }
  const ownRequired = requiredPosition(op, flavor);
  if (typeof ownRequired === 'string') return { kind: 'failover-abort', reason: ownRequired, verdicts: [] };
  // Replicas down since before the old primary's last answer cannot hold more than it had: the candidate must have that instead.
  const bound = flavor ? boundedSilent(op, from, unanswered, v.members, flavor) : null;
  const silent = bound ? [] : unanswered;
  const required = bound ? mergeRequired(ownRequired, bound) : ownRequired;
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
  // The fenced old primary's final position may hold writes it acknowledged (asynchronously, or after
  // semi-sync fell back) that no replica received: the candidate then takes them from it.
  const final = finalFromOld(op.proof.finalGtid, choice.catchUpFrom ?? choice.node, v.members, flavor);
  if (final !== null) {
    return {
      kind: 'promote',
      node: choice.node,
      catchUpFrom: null,
      catchUpPosition: { node: from, host: p.host, port: p.port, gtid: final },
      fencedBy,
      reason: `${choice.reason}; it first takes ${from}'s last transactions (${final}) from ${from}, fenced but readable`,
      verdicts: choice.verdicts,
    };
  }
  return { kind: 'promote', node: choice.node, catchUpFrom: choice.catchUpFrom, fencedBy, reason: choice.reason, verdicts: choice.verdicts };
}

/** The old primary's final position, when the node the candidate would end up equal to has not received all of it; else null. */
function finalFromOld(finalGtid: string | null, node: string, members: ReadonlyMap<string, MemberState>, flavor: Flavor | undefined): string | null {
  if (finalGtid === null || finalGtid === '' || !flavor) return null;
  const has = members.get(node);
  const received = has ? positionOf(has, 'received') : null;
  try {
    return received !== null && gtidContains(received, parseGtid(flavor, finalGtid)) ? null : finalGtid;
  } catch (err) {
    if (err instanceof GtidParseError) return null;
    throw err;
  }
}

/** The replicas still receiving from `p` that have not received `finalGtid` yet. */
/**
 * A proof after which no replica must first receive the old primary's last transactions (none is
 * known, or every replica still pointed at it has them) is recorded with the revoke in one write:
 * one etcd round trip less in every failover.
 */
function revokeAtOnce(v: ClusterView, p: Primary, op: OpRecord, d: Decision & { kind: 'record-fenced' }): Decision {
  if (op.steps.some((s) => s.name === 'revoke')) return d;
  const answering = [...v.members.values()].filter((m) => m.node !== d.from && m.health === 'up' && m.server !== null);
  if (catchingUp(d.proof.finalGtid, answering, p).length > 0) return d;
  return { ...d, revoke: `${d.from} is fenced (${d.proof.kind})` };
}

function catchingUp(finalGtid: string | null, answering: readonly MemberState[], p: Primary): string[] {
  if (finalGtid === null || finalGtid === '') return [];
  // Not only those receiving now: one reconnecting to the old primary (after a partition healed, say) gets there too.
  return answering
    .filter((m) => m.server?.replication !== null && m.server?.replication?.ioState !== 'stopped' && isPointedAt(m, p))
    .filter((m) => {
      const has = positionOf(m, 'received');
      try {
        return has === null || !gtidContains(has, parseGtid(m.server!.flavor, finalGtid));
      } catch {
        return false; // a position that cannot be read is not waited for
      }
    })
    .map((m) => m.node);
}

/** The oldest operator request to fail over without a fencing proof, if any. */
function unfencedRequest(v: ClusterView): [string, OperatorRequest] | null {
  const found = [...v.requests.entries()].filter(([, r]) => r.kind === 'failover' && r.unfenced).sort(([a], [b]) => a.localeCompare(b))[0];
  return found ?? null;
}

/** The primary's semi-sync state, recorded when it changes: a later failover's record says what it was. */
function recordDurability(v: ClusterView, p: Primary): Decision | null {
  const record = nextDurability(v.members.get(p.node), p, v.durabilityMode ?? 'semi-sync', v.durabilityRecord ?? null, v.now);
  if (record === null) return null;
  return { kind: 'record-durability', record, reason: `${p.node}'s semi-sync is ${record.state}${record.strict ? ' (strict)' : ''} under durability ${record.mode}` };
}

/**
 * What the replacement of a candidate that failed before it was ready must contain: everything it
 * had received when it was chosen (the primary key's `gtid`), what it received since (a stall), and
 * the position of the node it was catching up from. Any of it may be the only copy of acknowledged
 * writes. Null for a ready primary, whose replicas' received sets are compared as usual.
 */
function candidateHolds(v: ClusterView, p: Primary, stalled: string | undefined): string | null {
  if (p.state !== 'promoting') return stalled ?? null;
  const op = v.currentOp?.epoch === p.epoch ? v.currentOp : null;
  const parts = [p.gtid, stalled ?? '', op?.catchUpFrom?.gtid ?? ''].filter((g) => g !== '');
  if (parts.length === 0) return null;
  const flavor = [...v.members.values()].find((m) => m.server)?.server?.flavor;
  if (!flavor) return parts.join(',');
  try {
    return formatGtid(parts.map((g) => parseGtid(flavor, g)).reduce((a, b) => mergeGtid(a, b)));
  } catch (err) {
    if (!(err instanceof GtidParseError)) throw err;
    return parts[0]!; // requiredPosition() reports what cannot be read
  }
}

/**
 * The rule that keeps a failover from being blocked by replicas that cannot matter. A replica whose
 * server has been down since revision r (its agent's first `down` write) received nothing after
 * that. If the old primary's last answered probe began after the agent had read revision s ≥ r,
 * everything the replica ever received from it is in what the old primary had then. So when every
 * replica that did not answer is bounded that way, a candidate that contains the old primary's
 * position at its last answer loses nothing any of them could have acknowledged. Null unless every
 * one of `unanswered` is bounded (a replica whose key is gone counts only if it was seen down when
 * the failover began).
 */
export function boundedSilent(op: OpRecord, from: string, unanswered: readonly string[], members: ReadonlyMap<string, MemberState>, flavor: Flavor): { nodes: string[]; position: GtidPosition } | null {
  if (unanswered.length === 0) return null;
  const last = op.members[from]?.lastAnswer;
  if (!last) return null;
  let seen: bigint;
  try {
    seen = BigInt(last.seenRevision);
  } catch {
    return null;
  }
  for (const n of unanswered) {
    const now = members.get(n);
    const then = op.members[n];
    const down = now ? (now.health === 'down' ? now.downSinceRevision : null) : then?.health === 'down' ? (then.downSinceRevision ?? null) : null;
    if (down === null) return null;
    try {
      if (BigInt(down) > seen) return null;
    } catch {
      return null;
    }
  }
  try {
    return { nodes: [...unanswered], position: parseGtid(flavor, last.executed) };
  } catch (err) {
    if (err instanceof GtidParseError) return null;
    throw err;
  }
}

function mergeRequired(own: { node: string; position: GtidPosition } | null, bound: { nodes: string[]; position: GtidPosition }): { node: string; position: GtidPosition } {
  const label = `the old primary (when ${bound.nodes.join(', ')} ha${bound.nodes.length > 1 ? 've' : 's'} been down since before its last answer)`;
  return own ? { node: `${own.node} and ${label}`, position: mergeGtid(own.position, bound.position) } : { node: label, position: bound.position };
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

/**
 * Why `node` could not be promoted now, before a manual failover fences a healthy primary for it;
 * null when it could. The full rules run again at the choice, on the revoked replicas.
 */
export function whyNotPromotable(v: ClusterView, node: string): string | null {
  const m = v.members.get(node);
  if (!m) return 'it has no agent';
  const s = m.server;
  if (m.health !== 'up' || !s) return `its server is ${m.health}`;
  if (m.role === 'diverged' || m.errant !== null) return `it has diverged (errant GTIDs ${m.errant ?? 'found by its agent'})`;
  if (m.noPromote || v.config.nodes[node]?.noPromote === true) return 'it is marked no-promote';
  const r = s.replication;
  if (r && !r.sqlRunning) return `its replication SQL thread is stopped${r.lastSqlError ? `: ${r.lastSqlError}` : ''}`;
  if (r && r.lastSqlError !== '') return `its applier failed: ${r.lastSqlError}`;
  const limit = v.config.maxLagMs ?? v.timings.maxLagMs;
  if (s.lagMs !== null && s.lagMs > limit) return `it lags ${s.lagMs} ms, over the ${limit} ms limit`;
  return null;
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
    if (r.unfenced) return { kind: 'request-refused', id, request: r, reason: `no failover waits for a fencing proof; ${p.node} is the ready primary (a failover without --unfenced fences it first)` };
    if (r.to === null) return { kind: 'request-refused', id, request: r, reason: 'a manual failover needs --to NODE' };
    // Refused before anything is touched: no fence, no killed sessions, for a node that could not be promoted anyway.
    // Maintenance is the operator's own word, which --force does not override.
    if (isInMaintenance(v.config, r.to)) return { kind: 'request-refused', id, request: r, reason: `${r.to} cannot be promoted: it is in maintenance (primacy maintenance ${r.to} off first)` };
    const unfit = r.force ? null : whyNotPromotable(v, r.to);
    if (unfit !== null) return { kind: 'request-refused', id, request: r, reason: `${r.to} cannot be promoted: ${unfit} (--force overrides)` };
    // The trigger names the request; the reason does not repeat it.
    return { kind: 'failover-start', from: p.node, reason: `the operator asked to fail over to ${r.to}${r.force ? ' (forced)' : ''}`, request: ref, mustContain: null };
  }
  if (r.kind === 'rejoin') {
    if (r.to === null) return { kind: 'request-refused', id, request: r, reason: 'a rejoin needs the node to rejoin' };
    if (v.rejoins?.get(r.to)?.outcome === 'running') return { kind: 'request-refused', id, request: r, reason: `a rejoin of ${r.to} is already under way` };
    const choice = chooseRejoin(v, p, r.to, r.method);
    if (!choice.ok) return { kind: 'request-refused', id, request: r, reason: choice.reason };
    return { kind: 'rejoin-start', node: r.to, method: choice.method, allowed: choice.allowed, source: choice.source, request: ref };
  }
  return { kind: 'request-refused', id, request: r, reason: `${r.kind} requests are not supported yet` };
}
