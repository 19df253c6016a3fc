/**
 * A fleet on one etcd: N clusters of 3 agents each on one 3-member etcd, and the failover time of one
 * real cluster beside them (issue 13).
 *
 *   node --conditions=@primacy/source --import tsx bench/scale.ts [--steps 1,10,100,300,1000] [--workers 4] [--trials 10]
 *
 * The N simulated clusters run the real `Agent` class with default timings, each agent with its own
 * etcd client, lease, election key, watch and HTTP API, exactly as primacy-agent runs it; only their
 * servers are simulated (packages/agent/src/testing/simulated-mariadb.ts plays a MariaDB 10.11 from
 * recorded output, through the real MariaDB driver). They run many to a process: `--workers` worker
 * processes (bench/lib/scale-fleet.ts) share the clusters round-robin.
 *
 * For each N the fleet grows to N clusters, waits until every one has a ready primary, settles, and
 * then measures for `--window` seconds: etcd writes, lease keepalives, watch events and range reads
 * per second (from the members' own /metrics), etcd CPU and RSS (from /proc), the database size, and
 * the agents' CPU and memory per agent. Then, with the fleet still running, `--trials` times: a real
 * cluster (3 MariaDB servers, 3 primacy-agent processes: test/support's startCluster) on the same
 * etcd, a writer on it, kill -9 of its primary's mysqld, and the time to a `ready` primary at the
 * next epoch (seen through an etcd watch) and to the first write acknowledged by the new primary.
 *
 * The benchmark compacts etcd's history every minute to the revision of a minute earlier, as
 * `--auto-compaction-mode=periodic --auto-compaction-retention=1m` would (the harness etcd has none).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Primary } from '@primacy/common';
import { PrimarySchema } from '@primacy/common';
import { cleanupAll, sleep, startEtcd, waitFor, type EtcdCluster } from '../test/harness/index.js';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { AckWriter } from './lib/ack-writer.js';
import { describeMachine, machineLine, type Machine } from './lib/machine.js';
import { fixed, seconds, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { summarize, type Summary } from './lib/percentiles.js';
import { clockTicksPerSecond, cpuTicks, loadAverage, memoryKiB } from './lib/proc-stats.js';
import type { FleetCommand, FleetReply, FleetStats } from './lib/scale-fleet.js';

const USAGE =
  'usage: node --conditions=@primacy/source --import tsx bench/scale.ts [--steps 1,10,100,300,1000] [--workers N] [--trials N] [--window S] [--settle S] [--max-minutes M] [--out FILE.md] [--svg FILE.svg] [--publish-refresh-ms MS] [--render FILE.json[,FILE.json…]]';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchDir, '..');
const fleetEntry = join(benchDir, 'lib', 'scale-fleet.ts');

const FAILOVER_TIMEOUT_MS = 30_000;
const STEADY_WRITES_MS = 1000;
const COMPACT_EVERY_MS = 60_000;

/** What one step measured. Rates are per second over the window; CPU in cores (1 = one core busy). */
export interface StepResult {
  readonly clusters: number;
  readonly agents: number;
  readonly windowS: number;
  /** Time for the fleet to grow to N clusters with a ready primary each. */
  readonly growS: number;
  readonly etcd: {
    readonly writesPerS: number;
    readonly deletesPerS: number;
    readonly txnsPerS: number;
    readonly keepalivesPerS: number;
    readonly keepaliveStreamsPerS: number;
    readonly watchEventsPerS: number;
    readonly rangeRpcsPerS: number;
    readonly rangesPerS: number;
    readonly grpcRequestsPerS: number;
    readonly cpuCores: number;
    readonly cpuCoresPerMember: readonly number[];
    readonly rssMiB: number;
    readonly dbMiB: number;
    readonly dbInUseMiB: number;
    readonly keys: number;
  };
  readonly agentsCost: {
    readonly cpuCores: number;
    readonly cpuMsPerAgentPerS: number;
    readonly rssMiBPerAgent: number;
    readonly heapMiBPerAgent: number;
    readonly memberWritesPerS: number;
    readonly etcdErrors: number;
    readonly leaseLosses: number;
    readonly unknownStatements: number;
  };
  readonly failover: {
    readonly trials: ReadonlyArray<{ readonly readyMs: number | null; readonly firstWriteMs: number | null; readonly error: string | null; readonly load1: number }>;
    readonly readyMs: Summary | null;
    readonly firstWriteMs: Summary | null;
    /** Lease losses and etcd errors of the simulated agents during the trials. */
    readonly fleetLeaseLosses: number;
    readonly fleetEtcdErrors: number;
  };
  readonly load1: number;
}

interface RunInfo {
  readonly workers: number;
  readonly trials: number;
  readonly windowS: number;
  readonly settleS: number;
  readonly stoppedEarly: string | null;
  /** The simulated agents' publishRefreshMs when not the default. */
  readonly publishRefreshMs?: number | null;
}

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, {
    steps: { type: 'string' },
    workers: { type: 'string' },
    trials: { type: 'string' },
    window: { type: 'string' },
    settle: { type: 'string' },
    'max-minutes': { type: 'string' },
    out: { type: 'string' },
    svg: { type: 'string' },
    render: { type: 'string' },
    'publish-refresh-ms': { type: 'string' },
  });
  const steps = parseSteps(stringFlag(flags, 'steps') ?? '1,10,100,300,1000');
  const workerCount = intFlag(flags, 'workers', 4, 1, 32);
  const trials = intFlag(flags, 'trials', 10, 0, 100);
  const windowS = intFlag(flags, 'window', 30, 5, 600);
  const settleS = intFlag(flags, 'settle', 10, 0, 600);
  const maxMinutes = intFlag(flags, 'max-minutes', 60, 1, 600);
  const out = stringFlag(flags, 'out') ?? join(benchDir, 'results', 'scale.md');
  const svg = stringFlag(flags, 'svg') ?? join(repoRoot, 'docs', 'scale.svg');
  const render = stringFlag(flags, 'render');
  // The simulated agents' timings.publishRefreshMs, to measure that lever; the default is the product's.
  const publishRefreshMs = stringFlag(flags, 'publish-refresh-ms') === undefined ? null : intFlag(flags, 'publish-refresh-ms', 5000, 100, 600_000);
  if (render !== undefined) {
    // Re-renders earlier runs from their raw results; several (comma-separated) become one table, by N
    // (for an N measured in more than one, the later file's).
    const saved = render.split(',').map((f) => JSON.parse(readFileSync(f, 'utf8')) as { machine: Machine; info: RunInfo; results: StepResult[] });
    const byN = new Map(saved.flatMap((r) => r.results).map((r) => [r.clusters, r] as const));
    const results = [...byN.values()].sort((a, b) => a.clusters - b.clusters);
    const first = saved[0]!;
    const stopped = saved.map((r) => r.info.stoppedEarly).filter((x): x is string => x !== null);
    writeResults(out, svg, results, first.machine, { ...first.info, stoppedEarly: stopped.length > 0 ? stopped.join('; ') : null });
    progress(`wrote ${out} and ${svg}`);
    return;
  }
  const machine = describeMachine();
  const deadline = Date.now() + maxMinutes * 60_000;
  progress(machineLine(machine));
  progress(`steps ${steps.join(', ')} clusters on ${workerCount} worker processes, ${trials} failover trials each, ${windowS} s windows; results to ${out}`);

  const logDir = join(tmpdir(), `primacy-bench-scale-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(logDir, { recursive: true });
  const etcd = await startEtcd({ members: 3 });
  const client = etcd.client();
  const fleet = new Fleet(workerCount, etcd.endpoints, logDir, publishRefreshMs);
  const compaction = new Compaction(etcd);
  const results: StepResult[] = [];
  let stoppedEarly: string | null = null;
  const info = (): RunInfo => ({ workers: workerCount, trials, windowS, settleS, stoppedEarly, publishRefreshMs });
  try {
    for (const n of steps) {
      if (Date.now() > deadline) {
        stoppedEarly = `the ${maxMinutes}-minute budget ran out before N = ${n}`;
        break;
      }
      const grown = Date.now();
      await fleet.grow(n);
      await waitFor(`${n} simulated clusters with a ready primary`, async () => {
        const s = await fleet.stats();
        return s.readyClusters >= n ? true : undefined;
      }, { timeoutMs: 60_000 + n * 600, intervalMs: 2000 }).catch(async (err: unknown) => {
        const s = await fleet.stats();
        throw new Error(`${err instanceof Error ? err.message : String(err)}: ${s.readyClusters} of ${s.clusters} ready`);
      });
      const growS = (Date.now() - grown) / 1000;
      progress(`N = ${n}: ${n * 3} agents up, every cluster with a ready primary, in ${growS.toFixed(1)} s`);
      await sleep(settleS * 1000);
      const before = await sample(etcd, fleet);
      await sleep(windowS * 1000);
      const after = await sample(etcd, fleet);
      const load1 = loadAverage();
      const steady = costs(before, after, n);
      progress(
        `N = ${n}: etcd ${fixed(steady.etcd.cpuCores, 2)} cores, ${fixed(steady.etcd.writesPerS, 0)} writes/s, ${fixed(steady.etcd.keepalivesPerS, 0)} keepalives/s, ${fixed(steady.etcd.watchEventsPerS, 0)} watch events/s, ${fixed(steady.etcd.rangesPerS, 0)} ranges/s; agents ${fixed(steady.agentsCost.cpuMsPerAgentPerS, 2)} ms CPU/s and ${fixed(steady.agentsCost.rssMiBPerAgent, 2)} MiB each`,
      );
      const fleetBefore = await fleet.stats();
      const trialResults: Array<{ readyMs: number | null; firstWriteMs: number | null; error: string | null; load1: number }> = [];
      for (let i = 1; i <= trials; i++) {
        const t = await failoverTrial(etcd);
        trialResults.push(t);
        progress(`N = ${n}: trial ${i}: ${t.error ?? `ready after ${t.readyMs} ms, first write on the new primary after ${t.firstWriteMs} ms`}`);
      }
      const fleetAfter = await fleet.stats();
      const step: StepResult = {
        ...steady,
        growS,
        load1,
        failover: {
          trials: trialResults,
          readyMs: summarize(trialResults.flatMap((t) => (t.readyMs === null ? [] : [t.readyMs]))),
          firstWriteMs: summarize(trialResults.flatMap((t) => (t.firstWriteMs === null ? [] : [t.firstWriteMs]))),
          fleetLeaseLosses: fleetAfter.leaseLosses - fleetBefore.leaseLosses,
          fleetEtcdErrors: fleetAfter.etcdErrors - fleetBefore.etcdErrors,
        },
      };
      results.push(step);
      writeResults(out, svg, results, machine, info());
      await compaction.maybe(client);
    }
  } finally {
    writeResults(out, svg, results, machine, info());
    compaction.stop();
    await fleet.stop();
    await cleanupAll();
  }
  if (stoppedEarly) progress(`stopped early: ${stoppedEarly}`);
  progress(`wrote ${out}, ${out.replace(/\.md$/, '.json')} and ${svg}; worker logs in ${logDir}`);
}

function parseSteps(raw: string): number[] {
  const steps = raw.split(',').map((s) => Number(s.trim()));
  if (steps.some((n) => !Number.isInteger(n) || n < 1 || n > 5000)) fail(`--steps: expected a comma-separated list of cluster counts from 1 to 5000, got ${JSON.stringify(raw)}`);
  if (steps.some((n, i) => i > 0 && n <= steps[i - 1]!)) fail(`--steps: expected increasing counts, got ${JSON.stringify(raw)}`);
  return steps;
}

/** The worker processes and the clusters they host. */
class Fleet {
  private readonly workers: ChildProcess[] = [];
  private readonly logFds: number[] = [];
  private size = 0;

  constructor(count: number, endpoints: readonly string[], logDir: string, publishRefreshMs: number | null) {
    for (let i = 0; i < count; i++) {
      const fd = openSync(join(logDir, `worker-${i + 1}.log`), 'a');
      this.logFds.push(fd);
      const { NODE_OPTIONS: _dropped, ...env } = process.env;
      this.workers.push(
        fork(fleetEntry, [], {
          cwd: repoRoot,
          // SCALE_WORKER_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=DIR`, profiles the workers.
          execArgv: ['--conditions=@primacy/source', '--import', 'tsx', ...(process.env['SCALE_WORKER_NODE_ARGS']?.split(' ').filter(Boolean) ?? [])],
          env: { ...env, SCALE_ETCD: JSON.stringify(endpoints), ...(publishRefreshMs === null ? {} : { SCALE_PUBLISH_REFRESH_MS: String(publishRefreshMs) }) },
          stdio: ['ignore', fd, fd, 'ipc'],
        }),
      );
    }
  }

  private ask<T extends FleetReply['type']>(w: ChildProcess, cmd: FleetCommand, expect: T, timeoutMs: number): Promise<Extract<FleetReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        w.off('message', onMessage);
        reject(new Error(`worker ${w.pid} did not answer ${cmd.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (m: FleetReply): void => {
        if (m.type !== expect && m.type !== 'error') return;
        clearTimeout(timer);
        w.off('message', onMessage);
        if (m.type === 'error') reject(new Error(`worker ${w.pid}: ${m.message}`));
        else resolve(m as Extract<FleetReply, { type: T }>);
      };
      w.on('message', onMessage);
      w.send(cmd);
    });
  }

  /** Adds clusters up to `n`, round-robin over the workers. */
  async grow(n: number): Promise<void> {
    const batches = this.workers.map(() => [] as Array<{ name: string; index: number }>);
    for (let i = this.size; i < n; i++) batches[i % this.workers.length]!.push({ name: `sim${String(i + 1).padStart(4, '0')}`, index: i });
    this.size = Math.max(this.size, n);
    await Promise.all(this.workers.map((w, i) => (batches[i]!.length > 0 ? this.ask(w, { type: 'add', clusters: batches[i]! }, 'added', 600_000) : null)));
  }

  /** Every worker's stats, summed; `pids` for /proc. */
  async stats(): Promise<FleetStats & { pids: number[] }> {
    const all = await Promise.all(this.workers.map((w) => this.ask(w, { type: 'stats' }, 'stats', 30_000)));
    const sum = (f: (s: FleetStats) => number): number => all.reduce((a, s) => a + f(s), 0);
    return {
      type: 'stats',
      agents: sum((s) => s.agents),
      clusters: sum((s) => s.clusters),
      readyClusters: sum((s) => s.readyClusters),
      cpuUs: sum((s) => s.cpuUs),
      rssBytes: sum((s) => s.rssBytes),
      heapUsedBytes: sum((s) => s.heapUsedBytes),
      memberWrites: sum((s) => s.memberWrites),
      etcdErrors: sum((s) => s.etcdErrors),
      leaseLosses: sum((s) => s.leaseLosses),
      unknownStatements: sum((s) => s.unknownStatements),
      pids: this.workers.map((w) => w.pid ?? 0),
    };
  }

  async stop(): Promise<void> {
    await Promise.allSettled(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null || !w.connected) return resolve();
            const timer = setTimeout(() => {
              w.kill('SIGKILL');
              resolve();
            }, 20_000);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            w.send({ type: 'stop' } satisfies FleetCommand);
          }),
      ),
    );
    for (const fd of this.logFds) closeSync(fd);
  }
}

/** Compacts etcd's history to the revision of about a minute ago, at most once a minute. */
class Compaction {
  private readonly marks: Array<{ at: number; revision: string }> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly etcd: EtcdCluster) {
    const client = etcd.client();
    this.timer = setInterval(() => void this.maybe(client), 10_000);
  }

  async maybe(client: ReturnType<EtcdCluster['client']>): Promise<void> {
    try {
      const rev = String((await client.get('/primacy-bench-compaction').exec()).header.revision);
      this.marks.push({ at: Date.now(), revision: rev });
      const old = this.marks.filter((m) => Date.now() - m.at >= COMPACT_EVERY_MS);
      const target = old[old.length - 1];
      if (target === undefined) return;
      this.marks.splice(0, this.marks.indexOf(target) + 1);
      await client.kv.compact({ revision: target.revision, physical: false });
    } catch {
      // A compaction that fails is retried on the next turn; the etcd under test said why in its log.
    }
  }

  stop(): void {
    clearInterval(this.timer);
    void this.etcd;
  }
}

interface Sample {
  readonly at: number;
  readonly metrics: ReadonlyArray<Map<string, number>>;
  readonly etcdTicks: number[];
  readonly etcdRssKiB: number;
  readonly fleet: FleetStats & { pids: number[] };
}

async function sample(etcd: EtcdCluster, fleet: Fleet): Promise<Sample> {
  const [metrics, fleetStats] = await Promise.all([Promise.all(etcd.members.map((m) => scrape(m.endpoint))), fleet.stats()]);
  return {
    at: Date.now(),
    metrics,
    etcdTicks: etcd.members.map((m) => cpuTicks(m.pid) ?? 0),
    etcdRssKiB: etcd.members.reduce((a, m) => a + (memoryKiB(m.pid)?.rss ?? 0), 0),
    fleet: fleetStats,
  };
}

/** Prometheus text format: `name{labels} value` lines, keyed by the name with its labels as written. */
async function scrape(endpoint: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** The sum of every series of `name` whose labels contain each of `labels` (`key="value"`). */
function series(m: Map<string, number>, name: string, labels: readonly string[] = []): number {
  let total = 0;
  for (const [key, value] of m) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (labels.every((l) => key.includes(l))) total += value;
  }
  return total;
}

function costs(a: Sample, b: Sample, clusters: number): Omit<StepResult, 'growS' | 'load1' | 'failover'> {
  const s = (b.at - a.at) / 1000;
  const members = a.metrics.length;
  /** Per member, then summed: what clients sent to each member. */
  const summed = (name: string, labels: readonly string[] = []): number => {
    let d = 0;
    for (let i = 0; i < members; i++) d += series(b.metrics[i]!, name, labels) - series(a.metrics[i]!, name, labels);
    return d / s;
  };
  /** Applied by every member alike (the raft log): one member's count. */
  const applied = (name: string): number => Math.max(...a.metrics.map((_, i) => series(b.metrics[i]!, name) - series(a.metrics[i]!, name))) / s;
  const hz = clockTicksPerSecond();
  const perMember = a.etcdTicks.map((t, i) => (b.etcdTicks[i]! - t) / hz / s);
  const agents = b.fleet.agents;
  const fleetCpu = (b.fleet.cpuUs - a.fleet.cpuUs) / 1e6 / s;
  const last = b.metrics;
  return {
    clusters,
    agents,
    windowS: s,
    etcd: {
      writesPerS: applied('etcd_debugging_mvcc_put_total'),
      deletesPerS: applied('etcd_debugging_mvcc_delete_total'),
      txnsPerS: summed('grpc_server_handled_total', ['grpc_method="Txn"']),
      keepalivesPerS: summed('grpc_server_msg_received_total', ['grpc_method="LeaseKeepAlive"']),
      keepaliveStreamsPerS: summed('grpc_server_started_total', ['grpc_method="LeaseKeepAlive"']),
      watchEventsPerS: summed('etcd_debugging_mvcc_events_total'),
      rangeRpcsPerS: summed('grpc_server_handled_total', ['grpc_method="Range"']),
      rangesPerS: summed('etcd_debugging_mvcc_range_total'),
      grpcRequestsPerS: summed('grpc_server_msg_received_total'),
      cpuCores: perMember.reduce((x, y) => x + y, 0),
      cpuCoresPerMember: perMember,
      rssMiB: b.etcdRssKiB / 1024,
      dbMiB: Math.max(...last.map((m) => series(m, 'etcd_mvcc_db_total_size_in_bytes'))) / 2 ** 20,
      dbInUseMiB: Math.max(...last.map((m) => series(m, 'etcd_mvcc_db_total_size_in_use_in_bytes'))) / 2 ** 20,
      keys: Math.max(...last.map((m) => series(m, 'etcd_debugging_mvcc_keys_total'))),
    },
    agentsCost: {
      cpuCores: fleetCpu,
      cpuMsPerAgentPerS: agents === 0 ? Number.NaN : (fleetCpu * 1000) / agents,
      rssMiBPerAgent: agents === 0 ? Number.NaN : b.fleet.rssBytes / 2 ** 20 / agents,
      heapMiBPerAgent: agents === 0 ? Number.NaN : b.fleet.heapUsedBytes / 2 ** 20 / agents,
      memberWritesPerS: (b.fleet.memberWrites - a.fleet.memberWrites) / s,
      etcdErrors: b.fleet.etcdErrors - a.fleet.etcdErrors,
      leaseLosses: b.fleet.leaseLosses - a.fleet.leaseLosses,
      unknownStatements: b.fleet.unknownStatements,
    },
  };
}

/** One real cluster on the fleet's etcd: kill -9 of its primary's mysqld, time to a ready primary and to the first write on it. */
async function failoverTrial(etcd: EtcdCluster): Promise<{ readyMs: number | null; firstWriteMs: number | null; error: string | null; load1: number }> {
  const load1 = loadAverage();
  let c: TestCluster | null = null;
  let writer: AckWriter | null = null;
  let cancel: () => Promise<void> = async () => undefined;
  try {
    c = await startCluster(etcd);
    await c.settled(60_000);
    writer = new AckWriter(c, { maxMs: 120_000 }).start();
    const w = writer;
    await waitFor('the writer\'s first acknowledgement', () => (w.acks.length > 0 ? true : undefined), { timeoutMs: 20_000, intervalMs: 10 });
    await sleep(STEADY_WRITES_MS);
    const old = await c.primary();
    if (!old || old.state !== 'ready') throw new Error(`no ready primary before the kill: ${JSON.stringify(old)}`);
    const events: Array<{ at: number; p: Primary }> = [];
    const watcher = await c.etcd.watch().key(c.keys.primary).create();
    cancel = async () => void (await watcher.cancel().catch(() => undefined));
    watcher.on('put', (kv) => {
      const at = Date.now();
      const parsed = PrimarySchema.safeParse(JSON.parse(kv.value.toString()));
      if (parsed.success) events.push({ at, p: parsed.data });
    });
    const killedAt = Date.now();
    await c.server(old.node).kill();
    const ready = await waitFor('a ready primary at a new epoch', () => events.find((e) => e.p.epoch > old.epoch && e.p.state === 'ready'), { timeoutMs: FAILOVER_TIMEOUT_MS, intervalMs: 5 });
    const first = await waitFor('a write acknowledged by the new primary', () => w.firstAck(killedAt, (a) => a.node !== old.node) ?? undefined, { timeoutMs: FAILOVER_TIMEOUT_MS, intervalMs: 5 });
    return { readyMs: ready.at - killedAt, firstWriteMs: first.at - killedAt, error: null, load1 };
  } catch (err) {
    return { readyMs: null, firstWriteMs: null, error: err instanceof Error ? err.message.split('\n')[0]! : String(err), load1 };
  } finally {
    await writer?.stop();
    await cancel();
    await c?.stop().catch(() => undefined);
  }
}

function writeResults(out: string, svg: string, results: readonly StepResult[], machine: Machine, info: RunInfo): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out.replace(/\.md$/, '.json'), `${JSON.stringify({ machine, info, results }, null, 2)}\n`);
  writeFileSync(svg, plot(results));
  writeFileSync(out, renderMarkdown(results, machine, info, relative(dirname(out), svg)));
}

export function renderMarkdown(results: readonly StepResult[], machine: Machine, info: RunInfo, svgPath: string): string {
  const lines = [
    '# A fleet on one etcd (bench/scale.ts)',
    '',
    `${machineLine(machine)}. One 3-member etcd (${machine.etcd}) on loopback. N simulated clusters of 3 real agents each (the \`Agent\` class, default timings, one etcd client each; simulated MariaDB servers), ${info.workers} worker processes hosting them; ${info.trials} failover trials per N of one real cluster (3 MariaDB, 3 primacy-agent processes) beside them. Steady-state window ${info.windowS} s after ${info.settleS} s of settling. etcd history compacted every minute.`,
    ...(info.publishRefreshMs ? ['', `The simulated agents ran with \`timings.publishRefreshMs: ${info.publishRefreshMs}\` (default 5000).`] : []),
    ...(info.stoppedEarly ? ['', `Stopped early: ${info.stoppedEarly}.`] : []),
    '',
    '## Steady-state cost',
    '',
    table(
      ['N clusters', 'agents', 'etcd writes/s', 'keepalives/s', 'keepalive streams/s', 'watch events/s', 'Range RPCs/s', 'Txn RPCs/s', 'ranges/s (mvcc)', 'etcd CPU (cores)', 'etcd RSS (MiB, 3 members)', 'db size (MiB)', 'agent CPU (ms/s each)', 'agent RSS (MiB each)', 'agent RSS added (MiB)'],
      results.map((r, i) => [
        String(r.clusters),
        String(r.agents),
        fixed(r.etcd.writesPerS, 0),
        fixed(r.etcd.keepalivesPerS, 0),
        fixed(r.etcd.keepaliveStreamsPerS, 1),
        fixed(r.etcd.watchEventsPerS, 0),
        fixed(r.etcd.rangeRpcsPerS, 1),
        fixed(r.etcd.txnsPerS, 0),
        fixed(r.etcd.rangesPerS, 0),
        fixed(r.etcd.cpuCores, 2),
        fixed(r.etcd.rssMiB, 0),
        fixed(r.etcd.dbMiB, 1),
        fixed(r.agentsCost.cpuMsPerAgentPerS, 2),
        fixed(r.agentsCost.rssMiBPerAgent, 2),
        marginalRss(results, i),
      ]),
    ),
    '',
    'Agent RSS each is the workers\' RSS over the agents, so it includes each worker\'s own Node.js (tens of MiB); *added* is the RSS one more agent costs, from the step before.',
    '',
    '## Failover of one real cluster beside them (kill -9 of the primary\'s mysqld)',
    '',
    table(
      ['N clusters', 'trials', 'to a ready primary: median', 'p99', 'to the first write on it: median', 'p99', 'failed trials', 'fleet lease lapses during trials', 'load (1 min)'],
      results.map((r) => [
        String(r.clusters),
        String(r.failover.trials.length),
        seconds(r.failover.readyMs?.median),
        seconds(r.failover.readyMs?.p99),
        seconds(r.failover.firstWriteMs?.median),
        seconds(r.failover.firstWriteMs?.p99),
        String(r.failover.trials.filter((t) => t.error !== null).length),
        String(r.failover.fleetLeaseLosses),
        fixed(r.load1, 2),
      ]),
    ),
    '',
    `![cost and failover time against N](${svgPath})`,
    '',
    '## Per step',
    '',
    ...results.flatMap((r) => [
      `- N = ${r.clusters}: grew in ${r.growS.toFixed(1)} s; etcd CPU per member ${r.etcd.cpuCoresPerMember.map((c) => c.toFixed(2)).join(' / ')} cores, ${r.etcd.keys} keys, db in use ${fixed(r.etcd.dbInUseMiB, 1)} MiB, ${fixed(r.etcd.grpcRequestsPerS, 0)} gRPC messages/s in all; agents ${fixed(r.agentsCost.cpuCores, 2)} cores in all, ${fixed(r.agentsCost.memberWritesPerS, 0)} member writes/s, heap ${fixed(r.agentsCost.heapMiBPerAgent, 2)} MiB each, ${r.agentsCost.etcdErrors} etcd errors and ${r.agentsCost.leaseLosses} lease lapses in the window, ${r.agentsCost.unknownStatements} statements the simulated servers did not know; trials: ${r.failover.trials.map((t) => (t.error ? `error (${t.error})` : `${t.readyMs} ms`)).join(', ')}`,
    ]),
    '',
  ];
  return `${lines.join('\n')}\n`;
}

/** The RSS one more agent added between step i − 1 and step i, in MiB. */
function marginalRss(results: readonly StepResult[], i: number): string {
  const [a, b] = [results[i - 1], results[i]];
  if (a === undefined || b === undefined || b.agents <= a.agents) return '—';
  return fixed((b.agentsCost.rssMiBPerAgent * b.agents - a.agentsCost.rssMiBPerAgent * a.agents) / (b.agents - a.agents), 2);
}

/** Two panels, log-scale N: etcd CPU and agent CPU per agent; failover median and p99. No external tools. */
export function plot(results: readonly StepResult[]): string {
  const W = 360;
  const H = 240;
  const pad = { l: 52, r: 16, t: 28, b: 40 };
  const xs = results.map((r) => r.clusters);
  const lx = (n: number): number => Math.log10(Math.max(1, n));
  const xMin = lx(Math.min(...xs, 1));
  const xMax = Math.max(lx(Math.max(...xs, 10)), xMin + 1);
  const px = (n: number): number => pad.l + ((lx(n) - xMin) / (xMax - xMin)) * (W - pad.l - pad.r);
  const panel = (ox: number, title: string, yLabel: string, lines: ReadonlyArray<{ label: string; color: string; values: ReadonlyArray<number | null> }>): string => {
    const all = lines.flatMap((l) => l.values.filter((v): v is number => v !== null && Number.isFinite(v)));
    const yMax = niceMax(Math.max(...all, 0.001));
    const py = (v: number): number => pad.t + (1 - v / yMax) * (H - pad.t - pad.b);
    const parts: string[] = [`<g transform="translate(${ox},0)">`, `<text x="${W / 2}" y="16" text-anchor="middle" font-weight="bold">${title}</text>`];
    parts.push(`<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#444"/>`, `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#444"/>`);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      parts.push(`<text x="${pad.l - 4}" y="${py(v) + 4}" text-anchor="end">${Number(v.toPrecision(3))}</text>`, `<line x1="${pad.l}" y1="${py(v)}" x2="${W - pad.r}" y2="${py(v)}" stroke="#ddd"/>`);
    }
    for (const n of xs) parts.push(`<text x="${px(n).toFixed(1)}" y="${H - pad.b + 14}" text-anchor="middle">${n}</text>`);
    parts.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle">N clusters (log scale)</text>`, `<text x="12" y="${H / 2}" text-anchor="middle" transform="rotate(-90 12 ${H / 2})">${yLabel}</text>`);
    lines.forEach((l, li) => {
      const pts = results.flatMap((r, i) => (l.values[i] === null || !Number.isFinite(l.values[i]!) ? [] : [`${px(r.clusters).toFixed(1)},${py(l.values[i]!).toFixed(1)}`]));
      parts.push(`<polyline fill="none" stroke="${l.color}" stroke-width="2" points="${pts.join(' ')}"/>`);
      for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${l.color}"/>`);
      parts.push(`<rect x="${pad.l + 8}" y="${pad.t + 4 + li * 14}" width="10" height="3" fill="${l.color}"/>`, `<text x="${pad.l + 22}" y="${pad.t + 9 + li * 14}">${l.label}</text>`);
    });
    parts.push('</g>');
    return parts.join('\n');
  };
  const body = [
    panel(0, 'CPU', 'cores', [
      { label: 'etcd (3 members)', color: '#c0392b', values: results.map((r) => r.etcd.cpuCores) },
      { label: 'all agents', color: '#2471a3', values: results.map((r) => r.agentsCost.cpuCores) },
    ]),
    panel(W, 'Failover of the real cluster', 'seconds', [
      { label: 'to ready: median', color: '#1e8449', values: results.map((r) => (r.failover.readyMs ? r.failover.readyMs.median / 1000 : null)) },
      { label: 'to ready: p99', color: '#7d3c98', values: results.map((r) => (r.failover.readyMs ? r.failover.readyMs.p99 / 1000 : null)) },
    ]),
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n${body.join('\n')}\n</svg>\n`;
}

function niceMax(v: number): number {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

main().then(() => process.exit(0), async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
