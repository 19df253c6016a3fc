/**
 * What a new salvage of a diverged node replaces (issue 11). etcd keeps one manifest per node, so a
 * salvage taken again (its binlog moved, say by a rejoin that failed half-way) names the ones before
 * it: their folders stay on disk, and nothing a DBA might want is lost from sight. It also says when a
 * failed rejoin changed the node since the salvage it used, which a flashback must not ignore.
 */
import type { OpRecord, SalvageManifest } from '@primacy/common';

/** At most this many earlier salvages are named, the first always: a node whose binlog keeps moving does not grow its manifest without bound. */
export const MAX_EARLIER_SALVAGES = 10;

export type SalvageLineage = Pick<SalvageManifest, 'earlier' | 'afterRejoin'>;

/**
 * `previous`: the node's manifest in etcd before this salvage; `last`: its last rejoin record. A
 * rejoin that succeeded from `previous` ended that divergence, so the new salvage starts afresh.
 */
export function salvageLineage(previous: SalvageManifest | null, last: OpRecord | null): SalvageLineage {
  if (previous === null) return {};
  const plan = last?.rejoin ?? null;
  const usedPrevious = plan !== null && plan.salvageAt === previous.at;
  if (usedPrevious && last?.outcome === 'done') return {};
  const all = [...(previous.earlier ?? []), { at: previous.at, folder: previous.folder, gtids: previous.gtids, nodeState: previous.nodeState }];
  const earlier = all.length > MAX_EARLIER_SALVAGES ? [all[0]!, ...all.slice(-(MAX_EARLIER_SALVAGES - 1))] : all;
  // A started rejoin that ended without success may have changed the node anywhere (a refused one did nothing).
  const changedBy = usedPrevious && last?.outcome === 'aborted' ? { startedAt: last.startedAt, method: plan.method } : previous.afterRejoin;
  return changedBy ? { earlier, afterRejoin: changedBy } : { earlier };
}
