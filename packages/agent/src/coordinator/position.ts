/**
 * Facts about members that every decision reads: GTID positions, who holds a position, who replicates
 * from whom, a finished promotion. Pure, and below failover.ts, switchover.ts and decide.ts.
 */
import { GtidParseError, gtidContains, parseGtid, type GtidPosition, type MemberState } from '@primacy/common';

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

/** The members other than `node` that have received everything in `position`. */
export function holdersOf(position: string, members: ReadonlyMap<string, MemberState>, node: string): string[] {
  return [...members.values()]
    .filter((m) => {
      if (m.node === node || m.health !== 'up' || !m.server) return false;
      const has = positionOf(m, 'received');
      try {
        return has !== null && gtidContains(has, parseGtid(m.server.flavor, position));
      } catch {
        return false;
      }
    })
    .map((m) => m.node);
}

/** Whether `m` replicates from `p`. */
export function isPointedAt(m: MemberState, p: { host: string; port: number }): boolean {
  const r = m.server?.replication;
  return r !== null && r !== undefined && r.sourceHost === p.host && r.sourcePort === p.port;
}

/** The candidate's agent reports the promotion finished: writable, replication cleared, heartbeat of this epoch. */
export function promotionDone(m: MemberState, epoch: number): boolean {
  const s = m.server;
  return m.health === 'up' && s !== null && !s.readOnly && s.replication === null && s.heartbeatEpoch === epoch;
}
