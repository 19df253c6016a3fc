/**
 * `primacy sandbox up`: etcd, N MariaDB servers and N agents in the background, under one folder,
 * then waits (bounded) until the cluster has a ready primary and every replica replicates from it.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_PASSWORD_FILE, agentCommand, agentEnv, APP_PASSWORD_FILE, REPL_PASSWORD_FILE, requireCheckout, writeAgentConfig } from './agent.js';
import type { SandboxCommand } from './args.js';
import { ensureBinaries } from './debian.js';
import { etcdArgs, etcdHealthy } from './etcd.js';
import { SandboxError, SandboxErrorCodes, errorLine } from './errors.js';
import { acceptsConnections, ADMIN_USER, APP_USER, copyTemplate, installTemplate, REPL_USER, serverArgs, type Users } from './mariadb.js';
import { childEnv, seconds, type Output } from './output.js';
import { LOOPBACK, reservePorts } from './ports.js';
import { isOurs, launch, logTail, sleep } from './processes.js';
import { CLUSTER, readState, recordedProcesses, STATE_FILE, writeState, type NodeRecord, type ProcessRecord, type SandboxState } from './state.js';
import { cliCommand, printReport } from './status.js';
import { dirFlag, displayPath, readCluster } from './view.js';

export const UP_TIMEOUT_MS = 60_000;

type UpCommand = Extract<SandboxCommand, { kind: 'up' }>;

function password(): string {
  return randomBytes(18).toString('base64url');
}

function writeSecret(dir: string, file: string, value: string): void {
  const path = join(dir, file);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

function newState(cmd: UpCommand, basePort: number): SandboxState {
  const dir = cmd.dir;
  const nodes: NodeRecord[] = Array.from({ length: cmd.nodes }, (_, i) => {
    const name = `db${i + 1}`;
    const nodeDir = join(dir, name);
    return {
      name,
      serverId: i + 1,
      port: basePort + 2 + i,
      httpPort: basePort + 2 + cmd.nodes + i,
      dir: nodeDir,
      dataDir: join(nodeDir, 'data'),
      agentConfig: join(nodeDir, 'agent.yaml'),
      mariadb: { pid: null, log: join(nodeDir, 'mariadbd.log') },
      agent: { pid: null, log: join(nodeDir, 'agent.log') },
    };
  });
  return {
    version: 1,
    cluster: CLUSTER,
    dir,
    createdAt: new Date().toISOString(),
    semiSync: cmd.semiSync,
    basePort,
    etcd: {
      clientPort: basePort,
      peerPort: basePort + 1,
      endpoint: `http://${LOOPBACK}:${basePort}`,
      dataDir: join(dir, 'etcd', 'data'),
      process: { pid: null, log: join(dir, 'etcd', 'etcd.log') },
    },
    nodes,
  };
}

interface Wait<T> {
  /** What is awaited, as in "waiting for …". */
  readonly what: string;
  readonly deadline: number;
  /** The value once there; undefined (or a throw) to ask again. */
  readonly check: () => Promise<T | undefined>;
  /** Processes whose exit means the wait is over. */
  readonly watched: () => ReadonlyArray<{ readonly label: string; readonly record: ProcessRecord }>;
  /** The log to show on a timeout. */
  readonly log: () => string;
}

/** Polls `check` until the deadline, failing at once when a watched process has exited; the error carries a log's tail. */
async function waitUntil<T>(state: SandboxState, wait: Wait<T>): Promise<T> {
  for (;;) {
    const dead = wait.watched().find((p) => !isOurs(p.record.pid, state.dir));
    if (dead !== undefined) {
      throw new SandboxError(SandboxErrorCodes.START_FAILED, `${dead.label} exited while waiting for ${wait.what}; last lines of ${displayPath(dead.record.log)}:`, {
        detail: logTail(dead.record.log),
      });
    }
    const value = await wait.check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() >= wait.deadline) {
      const log = wait.log();
      throw new SandboxError(SandboxErrorCodes.START_FAILED, `timed out after ${UP_TIMEOUT_MS / 1000} s waiting for ${wait.what}; last lines of ${displayPath(log)}:`, {
        detail: logTail(log),
      });
    }
    await sleep(100);
  }
}

/** A sandbox already in `dir`: reports it when it started every process and one of them runs; refuses a half-started or stopped one. */
function existing(dir: string): SandboxState | null {
  const state = readState(dir);
  if (state !== null) {
    const processes = recordedProcesses(state);
    const remove = `remove it with \`${cliCommand()} sandbox down${dirFlag(dir)}\`, then run up again`;
    // A pid never recorded: an earlier up failed halfway (its logs say why) and left, say, etcd alone running.
    if (processes.some((p) => p.record.pid === null)) {
      throw new SandboxError(SandboxErrorCodes.STOPPED, `${dir} holds a sandbox that did not finish starting; ${remove}`);
    }
    if (processes.some((p) => isOurs(p.record.pid, state.dir))) return state;
    throw new SandboxError(SandboxErrorCodes.STOPPED, `${dir} holds a sandbox whose processes have all stopped; ${remove}`);
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new SandboxError(SandboxErrorCodes.DIR_TAKEN, `${dir} exists and is not a sandbox (no ${STATE_FILE}); pick another --dir`);
  }
  return null;
}

export async function up(cmd: UpCommand, out: Output): Promise<number> {
  requireCheckout();
  const started = Date.now();
  const running = existing(cmd.dir);
  if (running !== null) {
    out.say(`A sandbox is already running in ${displayPath(cmd.dir)}/.\n`);
    await printReport(running, out, { howTo: true });
    return 0;
  }
  const binaries = await ensureBinaries(cmd.install, out.env, out.progress);
  const basePort = await reservePorts(cmd.basePort, 2 + 2 * cmd.nodes);
  const state = newState(cmd, basePort);

  mkdirSync(cmd.dir, { recursive: true });
  for (const dir of [join(cmd.dir, 'etcd'), ...state.nodes.map((n) => n.dir)]) mkdirSync(dir, { recursive: true });
  const users: Users = {
    admin: { user: ADMIN_USER, password: password() },
    repl: { user: REPL_USER, password: password() },
    app: { user: APP_USER, password: password() },
  };
  writeSecret(cmd.dir, ADMIN_PASSWORD_FILE, users.admin.password);
  writeSecret(cmd.dir, REPL_PASSWORD_FILE, users.repl.password);
  writeSecret(cmd.dir, APP_PASSWORD_FILE, users.app.password);
  writeState(state);

  try {
    await start(state, binaries, users, out, Date.now() + UP_TIMEOUT_MS);
  } catch (err) {
    const error = err instanceof SandboxError ? err : new SandboxError(SandboxErrorCodes.START_FAILED, errorLine(err), { cause: err });
    throw new SandboxError(error.code, error.message, {
      detail: [
        ...(error.detail === undefined ? [] : [error.detail.replace(/^/gm, '  | ')]),
        `The sandbox is left as it is, for a look at its logs in ${displayPath(cmd.dir)}; remove it with \`${cliCommand()} sandbox down${dirFlag(cmd.dir)}\`.`,
      ].join('\n'),
      cause: err,
    });
  }
  out.say(`Sandbox up in ${seconds(Date.now() - started)}: ${cmd.nodes} MariaDB node${cmd.nodes === 1 ? '' : 's'}${cmd.semiSync ? ' with semi-sync' : ''}, etcd at ${state.etcd.endpoint}, state in ${displayPath(cmd.dir)}/.\n`);
  await printReport(state, out, { howTo: true });
  return 0;
}

async function start(state: SandboxState, binaries: { etcd: string; mariadbd: string; installDb: string }, users: Users, out: Output, deadline: number): Promise<void> {
  const env = childEnv(out.env, () => false);
  // etcd reads ETCD_* variables as flags.
  const etcdEnv = childEnv(out.env, (name) => name.startsWith('ETCD_'));
  out.progress(`starting etcd on ${state.etcd.endpoint}`);
  await launch(state.etcd.process, { command: binaries.etcd, args: etcdArgs(state), cwd: join(state.dir, 'etcd') }, etcdEnv);
  writeState(state);

  out.progress(`initialising ${state.nodes.length} MariaDB data dirs (mariadb-install-db)`);
  const template = await installTemplate(binaries.installDb, state.dir, users, Math.max(deadline - Date.now(), 1_000));
  await Promise.all(state.nodes.map((node) => copyTemplate(template, node)));
  await rm(join(state.dir, 'template'), { recursive: true, force: true });

  out.progress(`starting MariaDB on ports ${state.nodes.map((n) => n.port).join(', ')}`);
  for (const node of state.nodes) {
    await launch(node.mariadb, { command: binaries.mariadbd, args: serverArgs(state, node), cwd: node.dir }, env);
    writeState(state);
  }

  await waitUntil(state, {
    what: 'etcd to answer',
    deadline,
    check: async () => ((await etcdHealthy(state.etcd.endpoint)) ? true : undefined),
    watched: () => [{ label: 'etcd', record: state.etcd.process }],
    log: () => state.etcd.process.log,
  });
  for (const node of state.nodes) {
    await waitUntil(state, {
      what: `${node.name} to accept connections on port ${node.port}`,
      deadline,
      check: async () => ((await acceptsConnections(node.port)) ? true : undefined),
      watched: () => [{ label: `${node.name} mariadbd`, record: node.mariadb }],
      log: () => node.mariadb.log,
    });
  }

  const from = agentCommand('').from === 'dist' ? 'compiled' : 'from source via tsx';
  out.progress(`starting ${state.nodes.length} agents (${from}), HTTP on ports ${state.nodes.map((n) => n.httpPort).join(', ')}`);
  for (const node of state.nodes) {
    writeAgentConfig(state, node);
    const command = agentCommand(node.agentConfig);
    await launch(node.agent, command, agentEnv(out.env));
    writeState(state);
  }

  const everything = () => recordedProcesses(state);
  const bootstrapLog = state.nodes[0]?.agent.log ?? state.etcd.process.log;
  out.progress(`waiting for the agents to make ${state.nodes[0]?.name ?? 'db1'} the primary`);
  const primary = await waitUntil(state, {
    what: 'a ready primary',
    deadline,
    check: async () => {
      const view = await readCluster(state.etcd.endpoint);
      return view.primary?.state === 'ready' ? view.primary : undefined;
    },
    watched: everything,
    log: () => bootstrapLog,
  });
  let lagging: NodeRecord | undefined;
  await waitUntil(state, {
    what: `every replica to replicate from ${primary.node}`,
    deadline,
    check: async () => {
      const view = await readCluster(state.etcd.endpoint);
      lagging = state.nodes.find((node) => {
        if (node.name === primary.node) return false;
        const r = view.members.get(node.name)?.server?.replication;
        return !(r && r.sourcePort === primary.port && r.ioState === 'running' && r.sqlRunning);
      });
      return lagging === undefined ? true : undefined;
    },
    watched: everything,
    log: () => lagging?.agent.log ?? bootstrapLog,
  });
}
