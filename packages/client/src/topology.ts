/**
 * What a client believes about its cluster, from the `primary` and `members/` keys: pure functions,
 * so the ordering rules are table-tested without etcd.
 */
import type { MemberState, Primary } from '@primacy/common';

/** A replica that may serve reads. */
export interface Replica {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly lagMs: number;
  readonly serverId: number;
}

/** The primary as last accepted, with the revision that wrote it and the highest epoch ever seen. */
export interface PrimaryView {
  readonly primary: Primary | null;
  /** mod_revision of the value (or the deletion) behind `primary`; 0 before the first read. */
  readonly revision: number;
  readonly highestEpoch: number;
}

export const EMPTY_VIEW: PrimaryView = Object.freeze({ primary: null, revision: 0, highestEpoch: 0 });

export type PrimaryUpdate =
  | { readonly kind: 'changed'; readonly view: PrimaryView }
  | { readonly kind: 'same'; readonly view: PrimaryView }
  | { readonly kind: 'ignored'; readonly view: PrimaryView; readonly why: string };

/**
 * Applies one observed value of the primary key (null: deleted). Watch events and re-reads can
 * arrive out of order with each other: a value at or below the revision already applied is old
 * news, and a value of an older epoch than one already seen is never reported, whatever its
 * revision.
 */
export function applyPrimary(view: PrimaryView, value: Primary | null, revision: number): PrimaryUpdate {
  if (revision <= view.revision) return { kind: 'same', view };
  if (value !== null && value.epoch < view.highestEpoch) {
    return { kind: 'ignored', view: { ...view, revision }, why: `epoch ${value.epoch} is older than epoch ${view.highestEpoch}, already seen` };
  }
  const next: PrimaryView = { primary: value, revision, highestEpoch: Math.max(view.highestEpoch, value?.epoch ?? 0) };
  return samePrimary(view.primary, value) ? { kind: 'same', view: next } : { kind: 'changed', view: next };
}

export function samePrimary(a: Primary | null, b: Primary | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.node === b.node &&
    a.host === b.host &&
    a.port === b.port &&
    a.epoch === b.epoch &&
    a.state === b.state &&
    a.since === b.since &&
    a.gtid === b.gtid &&
    a.serverId === b.serverId &&
    a.serverUuid === b.serverUuid
  );
}

/** The identity of "this node as the primary of this epoch": connections are kept per identity. */
export function primaryIdentity(p: Primary): string {
  return `${p.node}@${p.epoch}/${p.host}:${p.port}/${p.serverId ?? '?'}/${p.serverUuid ?? '?'}`;
}

/**
 * Replicas that may serve reads: the agent sees the server up, in the replica role, with both
 * replication threads running, no errant transactions, and a known lag. The primary is never one.
 */
export function healthyReplicas(members: Iterable<MemberState>, primary: Primary | null): Replica[] {
  const out: Replica[] = [];
  for (const m of members) {
    const s = m.server;
    const r = s?.replication;
    if (!s || !r || m.node === primary?.node || m.health !== 'up' || m.role !== 'replica' || m.errant !== null) continue;
    if (r.ioState !== 'running' || !r.sqlRunning) continue;
    const lagMs = s.lagMs ?? (r.secondsBehind === null ? null : r.secondsBehind * 1000);
    if (lagMs === null) continue;
    out.push({ node: m.node, host: m.host, port: m.port, lagMs, serverId: s.serverId });
  }
  return out.sort((a, b) => a.node.localeCompare(b.node));
}

export function sameReplicas(a: readonly Replica[], b: readonly Replica[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => {
      const o = b[i];
      return o !== undefined && r.node === o.node && r.host === o.host && r.port === o.port && r.lagMs === o.lagMs && r.serverId === o.serverId;
    })
  );
}
