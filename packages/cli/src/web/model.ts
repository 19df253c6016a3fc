/**
 * What `primacy web` sends its page: every cluster it shows, each as the models the other commands
 * compute (status, topology, history, explain), made JSON-able. Pure: views and op records in, one
 * state out; the page only lays it out.
 */
import type { OpRecord } from '@primacy/common';
import type { ClusterView } from '../cluster.js';
import { renderExplain } from '../explain.js';
import { historyModel } from '../history.js';
import { PLAIN } from '../io.js';
import { describeDurability, formatSemiSync, nodeNote, statusModel, type OpSummary, type StatusJson } from '../status.js';
import { buildTopology } from '../topology.js';

/** The newest operations the page lists; older ones are counted, not sent. */
export const HISTORY_SHOWN = 50;

export interface ClusterPage {
  readonly cluster: string;
  /** `primacy status --json`. */
  readonly status: StatusJson;
  /** Per node that is not `ok` or that its agent proved something of: why, in status's words. */
  readonly notes: Readonly<Record<string, string>>;
  /** Per node with a server state: its semi-sync, as status shows it. */
  readonly semiSync: Readonly<Record<string, string>>;
  /** The durability line of status. */
  readonly durability: string;
  /** `primacy topology`: the replication tree from the primary, and the nodes apart from it. */
  readonly tree: {
    readonly root: string | null;
    readonly children: Readonly<Record<string, readonly string[]>>;
    readonly apart: ReadonlyArray<{ readonly node: string; readonly why: string }>;
  };
  /** The newest operation record in full, for its steps as they run. */
  readonly current: OpRecord | null;
  /** `primacy history`, oldest first and the newest HISTORY_SHOWN at most, each with `primacy explain`'s text. */
  readonly history: ReadonlyArray<{ readonly op: OpSummary; readonly explain: readonly string[] }>;
  /** How many older operations were left out. */
  readonly olderOps: number;
  readonly warnings: readonly string[];
}

export interface WebState {
  readonly version: 1;
  readonly root: string;
  /** The one cluster asked for with --cluster; null: every cluster under the root. */
  readonly only: string | null;
  /** The server's clock when this state was made: the page counts ages from it. */
  readonly readAt: number;
  /** Switchover, pause and resume are offered (--allow-actions). */
  readonly actions: boolean;
  /** Why etcd cannot be read right now; what is shown is then as of the last good read. */
  readonly problem: string | null;
  readonly clusters: readonly ClusterPage[];
}

export function clusterPage(view: ClusterView, ops: readonly OpRecord[], opWarnings: readonly string[], now: number): ClusterPage {
  const status = statusModel(view, now);
  const notes: Record<string, string> = {};
  const semiSync: Record<string, string> = {};
  for (const n of status.nodes) {
    const note = nodeNote(n);
    if (note !== null) notes[n.node] = note;
    if (n.semiSync !== null) semiSync[n.node] = formatSemiSync(n.semiSync, PLAIN);
  }
  const t = buildTopology(view);
  const history = historyModel(view.cluster, ops, opWarnings);
  const shown = ops.slice(-HISTORY_SHOWN);
  return {
    cluster: view.cluster,
    status,
    notes,
    semiSync,
    durability: describeDurability(status.durability, status.primary, now, PLAIN),
    tree: { root: t.root, children: Object.fromEntries(t.children), apart: t.apart },
    current: view.lastOp,
    history: shown.map((op, i) => ({
      op: history.ops[ops.length - shown.length + i]!,
      explain: renderExplain({ version: 1, cluster: view.cluster, op, warnings: [] }, now, PLAIN),
    })),
    olderOps: ops.length - shown.length,
    warnings: [...view.warnings, ...history.warnings],
  };
}

export function webState(o: { root: string; only: string | null; actions: boolean; problem: string | null; pages: Iterable<ClusterPage>; now: number }): WebState {
  const clusters = [...o.pages].sort((a, b) => a.cluster.localeCompare(b.cluster, 'en', { numeric: true }));
  return { version: 1, root: o.root, only: o.only, readAt: o.now, actions: o.actions, problem: o.problem, clusters };
}
