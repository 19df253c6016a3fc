/**
 * The whole cluster was down (issue 11): every member key went with its agent's lease, so the
 * members' positions before the outage are known only from the coordinator's last-seen record. When
 * the nodes come back one by one, the first one back must not be promoted unless it holds everything:
 * the last primary takes over again by itself (the primary key still names it), or a node whose
 * position contains everyone's last published one is promoted. `restartUnsafe` promotes the first
 * node back anyway, and the failover record says writes may have been lost.
 */
import { GtidParseError, formatGtid, gtidContains, mergeGtid, parseGtid, type GtidPosition, type LastSeenRecord, type Primary } from '@primacy/common';
import type { ClusterView, Decision } from './model.js';
import { positionOf } from './position.js';

/** The last-seen record is rewritten at most this often while positions move. */
export const LAST_SEEN_EVERY_MS = 2000;

/**
 * The nodes of the last-seen record that have no member key now, when every member key now was
 * created after the record was last written: no coordinator saw any of today's agents before, so
 * the whole cluster went down in between. Null otherwise.
 */
export function wholeClusterRestart(v: Pick<ClusterView, 'members' | 'memberCreated' | 'lastSeen'>): { missing: string[] } | null {
  const ls = v.lastSeen;
  const created = v.memberCreated;
  // No member key at all counts too: a coordinator back first may decide before its own key is published.
  if (!ls || !created) return null;
  try {
    const written = BigInt(ls.modRevision);
    for (const n of v.members.keys()) if (BigInt(created.get(n) ?? '0') <= written) return null;
  } catch {
    return null;
  }
  return { missing: Object.keys(ls.record.nodes).filter((n) => !v.members.has(n)).sort() };
}

/** Everyone's last published executed position, merged; null when the record holds none that can be read. */
function everyonesPosition(record: LastSeenRecord): { position: GtidPosition; text: string } | null {
  let merged: GtidPosition | null = null;
  for (const n of Object.values(record.nodes)) {
    try {
      const p = parseGtid(n.flavor, n.executed);
      merged = merged === null ? p : mergeGtid(merged, p);
    } catch (err) {
      if (!(err instanceof GtidParseError)) throw err;
    }
  }
  return merged === null ? null : { position: merged, text: formatGtid(merged) };
}

export interface RestartRule {
  /** Why no failover may start now; null when it may. */
  readonly refusal: string | null;
  /** What the new primary must contain: everyone's last published position. */
  readonly mustContain: string | null;
  /** Said in the failover record when `restartUnsafe` let it go on without that proof. */
  readonly unsafe: string | null;
}

/** The whole-cluster-down rule for a failover away from `p`, whose agent is gone; null when the cluster was not all down. */
export function restartRule(v: Pick<ClusterView, 'members' | 'memberCreated' | 'lastSeen' | 'config'>, p: Primary): RestartRule | null {
  const restart = wholeClusterRestart(v);
  if (restart === null || v.members.has(p.node)) return null;
  const everyone = everyonesPosition(v.lastSeen!.record);
  if (everyone === null) return null;
  const back = [...v.members.values()].filter((m) => m.health === 'up' && m.server !== null);
  const holders = back.filter((m) => {
    const pos = positionOf(m);
    return pos !== null && gtidContains(pos, everyone.position);
  });
  const missing = restart.missing.length > 0 ? restart.missing.join(', ') : 'none';
  if (v.config.restartUnsafe === true) {
    return holders.length > 0
      ? { refusal: null, mustContain: everyone.text, unsafe: null }
      : { refusal: null, mustContain: null, unsafe: `restartUnsafe: the whole cluster was down and ${missing} ${restart.missing.length === 1 ? 'is' : 'are'} not back; no node back holds everyone's last published position (${everyone.text}), so writes may have been lost` };
  }
  if (holders.length > 0) return { refusal: null, mustContain: everyone.text, unsafe: null };
  const have = back.map((m) => `${m.node} has ${m.server?.gtid.executed || 'nothing'}`).join(', ') || 'no node answers yet';
  return {
    refusal: `the whole cluster was down (${missing} not back): waiting for ${p.node} (the last primary) or for a node whose position contains everyone's last published one (${everyone.text}); ${have}. restartUnsafe in the config promotes the first node back, with writes possibly lost`,
    mustContain: null,
    unsafe: null,
  };
}

/**
 * Each node's last published positions, merged into the record: nodes without a member key keep
 * their entry. Written when a node is new to it, or when positions moved and it is LAST_SEEN_EVERY_MS old.
 */
export function lastSeenUpdate(v: Pick<ClusterView, 'members' | 'lastSeen' | 'now'>): Decision | null {
  // A view that does not carry the record (undefined, not null) keeps none.
  if (v.lastSeen === undefined) return null;
  const old = v.lastSeen?.record ?? null;
  const nodes: LastSeenRecord['nodes'] = { ...(old?.nodes ?? {}) };
  let fresh = false;
  let moved = false;
  for (const m of v.members.values()) {
    const s = m.server;
    if (m.health !== 'up' || !s) continue;
    const before = nodes[m.node];
    if (!before) fresh = true;
    else if (before.executed !== s.gtid.executed || before.received !== s.gtid.received || before.flavor !== s.flavor) moved = true;
    else continue;
    nodes[m.node] = { flavor: s.flavor, executed: s.gtid.executed, received: s.gtid.received, at: v.now };
  }
  if (!fresh && !(moved && (old === null || v.now - old.at >= LAST_SEEN_EVERY_MS))) return null;
  return { kind: 'record-last-seen', record: { at: v.now, nodes } };
}
