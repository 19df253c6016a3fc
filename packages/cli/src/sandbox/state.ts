/**
 * `sandbox.json`: everything `up` started, with every pid, so that `status`, `kill` and `down` work
 * from any later process. It is written before the first process starts and after each one, so a
 * crash halfway through `up` still leaves `down` able to stop what exists.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError, SandboxErrorCodes } from './errors.js';

export const STATE_FILE = 'sandbox.json';
export const CLUSTER = 'sandbox';
export const ETCD_ROOT = '/primacy';

/** How `up` started a process, so that `start` can start it again exactly so. */
export interface CommandLine {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
}

export interface ProcessRecord {
  /** null until the process has been started. */
  pid: number | null;
  readonly log: string;
  /** Absent in sandboxes made before `sandbox start` existed. */
  command?: CommandLine;
}

export interface NodeRecord {
  /** `db1`, `db2`, … */
  readonly name: string;
  readonly serverId: number;
  readonly port: number;
  readonly httpPort: number;
  readonly dir: string;
  readonly dataDir: string;
  readonly agentConfig: string;
  readonly mariadb: ProcessRecord;
  readonly agent: ProcessRecord;
}

export interface SandboxState {
  readonly version: 1;
  readonly cluster: string;
  /** Absolute; every process's command line names it, which is how a reused pid is told apart. */
  readonly dir: string;
  readonly createdAt: string;
  readonly semiSync: boolean;
  readonly basePort: number;
  readonly etcd: { readonly clientPort: number; readonly peerPort: number; readonly endpoint: string; readonly dataDir: string; readonly process: ProcessRecord };
  readonly nodes: readonly NodeRecord[];
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

export function writeState(state: SandboxState): void {
  const file = statePath(state.dir);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

/** The state of the sandbox in `dir`, or null when there is none. A damaged file is an error, never a guess. */
export function readState(dir: string): SandboxState | null {
  const file = statePath(dir);
  if (!existsSync(file)) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new SandboxError(SandboxErrorCodes.STATE_INVALID, `${file} is not valid JSON; stop its processes by hand, then remove ${dir}`, { cause });
  }
  const why = stateProblem(doc);
  if (why !== null) throw new SandboxError(SandboxErrorCodes.STATE_INVALID, `${file}: ${why}; stop its processes by hand, then remove ${dir}`);
  return doc as SandboxState;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function processProblem(p: unknown, where: string): string | null {
  if (!isRecord(p)) return `${where}: expected an object`;
  if (!(p['pid'] === null || (Number.isSafeInteger(p['pid']) && (p['pid'] as number) > 0))) return `${where}.pid: expected a pid or null`;
  if (typeof p['log'] !== 'string') return `${where}.log: expected a path`;
  const c = p['command'];
  if (c !== undefined && !(isRecord(c) && typeof c['command'] === 'string' && typeof c['cwd'] === 'string' && Array.isArray(c['args']) && c['args'].every((a) => typeof a === 'string'))) {
    return `${where}.command: expected { command, args, cwd }`;
  }
  return null;
}

function stateProblem(doc: unknown): string | null {
  if (!isRecord(doc)) return 'expected an object';
  if (doc['version'] !== 1) return `version: expected 1, got ${JSON.stringify(doc['version'])}`;
  for (const key of ['cluster', 'dir', 'createdAt'] as const) if (typeof doc[key] !== 'string') return `${key}: expected a string`;
  const etcd = doc['etcd'];
  if (!isRecord(etcd) || typeof etcd['endpoint'] !== 'string') return 'etcd: expected { endpoint, process, … }';
  const etcdProblem = processProblem(etcd['process'], 'etcd.process');
  if (etcdProblem !== null) return etcdProblem;
  const nodes = doc['nodes'];
  if (!Array.isArray(nodes)) return 'nodes: expected a list';
  for (const [i, node] of nodes.entries()) {
    if (!isRecord(node) || typeof node['name'] !== 'string' || typeof node['port'] !== 'number' || typeof node['httpPort'] !== 'number') {
      return `nodes[${i}]: expected { name, port, httpPort, … }`;
    }
    const problem = processProblem(node['mariadb'], `nodes[${i}].mariadb`) ?? processProblem(node['agent'], `nodes[${i}].agent`);
    if (problem !== null) return problem;
  }
  return null;
}

export interface RecordedProcess {
  /** `etcd`, `db1 mariadbd`, `db1 agent`. */
  readonly label: string;
  readonly kind: 'etcd' | 'mariadbd' | 'agent';
  readonly node: string | null;
  readonly record: ProcessRecord;
}

/** Every process of the sandbox, in the order `down` stops them: agents, then servers, then etcd. */
export function recordedProcesses(state: SandboxState): RecordedProcess[] {
  return [
    ...state.nodes.map((n) => ({ label: `${n.name} agent`, kind: 'agent' as const, node: n.name, record: n.agent })),
    ...state.nodes.map((n) => ({ label: `${n.name} mariadbd`, kind: 'mariadbd' as const, node: n.name, record: n.mariadb })),
    { label: 'etcd', kind: 'etcd' as const, node: null, record: state.etcd.process },
  ];
}

/** The node named `name`, or an error listing the sandbox's nodes. */
export function requireNode(state: SandboxState, name: string): NodeRecord {
  const node = state.nodes.find((n) => n.name === name);
  if (node === undefined) {
    throw new SandboxError(SandboxErrorCodes.UNKNOWN_NODE, `no node "${name}" in the sandbox; its nodes are ${state.nodes.map((n) => n.name).join(', ')}`);
  }
  return node;
}

/** Every port the sandbox took: etcd's two, then each node's server and agent HTTP. */
export function sandboxPorts(state: SandboxState): number[] {
  return [state.etcd.clientPort, state.etcd.peerPort, ...state.nodes.flatMap((n) => [n.port, n.httpPort])];
}
