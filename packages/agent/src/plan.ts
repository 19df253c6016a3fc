/**
 * What an agent does to its own node, decided purely from what it observes and what etcd says.
 * The agent re-reads etcd linearizably before carrying out anything but `none` (invariant 6).
 */
import { gtidContains, gtidMissing, mariaNotReceived, mariaStateMissing, mergeGtid, parseGtid, STRICT_SEMI_SYNC_TIMEOUT_MS, withoutOrigin, type ClusterConfig, type Durability, type MemberState, type NodeState, type OpRecord, type Primary, type SalvageManifest } from '@primacy/common';
import { salvageState } from './rejoin/positions.js';

export type NodeAction =
  | { readonly kind: 'none' }
  /** `forEpoch`: the failover this fence is the proof for, when one runs away from this node. */
  | { readonly kind: 'fence'; readonly reason: string; readonly forEpoch?: number }
  | { readonly kind: 'revoke'; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'demote'; readonly reason: string }
  | { readonly kind: 'promote'; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'replicate'; readonly host: string; readonly port: number; readonly reason: string }
  | { readonly kind: 'diverged'; readonly errant: string; readonly reason: string }
  /** Copy the diverged node's extra transactions off it before anything changes it (issue 11). */
  | { readonly kind: 'salvage'; readonly reason: string }
  /** Carry out the rejoin the coordinator recorded for this node (`record`: its rejoin/<node> record). */
  | { readonly kind: 'rejoin'; readonly record: OpRecord; readonly reason: string }
  | { readonly kind: 'semi-sync'; readonly source: boolean; readonly timeoutMs: number; readonly replica: boolean; readonly reason: string };

export interface NodePlanInput {
  readonly self: string;
  /** The agent holds a lease whose own deadline has not passed. */
  readonly leaseLive: boolean;
  /** The node's state from the last probe; null when the server is not `up`. */
  readonly server: NodeState | null;
  /**
   * The server does not answer, but was last seen writable: it may still take writes, so whenever it
   * must be fenced the fence is tried again and again, until the server reads it back.
   */
  readonly mayBeWritable?: boolean;
  /** The failover (by epoch) for which this agent fenced its node and read it back; null when none. */
  readonly fencedFor?: number | null;
  /** What the cluster promises about acknowledged writes, and the semi-sync timeout outside strict mode. */
  readonly durability?: { readonly mode: Durability; readonly timeoutMs: number };
  readonly primary: Primary | null;
  /** The primary's member key, for its GTID position. */
  readonly primaryMember: MemberState | null;
  /** The agent already found this node diverged from the current primary. */
  readonly diverged: boolean;
  /** A switchover away from this node may demote it now: its registered clients hold their writes, or the wait ended. */
  readonly demoteAllowed: boolean;
  /** A failover away from the current primary is under way (its op record is running). */
  /** `startedAt`: which attempt (the op record's), so that each attempt's revoke is its own. */
  readonly failover: { readonly epoch: number; readonly from: string; readonly revoke: boolean; readonly startedAt?: number } | null;
  /** A switchover under way: its target, which the other replicas follow before it is promoted. */
  readonly switchoverTo?: { readonly node: string; readonly host: string; readonly port: number } | null;
  /** What a diverged node's recovery goes by; absent, a diverged node is only left alone. */
  readonly recovery?: RecoveryInput;
}

export interface RecoveryInput {
  /** This node's salvage manifest in etcd, if any. */
  readonly salvage: SalvageManifest | null;
  /** This node's last rejoin record in etcd, if any. */
  readonly rejoin: OpRecord | null;
  /** A salvage or rejoin runs now (in the background of the node loop). */
  readonly busy: boolean;
  /** The last salvage failed and is not due again yet. */
  readonly salvageHeld: boolean;
  /** The `startedAt` of the rejoin record this agent already carried out (done or failed); null when none. */
  readonly carriedOut: number | null;
}

const NONE: NodeAction = { kind: 'none' };

export function planNodeAction(i: NodePlanInput): NodeAction {
  const s = i.server;
  if (s === null) return i.mayBeWritable === true ? (mustFence(i) ?? NONE) : NONE;
  const writable = !s.readOnly;
  const fence = mustFence(i);
  // A failover away from this node takes its fence as the proof, so even a read-only node is fenced
  // for it (its sessions killed, read_only read back); any other fence is only for a writable node.
  if (fence !== null && (writable || fence.forEpoch !== undefined)) return fence;
  if (!i.leaseLive || i.primary === null) return NONE;
  const p = i.primary;
  const f = i.failover;
  if (f && f.from === i.self) return NONE;

  if (p.node === i.self) {
    if (p.state === 'switching') {
      return writable && i.demoteAllowed ? { kind: 'demote', reason: `a switchover away from this node (epoch ${p.epoch}) is under way` } : NONE;
    }
    const promoted = writable && s.heartbeatEpoch === p.epoch && s.replication === null;
    if (!promoted) return { kind: 'promote', epoch: p.epoch, reason: `etcd names this node primary of epoch ${p.epoch} (${p.state})` };
    return p.state === 'ready' ? semiSyncDrift(s, i, true) : NONE;
  }

  const r = s.replication;
  // While the primary is switching, the other replicas already follow the target (it has, or will
  // have, everything the old primary has), so that they acknowledge its first semi-sync commit at once.
  const to = i.switchoverTo;
  const source = p.state === 'switching' && to && to.node !== i.self ? to : { node: p.node, host: p.host, port: p.port };
  const pointed = r !== null && r.sourceHost === source.host && r.sourcePort === source.port;
  if (f) {
    // Until the old primary is fenced, keep receiving: its last transactions must reach the replicas.
    return f.revoke && pointed && r.ioState !== 'stopped'
      ? { kind: 'revoke', epoch: f.epoch, reason: `failover of ${f.from} (epoch ${f.epoch}): stop receiving from it` }
      : NONE;
  }
  if (i.diverged) return recoveryAction(i, s, p);
  if (pointed && r.ioState !== 'stopped') return p.state === 'ready' ? semiSyncDrift(s, i, false) : NONE;
  if (pointed && r.lastSqlError !== '') return NONE; // a broken applier needs an operator, not a restart loop
  // Checked before every (re)start, so a node that diverged never replicates silently.
  const errant = errantAgainst(s, i.primaryMember);
  if (errant) return { kind: 'diverged', errant, reason: `this node has transactions ${p.node} lacks: ${errant}` };
  return {
    kind: 'replicate',
    host: source.host,
    port: source.port,
    reason: pointed
      ? `replication from ${source.node} is stopped`
      : source.node === p.node
        ? `${p.node} is the primary of epoch ${p.epoch}`
        : `${source.node} is the target of a switchover away from ${p.node} (epoch ${p.epoch})`,
  };
}

/**
 * A diverged node (already fenced: it is not the primary) is salvaged first, whenever its binlog is
 * not the one its manifest describes; then it carries out a rejoin only when the coordinator recorded
 * one for it, for this epoch and this salvage, while the primary is ready and nothing else runs.
 */
export function recoveryAction(i: NodePlanInput, s: NodeState, p: Primary): NodeAction {
  const r = i.recovery;
  if (!r || r.busy) return NONE;
  const m = r.salvage;
  const state = salvageState(s);
  const current = m !== null && state !== undefined && m.nodeState === state;
  if (!current) {
    if (r.salvageHeld || !s.readOnly) return NONE;
    // A rejoin this agent ended whose record still runs: the salvage after it names it once the record ends.
    if (r.rejoin?.outcome === 'running' && r.rejoin.startedAt === r.carriedOut) return NONE;
    return { kind: 'salvage', reason: m === null ? 'this node diverged and has no salvage yet' : `its binlog (${state ?? '?'}) moved past its salvage (${m.nodeState})` };
  }
  const op = r.rejoin;
  if (!op?.rejoin || op.kind !== 'rejoin' || op.outcome !== 'running' || op.rejoin.node !== i.self) return NONE;
  if (op.startedAt === r.carriedOut || op.rejoin.salvageAt !== m.at || op.epoch !== p.epoch || p.state !== 'ready') return NONE;
  return { kind: 'rejoin', record: op, reason: `the coordinator started a rejoin by ${op.rejoin.method}: ${op.rejoin.allowed}` };
}

/** The fence this node needs now, if any: the agent may not, or no longer, let it take writes. */
function mustFence(i: NodePlanInput): (NodeAction & { kind: 'fence' }) | null {
  if (!i.leaseLive) return { kind: 'fence', reason: 'the agent holds no live lease' };
  const p = i.primary;
  if (p === null) return { kind: 'fence', reason: 'etcd names no primary' };
  const f = i.failover;
  if (f && f.from === i.self) {
    return i.fencedFor === f.epoch ? null : { kind: 'fence', reason: `a failover away from this node (epoch ${f.epoch}) is under way`, forEpoch: f.epoch };
  }
  if (p.node !== i.self) return { kind: 'fence', reason: `${p.node} is the primary of epoch ${p.epoch}` };
  return null;
}

/** The cluster's durability: the etcd config's, else the agent's own `replication.semiSync`. */
export function durabilityOf(cluster: ClusterConfig | undefined, semiSync: boolean): Durability {
  return cluster?.durability ?? (semiSync ? 'semi-sync' : 'async');
}

/** The timeout a primary's semi-sync source must have: strict never falls back. */
export function sourceTimeoutFor(d: { readonly mode: Durability; readonly timeoutMs: number }): number {
  return d.mode === 'strict' ? STRICT_SEMI_SYNC_TIMEOUT_MS : d.timeoutMs;
}

/**
 * A settled node whose semi-sync settings differ from the cluster's durability: a primary's source
 * side (on, with the mode's timeout), a replica's replica side. Settings a driver cannot read (null)
 * are left alone.
 */
function semiSyncDrift(s: NodeState, i: NodePlanInput, isPrimary: boolean): NodeAction {
  const d = i.durability;
  if (!d) return NONE;
  const on = d.mode !== 'async';
  const timeoutMs = sourceTimeoutFor(d);
  const ss = s.semiSync;
  const drift = isPrimary
    ? ss.sourceEnabled !== on || (on && ss.sourceTimeoutMs !== null && ss.sourceTimeoutMs !== timeoutMs) || (d.mode === 'strict' && ss.sourceWaitNoReplica === false)
    : ss.replicaEnabled !== on || ss.sourceEnabled;
  if (!drift) return NONE;
  return {
    kind: 'semi-sync',
    source: isPrimary && on,
    timeoutMs,
    replica: !isPrimary && on,
    reason: `durability is ${d.mode}: semi-sync ${isPrimary ? `source ${on ? `on, timeout ${timeoutMs} ms` : 'off'}` : `replica ${on ? 'on' : 'off'}`}`,
  };
}

/**
 * What this node has executed that the primary lacks; null when unknown or none. "Lacks" counts
 * what the primary received too: a candidate still applying its relay log will have it. The
 * primary's own transactions never count: its published state is only older than this node's.
 */
export function errantAgainst(s: NodeState, primaryMember: MemberState | null): string | null {
  const ps = primaryMember?.server;
  if (!ps || ps.flavor !== s.flavor) return null;
  try {
    if (s.gtid.binlogState !== undefined && ps.gtid.binlogState !== undefined) {
      const missing = mariaNotReceived(mariaStateMissing(s.gtid.binlogState, ps.gtid.binlogState), ps.gtid.received);
      return withoutOrigin(s.flavor, missing, ps) || null;
    }
    const mine = parseGtid(s.flavor, s.gtid.executed);
    const theirs = mergeGtid(parseGtid(ps.flavor, ps.gtid.executed), parseGtid(ps.flavor, ps.gtid.received));
    if (gtidContains(theirs, mine)) return null;
    return withoutOrigin(s.flavor, gtidMissing(mine, theirs), ps) || null;
  } catch {
    return null; // a position that cannot be read proves nothing either way
  }
}

/** The failover (and its attempt) for which this node no longer receives from the old primary, once that holds. */
export function revokedFor(i: NodePlanInput): { epoch: number; attempt: number | null } | null {
  const f = i.failover;
  if (!f || !f.revoke || f.from === i.self || i.server === null) return null;
  return planNodeAction(i).kind === 'revoke' ? null : { epoch: f.epoch, attempt: f.startedAt ?? null };
}
