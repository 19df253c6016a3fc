/**
 * `primacy durability [MODE]`: what the cluster promises about acknowledged writes (the config key's
 * `durability`) and what its primary was last seen doing (the coordinator's durability record). Pure.
 */
import type { Durability, DurabilityRecord } from '@primacy/common';
import type { ClusterView } from './cluster.js';
import { fields, formatAge, formatTime } from './format.js';
import type { Style } from './io.js';

/** What each mode means for a commit, in the operator's words. */
export const DURABILITY_MEANING: Readonly<Record<Durability, string>> = Object.freeze({
  async: "commits do not wait for any replica; a failover can lose writes the primary acknowledged",
  'semi-sync':
    "commits wait for a replica's acknowledgement, but the primary falls back to asynchronous replication when none comes within the timeout; writes acknowledged then can be lost in a failover",
  strict: "the primary never falls back to asynchronous replication; commits wait for a replica's acknowledgement, however long",
});

/** `strict: the primary never falls back…`: the line `primacy durability MODE` prints. */
export function meaningOf(mode: Durability): string {
  return `${mode}: ${DURABILITY_MEANING[mode]}`;
}

export interface DurabilityModel {
  readonly cluster: string;
  /** The config key's; null: each agent's own replication.semiSync. */
  readonly configured: Durability | null;
  readonly primary: { readonly node: string; readonly epoch: number } | null;
  readonly record: DurabilityRecord | null;
}

export function durabilityModel(view: Pick<ClusterView, 'cluster' | 'config' | 'primary' | 'durability'>): DurabilityModel {
  const p = view.primary;
  return { cluster: view.cluster, configured: view.config.durability ?? null, primary: p && { node: p.node, epoch: p.epoch }, record: view.durability };
}

/** A record's state in words: `fallback` is semi-sync fallen back to asynchronous replication. */
export function stateWords(state: DurabilityRecord['state']): string {
  switch (state) {
    case 'active':
      return 'active';
    case 'fallback':
      return 'fallen back to async';
    case 'off':
      return 'semi-sync off';
    case 'unknown':
      return 'state unknown';
  }
}

/** `mode semi-sync, active, not strict, since …, 2 semi-sync replicas`. */
export function describeRecord(r: DurabilityRecord, now: number | null): string {
  const strict = r.strict ? 'strict (no fallback to async)' : 'not strict';
  const since = `${formatTime(r.since)}${now === null ? '' : ` (${formatAge(r.since, now)})`}`;
  return `mode ${r.mode}, ${stateWords(r.state)}, ${strict}, since ${since}, ${r.clients} semi-sync replica${r.clients === 1 ? '' : 's'}`;
}

export function renderDurability(d: DurabilityModel, now: number, style: Style): string[] {
  const r = d.record;
  const p = d.primary;
  const current = r !== null && p !== null && r.node === p.node && r.epoch === p.epoch;
  const last = r === null ? '' : `; the last is of ${r.node}, epoch ${r.epoch}: ${describeRecord(r, now)}`;
  const primaryLine =
    p === null
      ? `none${last}`
      : current
        ? `${p.node}, epoch ${p.epoch}: ${describeRecord(r, now)}`
        : `${p.node}, epoch ${p.epoch}: no durability record yet (the coordinator writes one once it has seen the primary's semi-sync state)${last}`;
  const notes: string[] = [];
  if (current && r.state === 'fallback') notes.push(style.yellow(`writes acknowledged since ${formatTime(r.since)} may exist only on ${r.node}`));
  if (current && d.configured === 'strict' && !r.strict) notes.push(style.yellow(`strict is set, but ${r.node} is not seen strict yet: until it is, a revoke does not prove it fenced`));
  if (current && d.configured !== null && d.configured !== r.mode) notes.push(style.yellow(`set to ${d.configured}, but the record is still of ${r.mode}: not in force yet`));
  return [
    ...fields([
      ['cluster', style.bold(d.cluster)],
      ['durability', d.configured === null ? "not set: each agent's replication.semiSync" : `${d.configured} (the config key)`],
      ...(d.configured === null ? [] : ([['meaning', DURABILITY_MEANING[d.configured]]] as const)),
      ['primary', primaryLine],
    ]),
    ...notes,
  ];
}
