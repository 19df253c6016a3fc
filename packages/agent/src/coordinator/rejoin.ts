/**
 * The coordinator's rejoin decisions (issue 11), pure: whether a diverged node (transactions the
 * primary lacks) may rejoin, by which method and why, and how a running rejoin advances.
 *
 * How a rejoin coexists with invariant 7 (one operation per cluster at a time): a rejoin changes only
 * the diverged node, which is never a candidate, and neither the primary nor the epoch. It is recorded
 * under rejoin/<node>, not ops/, starts only while the primary is ready and no failover or switchover
 * runs, and is carried out only under the epoch it was decided in: a failover that starts meanwhile
 * ends it (aborted) instead of waiting for it.
 */
import type { MemberState, OpRecord, Primary, RejoinMethod, RejoinPolicy, SalvageManifest } from '@primacy/common';
import { salvageState } from '../rejoin/positions.js';
import type { ClusterView, Decision } from './model.js';

export type RejoinPlanChoice =
  | { readonly ok: true; readonly method: Exclude<RejoinMethod, 'none'>; readonly allowed: string; readonly source: { node: string; host: string; port: number } | null }
  | { readonly ok: false; readonly reason: string };

const DEFAULT_POLICY: RejoinPolicy = { method: 'none', allowUnacknowledgedFlashback: false };

export function rejoinPolicy(v: Pick<ClusterView, 'config'>): RejoinPolicy {
  return v.config.rejoin ?? DEFAULT_POLICY;
}

/** What a rejoin's choice reads of the cluster: the coordinator's view, or the CLI's for a dry run. */
export type RejoinFacts = Pick<ClusterView, 'members' | 'config' | 'currentOp' | 'salvages' | 'rejoins'>;

/** The salvage of `m` that describes its binlog as it is now, or null. */
export function currentSalvage(v: Pick<RejoinFacts, 'salvages'>, m: MemberState): SalvageManifest | null {
  const s = v.salvages?.get(m.node) ?? null;
  const state = m.server ? salvageState(m.server) : undefined;
  return s !== null && state !== undefined && s.nodeState === state ? s : null;
}

/**
 * Whether `node` may rejoin now, by `requested` or else the cluster's policy, and why. Flashback
 * undoes the node's extra transactions: allowed by default only when the record of the failover away
 * from it shows semi-sync in sync (or strict) then, so none of them was acknowledged to a client.
 */
export function chooseRejoin(v: RejoinFacts, p: Primary, node: string, requested?: Exclude<RejoinMethod, 'none'>): RejoinPlanChoice {
  const m = v.members.get(node);
  if (!m) return { ok: false, reason: `${node} has no agent` };
  if (m.errant === null) return { ok: false, reason: `${node} has not diverged (no transactions ${p.node} lacks): its agent makes it replicate by itself` };
  if (m.health !== 'up' || !m.server) return { ok: false, reason: `${node}'s server is ${m.health}` };
  const salvage = currentSalvage(v, m);
  if (salvage === null) {
    const why = m.salvageProblem ? `its salvage failed: ${m.salvageProblem}` : 'its agent copies its extra transactions off first';
    return { ok: false, reason: `${node} has no salvage of its current binlog (${why})` };
  }
  const policy = rejoinPolicy(v);
  const method = requested ?? policy.method;
  const kept = `its extra transactions (${salvage.gtids}) stay in the salvage in ${salvage.folder}${salvageNote(v, node, salvage)}`;
  switch (method) {
    case 'none':
      return { ok: false, reason: `the cluster's rejoin policy is none: ${node} stays out of rotation (set rejoin.method in the config, or primacy rejoin ${node} --method …)` };
    case 'flashback': {
      if (salvage.flavor !== 'mariadb') return { ok: false, reason: `flashback exists only on MariaDB; ${node} is ${salvage.flavor}` };
      const changed = salvage.afterRejoin;
      if (changed) {
        return {
          ok: false,
          reason: `flashback of ${node} would undo only ${salvage.gtids || 'nothing'}, but its rejoin by ${changed.method} of ${new Date(changed.startedAt).toISOString()} failed part-way and changed it since the salvage that rejoin used, so undoing no longer restores the history it shares with ${p.node}; rejoin it by reseed or script (${salvageFolders(salvage)})`,
        };
      }
      const acked = unacknowledged(v, p, node);
      if (acked.ok) return { ok: true, method, allowed: `${acked.why}, so flashback undoes only writes no client was told had committed; ${kept}`, source: null };
      if (policy.allowUnacknowledgedFlashback) return { ok: true, method, allowed: `rejoin.allowUnacknowledgedFlashback is set, though ${acked.why}: acknowledged writes may be undone; ${kept}`, source: null };
      return { ok: false, reason: `flashback of ${node} would undo ${salvage.gtids}, and ${acked.why}: clients may have been told they committed; set rejoin.allowUnacknowledgedFlashback, or rejoin by reseed or script (the salvage in ${salvage.folder} keeps them either way)` };
    }
    case 'reseed': {
      const source = reseedSource(v, p, node, policy.reseedFrom);
      if (typeof source === 'string') return { ok: false, reason: source };
      return { ok: true, method, allowed: `${node} is rebuilt from a copy of ${source.node}; ${kept}`, source };
    }
    case 'script':
      return { ok: true, method, allowed: `the operator's rejoin script (rejoin.script in ${node}'s agent config) rebuilds it; ${kept}`, source: null };
  }
}

/** Where the salvages of this divergence are, for a reason that points at them. */
function salvageFolders(s: SalvageManifest): string {
  const all = [...(s.earlier ?? []).map((e) => e.folder), s.folder];
  return `its salvage${all.length === 1 ? ' stays' : 's stay'} in ${all.join(', ')}`;
}

/**
 * For the record, after an earlier rejoin of this divergence ended without success: whether this
 * attempt reuses that attempt's salvage (the node's binlog is as it was) or goes by a fresh one, and why.
 */
export function salvageNote(v: Pick<RejoinFacts, 'rejoins'>, node: string, s: SalvageManifest): string {
  const last = v.rejoins?.get(node);
  const plan = last?.rejoin;
  const earlier = s.earlier ?? [];
  const kept = earlier.length === 0 ? '' : `; the earlier salvage${earlier.length === 1 ? ' stays' : 's stay'} in ${earlier.map((e) => e.folder).join(', ')}`;
  const at = new Date(s.at).toISOString();
  if (!last || !plan || last.outcome === 'done' || last.outcome === 'running') return kept;
  if (plan.salvageAt === s.at) return `; the salvage of ${at} is reused: ${node}'s binlog is as it was then (${s.nodeState || 'empty'}), after the last rejoin by ${plan.method} was ${last.outcome}${kept}`;
  const before = earlier.find((e) => e.at === plan.salvageAt)?.nodeState;
  const why = s.afterRejoin?.startedAt === last.startedAt ? `: that rejoin failed part-way and changed it` : s.afterRejoin ? `: a rejoin by ${s.afterRejoin.method} of ${new Date(s.afterRejoin.startedAt).toISOString()} changed it` : '';
  return `; a fresh salvage (${at}): ${node}'s binlog moved${before !== undefined ? ` from ${before || 'empty'}` : ''} to ${s.nodeState || 'empty'} since the salvage the last rejoin by ${plan.method} used${why}${kept}`;
}

/** Whether the record of the failover that made this epoch shows `node`'s writes unacknowledged beyond what the replicas got. */
function unacknowledged(v: RejoinFacts, p: Primary, node: string): { ok: boolean; why: string } {
  const op = v.currentOp;
  if (!op || op.epoch !== p.epoch || op.kind !== 'failover' || op.from !== node) {
    return { ok: false, why: `no record of a failover away from ${node} made epoch ${p.epoch}, so nothing shows its semi-sync state when it lost the primary` };
  }
  const d = op.durability;
  if (!d || d.node !== node) return { ok: false, why: `the failover record of epoch ${op.epoch} holds no semi-sync state of ${node}` };
  if (d.strict || d.state === 'active') {
    return { ok: true, why: `semi-sync was ${d.strict ? 'strict' : 'in sync'} on ${node} when it was failed over (epoch ${op.epoch}: ${d.state}, ${d.clients} replica${d.clients === 1 ? '' : 's'} connected)` };
  }
  return { ok: false, why: `semi-sync was ${d.state} on ${node} when it was failed over (epoch ${op.epoch}, durability ${d.mode})` };
}

/** The reseed source: the one the policy names, else a healthy replica, else the primary. A string says why none. */
function reseedSource(v: RejoinFacts, p: Primary, node: string, named: string | undefined): { node: string; host: string; port: number } | string {
  const healthy = (m: MemberState | undefined): m is MemberState => {
    if (!m || m.node === node || m.health !== 'up' || !m.server || m.errant !== null) return false;
    const r = m.server.replication;
    return m.node === p.node || (r !== null && r.sqlRunning && r.lastSqlError === '');
  };
  if (named !== undefined) {
    const m = v.members.get(named);
    return healthy(m) ? { node: m.node, host: m.host, port: m.port } : `the reseed source rejoin.reseedFrom (${named}) is not a healthy member now`;
  }
  const replicas = [...v.members.values()].filter((m) => m.node !== p.node && healthy(m)).sort((a, b) => a.node.localeCompare(b.node));
  const m = replicas[0] ?? (healthy(v.members.get(p.node)) ? v.members.get(p.node) : undefined);
  return m ? { node: m.node, host: m.host, port: m.port } : `no healthy member to reseed ${node} from`;
}

/** A running rejoin moves on: its agent's progress recorded, its end, or its abort when the cluster moved. */
export function continueRejoin(v: ClusterView, p: Primary): Decision | null {
  for (const [node, op] of [...(v.rejoins ?? new Map<string, OpRecord>())].sort(([a], [b]) => a.localeCompare(b))) {
    if (op.outcome !== 'running') continue;
    if (op.epoch !== p.epoch) return { kind: 'rejoin-end', node, outcome: 'aborted', reason: `the primary changed (epoch ${p.epoch}) before the rejoin of ${node} finished; ${node} may be half-changed` };
    const m = v.members.get(node);
    if (!m) return { kind: 'rejoin-end', node, outcome: 'aborted', reason: `${node}'s agent left during the rejoin; ${node} may be half-changed (reseed it)` };
    const r = m.rejoin;
    if (!r || r.startedAt !== op.startedAt) continue;
    if (r.outcome === 'done') return { kind: 'rejoin-end', node, outcome: 'done', reason: r.detail };
    if (r.outcome === 'failed') return { kind: 'rejoin-end', node, outcome: 'aborted', reason: `${r.step} failed: ${r.detail}` };
    const last = op.steps.at(-1);
    if (last?.name !== r.step || last.detail !== r.detail) return { kind: 'rejoin-progress', node, step: r.step, detail: r.detail };
  }
  return null;
}

function samePolicy(a: RejoinPolicy, b: RejoinPolicy): boolean {
  return a.method === b.method && a.allowUnacknowledgedFlashback === b.allowUnacknowledgedFlashback && a.reseedFrom === b.reseedFrom;
}

/**
 * Whether the cluster's policy decides again for `salvage` after the node's last record: when the
 * policy changed since that decision, or the node changed (a new salvage) other than by that very
 * attempt. A failed rejoin whose method moved the binlog gets a fresh salvage, which names it
 * (`afterRejoin`, the attempt's salvage last in `earlier`): the same facts, so no retry; a retry
 * needs an operator's request, a changed config, or a node changed again. Never a retry loop.
 */
export function autoRejoinDue(last: OpRecord | undefined, salvage: SalvageManifest, policy: RejoinPolicy): boolean {
  const plan = last?.rejoin;
  if (!last || !plan) return true;
  if (last.outcome === 'running') return false;
  // A record written before the policy was kept counts as decided under the current one.
  if (plan.policy !== undefined && !samePolicy(plan.policy ?? DEFAULT_POLICY, policy)) return true;
  if (plan.salvageAt === salvage.at) return false;
  const movedByLast = salvage.afterRejoin?.startedAt === last.startedAt && salvage.earlier?.at(-1)?.at === plan.salvageAt;
  return !movedByLast;
}

/**
 * The cluster's policy applied to a diverged node whose salvage is current: one automatic decision
 * per salvage and policy (a rejoin started, or held with why), never repeated for the same facts.
 */
export function autoRejoin(v: ClusterView, p: Primary): Decision | null {
  const policy = rejoinPolicy(v);
  if (policy.method === 'none' || v.config.paused) return null;
  for (const m of [...v.members.values()].sort((a, b) => a.node.localeCompare(b.node))) {
    if (m.errant === null || m.node === p.node) continue;
    const salvage = currentSalvage(v, m);
    if (salvage === null) continue;
    if (!autoRejoinDue(v.rejoins?.get(m.node), salvage, policy)) continue;
    const choice = chooseRejoin(v, p, m.node);
    if (!choice.ok) return { kind: 'rejoin-held', node: m.node, salvageAt: salvage.at, reason: choice.reason };
    return { kind: 'rejoin-start', node: m.node, method: choice.method, allowed: choice.allowed, source: choice.source, request: null };
  }
  return null;
}
