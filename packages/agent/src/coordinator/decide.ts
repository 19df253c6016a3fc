/**
 * The coordinator's decisions: a pure function from the cluster as etcd shows it, and the time, to
 * one decision. The shell around it reads a fresh snapshot, calls `decide`, and carries the decision
 * out with a write fenced by the election key.
 */
import { GtidParseError, gtidContains, mostAdvanced, parseGtid, type ClusterConfig, type GtidPosition, type MemberState, type Primary } from '@primacy/common';

export interface ClusterView {
  readonly now: number;
  readonly members: ReadonlyMap<string, MemberState>;
  readonly primary: Primary | null;
  readonly epoch: number;
  readonly config: ClusterConfig;
  /** The node named by the coordinator's own config for bootstrap, if any. */
  readonly bootstrapPrimary: string | null;
}

export type Decision =
  | { readonly kind: 'none' }
  | { readonly kind: 'bootstrap'; readonly node: string; readonly reason: string }
  | { readonly kind: 'bootstrap-refused'; readonly reason: string }
  | { readonly kind: 'mark-ready'; readonly node: string; readonly epoch: number; readonly reason: string };

const NONE: Decision = { kind: 'none' };

export function decide(v: ClusterView): Decision {
  if (v.primary === null) return decideBootstrap(v);
  const p = v.primary;
  if (p.state === 'promoting') {
    const m = v.members.get(p.node);
    if (m && promotionDone(m, p.epoch)) {
      return { kind: 'mark-ready', node: p.node, epoch: p.epoch, reason: `${p.node} is writable and writes heartbeats of epoch ${p.epoch}` };
    }
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
