/**
 * `primacy explain [EPOCH]`: one op record told in plain words: what triggered it, what proved the
 * old primary fenced and what it promised about acknowledged writes, the candidates and their
 * received positions, why the chosen one won and each other did not, every step with its
 * duration, and every hook run with its exit status and output. Pure.
 */
import type { DurabilityRecord, OpRecord } from '@primacy/common';
import { fields, formatAge, formatDuration, formatTime, oneLine, table } from './format.js';
import type { Style } from './io.js';
import { describeRecord } from './durability.js';
import { failoverWait } from './status.js';

export interface ExplainJson {
  readonly version: 1;
  readonly cluster: string;
  /** The op record as the coordinator wrote it (schema OpRecord in packages/common). */
  readonly op: OpRecord;
  readonly warnings: readonly string[];
}

export function describeTrigger(op: OpRecord): string {
  // A failover that waited for a proof and was let go by `failover --unfenced`: its own trigger, then the override.
  const override = /^(.*); override (\S+)$/.exec(op.trigger);
  if (override) {
    const [, trigger = '', id = ''] = override;
    return `${describeTrigger({ ...op, trigger, request: null })}; let go by operator request ${id}: failover --unfenced${op.request?.to ? ` to ${op.request.to}` : ''}`;
  }
  const detected = op.steps.find((s) => s.name === 'detect')?.detail;
  if (op.trigger === 'automatic') return op.kind === 'bootstrap' ? `bootstrap: ${op.reason}` : `automatic: ${detected || op.reason}`;
  const id = /^request (.+)$/.exec(op.trigger)?.[1];
  const asked = op.request ? `: ${op.kind}${op.request.to ? ` to ${op.request.to}` : ''}${op.request.force ? ', forced' : ''}` : '';
  return `${id === undefined ? op.trigger : `operator request ${id}`}${asked}${detected ? `; ${detected}` : ''}`;
}

/** Why the chosen candidate won: the coordinator's reason in its `choose` step, else the op's reason. */
function whyChosen(op: OpRecord): string {
  return op.steps.find((s) => s.name === 'choose')?.detail || op.reason;
}

/**
 * What proved the old primary fenced (invariant 4), or what a running failover still waits for; an
 * operator's override is said in so many words, as nothing proved it.
 */
export function describeProof(op: OpRecord, style: Style): string[] {
  const p = op.proof;
  if (p === null) {
    const w = failoverWait(op);
    return w ? [style.red(`no proof yet: ${w.detail}`)] : [];
  }
  const lines = [`proof: ${p.kind} — ${p.detail}${p.finalGtid ? `; final GTID ${p.finalGtid}` : ''}`];
  if (p.kind === 'operator') {
    lines.push(style.yellow(`  an operator overrode the fencing requirement: nothing proved that ${op.from ?? 'the old primary'} could no longer acknowledge a write`));
  }
  return lines;
}

/** The old primary's semi-sync as last recorded before the operation, and what a fallback means for lost writes. */
export function describeOpDurability(d: DurabilityRecord | null, op: OpRecord, style: Style): string[] {
  if (d === null) return op.kind === 'failover' && op.outcome !== 'refused' ? [`durability: none recorded for ${op.from ?? 'the old primary'} before the failover`] : [];
  const line = `durability of ${d.node} (epoch ${d.epoch}) before the ${op.kind}: ${describeRecord(d, null)}`;
  if (d.state !== 'fallback') return [line];
  return [line, style.yellow(`  writes acknowledged since ${formatTime(d.since)} may exist only on the old primary ${d.node}`)];
}

/** Every hook run for the operation: where it ran and as what, how it ended, when, and the tail of its output. */
export function describeHooks(op: OpRecord, style: Style): string[] {
  const runs = op.hooks ?? [];
  if (runs.length === 0) return [];
  const rows = runs.map((h) => [
    h.name,
    `${h.node} (${h.role})`,
    h.exitCode === 0 && !h.timedOut ? h.outcome : style.red(h.outcome),
    formatDuration(h.ms),
    `${h.startedAt < op.startedAt ? '-' : '+'}${formatDuration(Math.abs(h.startedAt - op.startedAt))}`,
    oneLine(h.outputTail, 160) || '-',
  ]);
  return ['', style.bold('hooks'), ...table(['HOOK', 'RAN ON', 'OUTCOME', 'DURATION', 'AT', 'OUTPUT'], rows).map((l) => `  ${l}`)];
}

export function renderExplain(e: ExplainJson, now: number, style: Style): string[] {
  const op = e.op;
  const outcome = op.outcome === 'done' ? style.green(op.outcome) : op.outcome === 'running' ? style.yellow(op.outcome) : style.red(op.outcome);
  const took = op.endedAt === null ? `running for ${formatDuration(now - op.startedAt)}` : `took ${formatDuration(op.endedAt - op.startedAt)}`;
  const lines = [
    `${style.bold(`epoch ${op.epoch}: ${op.kind} ${op.from ?? '-'} → ${op.to ?? '-'},`)} ${outcome}`,
    ...fields([
      ['started', `${formatTime(op.startedAt)} (${formatAge(op.startedAt, now)}), ${took}`],
      ['coordinator', `${op.coordinator.node} (election revision ${op.coordinator.revision})`],
      ['trigger', describeTrigger(op)],
    ]).map((l) => `  ${l}`),
  ];
  const fencing = [...describeProof(op, style), ...describeOpDurability(op.durability, op, style)];
  if (fencing.length > 0) lines.push('', ...fencing);
  const members = Object.entries(op.members);
  if (members.length > 0) {
    lines.push('', style.bold('members when it decided'));
    const rows = members.map(([node, m]) => [node, m.health, m.gtid || '-', m.received || '-', m.semiSync]);
    lines.push(...table(['NODE', 'HEALTH', 'EXECUTED', 'RECEIVED', 'SEMI-SYNC'], rows).map((l) => `  ${l}`));
  }
  if (op.candidates.length > 0) {
    lines.push('', style.bold('candidates'));
    const rows = op.candidates.map((c) => {
      const verdict =
        c.reason === 'chosen'
          ? style.green(`chosen: ${whyChosen(op)}`)
          : c.eligible
            ? `not chosen: ${c.reason}`
            : style.red(`refused: ${c.reason}`);
      return [c.node, c.gtid || '-', verdict];
    });
    lines.push(...table(['NODE', 'RECEIVED', 'VERDICT'], rows).map((l) => `  ${l}`));
  } else if (op.kind !== 'bootstrap' && op.outcome !== 'running') {
    lines.push('', style.bold('candidates'), '  none were weighed');
  }
  if (op.mustContain) {
    lines.push('', `must contain: ${op.mustContain} (everything ${op.from ?? 'the stalled candidate'} received; it may hold acknowledged writes)`);
  }
  if (op.catchUpFrom) {
    const from = op.catchUpFrom;
    lines.push('', `catch-up source: ${from.node} (${from.host}:${from.port}), up to ${from.gtid}`);
  }
  if (op.steps.length > 0) {
    lines.push('', style.bold('steps'));
    const rows = op.steps.map((s) => [
      s.name,
      s.outcome === 'ok' ? s.outcome : s.outcome === 'failed' ? style.red(s.outcome) : style.yellow(s.outcome),
      s.endedAt === null ? `${formatDuration(now - s.startedAt)} so far` : formatDuration(s.endedAt - s.startedAt),
      `+${formatDuration(s.startedAt - op.startedAt)}`,
      s.detail,
    ]);
    lines.push(...table(['STEP', 'OUTCOME', 'DURATION', 'AT', 'DETAIL'], rows).map((l) => `  ${l}`));
  }
  lines.push(...describeHooks(op, style));
  lines.push('', style.bold('outcome'), `  ${outcome}: ${op.reason || '(no reason recorded)'}`);
  return [...lines, ...e.warnings.map((w) => style.yellow(`warning: ${w}`))];
}
