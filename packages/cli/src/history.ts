/** `primacy history`: every op record, oldest first, as a table or as JSON. Pure. */
import type { OpRecord } from '@primacy/common';
import { formatDuration, formatTime, oneLine, table } from './format.js';
import type { Style } from './io.js';
import { summarizeOp, type OpSummary } from './status.js';

export interface HistoryJson {
  readonly version: 1;
  readonly cluster: string;
  readonly ops: readonly OpSummary[];
  readonly warnings: readonly string[];
}

export function historyModel(cluster: string, ops: readonly OpRecord[], warnings: readonly string[]): HistoryJson {
  return { version: 1, cluster, ops: ops.map(summarizeOp), warnings };
}

export function renderHistory(h: HistoryJson, now: number, style: Style): string[] {
  const warnings = h.warnings.map((w) => style.yellow(`warning: ${w}`));
  if (h.ops.length === 0) return [`no operations recorded for ${h.cluster}`, ...warnings];
  const rows = h.ops.map((op) => [
    String(op.epoch),
    op.kind,
    op.from ?? '-',
    op.to ?? '-',
    formatTime(op.startedAt),
    op.durationMs === null ? `${formatDuration(now - op.startedAt)} so far` : formatDuration(op.durationMs),
    op.outcome === 'done' ? style.green(op.outcome) : op.outcome === 'running' ? style.yellow(op.outcome) : style.red(op.outcome),
    oneLine(op.reason, 100),
  ]);
  return [...table(['EPOCH', 'KIND', 'FROM', 'TO', 'STARTED', 'DURATION', 'OUTCOME', 'REASON'], rows, style), ...warnings];
}
