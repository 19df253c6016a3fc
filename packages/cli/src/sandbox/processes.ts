/**
 * Background processes that outlive the CLI: each starts in its own session (setsid), with stdout
 * and stderr appended to its log. A pid counts as ours only while its command line names the sandbox
 * folder, so a pid the system has reused for something else is never signalled.
 */
import { spawn } from 'node:child_process';
import type { CommandLine, ProcessRecord } from './state.js';
import { appendFileSync, closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

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

/** Starts a process of the sandbox and records how, so that `sandbox start` can do it again the same way. */
export async function launch(record: ProcessRecord, line: CommandLine, env: NodeJS.ProcessEnv): Promise<number> {
  record.command = { command: line.command, args: [...line.args], cwd: line.cwd };
  record.pid = await spawnDetached({ command: line.command, args: line.args, cwd: line.cwd, logFile: record.log, env });
  return record.pid;
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
export async function stopProcesses(pids: readonly number[], marker: string, graceMs: number, killWaitMs = 5_000, isAlive: (pid: number) => boolean = (pid) => isOurs(pid, marker)): Promise<number[]> {
  let alive = pids.filter(isAlive);
  for (const pid of alive) {
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
  }
  const graceEnd = Date.now() + graceMs;
  while (alive.length > 0 && Date.now() < graceEnd) {
    await sleep(50);
    alive = alive.filter(isAlive);
  }
  for (const pid of alive) signal(pid, 'SIGKILL');
  const killEnd = Date.now() + killWaitMs;
  while (alive.length > 0 && Date.now() < killEnd) {
    await sleep(50);
    alive = alive.filter(isAlive);
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

export interface FoundProcess {
  readonly pid: number;
  /** The command line, arguments joined by spaces. */
  readonly cmdline: string;
}

/** This process and its ancestors: never "of the sandbox", even when started from inside its folder. */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

function procPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .map(Number);
  } catch {
    return [];
  }
}

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Every live process of the sandbox in `dir`, recorded or not (a server restarted by hand): its
 * command line names the folder, or it works in the folder (its cwd or an open file there) and
 * listens on one of the sandbox's `ports`. A `tail -f` of a log is neither. Needs /proc; elsewhere
 * the list is empty.
 */
export function sandboxProcesses(dir: string, ports: readonly number[]): FoundProcess[] {
  const skip = selfAndAncestors();
  const marker = dir.endsWith('/') ? dir : `${dir}/`;
  const sockets = new Set(listeners(ports).map((l) => l.inode));
  const found: FoundProcess[] = [];
  for (const pid of procPids()) {
    if (skip.has(pid) || exited(pid)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      continue;
    }
    if (cmdline === '') continue;
    if (cmdline.includes(marker) || worksInAndListens(pid, dir, sockets)) found.push({ pid, cmdline });
  }
  return found;
}

function worksInAndListens(pid: number, dir: string, sockets: ReadonlySet<string>): boolean {
  if (sockets.size === 0) return false;
  let inDir = false;
  let listens = false;
  try {
    inDir = inside(readlinkSync(`/proc/${pid}/cwd`), dir);
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (inside(target, dir)) inDir = true;
      const socket = /^socket:\[(\d+)\]$/.exec(target);
      if (socket && sockets.has(socket[1] ?? '')) listens = true;
      if (inDir && listens) return true;
    }
  } catch {
    // not ours to read
  }
  return false;
}

interface Listener {
  readonly port: number;
  readonly inode: string;
}

/** Listening TCP sockets (IPv4 and IPv6) on any of `ports`, from /proc/net/tcp*. */
function listeners(ports: readonly number[]): Listener[] {
  const wanted = new Set(ports);
  const out: Listener[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      // State 0A is LISTEN; field 9 the socket's inode.
      if (local === undefined || fields[3] !== '0A') continue;
      const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (wanted.has(port)) out.push({ port, inode: fields[9] ?? '' });
    }
  }
  return out;
}

/** The ports among `ports` that some socket listens on. */
export function listeningPorts(ports: readonly number[]): number[] {
  return [...new Set(listeners(ports).map((l) => l.port))].sort((a, b) => a - b);
}
