/**
 * Background processes that outlive the CLI: each starts in its own session (setsid), with stdout
 * and stderr appended to its log. A pid counts as ours only while its command line names the sandbox
 * folder, so a pid the system has reused for something else is never signalled.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync } from 'node:fs';

export interface DetachedSpawn {
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

export function spawnDetached(options: DetachedSpawn): Promise<number> {
  appendFileSync(options.logFile, `\n=== ${new Date().toISOString()} primacy sandbox: starting ${options.command} ${options.args.join(' ')}\n`);
  const logFd = openSync(options.logFile, 'a');
  try {
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    return new Promise((resolve, reject) => {
      // Also swallows later 'error' events (a signal that cannot be delivered), which would otherwise throw.
      child.on('error', (error) => reject(new Error(`cannot start ${options.command}: ${error.message}`)));
      child.once('spawn', () => {
        child.unref();
        if (child.pid === undefined) reject(new Error(`cannot start ${options.command}: no pid`));
        else resolve(child.pid);
      });
    });
  } finally {
    closeSync(logFd);
  }
}

const HAVE_PROC = existsSync('/proc/self/cmdline');

/** Alive, not a zombie, and (where /proc tells) still the process we started under `marker`. */
export function isOurs(pid: number | null, marker: string): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!HAVE_PROC) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    // `<dir>/`, so that a sandbox in /tmp/sb never claims the processes of one in /tmp/sb2.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker.endsWith('/') ? marker : `${marker}/`);
  } catch {
    return false;
  }
}

/**
 * Gone or a zombie: the process has finished exiting. Its command line empties as soon as it starts
 * to exit (so `isOurs` is already false), some milliseconds before that.
 */
export function exited(pid: number): boolean {
  if (!HAVE_PROC) {
    try {
      process.kill(pid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code !== 'EPERM';
    }
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * SIGTERM to each pid, SIGKILL to those still there after `graceMs`, then waits up to `killWaitMs`.
 * Returns the pids still alive at the end (none, normally).
 */
export async function stopProcesses(pids: readonly number[], marker: string, graceMs: number, killWaitMs = 5_000): Promise<number[]> {
  let alive = pids.filter((pid) => isOurs(pid, marker));
  for (const pid of alive) {
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
  }
  const graceEnd = Date.now() + graceMs;
  while (alive.length > 0 && Date.now() < graceEnd) {
    await sleep(50);
    alive = alive.filter((pid) => isOurs(pid, marker));
  }
  for (const pid of alive) signal(pid, 'SIGKILL');
  const killEnd = Date.now() + killWaitMs;
  while (alive.length > 0 && Date.now() < killEnd) {
    await sleep(50);
    alive = alive.filter((pid) => isOurs(pid, marker));
  }
  return alive;
}

/** The last `lines` lines of a log file, for error messages. */
export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}
