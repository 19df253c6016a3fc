/**
 * Planned switchover, decided purely. The old primary is demoted (read-only, drained, sessions
 * killed) while its replicas still receive from it; the candidate is promoted only once it has
 * executed everything the demoted primary has, so nothing is lost. If it cannot catch up in time the
 * switchover aborts and the old primary, which has everything, becomes writable again.
 */
import { gtidContains, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { chooseCandidate, type Choice } from './failover.js';
import type { ClusterView, Decision } from './model.js';
import { isPointedAt, positionOf } from './position.js';

/** The candidate for a switchover away from `p`: the rules of failover, and it must replicate from `p`. */
export function chooseSwitchoverCandidate(v: ClusterView, p: Primary, to: string | null, force: boolean): Choice {
  const replicas = [...v.members.values()].filter((m) => m.node !== p.node && m.health === 'up' && m.server !== null);
  const choice = chooseCandidate({ answering: replicas, silent: [], oldPrimaryGtid: null, config: v.config, maxLagMs: v.timings.maxLagMs, force, preferred: to });
  if (!choice.ok) return choice;
  const m = v.members.get(choice.node)!;
  if (!receivesFrom(m, p)) return { ok: false, reason: `${m.node} does not replicate from ${p.node}, so it cannot catch up with it`, verdicts: choice.verdicts };
  // Refused before the writes are held: a target this far behind (its applier blocked, say) cannot catch up within the switchover's limit.
  const lag = m.server?.lagMs ?? null;
  if (!force && lag !== null && lag > v.timings.switchoverCatchUpMs) {
    return { ok: false, reason: `${m.node} lags ${lag} ms, more than the ${v.timings.switchoverCatchUpMs} ms a switchover waits for it to catch up`, verdicts: choice.verdicts };
  }
  return choice;
}

function receivesFrom(m: MemberState, p: Primary): boolean {
  return isPointedAt(m, p) && m.server?.replication?.ioState === 'running' && m.server.replication.sqlRunning;
}

export function continueSwitchover(v: ClusterView, p: Primary, op: OpRecord): Decision {
  const from = op.from ?? p.node;
  const to = op.to;
  if (p.node !== from || p.epoch + 1 !== op.epoch || p.state !== 'switching' || to === null) {
    return { kind: 'switchover-abort', restore: false, reason: `the primary changed to ${p.node} (epoch ${p.epoch}, ${p.state}) during the switchover` };
  }
  if (!op.steps.some((s) => s.name === 'clients paused')) {
    const { paused, silent } = clientsPaused(v, p);
    if (silent.length === 0 || v.now - op.startedAt > v.timings.clientPauseWaitMs) {
      const reason = silent.length === 0
        ? `every registered client holds its writes (${paused.join(', ') || 'none registered'})`
        : `demoting without ${silent.join(', ')}: no pause reported within ${v.timings.clientPauseWaitMs} ms; paused: ${paused.join(', ') || 'none'}`;
      return { kind: 'record-clients-paused', paused, silent, reason };
    }
    return { kind: 'await', reason: `waiting for ${silent.join(', ')} to hold their writes` };
  }
  const demoted = op.steps.find((s) => s.name === 'demoted');
  const limit = v.timings.switchoverCatchUpMs;
  if (!demoted) {
    const old = v.members.get(from);
    if (old?.fenced && old.server?.readOnly) {
      const gtid = old.server.gtid.executed;
      // Often the candidate has everything already: promote in the same step.
      if (caughtUp(v, to, gtid)) return { kind: 'switchover-promote', node: to, gtid, reason: `${to} has executed everything ${from} has (${gtid})` };
      return { kind: 'record-demoted', node: from, gtid, reason: `${from} is read-only and drained at ${gtid}` };
    }
    if (v.now - op.startedAt > limit) return { kind: 'switchover-abort', restore: true, reason: `${from} did not report itself demoted within ${limit} ms` };
    return { kind: 'await', reason: `waiting for ${from} to turn read-only and drain` };
  }
  const target = demoted.detail;
  if (caughtUp(v, to, target)) {
    return { kind: 'switchover-promote', node: to, gtid: target, reason: `${to} has executed everything ${from} has (${target})` };
  }
  if (v.now - (demoted.endedAt ?? demoted.startedAt) > limit) {
    return { kind: 'switchover-abort', restore: true, reason: `${to} did not catch up with ${from} (${target}) within ${limit} ms` };
  }
  return { kind: 'await', reason: `waiting for ${to} to apply everything up to ${target}` };
}

/** The candidate has executed everything in `gtid` (the demoted primary's final position). */
function caughtUp(v: ClusterView, to: string, gtid: string): boolean {
  const c = v.members.get(to);
  const mine = c ? positionOf(c) : null;
  const theirs = c?.server ? positionOf({ ...c, server: { ...c.server, gtid: { ...c.server.gtid, executed: gtid } } }) : null;
  return mine !== null && theirs !== null && gtidContains(mine, theirs);
}

/** Registered clients that reported their writes held for this switchover, and those that did not. */
export function clientsPaused(v: ClusterView, p: Primary): { paused: string[]; silent: string[] } {
  const regs = [...v.clients.entries()].sort(([a], [b]) => a.localeCompare(b));
  const held = (r: { writesPaused: boolean; epoch: number }) => r.writesPaused && r.epoch >= p.epoch;
  return { paused: regs.filter(([, r]) => held(r)).map(([id]) => id), silent: regs.filter(([, r]) => !held(r)).map(([id]) => id) };
}
