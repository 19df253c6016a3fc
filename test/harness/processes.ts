import { spawn } from 'node:child_process';
import {
  accessSync,
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { errorMessage, withTimeout } from './wait.js';

// Earlier home of the wait helpers; kept so that imports from here keep working.
export { errorMessage, sleep, WaitAborted, waitFor, withTimeout } from './wait.js';

/** Everything the harness creates lives under one folder per test process with this prefix. */
export const TEMP_PREFIX = 'primacy-test-';

/** Set to 1 to keep the temp folder (data dirs and server logs) after cleanup, for post-mortems. */
const KEEP_ENV = 'PRIMACY_TEST_KEEP';
/** Written into a kept folder so that later runs do not reap it. */
const KEPT_MARKER = 'kept';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<ExitStatus>;
  isRunning(): boolean;
  isPaused(): boolean;
  pause(): void;
  resume(): void;
  /** SIGTERM (after SIGCONT when paused), then SIGKILL when it has not exited within the grace time. */
  terminate(graceMs?: number): Promise<ExitStatus>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<ExitStatus>;
  waitExit(timeoutMs: number): Promise<ExitStatus>;
}

const live = new Set<ManagedProcess>();
const cleanupHooks = new Set<() => unknown>();
let root: string | undefined;
let handlersInstalled = false;

/** Finds an executable on PATH or in the given fallback folders (Debian puts daemons in sbin). */
export function findExecutable(name: string, fallbackDirs: string[] = []): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...fallbackDirs].filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} not found on PATH or in ${fallbackDirs.join(', ')}; run scripts/setup.sh`);
}

export const SBIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** The last `lines` lines of a log file, for error messages. */
export function logTail(file: string, lines = 20): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd();
    return text.split('\n').slice(-lines).join('\n');
  } catch (error) {
    return `(no log at ${file}: ${errorMessage(error)})`;
  }
}

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields are counted after the command name, which may contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Kills servers left by an earlier test process that died without cleaning up (SIGKILL, OOM),
 * and removes its folder. A pid is killed only when its command line names that folder, so a
 * reused pid of an unrelated process is never touched; folders of live test processes are left alone.
 */
function reapLeftovers(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    try {
      const [ownerPid, ownerStart] = readFileSync(join(dir, 'owner'), 'utf8').trim().split(' ');
      const pid = Number(ownerPid);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      if (isAlive(pid) && procStartTime(pid) === ownerStart) continue;
      if (!existsSync('/proc/self/cmdline')) continue;
      const pids = existsSync(join(dir, 'pids')) ? readFileSync(join(dir, 'pids'), 'utf8').split('\n') : [];
      for (const line of pids) {
        const childPid = Number(line.split(' ')[0]);
        if (!Number.isInteger(childPid) || childPid <= 0) continue;
        try {
          const cmdline = readFileSync(`/proc/${childPid}/cmdline`, 'utf8');
          if (cmdline.includes(dir)) {
            signalQuietly(childPid, 'SIGCONT');
            signalQuietly(childPid, 'SIGKILL');
          }
        } catch {
          // not running
        }
      }
      if (!existsSync(join(dir, KEPT_MARKER))) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // no owner file yet, or it belongs to someone else: leave it
    }
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      cleanupNow();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** The temp root of this process: created on first use, after reaping leftovers of dead runs. */
export function harnessRoot(): string {
  if (root !== undefined) return root;
  installExitHandlers();
  reapLeftovers();
  root = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  writeFileSync(join(root, 'owner'), `${process.pid} ${procStartTime(process.pid) ?? ''}\n`);
  writeFileSync(join(root, 'pids'), '');
  return root;
}

/** A new folder under the temp root, e.g. `etcd-1`, `mariadb-2`. */
export async function harnessDir(kind: string): Promise<string> {
  const base = harnessRoot();
  for (let n = 1; ; n++) {
    const dir = join(base, `${kind}-${n}`);
    try {
      await mkdir(dir);
      return dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** Removes a folder the harness made, unless PRIMACY_TEST_KEEP=1 asks to keep it. */
export async function removeDir(dir: string): Promise<void> {
  if (process.env[KEEP_ENV] === '1') return;
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Registers something to close on cleanup (clients, connections, proxies). Returns the unregister. */
export function onCleanup(hook: () => unknown): () => void {
  installExitHandlers();
  cleanupHooks.add(hook);
  return () => cleanupHooks.delete(hook);
}

// Each child gets SIGKILL when this process dies, even by SIGKILL, so no server outlives its test.
let pdeathsigWrapper: string | null | undefined;
function deathSignalWrapper(): string | null {
  if (pdeathsigWrapper === undefined) {
    try {
      pdeathsigWrapper = findExecutable('setpriv', SBIN_DIRS);
    } catch {
      pdeathsigWrapper = null;
    }
  }
  return pdeathsigWrapper;
}

/**
 * SIGSTOP takes effect when each thread is next scheduled; on a loaded machine that can be after
 * kill() returns. Blocks (at most 2 s) until every thread of `pid` is stopped, so that a test's next
 * step really meets a frozen process.
 */
function awaitStopped(pid: number): void {
  const deadline = Date.now() + 2_000;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline) {
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      return; // gone, or no /proc: nothing to wait for
    }
    const stopped = threads.every((tid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        return state === 'T' || state === 't' || state === 'Z' || state === 'X';
      } catch {
        return true; // the thread has exited
      }
    });
    if (stopped) return;
    Atomics.wait(tick, 0, 0, 1);
  }
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function spawnManaged(options: SpawnOptions): Promise<ManagedProcess> {
  harnessRoot();
  const wrapper = deathSignalWrapper();
  const [command, args] =
    wrapper === null
      ? [options.command, options.args]
      : [wrapper, ['--pdeathsig', 'KILL', '--', options.command, ...options.args]];
  const logFd = openSync(options.logFile, 'a');
  appendFileSync(options.logFile, `\n=== ${new Date().toISOString()} harness: starting ${options.command} ${options.args.join(' ')}\n`);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  return new Promise((resolve, reject) => {
    // Also the listener for later errors, such as a signal that cannot be delivered.
    child.on('error', (error) => reject(new Error(`cannot start ${options.name}: ${error.message}`)));
    child.once('spawn', () => {
      const pid = child.pid;
      if (pid === undefined) {
        reject(new Error(`cannot start ${options.name}: no pid`));
        return;
      }
      let running = true;
      let paused = false;
      const exited = new Promise<ExitStatus>((resolveExit) => {
        child.once('exit', (code, signal) => {
          running = false;
          paused = false;
          live.delete(managed);
          resolveExit({ code, signal });
        });
      });
      const waitExit = (timeoutMs: number): Promise<ExitStatus> =>
        withTimeout(exited, timeoutMs, `${options.name} (pid ${pid}) to exit`);
      const managed: ManagedProcess = {
        name: options.name,
        pid,
        logFile: options.logFile,
        exited,
        isRunning: () => running,
        isPaused: () => paused,
        pause() {
          if (!running) throw new Error(`${options.name} is not running`);
          child.kill('SIGSTOP');
          awaitStopped(pid);
          paused = true;
        },
        resume() {
          if (!running) throw new Error(`${options.name} is not running`);
          child.kill('SIGCONT');
          paused = false;
        },
        async terminate(graceMs = 30_000) {
          if (!running) return exited;
          if (paused) managed.resume();
          child.kill('SIGTERM');
          try {
            return await waitExit(graceMs);
          } catch {
            return managed.kill();
          }
        },
        async kill() {
          if (!running) return exited;
          // SIGKILL also ends a stopped process; SIGCONT first keeps its state tidy for anyone watching.
          child.kill('SIGCONT');
          child.kill('SIGKILL');
          return waitExit(10_000);
        },
        waitExit,
      };
      live.add(managed);
      // A forgotten server must not keep the test process alive; the exit handler kills it.
      child.unref();
      appendFileSync(join(harnessRoot(), 'pids'), `${pid} ${options.name}\n`);
      resolve(managed);
    });
  });
}

/** Pids of every process the harness started that has not exited yet. */
export function livePids(): number[] {
  return [...live].map((p) => p.pid);
}

function cleanupNow(): void {
  for (const proc of live) {
    signalQuietly(proc.pid, 'SIGCONT');
    signalQuietly(proc.pid, 'SIGKILL');
  }
  if (root === undefined) return;
  try {
    if (process.env[KEEP_ENV] === '1') writeFileSync(join(root, KEPT_MARKER), '');
    else rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // best effort while exiting
  }
}

/**
 * Closes every client, connection and proxy, kills every started process (SIGKILL), and removes the
 * temp root. The harness can be used again afterwards. Safe to call more than once, e.g. from `after()`.
 */
export async function cleanupAll(): Promise<void> {
  const hooks = [...cleanupHooks];
  cleanupHooks.clear();
  await Promise.all(
    hooks.map((hook) => withTimeout(Promise.resolve().then(hook), 5_000, 'a cleanup hook').catch(() => undefined)),
  );
  await Promise.all([...live].map((proc) => proc.kill().catch(() => undefined)));
  const dir = root;
  root = undefined;
  if (dir === undefined) return;
  if (process.env[KEEP_ENV] === '1') {
    writeFileSync(join(dir, KEPT_MARKER), '');
    process.stderr.write(`harness: kept ${dir}\n`);
    return;
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

// In a test file, clean up after its last test even when the file forgets to: an open connection or
// client would otherwise keep the process, and with it every server, alive. Registered at import
// time, outside any test, so the hook belongs to the file's root test.
if (/\.test\.[cm]?[jt]sx?$/.test(process.argv[1] ?? '')) {
  const { after } = await import('node:test');
  after(cleanupAll);
}
