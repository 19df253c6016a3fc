/**
 * The sandbox's cluster as etcd has it, decoded and rendered by the CLI's own status code, and the
 * sandbox's own tables: its processes, and how to connect to it.
 */
import { isAbsolute, join, relative } from 'node:path';
import { clusterKeys } from '@primacy/common';
import { decodeCluster, type ClusterView, type RawCluster, type RawKv } from '../cluster.js';
import { renderStatus, statusModel } from '../status.js';
import type { Style } from '../io.js';
import { APP_PASSWORD_FILE } from './agent.js';
import { etcdRange } from './etcd.js';
import { APP_USER, APP_DATABASE } from './mariadb.js';
import { isOurs } from './processes.js';
import { CLUSTER, ETCD_ROOT, type SandboxState } from './state.js';

export const KEYS = clusterKeys(CLUSTER, ETCD_ROOT);

function byCreateRevision(a: RawKv, b: RawKv): number {
  const d = BigInt(a.createRevision) - BigInt(b.createRevision);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** Every key of the sandbox's cluster in one read, sorted out the way the CLI's decoder expects. */
export async function readRawCluster(endpoint: string): Promise<RawCluster> {
  const { revision, kvs } = await etcdRange(endpoint, KEYS.prefix);
  const exact = (key: string) => kvs.find((kv) => kv.key === key) ?? null;
  const under = (prefix: string) => kvs.filter((kv) => kv.key.startsWith(prefix));
  const ops = under(KEYS.opsPrefix).sort((a, b) => a.key.localeCompare(b.key));
  return {
    revision,
    keyCount: kvs.length,
    members: under(KEYS.membersPrefix),
    election: under(`${KEYS.election}/`).sort(byCreateRevision),
    primary: exact(KEYS.primary),
    epoch: exact(KEYS.epoch),
    config: exact(KEYS.config),
    durability: exact(KEYS.durability),
    lastOp: ops[ops.length - 1] ?? null,
    requests: under(KEYS.requestsPrefix),
  };
}

export async function readCluster(endpoint: string): Promise<ClusterView> {
  return decodeCluster(CLUSTER, KEYS, await readRawCluster(endpoint));
}

export function renderCluster(view: ClusterView, style: Style): string {
  const now = Date.now();
  return renderStatus(statusModel(view, now), now, style).join('\n');
}

function table(rows: readonly (readonly string[])[], indent = '  '): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd()).join('\n');
}

export function renderProcesses(state: SandboxState): string {
  const rows: string[][] = [['PROCESS', 'PID', 'STATE', 'LOG']];
  const row = (label: string, record: { pid: number | null; log: string }) =>
    rows.push([label, record.pid === null ? '-' : String(record.pid), isOurs(record.pid, state.dir) ? 'alive' : record.pid === null ? 'not started' : 'dead', displayPath(record.log)]);
  row('etcd', state.etcd.process);
  for (const node of state.nodes) {
    row(`${node.name} mariadbd`, node.mariadb);
    row(`${node.name} agent`, node.agent);
  }
  return table(rows, '');
}

/** A path as the user can type it from the current folder. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** `--dir X` when the sandbox is not in the default folder of the current directory. */
export function dirFlag(dir: string): string {
  return dir === join(process.cwd(), '.primacy-sandbox') ? '' : ` --dir ${displayPath(dir)}`;
}

/** How to connect, watch and break the sandbox: printed after `up`. */
export function renderHowTo(state: SandboxState, cli: string, primary: string | null): string {
  const password = `"$(cat ${displayPath(join(state.dir, APP_PASSWORD_FILE))})"`;
  const connect = table(state.nodes.map((n) => [n.name, `mariadb -h127.0.0.1 -P${n.port} -u${APP_USER} -p${password} ${APP_DATABASE}`]));
  const agents = table(
    state.nodes.map((n) => {
      const url = `http://127.0.0.1:${n.httpPort}`;
      return [n.name, `${url}/status  ${url}/primary  ${url}/metrics`];
    }),
  );
  const flag = dirFlag(state.dir);
  return [
    'Connect as the application user (read_only binds it, so writes work on the primary only):',
    connect,
    '',
    'Ask the agents:',
    agents,
    '',
    'Watch the cluster (from the repository root):',
    `  PRIMACY_ETCD=${state.etcd.endpoint} PRIMACY_CLUSTER=${CLUSTER} ${cli} status --watch`,
    '',
    'Kill the primary (add --agent to kill its agent instead), then watch a replica take over:',
    `  ${cli} sandbox kill ${primary ?? state.nodes[0]?.name ?? 'db1'}${flag}`,
    '',
    'Processes and cluster:',
    `  ${cli} sandbox status${flag}`,
    'Stop everything and remove the folder:',
    `  ${cli} sandbox down${flag}`,
  ].join('\n');
}
