/**
 * Failover time against the real local cluster: 3 MariaDB servers (semi-sync AFTER_SYNC), a 3-member
 * etcd shared by every trial, and three real primacy-agent processes per trial with default timings.
 *
 *   node --conditions=@primacy/source --import tsx bench/failover.ts [--trials N] [--scenario mysqld|agent|both]
 *
 * Each trial starts a fresh cluster with a writer running, lets it write for about a second, then
 * kills either the primary's mysqld or the primary's agent (kill -9) and measures
 *   - kill → the `primary` key in etcd is `ready` at a new epoch (the time this process saw the put
 *     through an etcd watch), and
 *   - kill → the first acknowledged write on the new primary (never a late ack from the old one).
 * It then checks that every acknowledged write is on the new primary and that the read_only poller
 * never saw two writable nodes. Scenarios alternate, so drifting background load hits both alike.
 * A trial that loses a write, sees two writable nodes or never completes keeps its logs.
 */
import { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrimarySchema, type OpRecord, type Primary } from '@primacy/common';
import { cleanupAll, sleep, startEtcd, waitFor, type EtcdCluster } from '../test/harness/index.js';
import { WritableWatch, missingAcks, startCluster, type TestCluster } from '../test/support/cluster.js';
import { AckWriter } from './lib/ack-writer.js';
import { describeMachine, machineLine, type Machine } from './lib/machine.js';
import { fixed, seconds, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { mean, summarize } from './lib/percentiles.js';
import { loadAverage } from './lib/proc-stats.js';

const USAGE =
  'usage: node --conditions=@primacy/source --import tsx bench/failover.ts [--trials N] [--scenario mysqld|agent|both] [--max-minutes M] [--out FILE.md] [--render FILE.json]';

type Scenario = 'mysqld' | 'agent';

const SCENARIO_TITLE: Record<Scenario, string> = {
  mysqld: 'kill -9 of the primary\'s mysqld',
  agent: 'kill -9 of the primary\'s agent (mysqld alive)',
};

/** Goals from the issue, on kill → ready primary and kill → first write on the new primary. */
const GOALS: Record<Scenario, { medianMs: number | null; p99Ms: number; text: string }> = {
  mysqld: { medianMs: 1000, p99Ms: 2000, text: 'median < 1 s, p99 < 2 s' },
  agent: { medianMs: null, p99Ms: 6500, text: 'p99 < TTL + 1.5 s = 6.5 s' },
};

const STEADY_WRITES_MS = 1000;
const FAILOVER_TIMEOUT_MS = 30_000;
/** After the first write on the new primary, the poller keeps watching for a late second writer. */
const SETTLE_MS = 2000;
/** Several trials in a row that cannot even start a cluster mean the machine, not the product, is broken. */
const MAX_CONSECUTIVE_ERRORS = 3;

interface StepTiming {
  readonly name: string;
  /** From the kill, by the agents' clocks (same machine). */
  readonly startMs: number;
  readonly endMs: number | null;
  readonly outcome: string;
}

interface Trial {
  readonly scenario: Scenario;
  readonly index: number;
  readonly cluster: string;
  readonly oldPrimary: string;
  readonly oldEpoch: number;
  /** The coordinating agent when the kill happened. */
  readonly coordinator: string | null;
  readonly load1: number;
  newPrimary: string | null;
  newEpoch: number | null;
  promotingMs: number | null;
  readyMs: number | null;
  /** `since` of the new primary key, by the coordinator's clock. */
  sinceMs: number | null;
  firstNewAckMs: number | null;
  /** The last acknowledgement from the old primary after the kill (agent scenario: it keeps taking writes until fenced). */
  lastOldAckMs: number | null;
  acked: number;
  lost: number;
  lostSample: number[];
  splitBrain: number;
  splitBrainSample: string[];
  watchSamples: number;
  writableAtEnd: string[];
  writerErrors: number;
  steps: StepTiming[];
  opOutcome: string | null;
  error: string | null;
  artifacts: string | null;
}

const benchDir = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, {
    trials: { type: 'string' },
    scenario: { type: 'string' },
    'max-minutes': { type: 'string' },
    out: { type: 'string' },
    render: { type: 'string' },
  });
  const trials = intFlag(flags, 'trials', 20, 1, 200);
  const maxMinutes = intFlag(flags, 'max-minutes', 35, 1, 240);
  const which = stringFlag(flags, 'scenario') ?? 'both';
  if (which !== 'mysqld' && which !== 'agent' && which !== 'both') fail(`--scenario: expected mysqld, agent or both, got ${JSON.stringify(which)}`);
  const scenarios: Scenario[] = which === 'both' ? ['mysqld', 'agent'] : [which];
  const out = stringFlag(flags, 'out') ?? join(benchDir, 'results', 'failover.md');
  const render = stringFlag(flags, 'render');
  if (render !== undefined) {
    // Only re-renders the Markdown of an earlier run from its raw results.
    const saved = JSON.parse(readFileSync(render, 'utf8')) as { machine: Machine; info: RunInfo; results: Trial[]; finishedAt?: string };
    writeResults(out, saved.results, saved.machine, saved.info, saved.finishedAt ?? statSync(render).mtime.toISOString());
    progress(`wrote ${out}`);
    return;
  }
  const artifactsRoot = join('/tmp', `primacy-bench-failover-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const deadline = Date.now() + maxMinutes * 60_000;
  const machine = describeMachine();
  progress(`${machineLine(machine)}`);
  progress(`${trials} trials of ${scenarios.join(' and ')}, at most ${maxMinutes} min; results to ${out}`);

  const results: Trial[] = [];
  let stoppedEarly: string | null = null;
  const etcd = await startEtcd({ members: 3 });
  try {
    let consecutiveErrors = 0;
    outer: for (let i = 1; i <= trials; i++) {
      for (const scenario of scenarios) {
        if (Date.now() > deadline) {
          stoppedEarly = `the ${maxMinutes}-minute budget ran out before trial ${i} of ${scenario}`;
          break outer;
        }
        const t = await runTrial(etcd, scenario, i, artifactsRoot);
        results.push(t);
        progress(describeTrial(t));
        consecutiveErrors = t.error !== null && t.oldPrimary === '' ? consecutiveErrors + 1 : 0;
        writeResults(out, results, machine, { trials, scenarios, stoppedEarly, artifactsRoot: basename(artifactsRoot) });
        if (consecutiveErrors >= MAX_CONSECUTIVE_ERRORS) {
          stoppedEarly = `${consecutiveErrors} trials in a row could not start: ${t.error}`;
          break outer;
        }
      }
    }
  } finally {
    writeResults(out, results, machine, { trials, scenarios, stoppedEarly, artifactsRoot: basename(artifactsRoot) });
    await cleanupAll();
  }
  if (stoppedEarly) progress(`stopped early: ${stoppedEarly}`);
  progress(`wrote ${out} and ${out.replace(/\.md$/, '.json')}`);
}

async function runTrial(etcd: EtcdCluster, scenario: Scenario, index: number, artifactsRoot: string): Promise<Trial> {
  const t: Trial = {
    scenario,
    index,
    cluster: '',
    oldPrimary: '',
    oldEpoch: 0,
    coordinator: null,
    load1: loadAverage(),
    newPrimary: null,
    newEpoch: null,
    promotingMs: null,
    readyMs: null,
    sinceMs: null,
    firstNewAckMs: null,
    lastOldAckMs: null,
    acked: 0,
    lost: 0,
    lostSample: [],
    splitBrain: 0,
    splitBrainSample: [],
    watchSamples: 0,
    writableAtEnd: [],
    writerErrors: 0,
    steps: [],
    opOutcome: null,
    error: null,
    artifacts: null,
  };
  let c: TestCluster | null = null;
  let writer: AckWriter | null = null;
  let watch: WritableWatch | null = null;
  let cancelWatcher: () => Promise<void> = async () => undefined;
  const events: Array<{ at: number; p: Primary }> = [];
  let op: OpRecord | null = null;
  try {
    c = await startCluster(etcd);
    const cluster = c;
    Object.assign(t, { cluster: c.name });
    writer = new AckWriter(c, { maxMs: 120_000 }).start();
    watch = new WritableWatch(c).start();
    const w = writer;
    await waitFor('the writer\'s first acknowledgement', () => (w.acks.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    await sleep(STEADY_WRITES_MS);
    const old = await c.primary();
    if (!old || old.state !== 'ready') throw new Error(`no ready primary before the kill: ${JSON.stringify(old)}`);
    Object.assign(t, { oldPrimary: old.node, oldEpoch: old.epoch, coordinator: await coordinatorNode(c) });

    const watcher = await c.etcd.watch().key(c.keys.primary).create();
    cancelWatcher = async () => void (await watcher.cancel().catch(() => undefined));
    watcher.on('put', (kv) => {
      const at = Date.now();
      try {
        events.push({ at, p: PrimarySchema.parse(JSON.parse(kv.value.toString())) });
      } catch {
        // a malformed value is the product's bug, visible in the final read
      }
    });

    const killedAt = Date.now();
    if (scenario === 'mysqld') await c.server(old.node).kill();
    else await c.agents.get(old.node)!.kill();

    const isNew = (e: { p: Primary }) => e.p.epoch > old.epoch;
    const ready = await waitFor('the primary key to be ready at a new epoch', () => events.find((e) => isNew(e) && e.p.state === 'ready'), {
      timeoutMs: FAILOVER_TIMEOUT_MS,
      intervalMs: 5,
    }).catch((err: unknown) => {
      throw new Error(`failover never completed: ${err instanceof Error ? err.message : String(err)}`);
    });
    t.readyMs = ready.at - killedAt;
    t.sinceMs = ready.p.since - killedAt;
    t.newPrimary = ready.p.node;
    t.newEpoch = ready.p.epoch;
    const promoting = events.find((e) => isNew(e) && e.p.state === 'promoting');
    t.promotingMs = promoting ? promoting.at - killedAt : null;
    const first = await waitFor('a write acknowledged by the new primary', () => w.firstAck(killedAt, (a) => a.node !== old.node) ?? undefined, {
      timeoutMs: FAILOVER_TIMEOUT_MS,
      intervalMs: 5,
    }).catch((err: unknown) => {
      throw new Error(`no write on the new primary: ${err instanceof Error ? err.message : String(err)}`);
    });
    t.firstNewAckMs = first.at - killedAt;
    const lastOld = w.lastAck(killedAt, (a) => a.node === old.node);
    t.lastOldAckMs = lastOld ? lastOld.at - killedAt : null;
    await sleep(SETTLE_MS);

    await writer.stop();
    await watch.stop();
    await cancelWatcher();
    op = await c.op(ready.p.epoch);
    t.opOutcome = op?.outcome ?? null;
    t.steps = (op?.steps ?? []).map((s) => ({ name: s.name, startMs: s.startedAt - killedAt, endMs: s.endedAt === null ? null : s.endedAt - killedAt, outcome: s.outcome }));
    const final = await c.primary();
    if (!final || final.node !== ready.p.node || final.epoch !== ready.p.epoch) {
      t.error = `the primary moved again after the failover: ${JSON.stringify(final)}`;
    }
    const target = final?.node ?? ready.p.node;
    const missing = await missingAcks(c, target, w.acks.map((a) => a.id));
    t.lost = missing.length;
    t.lostSample = missing.slice(0, 20);
    t.writableAtEnd = await writableNodes(cluster);
  } catch (err) {
    t.error = err instanceof Error ? err.message : String(err);
  } finally {
    if (writer) {
      await writer.stop();
      t.acked = writer.acks.length;
      t.writerErrors = writer.errorCount;
    }
    if (watch) {
      await watch.stop();
      t.splitBrain = watch.violations.length;
      t.splitBrainSample = watch.violations.slice(0, 10);
      t.watchSamples = watch.samples;
    }
    await cancelWatcher();
    const suspicious = t.error !== null || t.lost > 0 || t.splitBrain > 0 || t.writableAtEnd.length > 1;
    if (c && suspicious) t.artifacts = keepArtifacts(c, t, events, op, writer, artifactsRoot);
    if (c) await c.stop().catch(() => undefined);
  }
  return t;
}

/** The coordinator is the agent whose election key is oldest (lowest create revision). */
async function coordinatorNode(c: TestCluster): Promise<string | null> {
  const res = await c.etcd.getAll().prefix(`${c.keys.election}/`).exec();
  const oldest = [...res.kvs].sort((a, b) => (BigInt(a.create_revision) < BigInt(b.create_revision) ? -1 : 1))[0];
  return oldest ? oldest.value.toString() : null;
}

async function writableNodes(c: TestCluster): Promise<string[]> {
  const out: string[] = [];
  for (const s of c.db.servers) {
    if (!s.isRunning()) continue;
    const rows = await s.query<{ ro: number }>('SELECT @@global.read_only AS ro', [], { timeoutMs: 2000 }).catch(() => null);
    if (rows?.[0]?.ro === 0) out.push(s.name);
  }
  return out;
}

/** Copies the agents' and servers' logs and what the trial saw out of the harness's temp folder, which cleanup removes. */
function keepArtifacts(c: TestCluster, t: Trial, events: Array<{ at: number; p: Primary }>, op: OpRecord | null, writer: AckWriter | null, root: string): string {
  const dir = join(root, `${t.scenario}-${t.index}-${c.name}`);
  mkdirSync(dir, { recursive: true });
  for (const a of c.agents.values()) {
    cpSync(dirname(a.configFile), join(dir, basename(dirname(a.configFile))), { recursive: true, force: true });
  }
  for (const s of c.db.servers) {
    try {
      cpSync(s.logFile, join(dir, `${s.name}-mariadbd.log`));
    } catch {
      // no log yet
    }
  }
  writeFileSync(
    join(dir, 'trial.json'),
    JSON.stringify({ trial: t, primaryPuts: events, op, acks: writer?.acks.slice(-200), writerErrors: writer?.errors }, null, 2),
  );
  return dir;
}

function describeTrial(t: Trial): string {
  const head = `${t.scenario} #${t.index} (${t.cluster || '-'}: ${t.oldPrimary || '?'} → ${t.newPrimary ?? '?'}${t.coordinator === t.oldPrimary ? ', coordinator killed' : ''})`;
  const body = `ready ${seconds(t.readyMs)}, first write ${seconds(t.firstNewAckMs)}, acked ${t.acked}, lost ${t.lost}, two writable ${t.splitBrain}`;
  return `${head}: ${body}${t.error ? `; ERROR ${t.error}` : ''}${t.artifacts ? `; kept ${t.artifacts}` : ''}`;
}

interface RunInfo {
  readonly trials: number;
  readonly scenarios: Scenario[];
  readonly stoppedEarly: string | null;
  /** The temp folder (its name only) where a suspicious trial's logs are kept. */
  readonly artifactsRoot: string;
}

function writeResults(out: string, results: Trial[], machine: Machine, info: RunInfo, finishedAt = new Date().toISOString()): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out.replace(/\.md$/, '') + '.json', JSON.stringify({ machine, info, finishedAt, results }, null, 2));
  writeFileSync(out, renderMarkdown(results, machine, info, finishedAt));
}

function renderMarkdown(results: Trial[], machine: Machine, info: RunInfo, finishedAt: string): string {
  const lines: string[] = [];
  lines.push(`# Failover benchmark — ${finishedAt}`, '');
  lines.push(`Machine: ${machineLine(machine)}. Mean 1-minute load average at the kills: ${fixed(mean(results.map((r) => r.load1)), 2)}.`, '');
  lines.push(
    'Agents: default timings (probe 250 ms, lease TTL 5 s, fence margin 1.5 s), run with `node --import tsx` by the test harness. ' +
      'Percentiles by nearest rank (the median is p50 by nearest rank; with fewer than 100 trials p99 is the maximum).',
    '',
  );
  if (info.stoppedEarly) lines.push(`**Stopped early:** ${info.stoppedEarly}.`, '');

  const rows: string[][] = [];
  for (const scenario of info.scenarios) {
    const done = results.filter((r) => r.scenario === scenario);
    const goal = GOALS[scenario];
    for (const [label, pick] of [
      ['kill → primary `ready` (etcd)', (r: Trial) => r.readyMs],
      ['kill → first write on new primary', (r: Trial) => r.firstNewAckMs],
    ] as const) {
      const s = summarize(done.map(pick).filter((v): v is number => v !== null));
      const met = s ? (goal.medianMs === null || s.median < goal.medianMs) && s.p99 < goal.p99Ms : false;
      rows.push([
        SCENARIO_TITLE[scenario],
        label,
        `${s?.n ?? 0}/${done.length}`,
        seconds(s?.median),
        seconds(s?.p90),
        seconds(s?.p99),
        seconds(s?.min),
        seconds(s?.max),
        `${goal.text}: ${s ? (met ? 'met' : '**not met**') : '—'}`,
      ]);
    }
  }
  lines.push('## Time to recover', '');
  lines.push(table(['scenario', 'interval', 'trials', 'median', 'p90', 'p99', 'min', 'max', 'goal'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l']), '');

  lines.push('## Safety', '');
  lines.push(
    table(
      ['scenario', 'trials', 'incomplete', 'acknowledged writes', 'lost', 'samples with two writable nodes', 'read_only polls', 'writable nodes at end ≠ 1'],
      info.scenarios.map((scenario) => {
        const done = results.filter((r) => r.scenario === scenario);
        return [
          SCENARIO_TITLE[scenario],
          String(done.length),
          String(done.filter((r) => r.error !== null).length),
          String(done.reduce((a, r) => a + r.acked, 0)),
          String(done.reduce((a, r) => a + r.lost, 0)),
          String(done.reduce((a, r) => a + r.splitBrain, 0)),
          String(done.reduce((a, r) => a + r.watchSamples, 0)),
          String(done.filter((r) => r.error === null && r.writableAtEnd.length !== 1).length),
        ];
      }),
    ),
    '',
  );

  lines.push('## By where the coordinator ran (kill → primary `ready`)', '');
  lines.push(
    table(
      ['scenario', 'coordinator', 'trials', 'median', 'max'],
      info.scenarios.flatMap((scenario) =>
        (['on the old primary\'s node', 'on another node'] as const).map((where) => {
          const done = results.filter((r) => r.scenario === scenario && r.readyMs !== null && (r.coordinator === r.oldPrimary) === (where === 'on the old primary\'s node'));
          const s = summarize(done.map((r) => r.readyMs!));
          return [SCENARIO_TITLE[scenario], where, String(done.length), seconds(s?.median), seconds(s?.max)];
        }),
      ),
      ['l', 'l', 'r', 'r', 'r'],
    ),
    '',
  );

  lines.push('## Where the time goes (median over trials, from the kill; steps from `ops/<epoch>`)', '');
  const stepNames = [...new Set(results.flatMap((r) => r.steps.map((s) => s.name)))];
  const phaseRows: string[][] = [];
  for (const name of stepNames) {
    const cells = info.scenarios.flatMap((scenario) => {
      const steps = results.filter((r) => r.scenario === scenario).flatMap((r) => r.steps.filter((s) => s.name === name));
      const start = summarize(steps.map((s) => s.startMs));
      const end = summarize(steps.flatMap((s) => (s.endMs === null ? [] : [s.endMs])));
      return [start ? `${seconds(start.median)} → ${seconds(end?.median)}` : '—'];
    });
    phaseRows.push([`step \`${name}\``, ...cells]);
  }
  for (const [label, pick] of [
    ['primary key `promoting` seen', (r: Trial) => r.promotingMs],
    ['primary key `ready` seen', (r: Trial) => r.readyMs],
    ['last write acknowledged by the old primary', (r: Trial) => r.lastOldAckMs],
    ['first write acknowledged by the new primary', (r: Trial) => r.firstNewAckMs],
  ] as const) {
    phaseRows.push([
      label,
      ...info.scenarios.map((scenario) => {
        const s = summarize(results.filter((r) => r.scenario === scenario).flatMap((r) => (pick(r) === null ? [] : [pick(r)!])));
        return s ? seconds(s.median) : '—';
      }),
    ]);
  }
  lines.push(table(['event', ...info.scenarios.map((s) => SCENARIO_TITLE[s])], phaseRows), '');

  lines.push('## Every trial', '');
  lines.push(
    table(
      ['scenario', '#', 'cluster', 'old → new', 'coordinator at kill', 'ready', 'first write', 'acked', 'lost', 'two writable', 'load', 'note'],
      results.map((r) => [
        r.scenario,
        String(r.index),
        r.cluster,
        `${r.oldPrimary || '?'} → ${r.newPrimary ?? '?'}`,
        r.coordinator ?? '?',
        seconds(r.readyMs),
        seconds(r.firstNewAckMs),
        String(r.acked),
        String(r.lost),
        String(r.splitBrain),
        fixed(r.load1, 2),
        [r.error ?? '', r.artifacts ? `logs: ${r.artifacts}` : ''].filter(Boolean).join('; ').replace(/\|/g, '\\|').replace(/\n/g, ' '),
      ]),
      ['l', 'r', 'l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    '',
  );
  return `${lines.join('\n')}\n`;
}

main().then(() => process.exit(0), async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
