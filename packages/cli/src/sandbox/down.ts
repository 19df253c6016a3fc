/**
 * `primacy sandbox down`: stops what `sandbox.json` records (agents first, so that none reacts to its
 * server going away, then the servers, then etcd), then every other process of the sandbox's folder
 * (one restarted by hand), checks that none is alive and no port of the sandbox is still held, and
 * removes the folder unless `--keep`. With nothing to stop it says so and succeeds.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { SandboxCommand } from './args.js';
import { SandboxError, SandboxErrorCodes } from './errors.js';
import { seconds, type Output } from './output.js';
import { exited, isOurs, listeningPorts, sandboxProcesses, stopProcesses } from './processes.js';
import { readState, recordedProcesses, sandboxPorts, writeState, type RecordedProcess } from './state.js';
import { displayPath } from './view.js';

/** SIGTERM grace before SIGKILL: agents leave etcd cleanly, servers flush InnoDB, etcd syncs its WAL. */
const GRACE_MS: Record<RecordedProcess['kind'], number> = { agent: 5_000, mariadbd: 20_000, etcd: 5_000 };

export async function down(cmd: Extract<SandboxCommand, { kind: 'down' }>, out: Output): Promise<number> {
  const started = Date.now();
  const state = readState(cmd.dir);
  if (state === null) {
    if (existsSync(cmd.dir)) {
      throw new SandboxError(SandboxErrorCodes.NOT_FOUND, `${cmd.dir} is not a sandbox (it has no sandbox.json); left as it is`);
    }
    out.say(`No sandbox in ${displayPath(cmd.dir)}/; nothing to stop.`);
    return 0;
  }
  const processes = recordedProcesses(state);
  let stopped = 0;
  for (const kind of ['agent', 'mariadbd', 'etcd'] as const) {
    const pids = processes.filter((p) => p.kind === kind && isOurs(p.record.pid, state.dir)).map((p) => p.record.pid as number);
    stopped += pids.length;
    await stopProcesses(pids, state.dir, GRACE_MS[kind]);
  }
  const alive = processes.filter((p) => isOurs(p.record.pid, state.dir));
  if (alive.length > 0) {
    throw new SandboxError(
      SandboxErrorCodes.STOP_FAILED,
      `still running after SIGKILL: ${alive.map((p) => `${p.label} (pid ${p.record.pid})`).join(', ')}; ${cmd.dir} is kept`,
    );
  }
  // Processes no pid records: a server or agent started again by hand from the sandbox's folder.
  const strays = sandboxProcesses(state.dir, sandboxPorts(state));
  for (const kind of ['agent', 'mariadbd', 'etcd'] as const) {
    const pids = strays.filter((p) => strayKind(p.cmdline) === kind).map((p) => p.pid);
    stopped += pids.length;
    await stopProcesses(pids, state.dir, GRACE_MS[kind], 5_000, (pid) => !exited(pid));
  }
  const left = sandboxProcesses(state.dir, sandboxPorts(state));
  if (left.length > 0) {
    throw new SandboxError(SandboxErrorCodes.STOP_FAILED, `still running after SIGKILL: ${left.map((p) => `pid ${p.pid} (${p.cmdline.slice(0, 60)})`).join(', ')}; ${cmd.dir} is kept`);
  }
  // Whatever still listens on the sandbox's ports is not the sandbox's (nothing left names its folder): say so, kill nothing.
  const held = listeningPorts(sandboxPorts(state));
  if (held.length > 0) {
    throw new SandboxError(
      SandboxErrorCodes.STOP_FAILED,
      `the sandbox's processes are stopped, but port${held.length === 1 ? '' : 's'} ${held.join(', ')} ${held.length === 1 ? 'is' : 'are'} still in use by a process outside ${cmd.dir}; find it with \`ss -ltnp\`; ${cmd.dir} is kept`,
    );
  }
  if (cmd.keep) {
    for (const p of processes) p.record.pid = null;
    writeState(state);
    out.say(`Sandbox stopped in ${seconds(Date.now() - started)} (${stopped} processes); data kept in ${displayPath(cmd.dir)}/.`);
    return 0;
  }
  await rm(cmd.dir, { recursive: true, force: true, maxRetries: 3 });
  out.say(`Sandbox stopped in ${seconds(Date.now() - started)} (${stopped} processes) and ${displayPath(cmd.dir)}/ removed.`);
  return 0;
}

/** What a process found by its folder is, from its command line; the agents (node) are the rest. */
function strayKind(cmdline: string): RecordedProcess['kind'] {
  const program = cmdline.split(' ')[0] ?? '';
  if (/(^|\/)(mariadbd|mysqld)$/.test(program)) return 'mariadbd';
  if (/(^|\/)etcd$/.test(program)) return 'etcd';
  return 'agent';
}

