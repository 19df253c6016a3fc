/**
 * An operator's command (a fencing command, a rejoin script): run under `sh -c` in a process group of
 * its own, with what it acts on in its environment and arguments, and killed (the whole group) when
 * it outlives its bound. Exit 0 within the bound is success; anything else is not, and says why.
 */
import { spawn } from 'node:child_process';

export interface CommandRun {
  readonly ok: boolean;
  /** `exit 0`, `exit 3`, `killed after 10000 ms`, `could not start: …` */
  readonly outcome: string;
  /** Null when it was killed or could not start. */
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  readonly ms: number;
  /** The last lines of its stdout and stderr together. */
  readonly tail: string;
}

export interface OperatorCommand {
  /** A shell command line; `args` follow it as "$1", "$2", … */
  readonly command: string;
  readonly args?: readonly string[];
  /** Added to the agent's own environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** How much of the output to keep, in characters (default 400). */
  readonly tailChars?: number;
}

export function runOperatorCommand(c: OperatorCommand): Promise<CommandRun> {
  const started = performance.now();
  const tailChars = c.tailChars ?? 400;
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let settled = false;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4 * tailChars);
    };
    const done = (exitCode: number | null, outcome: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const tail = output.trim().split('\n').slice(-5).join(' | ').slice(-tailChars);
      resolve({ ok: exitCode === 0 && !timedOut, outcome, exitCode, timedOut, ms: Math.round(performance.now() - started), tail });
    };
    const child = spawn('sh', ['-c', `${c.command} "$@"`, 'primacy', ...(c.args ?? [])], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...c.env },
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, c.timeoutMs);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => done(null, `could not start: ${err.message}`));
    child.on('close', (code, signal) => {
      if (timedOut) done(null, `killed after ${c.timeoutMs} ms`);
      else done(code, code !== null ? `exit ${code}` : `killed by ${signal ?? 'a signal'}`);
    });
  });
}
