/**
 * One worker process of bench/scale.ts: hosts many simulated clusters, each of 3 real `Agent`s (the
 * product's own class, default timings, each with its own etcd client, lease, watch and HTTP API)
 * whose servers are simulated MariaDB nodes (packages/agent/src/testing/simulated-mariadb.ts).
 * Driven over IPC by the parent: `add` clusters, report `stats`, `stop`.
 */
import { compileAgentConfig } from '@primacy/common';
import { Agent } from '../../packages/agent/src/agent.js';
import { createLogger } from '../../packages/agent/src/log.js';
import { SimulatedNetwork, type SimulatedMariaDb } from '../../packages/agent/src/testing/simulated-mariadb.js';

export type FleetCommand =
  | { readonly type: 'add'; readonly clusters: ReadonlyArray<{ readonly name: string; readonly index: number }> }
  | { readonly type: 'stats' }
  | { readonly type: 'stop' };

export interface FleetStats {
  readonly type: 'stats';
  readonly agents: number;
  readonly clusters: number;
  /** Clusters whose every agent sees a ready primary and whose primary's server is writable. */
  readonly readyClusters: number;
  /** process.cpuUsage(), user + system, µs since the worker started. */
  readonly cpuUs: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly memberWrites: number;
  readonly etcdErrors: number;
  readonly leaseLosses: number;
  /** Statements the simulated servers did not know (should stay 0). */
  readonly unknownStatements: number;
}

export type FleetReply = FleetStats | { readonly type: 'added'; readonly clusters: number } | { readonly type: 'error'; readonly message: string };

const NODES = ['db1', 'db2', 'db3'] as const;
/** Agents are started this many at a time, so that a step's start-up does not starve the running ones. */
const START_BATCH = 15;

interface SimCluster {
  readonly name: string;
  readonly agents: Agent[];
  readonly servers: SimulatedMariaDb[];
}

const endpoints = JSON.parse(process.env['SCALE_ETCD'] ?? '[]') as string[];
const publishRefreshMs = process.env['SCALE_PUBLISH_REFRESH_MS'] === undefined ? undefined : Number(process.env['SCALE_PUBLISH_REFRESH_MS']);
// One logger for the worker, a child per agent: warnings and errors only, to the worker's log file.
const log = createLogger({ level: 'warn', cluster: 'fleet', node: `worker-${process.pid}` });
const clusters: SimCluster[] = [];

/** Each simulated server gets an address of its own on loopback that nothing listens on. */
function hostOf(index: number, node: number): string {
  return `127.${100 + Math.floor(index / 250)}.${index % 250}.${node + 1}`;
}

function agentConfig(cluster: string, node: string, host: string) {
  const config = compileAgentConfig(
    {
      cluster,
      node,
      etcd: { endpoints },
      mysql: { host, port: 3306, user: 'primacy', password: { env: 'SIM_PASSWORD' }, flavor: 'mariadb' },
      replication: { user: 'repl', password: { env: 'SIM_PASSWORD' }, semiSync: true },
      http: { host: '127.0.0.1', port: 1 },
      bootstrap: { primary: 'db1' },
      log: { level: 'warn' },
      ...(publishRefreshMs === undefined ? {} : { timings: { publishRefreshMs } }),
    },
    { source: `${cluster}/${node}`, env: { SIM_PASSWORD: 'simulated' } },
  );
  // Port 0: the API listens on a free port of its own (the schema wants a real one in a config file).
  return { ...config, http: { ...config.http, port: 0 } };
}

async function addCluster(name: string, index: number): Promise<void> {
  const net = new SimulatedNetwork();
  const servers = NODES.map((_, i) => net.server(hostOf(index, i), 3306, i + 1));
  const agents = NODES.map((node, i) => {
    const config = agentConfig(name, node, servers[i]!.host);
    return new Agent(config, { driver: servers[i]!.driver(config.timings.probeTimeoutMs, config.timings.heartbeatIntervalMs), logger: log.child({ cluster: name, node }) });
  });
  clusters.push({ name, agents, servers });
  await Promise.all(agents.map((a) => a.start()));
}

function stats(): FleetStats {
  let agents = 0;
  let ready = 0;
  let memberWrites = 0;
  let etcdErrors = 0;
  let leaseLosses = 0;
  let unknown = 0;
  for (const c of clusters) {
    agents += c.agents.length;
    const views = c.agents.map((a) => a.view());
    const p = views[0]?.primary;
    const writable = c.servers.find((s) => !s.readOnly);
    if (p?.state === 'ready' && views.every((v) => v.primary?.epoch === p.epoch && v.primary.state === 'ready') && writable?.host === p.host) ready += 1;
    for (const a of c.agents) {
      memberWrites += a.counters.memberWrites;
      etcdErrors += a.counters.etcdErrors;
      leaseLosses += a.counters.leaseLosses;
    }
    for (const s of c.servers) unknown += s.unknownStatements;
  }
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { type: 'stats', agents, clusters: clusters.length, readyClusters: ready, cpuUs: cpu.user + cpu.system, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, memberWrites, etcdErrors, leaseLosses, unknownStatements: unknown };
}

function reply(r: FleetReply): void {
  process.send?.(r);
}

process.on('message', (raw: FleetCommand) => {
  void (async () => {
    try {
      if (raw.type === 'add') {
        for (let i = 0; i < raw.clusters.length; i += START_BATCH) {
          await Promise.all(raw.clusters.slice(i, i + START_BATCH).map((c) => addCluster(c.name, c.index)));
        }
        reply({ type: 'added', clusters: clusters.length });
      } else if (raw.type === 'stats') {
        reply(stats());
      } else {
        await Promise.allSettled(clusters.flatMap((c) => c.agents.map((a) => a.stop())));
        process.exit(0);
      }
    } catch (err) {
      reply({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  })();
});
// The parent gone, nothing here has a reason to run.
process.on('disconnect', () => process.exit(0));
