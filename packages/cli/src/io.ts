/**
 * What the CLI touches of its process: output streams, whether stdout is a terminal, the operator's
 * keyboard, the environment, and a signal for Ctrl-C. Injected, so that tests run `main` in-process
 * and capture.
 */
export interface Io {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  /** stdout is a terminal: colours, and redrawing in place. */
  readonly isTTY: boolean;
  /** Absent: stdin is no terminal, and nobody can be asked (a script, a pipe, a test). */
  readonly stdin?: Terminal;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborted on Ctrl-C: ends `status --watch` and the wait for an operation. */
  readonly signal?: AbortSignal;
}

/** stdin as a terminal: where an operator confirms what cannot be undone. */
export interface Terminal {
  readonly isTTY: boolean;
  /** Shows `prompt` and reads one line; null when the operator ends input (Ctrl-D) or presses Ctrl-C. */
  ask(prompt: string): Promise<string | null>;
}

/** ANSI styling that collapses to plain text off a terminal or under NO_COLOR (https://no-color.org). */
export interface Style {
  readonly color: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

function sgr(open: number, close: number): (s: string) => string {
  return (s) => `\x1b[${open}m${s}\x1b[${close}m`;
}

const identity = (s: string): string => s;

export const PLAIN: Style = Object.freeze({ color: false, bold: identity, dim: identity, red: identity, green: identity, yellow: identity, cyan: identity });

export const COLOR: Style = Object.freeze({
  color: true,
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  red: sgr(31, 39),
  green: sgr(32, 39),
  yellow: sgr(33, 39),
  cyan: sgr(36, 39),
});

export function styleFor(io: Pick<Io, 'isTTY' | 'env'>): Style {
  const noColor = io.env['NO_COLOR'];
  return io.isTTY && (noColor === undefined || noColor === '') ? COLOR : PLAIN;
}

/** Writes lines, each ended by a newline. */
export function writeLines(stream: Io['stdout'], lines: readonly string[]): void {
  if (lines.length > 0) stream.write(`${lines.join('\n')}\n`);
}
