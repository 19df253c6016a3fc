/** Markdown tables for the results files and docs/benchmarks.md. */

export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, align?: ReadonlyArray<'l' | 'r'>): string {
  const rule = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [header, rule, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** Milliseconds as seconds with two decimals, e.g. `1.23 s`. */
export function seconds(ms: number | null | undefined): string {
  return ms === null || ms === undefined || Number.isNaN(ms) ? '—' : `${(ms / 1000).toFixed(2)} s`;
}

export function fixed(n: number | null | undefined, digits: number): string {
  return n === null || n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits);
}
