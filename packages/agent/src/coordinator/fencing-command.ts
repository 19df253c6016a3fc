/**
 * The operator's fencing command (STONITH), run by the coordinator for an old primary it cannot
 * prove fenced otherwise. It runs under `sh -c` in a process group of its own, with the old
 * primary in its environment, and is killed (the whole group) when it outlives its timeout. Exit 0
 * within the timeout is a proof; anything else is not.
 */
import { spawn } from 'node:child_process';

export interface FencingTarget {
  readonly cluster: string;
  readonly node: string;
  readonly host: string;
  readonly port: number;
  /** The old primary's epoch, and the epoch the failover promotes to. */
  readonly epoch: number;
  readonly failoverEpoch: number;
}

export interface FencingRun {
  readonly ok: boolean;
  /** `exit 0`, `exit 3`, `killed after 10000 ms`, `could not start: …` */
  readonly outcome: string;
  readonly ms: number;
  /** The last lines of its stdout and stderr together. */
  readonly tail: string;
}

const TAIL_CHARS = 400;

export function runFencingCommand(command: string, target: FencingTarget, timeoutMs: number): Promise<FencingRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4 * TAIL_CHARS);
    };
    const done = (ok: boolean, outcome: string): void => {
      clearTimeout(timer);
      const tail = output.trim().split('\n').slice(-5).join(' | ').slice(-TAIL_CHARS);
      resolve({ ok, outcome, ms: Math.round(performance.now() - started), tail });
    };
    const child = spawn('sh', ['-c', command], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PRIMACY_CLUSTER: target.cluster,
        PRIMACY_NODE: target.node,
        PRIMACY_HOST: target.host,
        PRIMACY_PORT: String(target.port),
        PRIMACY_EPOCH: String(target.epoch),
        PRIMACY_FAILOVER_EPOCH: String(target.failoverEpoch),
      },
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => done(false, `could not start: ${err.message}`));
    child.on('close', (code, signal) => {
      if (timedOut) done(false, `killed after ${timeoutMs} ms`);
      else if (code === 0) done(true, 'exit 0');
      else done(false, code !== null ? `exit ${code}` : `killed by ${signal ?? 'a signal'}`);
    });
  });
}
