/**
 * Write unavailability during planned switchovers, against the real local cluster: one cluster of 3
 * MariaDB servers (semi-sync AFTER_SYNC), a 3-member etcd and three real primacy-agent processes with
 * default timings, and N switchovers in a row on it, the target rotating db1 → db2 → db3 → db1 …
 *
 *   node --conditions=@primacy/source --import tsx bench/switchover.ts [--trials N]
 *
 * A client writes throughout, one INSERT at a time as the application user, and follows the primary
 * key as the product's clients do: it writes only to a `ready` primary and holds its writes while the
 * key says `switching` or `promoting` (bench/lib/ack-writer.ts). Each switchover is requested the way
 * `primacy switchover --to NODE` does, by putting `requests/<id>`. For each one it measures
 *   - the write-unavailability window as that client sees it: from the last write the old primary
 *     acknowledged to the first write the new primary acknowledged, and
 *   - request → the `primary` key is `ready` at the next epoch (the time this process saw the put
 *     through an etcd watch).
 * Before each request it waits until both replicas replicate from the current primary and the writer
 * has written to it for a second, so that every switchover starts from the same steady state.
 * After the last one it checks that every acknowledged write is on the final primary, that the
 * read_only poller never saw two writable nodes, and that every operation record ends `done`.
 * The anti-flapping window (timings.antiFlapMs) applies to automatic failovers only, not to requested
 * switchovers, so the switchovers can follow each other closely. A failed trial is counted and
 * described, and the run goes on; the logs of a run with any failure (or with --keep-logs) are kept.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OpRecordSchema, PrimarySchema, type MemberState, type OpRecord, type Primary } from '@primacy/common';
import { cleanupAll, sleep, startEtcd, waitFor } from '../test/harness/index.js';
import { WritableWatch, missingAcks, startCluster, type TestCluster } from '../test/support/cluster.js';
import { AckWriter, type Ack } from './lib/ack-writer.js';
import { describeMachine, machineLine, type Machine } from './lib/machine.js';
import { fixed, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { mean, summarize, type Summary } from './lib/percentiles.js';
import { loadAverage } from './lib/proc-stats.js';

const USAGE = 'usage: node --conditions=@primacy/source --import tsx bench/switchover.ts [--trials N] [--max-minutes M] [--out FILE.md] [--keep-logs]';

/** The goal from the issue, on the write-unavailability window; MHA's published figure for its online switch, for comparison. */
const GOAL_MEDIAN_MS = 300;
const GOAL_TEXT = 'median < 300 ms (MHA publishes 0.5–2 s for its online switch)';

const ROTATION = ['db1', 'db2', 'db3'] as const;
/** Writes to the current primary, with both replicas following it, before each request. */
const STEADY_WRITES_MS = 1000;
const SETTLE_TIMEOUT_MS = 30_000;
const SWITCHOVER_TIMEOUT_MS = 30_000;
const FIRST_WRITE_TIMEOUT_MS = 10_000;
const OP_END_TIMEOUT_MS = 10_000;
/** After the last switchover, the poller keeps watching for a late second writer. */
const FINAL_WATCH_MS = 2000;
/** Several trials in a row that cannot start (no steady state to switch from) mean the run is broken. */
const MAX_CONSECUTIVE_UNSTARTED = 3;

interface StepTiming {
  readonly name: string;
  /** From the request, by the agents' clocks (same machine). */
  readonly startMs: number;
  readonly endMs: number | null;
  readonly outcome: string;
}

interface Trial {
  readonly index: number;
  from: string;
  fromEpoch: number;
  to: string;
  requestId: string;
  /** 1-minute load average when the request was put. */
  load1: number;
  /** Waiting for the replicas to follow the current primary before the request. */
  settleMs: number | null;
  /** The rest are from the request, in ms. */
  switchingMs: number | null;
  promotingMs: number | null;
  readyMs: number | null;
  lastOldAckMs: number | null;
  firstNewAckMs: number | null;
  /** Last write acknowledged by the old primary → first write acknowledged by the new one. */
  windowMs: number | null;
  newPrimary: string | null;
  newEpoch: number | null;
  opOutcome: string | null;
  opReason: string | null;
  steps: StepTiming[];
  /** Acknowledgements from the last settled state to the end of the trial. */
  acked: number;
  /** Writer errors inside the window (killed sessions, read-only refusals, refused connections). */
  writerErrors: number;
  writerErrorSample: string[];
  /** Primary-key puts seen for this switchover, in order, as `state@ms`. */
  puts: string[];
  error: string | null;
  /** The trial never reached the request (no steady state to switch from). */
  unstarted: boolean;
}

interface Verdict {
  acked: number;
  lost: number;
  lostSample: number[];
  /** The trial during which each lost write was acknowledged. */
  lostByTrial: Record<string, number>;
  splitBrain: number;
  splitBrainSample: string[];
  watchSamples: number;
  writableAtEnd: string[];
  finalPrimary: string | null;
  writerErrors: number;
  error: string | null;
}

interface RunInfo {
  readonly trials: number;
  readonly cluster: string;
  readonly uptimeStart: string;
  uptimeEnd: string;
  stoppedEarly: string | null;
  artifacts: string | null;
}

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, { trials: { type: 'string' }, 'max-minutes': { type: 'string' }, out: { type: 'string' }, 'keep-logs': { type: 'boolean' } });
  const trials = intFlag(flags, 'trials', 20, 1, 200);
  const maxMinutes = intFlag(flags, 'max-minutes', 30, 1, 240);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const runDir = join('/tmp', `primacy-bench-switchover-${stamp}`);
  const out = stringFlag(flags, 'out') ?? join(runDir, 'switchover.md');
  if (!out.endsWith('.md')) fail(`--out: expected a .md file, got ${JSON.stringify(out)}`);
  const deadline = Date.now() + maxMinutes * 60_000;
  const machine = describeMachine();
  const info: RunInfo = { trials, cluster: '', uptimeStart: uptime(), uptimeEnd: '', stoppedEarly: null, artifacts: null };
  progress(machineLine(machine));
  progress(`uptime: ${info.uptimeStart}`);
  progress(`${trials} switchovers in a row, at most ${maxMinutes} min; results to ${out}`);

  const results: Trial[] = [];
  let verdict: Verdict | null = null;
  const save = () => writeResults(out, results, verdict, machine, info);
  try {
    const etcd = await startEtcd({ members: 3 });
    const c = await startCluster(etcd);
    Object.assign(info, { cluster: c.name });
    const writer = new AckWriter(c, { maxMs: maxMinutes * 60_000 + 120_000 }).start();
    const watch = new WritableWatch(c).start();
    const puts = await watchKeys(c);
    try {
      await waitFor('the writer\'s first acknowledgement', () => (writer.acks.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      let unstarted = 0;
      for (let i = 1; i <= trials; i++) {
        if (Date.now() > deadline) {
          info.stoppedEarly = `the ${maxMinutes}-minute budget ran out before trial ${i}`;
          break;
        }
        const t = await runTrial(c, writer, puts, i);
        results.push(t);
        progress(describeTrial(t));
        save();
        unstarted = t.unstarted ? unstarted + 1 : 0;
        if (unstarted >= MAX_CONSECUTIVE_UNSTARTED) {
          info.stoppedEarly = `${unstarted} trials in a row could not start: ${t.error}`;
          break;
        }
      }
      await sleep(FINAL_WATCH_MS);
    } finally {
      await writer.stop();
      await watch.stop();
      await puts.cancel();
    }
    verdict = await check(c, writer, watch, results);
    progress(`acknowledged ${verdict.acked}, lost ${verdict.lost}, samples with two writable nodes ${verdict.splitBrain} of ${verdict.watchSamples}, writable at end: ${verdict.writableAtEnd.join(', ') || 'none'}`);
    const failed = results.some((t) => t.error !== null) || verdict.lost > 0 || verdict.splitBrain > 0 || verdict.error !== null;
    if (failed || flags['keep-logs'] === true) info.artifacts = keepArtifacts(c, runDir, puts, writer);
  } finally {
    info.uptimeEnd = uptime();
    progress(`uptime: ${info.uptimeEnd}`);
    save();
    await cleanupAll();
  }
  if (info.stoppedEarly) progress(`stopped early: ${info.stoppedEarly}`);
  process.stdout.write(renderMarkdown(results, verdict, machine, info));
  progress(`wrote ${out} and ${out.replace(/\.md$/, '.json')}${info.artifacts ? `; logs kept in ${info.artifacts}` : ''}`);
}

interface KeyEvents {
  readonly primary: Array<{ at: number; p: Primary }>;
  readonly ops: Array<{ at: number; op: OpRecord }>;
  cancel(): Promise<void>;
}

/** Every put of the primary key and of the op records, with the time this process saw it. */
async function watchKeys(c: TestCluster): Promise<KeyEvents> {
  const events: KeyEvents = { primary: [], ops: [], cancel: async () => undefined };
  const primaryWatch = await c.etcd.watch().key(c.keys.primary).create();
  const opsWatch = await c.etcd.watch().prefix(c.keys.opsPrefix).create();
  primaryWatch.on('put', (kv) => {
    const at = Date.now();
    const parsed = PrimarySchema.safeParse(safeJson(kv.value.toString()));
    if (parsed.success) events.primary.push({ at, p: parsed.data });
  });
  opsWatch.on('put', (kv) => {
    const at = Date.now();
    const parsed = OpRecordSchema.safeParse(safeJson(kv.value.toString()));
    if (parsed.success) events.ops.push({ at, op: parsed.data });
  });
  events.cancel = async () => {
    await Promise.allSettled([primaryWatch.cancel(), opsWatch.cancel()]);
  };
  return events;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null; // a malformed value is the product's bug, visible in the final reads
  }
}

async function runTrial(c: TestCluster, writer: AckWriter, events: KeyEvents, index: number): Promise<Trial> {
  const t: Trial = {
    index,
    from: '',
    fromEpoch: 0,
    to: '',
    requestId: '',
    load1: Number.NaN,
    settleMs: null,
    switchingMs: null,
    promotingMs: null,
    readyMs: null,
    lastOldAckMs: null,
    firstNewAckMs: null,
    windowMs: null,
    newPrimary: null,
    newEpoch: null,
    opOutcome: null,
    opReason: null,
    steps: [],
    acked: 0,
    writerErrors: 0,
    writerErrorSample: [],
    puts: [],
    error: null,
    unstarted: true,
  };
  const settleStart = Date.now();
  const acksBefore = writer.acks.length;
  let requestedAt = 0;
  try {
    const old = await steadyPrimary(c, writer);
    t.settleMs = Date.now() - settleStart - STEADY_WRITES_MS;
    const to = ROTATION[(ROTATION.indexOf(old.node as (typeof ROTATION)[number]) + 1) % ROTATION.length]!;
    Object.assign(t, { from: old.node, fromEpoch: old.epoch, to, unstarted: false });

    requestedAt = Date.now();
    t.load1 = loadAverage();
    t.requestId = `${requestedAt}-bench-${index}`;
    const request = { kind: 'switchover', to, force: false, requestedAt, by: 'bench/switchover' };
    await c.etcd.put(c.keys.request(t.requestId)).value(JSON.stringify(request));
    const epoch = old.epoch + 1;

    // Ready at the next epoch, or the coordinator's answer that it will not be.
    let ready: { at: number; p: Primary } | undefined;
    const answer = await waitFor(
      `the switchover to ${to} to finish`,
      () => {
        ready = events.primary.find((e) => e.at >= requestedAt && e.p.epoch > old.epoch && e.p.state === 'ready');
        if (ready) return 'ready';
        const op = events.ops.find((e) => e.at >= requestedAt && e.op.epoch === epoch && (e.op.outcome === 'aborted' || e.op.outcome === 'refused'));
        return op ? `${op.op.outcome}: ${op.op.reason}` : undefined;
      },
      { timeoutMs: SWITCHOVER_TIMEOUT_MS, intervalMs: 5 },
    ).catch((err: unknown) => `never finished: ${err instanceof Error ? err.message : String(err)}`);
    const seen = events.primary.filter((e) => e.at >= requestedAt && e.p.epoch >= old.epoch);
    t.puts = seen.map((e) => `${e.p.node}/${e.p.epoch}/${e.p.state}@${e.at - requestedAt}`);
    t.switchingMs = since(seen.find((e) => e.p.epoch === old.epoch && e.p.state === 'switching'), requestedAt);
    t.promotingMs = since(seen.find((e) => e.p.epoch > old.epoch && e.p.state === 'promoting'), requestedAt);
    if (answer !== 'ready' || !ready) throw new Error(`switchover ${old.node} → ${to} ${answer}`);
    t.readyMs = ready.at - requestedAt;
    t.newPrimary = ready.p.node;
    t.newEpoch = ready.p.epoch;
    if (ready.p.node !== to || ready.p.epoch !== epoch) t.error = `expected ${to} at epoch ${epoch}, the primary key names ${ready.p.node} at epoch ${ready.p.epoch}`;

    const isNew = (a: Ack) => a.node === ready!.p.node && a.epoch >= ready!.p.epoch;
    const first = await waitFor('a write acknowledged by the new primary', () => writer.firstAck(requestedAt, isNew) ?? undefined, {
      timeoutMs: FIRST_WRITE_TIMEOUT_MS,
      intervalMs: 5,
    }).catch((err: unknown) => {
      throw new Error(`no write on ${ready!.p.node}: ${err instanceof Error ? err.message : String(err)}`);
    });
    t.firstNewAckMs = first.at - requestedAt;
    // The writer has one write in flight at a time, so acknowledgements are in order: the one before the first on the new primary.
    const i = writer.acks.indexOf(first);
    const before = i > 0 ? writer.acks[i - 1]! : null;
    if (!before || before.node !== old.node || before.epoch !== old.epoch) {
      throw new Error(`the acknowledgement before the first on ${first.node} came from ${before ? `${before.node} at epoch ${before.epoch}` : 'nowhere'}, not ${old.node}`);
    }
    t.lastOldAckMs = before.at - requestedAt;
    t.windowMs = first.at - before.at;
    const errors = writer.errors.filter((e) => e.at >= before.at && e.at <= first.at);
    t.writerErrors = errors.length;
    t.writerErrorSample = [...new Set(errors.map((e) => `${e.node ?? '-'}: ${e.message}`))].slice(0, 5);

    const op = await waitFor(`ops/${epoch} to end`, async () => {
      const op = await c.op(epoch);
      return op && op.outcome !== 'running' ? op : undefined;
    }, { timeoutMs: OP_END_TIMEOUT_MS, intervalMs: 20 }).catch(() => c.op(epoch));
    t.opOutcome = op?.outcome ?? null;
    t.opReason = op?.reason ?? null;
    t.steps = (op?.steps ?? []).map((s) => ({ name: s.name, startMs: s.startedAt - requestedAt, endMs: s.endedAt === null ? null : s.endedAt - requestedAt, outcome: s.outcome }));
    const problems: string[] = [];
    if (t.error) problems.push(t.error);
    if (!op) problems.push(`ops/${epoch} is missing`);
    else {
      if (op.outcome !== 'done') problems.push(`ops/${epoch} ended ${op.outcome}: ${op.reason}`);
      if (op.kind !== 'switchover' || op.from !== old.node || op.to !== to || op.trigger !== `request ${t.requestId}`) {
        problems.push(`ops/${epoch} is ${op.kind} ${op.from} → ${op.to} by ${op.trigger}`);
      }
    }
    if (problems.length > 0) t.error = problems.join('; ');
  } catch (err) {
    t.error = err instanceof Error ? err.message : String(err);
    if (requestedAt > 0 && t.opOutcome === null) {
      const op = await c.op(t.fromEpoch + 1).catch(() => null);
      if (op && op.startedAt >= requestedAt - 1000) {
        t.opOutcome = op.outcome;
        t.opReason = op.reason;
        t.steps = op.steps.map((s) => ({ name: s.name, startMs: s.startedAt - requestedAt, endMs: s.endedAt === null ? null : s.endedAt - requestedAt, outcome: s.outcome }));
      }
    }
  }
  t.acked = writer.acks.length - acksBefore;
  return t;
}

function since(e: { at: number } | undefined, t0: number): number | null {
  return e ? e.at - t0 : null;
}

/**
 * A ready primary whose two replicas replicate from it (both threads running), and which the writer
 * has been writing to for STEADY_WRITES_MS: the state every switchover starts from.
 */
async function steadyPrimary(c: TestCluster, writer: AckWriter): Promise<Primary> {
  let why = '';
  const p = await waitFor('the replicas to follow the primary', async () => {
    const p = await c.primary();
    if (!p || p.state !== 'ready') return void (why = `the primary key is ${p ? `${p.node} ${p.state}` : 'missing'}`);
    const members = await Promise.all(ROTATION.map((n) => c.member(n)));
    for (const m of members) {
      const lag = m ? following(m, p) : 'has no member key';
      if (lag !== null) return void (why = `${m?.node ?? '?'} ${lag}`);
    }
    if (!writer.firstAck(Date.now() - 500, (a) => a.node === p.node && a.epoch === p.epoch)) return void (why = `no recent write on ${p.node}`);
    return p;
  }, { timeoutMs: SETTLE_TIMEOUT_MS, intervalMs: 50 }).catch((err: unknown) => {
    throw new Error(`no steady state to switch from (${why}): ${err instanceof Error ? err.message : String(err)}`);
  });
  await sleep(STEADY_WRITES_MS);
  const still = await c.primary();
  if (!still || still.node !== p.node || still.epoch !== p.epoch || still.state !== 'ready') throw new Error(`the primary moved by itself: ${JSON.stringify(still)}`);
  return still;
}

/** Why `m` does not yet follow `p` as a healthy member of its epoch, or null when it does. */
function following(m: MemberState, p: Primary): string | null {
  if (m.health !== 'up' || !m.server) return `is ${m.health}`;
  if (m.node === p.node) return m.role === 'primary' && !m.server.readOnly ? null : `is the primary but reports role ${m.role}, read_only ${m.server.readOnly}`;
  const r = m.server.replication;
  if (m.role !== 'replica') return `reports role ${m.role}`;
  if (!r || r.sourceHost !== p.host || r.sourcePort !== p.port) return `does not replicate from ${p.node} yet`;
  if (r.ioState !== 'running' || !r.sqlRunning) return `replicates from ${p.node} with IO ${r.ioState}, SQL ${r.sqlRunning ? 'running' : 'stopped'}`;
  return null;
}

/** After the last trial: nothing lost, never two writable nodes, one writable node now. */
async function check(c: TestCluster, writer: AckWriter, watch: WritableWatch, results: Trial[]): Promise<Verdict> {
  const v: Verdict = {
    acked: writer.acks.length,
    lost: 0,
    lostSample: [],
    lostByTrial: {},
    splitBrain: watch.violations.length,
    splitBrainSample: watch.violations.slice(0, 10),
    watchSamples: watch.samples,
    writableAtEnd: [],
    finalPrimary: null,
    writerErrors: writer.errorCount,
    error: null,
  };
  try {
    const p = await c.primary();
    if (!p || p.state !== 'ready') throw new Error(`no ready primary at the end: ${JSON.stringify(p)}`);
    v.finalPrimary = `${p.node} (epoch ${p.epoch})`;
    const missing = await missingAcks(c, p.node, writer.acks.map((a) => a.id));
    v.lost = missing.length;
    v.lostSample = missing.slice(0, 20);
    const byId = new Map(writer.acks.map((a) => [a.id, a]));
    for (const id of missing) {
      const at = byId.get(id)!.at;
      const trial = [...results].reverse().find((t) => t.requestId !== '' && Number(t.requestId.split('-')[0]) <= at);
      const key = trial ? `#${trial.index}` : 'before #1';
      v.lostByTrial[key] = (v.lostByTrial[key] ?? 0) + 1;
    }
    for (const s of c.db.servers) {
      const rows = await s.query<{ ro: number }>('SELECT @@global.read_only AS ro', [], { timeoutMs: 2000 }).catch(() => null);
      if (rows?.[0]?.ro === 0) v.writableAtEnd.push(s.name);
    }
    if (v.writableAtEnd.length !== 1 || v.writableAtEnd[0] !== p.node) v.error = `writable at the end: ${v.writableAtEnd.join(', ') || 'none'}, primary ${p.node}`;
  } catch (err) {
    v.error = err instanceof Error ? err.message : String(err);
  }
  return v;
}

/** Copies the agents' and servers' logs and what the run saw out of the harness's temp folder, which cleanup removes. */
function keepArtifacts(c: TestCluster, root: string, events: KeyEvents, writer: AckWriter): string {
  const dir = join(root, c.name);
  mkdirSync(dir, { recursive: true });
  for (const a of c.agents.values()) cpSync(dirname(a.configFile), join(dir, basename(dirname(a.configFile))), { recursive: true, force: true });
  for (const s of c.db.servers) {
    try {
      cpSync(s.logFile, join(dir, `${s.name}-mariadbd.log`));
    } catch {
      // no log yet
    }
  }
  writeFileSync(join(dir, 'events.json'), JSON.stringify({ primaryPuts: events.primary, opPuts: events.ops, writerErrors: writer.errors }, null, 2));
  return dir;
}

/** What `uptime` prints (its load averages are the 1, 5 and 15-minute ones), or /proc/loadavg without it. */
function uptime(): string {
  try {
    return execFileSync('uptime', [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().replace(/\s+/g, ' ');
  } catch {
    try {
      return `/proc/loadavg ${readFileSync('/proc/loadavg', 'utf8').trim()}`;
    } catch {
      return 'unknown';
    }
  }
}

function ms(v: number | null | undefined): string {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : `${fixed(v, 0)} ms`;
}

function describeTrial(t: Trial): string {
  const head = `#${t.index} ${t.from || '?'} → ${t.to || '?'} (epoch ${t.fromEpoch || '?'} → ${t.newEpoch ?? '?'})`;
  const body = `window ${ms(t.windowMs)}, ready ${ms(t.readyMs)}, first write ${ms(t.firstNewAckMs)}, op ${t.opOutcome ?? '?'}, settle ${ms(t.settleMs)}, load ${fixed(t.load1, 2)}`;
  return `${head}: ${body}${t.error ? `; ERROR ${t.error}` : ''}`;
}

function writeResults(out: string, results: Trial[], verdict: Verdict | null, machine: Machine, info: RunInfo): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out.replace(/\.md$/, '') + '.json', JSON.stringify({ machine, info, verdict, finishedAt: new Date().toISOString(), results }, null, 2));
  writeFileSync(out, renderMarkdown(results, verdict, machine, info));
}

function summaryCells(s: Summary | null): string[] {
  return [ms(s?.median), ms(s?.p90), ms(s?.p99), ms(s?.min), ms(s?.max)];
}

function renderMarkdown(results: Trial[], verdict: Verdict | null, machine: Machine, info: RunInfo): string {
  const lines: string[] = [];
  const started = results.filter((t) => !t.unstarted);
  const failed = results.filter((t) => t.error !== null);
  lines.push(`# Switchover benchmark — ${new Date().toISOString()}`, '');
  lines.push(`Machine: ${machineLine(machine)}.`, '');
  lines.push(
    `Load: at the start ${info.uptimeStart}; at the end ${info.uptimeEnd || '(running)'}; mean 1-minute load average at the requests ${fixed(mean(started.map((t) => t.load1)), 2)}.`,
    '',
  );
  lines.push(
    `One cluster (${info.cluster || '?'}: 3 MariaDB servers with semi-sync AFTER_SYNC, 3 agents, a 3-member etcd), ${info.trials} switchovers requested in a row, the target rotating db1 → db2 → db3 → db1. ` +
      'Agents: default timings (probe 250 ms, 50 ms while an operation runs; lease TTL 5 s), run with `node --import tsx` by the test harness. ' +
      'Percentiles by nearest rank (with fewer than 100 trials p99 is the maximum).',
    '',
  );
  if (info.stoppedEarly) lines.push(`**Stopped early:** ${info.stoppedEarly}.`, '');

  const window = summarize(started.flatMap((t) => (t.windowMs === null ? [] : [t.windowMs])));
  const rows: string[][] = [];
  for (const [label, pick] of [
    ['write unavailability (last ack on old primary → first ack on new)', (t: Trial) => t.windowMs],
    ['request → primary `ready` (etcd)', (t: Trial) => t.readyMs],
    ['request → first ack on new primary', (t: Trial) => t.firstNewAckMs],
  ] as const) {
    const s = summarize(started.flatMap((t) => (pick(t) === null ? [] : [pick(t)!])));
    rows.push([label, `${s?.n ?? 0}/${results.length}`, ...summaryCells(s)]);
  }
  lines.push('## Times', '');
  lines.push(table(['interval', 'trials', 'median', 'p90', 'p99', 'min', 'max'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']), '');
  lines.push(`Goal: ${GOAL_TEXT}: ${window ? (window.median < GOAL_MEDIAN_MS ? 'met' : '**not met**') : '—'}.`, '');

  lines.push('## Safety', '');
  lines.push(
    table(
      ['trials', 'failed', 'ops `done`', 'acknowledged writes', 'lost on the final primary', 'samples with two writable nodes', 'read_only polls', 'writable at end'],
      [
        [
          String(results.length),
          String(failed.length),
          `${results.filter((t) => t.opOutcome === 'done').length}/${results.length}`,
          String(verdict?.acked ?? '—'),
          verdict ? `${verdict.lost}${verdict.lost > 0 ? ` (${Object.entries(verdict.lostByTrial).map(([k, n]) => `${n} in ${k}`).join(', ')})` : ''}` : '—',
          String(verdict?.splitBrain ?? '—'),
          String(verdict?.watchSamples ?? '—'),
          verdict ? verdict.writableAtEnd.join(', ') || 'none' : '—',
        ],
      ],
      ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    '',
  );
  if (verdict?.error) lines.push(`**Final check:** ${verdict.error}.`, '');
  if (verdict && verdict.splitBrain > 0) lines.push(`Two writable nodes: ${verdict.splitBrainSample.join('; ')}.`, '');
  if (verdict && verdict.lost > 0) lines.push(`Lost ids (first 20): ${verdict.lostSample.join(', ')}.`, '');
  if (info.artifacts) lines.push(`Logs kept in \`${info.artifacts}\`.`, '');

  lines.push('## Where the time goes (median over trials, from the request)', '');
  const stepNames = [...new Set(started.flatMap((t) => t.steps.map((s) => s.name)))];
  const phaseRows: string[][] = [];
  for (const [label, pick] of [
    ['primary key `switching` seen', (t: Trial) => t.switchingMs],
    ['last write acknowledged by the old primary', (t: Trial) => t.lastOldAckMs],
    ['primary key `promoting` seen', (t: Trial) => t.promotingMs],
    ['primary key `ready` seen', (t: Trial) => t.readyMs],
    ['first write acknowledged by the new primary', (t: Trial) => t.firstNewAckMs],
  ] as const) {
    phaseRows.push([label, ms(summarize(started.flatMap((t) => (pick(t) === null ? [] : [pick(t)!])))?.median)]);
  }
  for (const name of stepNames) {
    const steps = started.flatMap((t) => t.steps.filter((s) => s.name === name));
    const start = summarize(steps.map((s) => s.startMs));
    const end = summarize(steps.flatMap((s) => (s.endMs === null ? [] : [s.endMs])));
    phaseRows.push([`step \`${name}\` (agents' clocks)`, start ? `${ms(start.median)} → ${ms(end?.median)}` : '—']);
  }
  lines.push(table(['event', 'median'], phaseRows), '');

  lines.push('## Every trial', '');
  lines.push(
    table(
      ['#', 'from → to', 'epoch', 'window', 'request → ready', 'request → first new ack', 'last old ack', 'writer errors in window', 'op', 'acked', 'settle', 'load', 'note'],
      results.map((t) => [
        String(t.index),
        `${t.from || '?'} → ${t.to || '?'}${t.newPrimary && t.newPrimary !== t.to ? ` (got ${t.newPrimary})` : ''}`,
        `${t.fromEpoch || '?'} → ${t.newEpoch ?? '?'}`,
        ms(t.windowMs),
        ms(t.readyMs),
        ms(t.firstNewAckMs),
        ms(t.lastOldAckMs),
        String(t.writerErrors),
        t.opOutcome ?? '—',
        String(t.acked),
        ms(t.settleMs),
        fixed(t.load1, 2),
        (t.error ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' '),
      ]),
      ['r', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'l'],
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
