/**
 * Invariant 4, decided purely: what proves that a failed primary can no longer acknowledge a write,
 * and, while nothing does, what the failover waits for and what an operator can do about it. The
 * proofs the coordinator gets by acting (a fence over SQL, a fencing command) are found by its shell;
 * the ones here come from what etcd shows: the old primary's own agent, and strict semi-sync.
 */
import { STRICT_SEMI_SYNC_TIMEOUT_MS, type Durability, type DurabilityRecord, type FenceProof, type MemberState, type OpRecord, type Primary } from '@primacy/common';

/** The member stopped receiving from the old primary for this attempt of the failover (an earlier attempt's revoke may have been undone). */
export function hasRevoked(m: MemberState, op: OpRecord): boolean {
  return m.revokedEpoch === op.epoch && (m.revokedAttempt === null || m.revokedAttempt === op.startedAt);
}

/** The old primary's agent fenced its node for this failover and read it back, or knows its server is gone. */
export function agentProof(old: MemberState | undefined, op: OpRecord, now: number): FenceProof | null {
  if (!old) return null;
  if (old.fenced && old.fencedFor === op.epoch) {
    return { kind: 'agent-fenced', detail: `${old.node}'s agent killed its client sessions, set read_only and read it back, for epoch ${op.epoch}`, at: now, finalGtid: old.server?.readOnly ? old.server.gtid.executed : null };
  }
  if (old.serverGone !== null && old.health === 'down') {
    return { kind: 'server-gone', detail: `${old.node}'s agent: ${old.serverGone}`, at: now, finalGtid: null };
  }
  return null;
}

/**
 * The semi-sync state a primary's member key shows, as the durability record keeps it. Strict: on,
 * waiting for acknowledgements now, a timeout that never ends, and waiting even with no replica.
 */
export function observedDurability(m: MemberState, p: Primary, mode: Durability): Pick<DurabilityRecord, 'epoch' | 'node' | 'mode' | 'state' | 'strict' | 'clients'> | null {
  const ss = m.server?.semiSync;
  if (m.health !== 'up' || !ss) return null;
  const state = !ss.sourceEnabled ? 'off' : ss.sourceActive ? 'active' : 'fallback';
  const strict = mode === 'strict' && state === 'active' && (ss.sourceTimeoutMs ?? 0) >= STRICT_SEMI_SYNC_TIMEOUT_MS && ss.sourceWaitNoReplica === true;
  return { epoch: p.epoch, node: p.node, mode, state, strict, clients: ss.sourceClients };
}

/** The new durability record when the primary's observed state differs from the recorded one; null when unchanged or unknown. */
export function nextDurability(m: MemberState | undefined, p: Primary, mode: Durability, prev: DurabilityRecord | null, now: number): DurabilityRecord | null {
  const seen = m ? observedDurability(m, p, mode) : null;
  if (seen === null) return null;
  const same = prev !== null && prev.epoch === seen.epoch && prev.node === seen.node;
  if (same && prev.mode === seen.mode && prev.state === seen.state && prev.strict === seen.strict && prev.clients === seen.clients) return null;
  return { ...seen, since: same && prev.state === seen.state ? prev.since : now };
}

/** Whether strict semi-sync can prove the old primary fenced: the cluster is strict, and the old primary was seen strict at its epoch. */
export function strictRecord(mode: Durability, rec: DurabilityRecord | null, from: string, epoch: number): DurabilityRecord | null {
  return mode === 'strict' && rec !== null && rec.node === from && rec.epoch === epoch && rec.strict ? rec : null;
}

/**
 * Strict semi-sync's proof: every replica that could acknowledge has stopped receiving from the old
 * primary, which has no asynchronous fallback, so none of its commits can complete. Every replica
 * known to the cluster must have answered and revoked, at least as many as the old primary reported
 * semi-sync replicas (one without an agent still counts there). Null, with what is missing, otherwise.
 */
export function strictProof(rec: DurabilityRecord, known: readonly string[], members: ReadonlyMap<string, MemberState>, op: OpRecord, now: number): { proof: FenceProof } | { missing: string } {
  const notRevoked = known.filter((n) => {
    const m = members.get(n);
    return !m || m.health !== 'up' || !hasRevoked(m, op);
  });
  if (notRevoked.length > 0) return { missing: `${notRevoked.join(', ')} ha${notRevoked.length > 1 ? 've' : 's'} not stopped receiving from ${rec.node}` };
  if (known.length < rec.clients) return { missing: `${rec.node} reported ${rec.clients} semi-sync replicas but only ${known.length} are known; one without an agent may still acknowledge` };
  return {
    proof: {
      kind: 'strict-semi-sync',
      detail:
        `${rec.node} ran strict semi-sync (no fallback to asynchronous, seen since ${new Date(rec.since).toISOString()}); ` +
        `${known.join(', ')} stopped receiving from it, so none of its commits can complete`,
      at: now,
      finalGtid: null,
    },
  };
}

/** What the old primary's agent says, for the waiting text. */
export function agentSays(old: MemberState | undefined): string {
  if (!old) return 'its agent is gone (its lease expired), and an expired lease proves nothing';
  if (old.health === 'up') return old.fenced ? 'its agent fenced it before this failover, not for it' : 'its agent has not fenced it yet';
  return `its agent sees the server not answering (${old.error ?? old.health}), which is not down`;
}

/** The advice that ends every "cannot prove" text: how an operator gets a failover that waits going. */
export function operatorAdvice(from: string, fencingCommand: boolean, mode: Durability): string {
  const ways = [
    fencingCommand ? null : 'configure fencing.command (power, cloud API or firewall)',
    mode === 'strict' ? null : 'run strict semi-sync (primacy durability strict) so that a revoke is a proof',
    `once sure ${from} takes no writes (powered off, cut off): primacy failover --to NODE --unfenced`,
  ].filter((w): w is string => w !== null);
  return `the failover waits and keeps trying; an operator can ${ways.join('; or ')}`;
}
