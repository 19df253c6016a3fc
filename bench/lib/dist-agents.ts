/**
 * Agents run from the compiled output (`node packages/agent/dist/main.js --config …`), as a packaged
 * install would run them, instead of through the tsx loader that the test suite uses. Mirrors
 * `startAgent` and `startCluster` of test/support, which stay untouched.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { MemberStateSchema, PrimarySchema, clusterKeys, type ClusterKeys, type MemberState, type Primary } from '@primacy/common';
import { APP, freePort, startMariaDb, waitFor, type EtcdCluster, type MariaDbCluster, type MariaDbServer } from '../../test/harness/index.js';
import { harnessDir, spawnManaged, WaitAborted } from '../../test/harness/processes.js';
import { agentConfig, type AgentOptions, type AgentProcess } from '../../test/support/agents.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const distAgentMain = join(repoRoot, 'packages/agent/dist/main.js');

/** `nodeArgs` go before the script, e.g. `--max-semi-space-size=2`. */
export async function startDistAgent(o: AgentOptions, nodeArgs: readonly string[] = []): Promise<AgentProcess> {
  if (!existsSync(distAgentMain)) throw new Error(`${distAgentMain} is missing: run pnpm exec tsc -b first`);
  const dir = await harnessDir(`dist-agent-${o.node}`);
  const httpPort = await freePort();
  const configFile = join(dir, 'agent.yaml');
  // JSON is YAML, so the generated config needs no YAML library here.
  writeFileSync(configFile, JSON.stringify(agentConfig(o, dir, httpPort), null, 2));
  return launch(o, nodeArgs, configFile, join(dir, 'agent.log'), `http://127.0.0.1:${httpPort}`);
}

async function launch(o: AgentOptions, nodeArgs: readonly string[], configFile: string, logFile: string, url: string): Promise<AgentProcess> {
  // No NODE_OPTIONS from this (tsx-loaded) process: the agent must run plain compiled JavaScript.
  const { NODE_OPTIONS: _dropped, ...env } = { ...process.env, ...o.env };
  const proc = await spawnManaged({
    name: `dist-agent-${o.node}`,
    command: process.execPath,
    args: [...nodeArgs, distAgentMain, '--config', configFile],
    logFile,
    cwd: repoRoot,
    env,
  });
  await waitFor(`agent ${o.node} HTTP API`, async () => {
    if (!proc.isRunning()) throw new WaitAborted(`agent ${o.node} exited: ${readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n')}`);
    return fetch(`${url}/status`).then((r) => (r.ok ? true : undefined), () => undefined);
  }, { timeoutMs: 15_000 });
  const handle: AgentProcess = {
    node: o.node,
    url,
    configFile,
    process: proc,
    logLines: () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    }),
    stop: async () => void (await proc.terminate(10_000)),
    kill: async () => void (await proc.kill()),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    restart: async () => {
      await proc.terminate(10_000);
      return launch(o, nodeArgs, configFile, logFile, url);
    },
  };
  return handle;
}

let distClusterCount = 0;

/** What the steady-state benchmark needs of a cluster; the test suite's `TestCluster` has it too. */
export interface BenchCluster {
  readonly name: string;
  readonly keys: ClusterKeys;
  readonly db: MariaDbCluster;
  readonly etcd: Etcd3;
  readonly agents: ReadonlyMap<string, AgentProcess>;
  server(node: string): MariaDbServer;
  primary(): Promise<Primary | null>;
  member(node: string): Promise<MemberState | null>;
  stop(): Promise<void>;
}

/** `startCluster` of test/support with compiled agents: 3 MariaDB servers (semi-sync), one agent each, db1 bootstrapped primary. */
export async function startDistCluster(etcd: EtcdCluster, options: { agentConfig?: Record<string, unknown>; nodeArgs?: readonly string[] } = {}): Promise<BenchCluster> {
  const name = `dist${++distClusterCount}`;
  const keys = clusterKeys(name);
  const db = await startMariaDb({ count: 3, primary: null, semiSync: true });
  const client: Etcd3 = etcd.client();
  const agentOptions = (s: MariaDbServer): AgentOptions => ({
    cluster: name,
    node: s.name,
    etcd: etcd.endpoints,
    db: s,
    config: { bootstrap: { primary: 'db1' }, replication: { semiSync: true }, ...options.agentConfig },
  });
  const agents = new Map<string, AgentProcess>();
  const cluster: BenchCluster = {
    name,
    keys,
    db,
    etcd: client,
    agents,
    server: (node) => db.servers.find((s) => s.name === node)!,
    primary: async () => {
      const raw = await client.get(keys.primary).string();
      return raw === null ? null : PrimarySchema.parse(JSON.parse(raw));
    },
    member: async (node) => {
      const raw = await client.get(keys.member(node)).string();
      return raw === null ? null : MemberStateSchema.parse(JSON.parse(raw));
    },
    async stop() {
      // SIGTERM, so that node flags such as --cpu-prof get to write their output on the way out.
      await Promise.allSettled([...agents.values()].map((a) => a.stop()));
      await db.stop();
    },
  };
  try {
    for (const a of await Promise.all(db.servers.map((s) => startDistAgent(agentOptions(s), options.nodeArgs)))) agents.set(a.node, a);
    await waitFor('a ready primary', async () => ((await cluster.primary())?.state === 'ready' ? true : undefined), { timeoutMs: 20_000, intervalMs: 20 });
    await db.servers[0]!.query('CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))', [], { creds: APP });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
