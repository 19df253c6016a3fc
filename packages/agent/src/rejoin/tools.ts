/**
 * Running the server's own client programs (mariadb-binlog, mariadb, mariadb-dump) against a node:
 * credentials go in a private option file, never on the command line where `ps` shows them; each run
 * is bounded in time and killed when it outlives its bound; failures come back as one line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Flavor } from '@primacy/common';
import type { Endpoint } from '../node/driver.js';

export interface ClientPrograms {
  /** Reads binary logs: mariadb-binlog (MySQL: mysqlbinlog). */
  readonly binlog: string;
  /** Runs SQL from stdin: mariadb (MySQL: mysql). */
  readonly client: string;
  /** Logical dump: mariadb-dump (MySQL: mysqldump). */
  readonly dump: string;
}

export function defaultPrograms(flavor: Flavor): ClientPrograms {
  return flavor === 'mariadb'
    ? { binlog: 'mariadb-binlog', client: 'mariadb', dump: 'mariadb-dump' }
    : { binlog: 'mysqlbinlog', client: 'mysql', dump: 'mysqldump' };
}

function optionValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Calls `use` with a `--defaults-extra-file=…` argument naming a 0600 file with the endpoint's
 * connection settings, and removes the file afterwards. The argument must come first on a command line.
 */
export async function withClientOptions<T>(endpoint: Endpoint, use: (arg: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'primacy-client-'));
  try {
    const file = join(dir, 'client.cnf');
    const lines = ['[client]', `user=${optionValue(endpoint.user)}`, `password=${optionValue(endpoint.password)}`];
    if (endpoint.socket) lines.push(`socket=${optionValue(endpoint.socket)}`, 'protocol=socket');
    else lines.push(`host=${optionValue(endpoint.host)}`, `port=${endpoint.port}`, 'protocol=tcp');
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    return await use(`--defaults-extra-file=${file}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ToolRun {
  readonly program: string;
  /** Null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** The last lines of stderr, joined with ' | '. */
  readonly stderrTail: string;
}

const TAIL_CHARS = 600;

/** `mariadb-binlog exit 1: ERROR: …` in one line, for errors. */
export function describeRun(run: ToolRun, timeoutMs?: number): string {
  const how = run.timedOut
    ? `killed after ${timeoutMs ?? '?'} ms`
    : run.code !== null
      ? `exit ${run.code}`
      : `killed by ${run.signal ?? 'a signal'}`;
  return `${run.program} ${how}${run.stderrTail ? `: ${run.stderrTail}` : ''}`;
}

export function succeeded(run: ToolRun): boolean {
  return run.code === 0 && !run.timedOut;
}

interface Started {
  readonly child: ChildProcess;
  readonly done: Promise<ToolRun>;
  kill(): void;
}

function start(program: string, args: readonly string[], stdin: 'ignore' | 'pipe', stdout: 'ignore' | 'pipe', timeoutMs: number): Started {
  let stderr = '';
  let timedOut = false;
  const child = spawn(program, [...args], { stdio: [stdin, stdout, 'pipe'] });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4 * TAIL_CHARS);
  });
  const done = new Promise<ToolRun>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, extra = ''): void => {
      clearTimeout(timer);
      const tail = `${stderr}${extra}`.trim().split('\n').filter((l) => l.trim() !== '').slice(-3).join(' | ').slice(-TAIL_CHARS);
      resolve({ program, code, signal, timedOut, stderrTail: tail });
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${program} not found on PATH; install the server's client programs` : err.message;
      finish(127, null, `\n${why}`);
    });
    child.on('close', (code, signal) => finish(code, signal));
  });
  return { child, done, kill };
}

/** Runs one program to its end (or its time bound); `onStdout` sees its output, which is discarded otherwise. */
export function runTool(program: string, args: readonly string[], timeoutMs: number, onStdout?: (chunk: Buffer) => void): Promise<ToolRun> {
  const run = start(program, args, 'ignore', onStdout ? 'pipe' : 'ignore', timeoutMs);
  if (onStdout) run.child.stdout?.on('data', onStdout);
  return run.done;
}

/** Splits a stream of chunks into lines for `onLine`; `end()` delivers the last, unterminated one. */
export class LineSplitter {
  #carry = '';
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    const lines = (this.#carry + chunk.toString('utf8')).split('\n');
    this.#carry = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
  }

  end(): void {
    if (this.#carry !== '') this.onLine(this.#carry);
    this.#carry = '';
  }
}

export interface PipeRun {
  readonly producer: ToolRun;
  readonly consumer: ToolRun;
  /** Bytes that went from the producer to the consumer. */
  readonly bytes: number;
}

/**
 * `producer | consumer`, each with its own arguments, under one time bound. `onChunk` sees every
 * chunk on its way (for progress). When either side fails the other is killed at once: a consumer
 * must never commit the rest of a stream whose source broke off.
 */
export function runPipe(
  producer: { program: string; args: readonly string[] },
  consumer: { program: string; args: readonly string[] },
  timeoutMs: number,
  onChunk: (chunk: Buffer, bytes: number) => void = () => undefined,
): Promise<PipeRun> {
  const p = start(producer.program, producer.args, 'ignore', 'pipe', timeoutMs);
  const c = start(consumer.program, consumer.args, 'pipe', 'ignore', timeoutMs);
  let bytes = 0;
  const out = p.child.stdout;
  const into = c.child.stdin;
  // A consumer that exits early closes its stdin; writing on would raise EPIPE.
  into?.on('error', () => undefined);
  out?.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    try {
      onChunk(chunk, bytes);
    } catch {
      // Progress is advisory; a throwing callback must not break the copy.
    }
    if (into && !into.write(chunk)) {
      out.pause();
      into.once('drain', () => out.resume());
    }
  });
  const producerDone = p.done.then((run) => {
    if (succeeded(run)) into?.end();
    else c.kill();
    return run;
  });
  const consumerDone = c.done.then((run) => {
    if (!succeeded(run)) p.kill();
    return run;
  });
  return Promise.all([producerDone, consumerDone]).then(([producerRun, consumerRun]) => ({ producer: producerRun, consumer: consumerRun, bytes }));
}
