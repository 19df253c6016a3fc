/**
 * Runs real `primacy-agent` processes for integration tests, each with its own YAML config and
 * password files, managed by the harness so that none outlives its test.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ADMIN, REPL, freePort, type MariaDbServer } from '../harness/index.js';
import { harnessDir, spawnManaged, waitFor, WaitAborted, type ManagedProcess } from '../harness/processes.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const agentMain = join(repoRoot, 'packages/agent/src/main.ts');

export interface AgentOptions {
  readonly cluster: string;
  readonly node: string;
  readonly etcd: readonly string[];
  readonly db: MariaDbServer;
  /** Where the agent reaches its server, when a proxy sits in between. */
  readonly dbPort?: number;
  /** Deep-merged into the generated config. */
  readonly config?: Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
}

export interface AgentProcess {
  readonly node: string;
  readonly url: string;
  readonly configFile: string;
  readonly process: ManagedProcess;
  /** The agent's log lines, parsed. */
  logLines(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  pause(): void;
  resume(): void;
  restart(): Promise<AgentProcess>;
}

export function agentConfig(o: AgentOptions, dir: string, httpPort: number): Record<string, unknown> {
  writeFileSync(join(dir, 'mysql.pw'), ADMIN.password);
  writeFileSync(join(dir, 'repl.pw'), REPL.password);
  const base: Record<string, unknown> = {
    cluster: o.cluster,
    node: o.node,
    etcd: { endpoints: [...o.etcd], dialTimeoutMs: 1000 },
    mysql: { host: o.db.host, port: o.dbPort ?? o.db.port, user: ADMIN.user, password: { file: 'mysql.pw' }, flavor: 'mariadb', advertisePort: o.db.port },
    replication: { user: REPL.user, password: { file: 'repl.pw' } },
    http: { host: '127.0.0.1', port: httpPort },
    log: { level: 'debug' },
  };
  return merge(base, o.config ?? {});
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? merge(prev, v) : v;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function spawnAgent(args: string[], logFile: string, env?: NodeJS.ProcessEnv, name = 'primacy-agent'): Promise<ManagedProcess> {
  return spawnManaged({
    name,
    command: process.execPath,
    args: ['--conditions=@primacy/source', '--import', 'tsx', agentMain, ...args],
    logFile,
    cwd: repoRoot,
    env: { ...process.env, ...env },
  });
}

export async function startAgent(o: AgentOptions): Promise<AgentProcess> {
  const dir = await harnessDir(`agent-${o.node}`);
  const httpPort = await freePort();
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(configFile, stringify(agentConfig(o, dir, httpPort)));
  return launch(o, dir, configFile, httpPort);
}

async function launch(o: AgentOptions, dir: string, configFile: string, httpPort: number): Promise<AgentProcess> {
  const logFile = join(dir, 'agent.log');
  const proc = await spawnAgent(['--config', configFile], logFile, o.env, `agent-${o.node}`);
  const url = `http://127.0.0.1:${httpPort}`;
  await waitFor(`agent ${o.node} HTTP API`, async () => {
    if (!proc.isRunning()) throw new WaitAborted(`agent ${o.node} exited: ${readTail(logFile)}`);
    return fetch(`${url}/status`).then((r) => (r.ok ? true : undefined), () => undefined);
  }, { timeoutMs: 30_000 }); // tsx compiles the agent at start: slow on a loaded machine
  const handle: AgentProcess = {
    node: o.node,
    url,
    configFile,
    process: proc,
    logLines: () => parseLines(logFile),
    stop: async () => void (await proc.terminate(10_000)),
    kill: async () => void (await proc.kill()),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    restart: async () => {
      await proc.terminate(10_000);
      return launch(o, dir, configFile, httpPort);
    },
  };
  return handle;
}


function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

function parseLines(file: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a half-written last line
    }
  }
  return out;
}
