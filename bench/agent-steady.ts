/**
 * What an idle agent costs: one cluster of 3 MariaDB servers (semi-sync) and 3 agents with default
 * timings (probe 250 ms, lease TTL 5 s, log level info), a light writer on the primary, and for a
 * fixed window per agent:
 *   - etcd writes per second: puts to its `members/<node>` key, and every put under the cluster
 *     prefix carrying its lease (an etcd watch on the prefix); leaseless puts (primary, epoch, ops)
 *     are the coordinator's and listed apart; lease keepalives and raft proposals come from etcd's
 *     own /metrics;
 *   - resident memory (VmRSS from /proc/<pid>/status, sampled every second);
 *   - CPU as % of one core (utime + stime from /proc/<pid>/stat over the window).
 * It runs twice, each on a fresh cluster: agents under `node --import tsx` as the tests run them, and
 * compiled agents (`node packages/agent/dist/main.js`, built with `tsc -b packages/agent` first) as an install would.
 *
 *   node --conditions=@primacy/source --import tsx bench/agent-steady.ts [--duration S] [--runtime tsx|dist|both]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, sleep, startEtcd, type EtcdCluster } from '../test/harness/index.js';
import { startCluster } from '../test/support/cluster.js';
import { AckWriter } from './lib/ack-writer.js';
import { startDistCluster, type BenchCluster } from './lib/dist-agents.js';
import { describeMachine, machineLine, type Machine } from './lib/machine.js';
import { fixed, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { mean } from './lib/percentiles.js';
import { clockTicksPerSecond, commandLine, cpuTicks, loadAverage, memoryKiB, type MemoryKiB } from './lib/proc-stats.js';

const USAGE =
  'usage: node --conditions=@primacy/source --import tsx bench/agent-steady.ts [--duration S] [--warmup S] [--runtime tsx|dist|both] [--write-interval MS] [--node-args="ARGS"] [--no-build] [--out FILE.md]';

type Runtime = 'tsx' | 'dist';

const RUNTIME_TITLE: Record<Runtime, string> = {
  tsx: '`node --import tsx packages/agent/src/main.ts` (as the tests run it)',
  dist: '`node packages/agent/dist/main.js` (compiled)',
};

const GOALS = { writesPerS: 0.5, rssMiB: 80, cpuPct: 2 };
/** The product's default; the test harness's agents log at debug. */
const AGENT_CONFIG = { log: { level: 'info' } };

interface AgentSample {
  readonly node: string;
  readonly pid: number;
  readonly command: string;
  readonly role: string;
  memberPuts: number;
  /** Puts under the cluster prefix carrying this agent's lease (member key, election key). */
  leasePuts: number;
  rssStartKiB: number | null;
  rssEndKiB: number | null;
  rssMeanKiB: number | null;
  rssMaxKiB: number | null;
  /** Means over the window of RssAnon, RssFile + RssShmem, and Pss. */
  anonMeanKiB: number | null;
  fileMeanKiB: number | null;
  pssMeanKiB: number | null;
  cpuPct: number | null;
}

interface RuntimeResult {
  readonly runtime: Runtime;
  readonly cluster: string;
  readonly windowMs: number;
  readonly agents: AgentSample[];
  readonly putsByKind: Record<string, number>;
  readonly totalPuts: number;
  readonly leaselessPuts: number;
  readonly raftProposals: number | null;
  readonly leaseRenewals: number | null;
  /** Range requests served by all etcd members, less the writer's own primary lookups. */
  readonly agentReads: number | null;
  /** Unary gRPC requests served by all etcd members, by method (Range, Txn, Put, …), less the writer's lookups from Range. */
  readonly agentRpcs: Record<string, number> | null;
  readonly nodeArgs: readonly string[];
  readonly acked: number;
  readonly load1: number;
  readonly coordinator: string | null;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = fileURLToPath(new URL('../', import.meta.url));

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    runtime: { type: 'string' },
    'write-interval': { type: 'string' },
    'no-build': { type: 'boolean' },
    'node-args': { type: 'string' },
    out: { type: 'string' },
  });
  const durationS = intFlag(flags, 'duration', 60, 5, 600);
  const warmupS = intFlag(flags, 'warmup', 10, 0, 120);
  const writeIntervalMs = intFlag(flags, 'write-interval', 100, 0, 10_000);
  const which = stringFlag(flags, 'runtime') ?? 'both';
  if (which !== 'tsx' && which !== 'dist' && which !== 'both') fail(`--runtime: expected tsx, dist or both, got ${JSON.stringify(which)}`);
  const runtimes: Runtime[] = which === 'both' ? ['tsx', 'dist'] : [which];
  const out = stringFlag(flags, 'out') ?? join(benchDir, 'results', 'agent-steady.md');
  const nodeArgs = (stringFlag(flags, 'node-args') ?? '').split(/\s+/).filter(Boolean);
  if (nodeArgs.length > 0 && runtimes.includes('tsx')) fail('--node-args applies to compiled agents only: add --runtime dist');
  const machine = describeMachine();
  progress(machineLine(machine));
  if (runtimes.includes('dist') && flags['no-build'] !== true) {
    // Only the agent and what it depends on: other packages being edited must not block this.
    progress('building the compiled agent: tsc -b packages/agent');
    try {
      execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b', 'packages/agent'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer };
      fail(`tsc -b packages/agent failed, so packages/agent/dist may be stale (pass --no-build to measure it anyway):\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
    }
  }

  const results: RuntimeResult[] = [];
  const etcd = await startEtcd({ members: 3 });
  try {
    for (const runtime of runtimes) {
      const r = await measure(etcd, runtime, { durationS, warmupS, writeIntervalMs, nodeArgs });
      results.push(r);
      writeResults(out, results, machine, { durationS, warmupS, writeIntervalMs, nodeArgs });
    }
  } finally {
    await cleanupAll();
  }
  progress(`wrote ${out} and ${out.replace(/\.md$/, '.json')}`);
}

interface Window {
  readonly durationS: number;
  readonly warmupS: number;
  readonly writeIntervalMs: number;
  readonly nodeArgs: readonly string[];
}

async function measure(etcd: EtcdCluster, runtime: Runtime, w: Window): Promise<RuntimeResult> {
  progress(`${runtime}: starting a cluster`);
  const c: BenchCluster = runtime === 'tsx' ? await startCluster(etcd, { agentConfig: AGENT_CONFIG }) : await startDistCluster(etcd, { agentConfig: AGENT_CONFIG, nodeArgs: w.nodeArgs });
  const writer = new AckWriter(c, { intervalMs: w.writeIntervalMs, maxMs: (w.warmupS + w.durationS + 60) * 1000 }).start();
  const watcher = await c.etcd.watch().prefix(c.keys.prefix).create();
  try {
    let counting = false;
    const putsByKey = new Map<string, number>();
    const putsByLease = new Map<string, number>();
    watcher.on('put', (kv) => {
      if (!counting) return;
      const key = kv.key.toString();
      putsByKey.set(key, (putsByKey.get(key) ?? 0) + 1);
      putsByLease.set(String(kv.lease), (putsByLease.get(String(kv.lease)) ?? 0) + 1);
    });
    progress(`${runtime}: ${c.name} is up; warming up for ${w.warmupS} s`);
    await sleep(w.warmupS * 1000);

    const agents = [...c.agents.values()].map((a) => ({ node: a.node, pid: a.process.pid }));
    for (const a of agents) {
      const cmd = commandLine(a.pid);
      if (!cmd.includes(runtime === 'tsx' ? 'agent/src/main.ts' : 'agent/dist/main.js')) throw new Error(`agent ${a.node} (pid ${a.pid}) runs ${JSON.stringify(cmd)}, not the ${runtime} agent`);
    }
    const ticksBefore = new Map(agents.map((a) => [a.node, cpuTicks(a.pid)]));
    const rss = new Map(agents.map((a) => [a.node, [] as number[]]));
    const mem = new Map(agents.map((a) => [a.node, [] as MemoryKiB[]]));
    const metricsBefore = await etcdCounters(etcd);
    const ackedBefore = writer.acks.length;
    const lookupsBefore = writer.lookups;
    const load1 = loadAverage();
    const started = Date.now();
    counting = true;
    progress(`${runtime}: measuring for ${w.durationS} s`);
    for (let i = 0; i <= w.durationS; i++) {
      for (const a of agents) {
        const m = memoryKiB(a.pid);
        if (m !== null) {
          rss.get(a.node)!.push(m.rss);
          mem.get(a.node)!.push(m);
        }
      }
      if (i < w.durationS) await sleep(Math.max(0, started + (i + 1) * 1000 - Date.now()));
    }
    counting = false;
    const windowMs = Date.now() - started;
    const ticksAfter = new Map(agents.map((a) => [a.node, cpuTicks(a.pid)]));
    const metricsAfter = await etcdCounters(etcd);
    const acked = writer.acks.length - ackedBefore;
    const lookups = writer.lookups - lookupsBefore;

    // Lease → node, from the member keys (each is written under its agent's lease).
    const members = await c.etcd.getAll().prefix(c.keys.membersPrefix).exec();
    const leaseNode = new Map(members.kvs.map((kv) => [String(kv.lease), kv.key.toString().slice(c.keys.membersPrefix.length)]));
    const samples: AgentSample[] = [];
    for (const a of agents) {
      const series = rss.get(a.node)!;
      const split = mem.get(a.node)!;
      const meanOf = (pick: (m: MemoryKiB) => number | null): number | null => {
        const v = split.map(pick).filter((x): x is number => x !== null && !Number.isNaN(x));
        return v.length > 0 ? mean(v) : null;
      };
      const before = ticksBefore.get(a.node);
      const after = ticksAfter.get(a.node);
      const cpuPct = before != null && after != null ? ((after - before) / clockTicksPerSecond() / (windowMs / 1000)) * 100 : null;
      const lease = [...leaseNode.entries()].find(([, node]) => node === a.node)?.[0];
      samples.push({
        node: a.node,
        pid: a.pid,
        // Repository-relative, node and the temporary folder by name: results carry no path of this machine.
        command: commandLine(a.pid).replace(process.execPath, 'node').replaceAll(repoRoot, '').replaceAll(`${tmpdir()}/`, '$TMPDIR/'),
        role: (await c.member(a.node))?.role ?? 'unknown',
        memberPuts: putsByKey.get(c.keys.member(a.node)) ?? 0,
        leasePuts: lease === undefined ? 0 : (putsByLease.get(lease) ?? 0),
        rssStartKiB: series[0] ?? null,
        rssEndKiB: series.at(-1) ?? null,
        rssMeanKiB: series.length > 0 ? mean(series) : null,
        rssMaxKiB: series.length > 0 ? Math.max(...series) : null,
        anonMeanKiB: meanOf((m) => m.anon),
        fileMeanKiB: meanOf((m) => m.file),
        pssMeanKiB: meanOf((m) => m.pss),
        cpuPct,
      });
    }
    const putsByKind: Record<string, number> = {};
    for (const [key, n] of putsByKey) {
      const kind = key.slice(c.keys.prefix.length).split('/')[0] ?? key;
      putsByKind[kind] = (putsByKind[kind] ?? 0) + n;
    }
    const totalPuts = [...putsByKey.values()].reduce((x, y) => x + y, 0);
    const election = await c.etcd.getAll().prefix(`${c.keys.election}/`).exec();
    const coordinator = [...election.kvs].sort((x, y) => (BigInt(x.create_revision) < BigInt(y.create_revision) ? -1 : 1))[0]?.value.toString() ?? null;
    const result: RuntimeResult = {
      runtime,
      cluster: c.name,
      windowMs,
      agents: samples,
      putsByKind,
      totalPuts,
      leaselessPuts: putsByLease.get('0') ?? 0,
      raftProposals: metricsBefore && metricsAfter ? metricsAfter.proposals - metricsBefore.proposals : null,
      leaseRenewals: metricsBefore && metricsAfter ? metricsAfter.renewals - metricsBefore.renewals : null,
      agentReads: metricsBefore && metricsAfter ? metricsAfter.ranges - metricsBefore.ranges - lookups : null,
      agentRpcs: metricsBefore && metricsAfter ? rpcDelta(metricsBefore.rpcs, metricsAfter.rpcs, lookups) : null,
      nodeArgs: runtime === 'dist' ? w.nodeArgs : [],
      acked,
      load1,
      coordinator,
    };
    for (const a of samples) {
      progress(
        `${runtime} ${a.node} (${a.role}${a.node === coordinator ? ', coordinator' : ''}): member puts ${fixed(a.memberPuts / (windowMs / 1000), 3)}/s, ` +
          `RSS mean ${fixed((a.rssMeanKiB ?? Number.NaN) / 1024, 1)} MiB, peak ${fixed((a.rssMaxKiB ?? Number.NaN) / 1024, 1)} MiB, CPU ${fixed(a.cpuPct, 2)} %`,
      );
    }
    return result;
  } finally {
    await writer.stop();
    await watcher.cancel().catch(() => undefined);
    await c.stop().catch(() => undefined);
  }
}

/**
 * Raft proposals committed (the most any member reports), lease renewals (summed; only the leader
 * renews) and range requests (summed; each member serves its own clients' reads).
 */
interface EtcdCounters {
  proposals: number;
  renewals: number;
  ranges: number;
  /** Unary gRPC requests handled, by method, summed over the members. */
  rpcs: Record<string, number>;
}

/** Requests per method in the window; the writer's primary lookups are Range requests too. */
function rpcDelta(before: Record<string, number>, after: Record<string, number>, lookups: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [method, n] of Object.entries(after)) {
    const d = n - (before[method] ?? 0) - (method === 'Range' ? lookups : 0);
    if (d > 0) out[method] = d;
  }
  return out;
}

function unaryRpcs(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^grpc_server_handled_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = m[1] ?? '';
    if (!labels.includes('grpc_type="unary"')) continue;
    const method = /grpc_method="([^"]+)"/.exec(labels)?.[1];
    if (method) out[method] = (out[method] ?? 0) + Number(m[2]);
  }
  return out;
}

async function etcdCounters(etcd: EtcdCluster): Promise<EtcdCounters | null> {
  try {
    const texts = await Promise.all(etcd.members.map((m) => fetch(`${m.endpoint}/metrics`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text())));
    const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    return {
      proposals: Math.max(...texts.map((t) => value(t, 'etcd_server_proposals_committed_total'))),
      renewals: texts.map((t) => value(t, 'etcd_debugging_lease_renewed_total')).reduce((a, b) => a + b, 0),
      ranges: texts.map((t) => value(t, 'etcd_mvcc_range_total')).reduce((a, b) => a + b, 0),
      rpcs: texts.map(unaryRpcs).reduce<Record<string, number>>((sum, r) => {
        for (const [method, n] of Object.entries(r)) sum[method] = (sum[method] ?? 0) + n;
        return sum;
      }, {}),
    };
  } catch {
    return null;
  }
}

function writeResults(out: string, results: RuntimeResult[], machine: Machine, w: Window): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out.replace(/\.md$/, '') + '.json', JSON.stringify({ machine, window: w, results }, null, 2));
  writeFileSync(out, renderMarkdown(results, machine, w));
}

function renderMarkdown(results: RuntimeResult[], machine: Machine, w: Window): string {
  const lines: string[] = [];
  lines.push(`# Agent steady-state cost — ${new Date().toISOString()}`, '');
  lines.push(`Machine: ${machineLine(machine)}.`, '');
  lines.push(
    `Each runtime on a fresh cluster: 3 agents, default timings (probe 250 ms, lease TTL 5 s), log level info, ` +
      `a writer inserting one row every ${w.writeIntervalMs} ms; ${w.warmupS} s warm-up, then a ${w.durationS} s window. ` +
      `Goals per agent: ≤ ${GOALS.writesPerS} etcd writes/s, < ${GOALS.rssMiB} MB RSS, < ${GOALS.cpuPct} % of a core.`,
    '',
  );
  for (const r of results) {
    const s = r.windowMs / 1000;
    lines.push(`## ${RUNTIME_TITLE[r.runtime]}${r.nodeArgs.length > 0 ? ` with \`${r.nodeArgs.join(' ')}\`` : ''}`, '');
    lines.push(`Cluster ${r.cluster}; window ${fixed(s, 1)} s; ${r.acked} writes acknowledged in it; 1-minute load average at its start ${fixed(r.load1, 2)}.`, '');
    const mib = (k: number | null) => (k === null ? null : k / 1024);
    const row = (label: string, a: Pick<AgentSample, 'memberPuts' | 'leasePuts' | 'rssMeanKiB' | 'rssMaxKiB' | 'anonMeanKiB' | 'fileMeanKiB' | 'pssMeanKiB' | 'cpuPct'>) => [
      label,
      fixed(a.memberPuts / s, 3),
      fixed(a.leasePuts / s, 3),
      fixed(mib(a.rssMeanKiB), 1),
      fixed(mib(a.rssMaxKiB), 1),
      `${fixed(mib(a.anonMeanKiB), 1)} / ${fixed(mib(a.fileMeanKiB), 1)}`,
      fixed(mib(a.pssMeanKiB), 1),
      fixed(a.cpuPct, 2),
    ];
    const rows = r.agents.map((a) => row(`${a.node} (${a.role}${a.node === r.coordinator ? ', coordinator' : ''})`, a));
    const avg = (pick: (a: AgentSample) => number | null) => mean(r.agents.map(pick).filter((v): v is number => v !== null));
    rows.push(
      row('**mean**', {
        memberPuts: avg((a) => a.memberPuts),
        leasePuts: avg((a) => a.leasePuts),
        rssMeanKiB: avg((a) => a.rssMeanKiB),
        rssMaxKiB: avg((a) => a.rssMaxKiB),
        anonMeanKiB: avg((a) => a.anonMeanKiB),
        fileMeanKiB: avg((a) => a.fileMeanKiB),
        pssMeanKiB: avg((a) => a.pssMeanKiB),
        cpuPct: avg((a) => a.cpuPct),
      }),
    );
    rows.push([
      '**goal**',
      `≤ ${GOALS.writesPerS}`,
      `≤ ${GOALS.writesPerS}`,
      `< ${fixed((GOALS.rssMiB * 1e6) / 2 ** 20, 1)} (80 MB)`,
      `< ${fixed((GOALS.rssMiB * 1e6) / 2 ** 20, 1)}`,
      '',
      '',
      `< ${GOALS.cpuPct}`,
    ]);
    lines.push(table(['agent', 'member-key puts/s', 'all puts under its lease/s', 'RSS mean (MiB)', 'RSS peak (MiB)', 'RSS anon / file (MiB)', 'PSS mean (MiB)', 'CPU (% of one core)'], rows), '');
    const kinds = Object.entries(r.putsByKind).map(([k, n]) => `${k} ${fixed(n / s, 3)}/s`).join(', ');
    lines.push(
      `Whole cluster: ${fixed(r.totalPuts / s, 3)} puts/s under its prefix (${kinds || 'none'}; leaseless, i.e. the coordinator's: ${fixed(r.leaselessPuts / s, 3)}/s); ` +
        `etcd raft proposals committed ${r.raftProposals === null ? '—' : `${fixed(r.raftProposals / s, 3)}/s`}; ` +
        `lease keepalives ${r.leaseRenewals === null ? '—' : `${fixed(r.leaseRenewals / s, 3)}/s`} (all agents); ` +
        `etcd range reads by the agents ${r.agentReads === null ? '—' : `${fixed(r.agentReads / s, 1)}/s`} (all agents; the writer's lookups subtracted); ` +
        `unary gRPC requests by the agents ${r.agentRpcs === null ? '—' : Object.entries(r.agentRpcs).sort(([a], [b]) => a.localeCompare(b)).map(([m, n]) => `${m} ${fixed(n / s, 1)}/s`).join(', ') || 'none'} (all agents).`,
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

main().then(() => process.exit(0), async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
