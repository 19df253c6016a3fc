/** Small pure formatters shared by the renderers: durations, ages, one-line text, aligned tables. */

/** `850 ms`, `12.3 s`, `4m 05s`, `2h 10m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} s`;
  const s = Math.floor(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** How long ago `at` was: `3.20 s ago`; a time in the future (clock skew) reads `just now`. */
export function formatAge(at: number, now: number): string {
  return now - at < 0 ? 'just now' : `${formatDuration(now - at)} ago`;
}

export function formatTime(at: number): string {
  return new Date(at).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** One line, at most `max` characters: newlines and runs of spaces collapse, the rest is cut with `…`. */
export function oneLine(text: string, max = 100): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

const ANSI = /\x1b\[[0-9;]*m/g;

/** The width a string takes on a terminal: its length without ANSI escapes. */
export function visibleWidth(s: string): number {
  return [...s.replace(ANSI, '')].length;
}

function padEnd(s: string, width: number): string {
  return s + ' '.repeat(Math.max(0, width - visibleWidth(s)));
}

/** Columns aligned with two spaces between them; trailing spaces trimmed. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, style: { bold(s: string): string } = { bold: (s) => s }): string[] {
  const widths = header.map((h, i) => Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : padEnd(c, widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [style.bold(line(header)), ...rows.map(line)];
}

/** `label  value` pairs with the labels padded to one width. */
export function fields(pairs: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(0, ...pairs.map(([k]) => visibleWidth(k)));
  return pairs.map(([k, v]) => `${padEnd(k, width)}  ${v}`.trimEnd());
}
