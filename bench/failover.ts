/**
 * Failover time against the real local cluster: 3 MariaDB servers (semi-sync AFTER_SYNC), a 3-member
 * etcd shared by every trial, and three real primacy-agent processes per trial with default timings.
 *
 *   node --conditions=@primacy/source --import tsx bench/failover.ts [--trials N] [--scenario LIST]
 *
 * LIST is a comma-separated list of scenarios, or one of the groups `both` (mysqld,agent; the
 * default), `freeze` (the four freeze-* scenarios) and `all`:
 *   - mysqld: kill -9 of the primary's mysqld;
 *   - agent: kill -9 of the primary's agent (mysqld alive);
 *   - freeze-async, freeze-semi-sync, freeze-strict: SIGSTOP of the primary's mysqld for a fixed time
 *     (--freeze-seconds, default 8), then SIGCONT, under that durability (the etcd config key);
 *   - freeze-fencing: the same freeze under semi-sync, with a fencing command (written by this
 *     benchmark) that kills the frozen mysqld with kill -9.
 *
 * Each trial starts a fresh cluster with a writer running, lets it write for about a second, then
 * applies the fault and measures
 *   - fault → the `primary` key in etcd is `ready` at a new epoch (the time this process saw the put
 *     through an etcd watch), and
 *   - fault → the first acknowledged write on the new primary (never a late ack from the old one),
 *   - fault → the proof that the old primary can no longer acknowledge a write (`op.proof.at`, and
 *     its kind).
 * It then checks that every acknowledged write is on the new primary and that the read_only poller
 * never saw two writable nodes; in the freeze scenarios also that the old primary acknowledged no
 * write after the proof was recorded (a stale client keeps writing to it once it wakes up).
 * Scenarios alternate, so drifting background load hits all alike.
 * A trial that loses a write, sees two writable nodes or never completes keeps its logs.
 */
import { tmpdir } from 'node:os';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connection } from 'mysql2/promise';
import { DurabilityRecordSchema, MemberStateSchema, PrimarySchema, type Durability, type DurabilityRecord, type OpRecord, type Primary } from '@primacy/common';
import { APP, cleanupAll, harnessDir, sleep, startEtcd, waitFor, type EtcdCluster, type MariaDbCluster, type MariaDbServer } from '../test/harness/index.js';
import { WritableWatch, missingAcks, startCluster, type TestCluster } from '../test/support/cluster.js';
import { AckWriter, lastGtid, type Ack } from './lib/ack-writer.js';
import { describeMachine, machineLine, type Machine } from './lib/machine.js';
import { fixed, seconds, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { mean, summarize } from './lib/percentiles.js';
import { loadAverage } from './lib/proc-stats.js';

const USAGE =
  'usage: node --conditions=@primacy/source --import tsx bench/failover.ts [--trials N] [--scenario mysqld,agent,freeze-async,freeze-semi-sync,freeze-strict,freeze-fencing|both|freeze|all] [--freeze-seconds S] [--net-timeout S] [--server-option key=value]... [--keep-logs] [--max-minutes M] [--out FILE.md] [--render FILE.json]';

type KillScenario = 'mysqld' | 'agent';
type FreezeScenario = 'freeze-async' | 'freeze-semi-sync' | 'freeze-strict' | 'freeze-fencing';
type Scenario = KillScenario | FreezeScenario;

const KILL_SCENARIOS: readonly KillScenario[] = ['mysqld', 'agent'];
const FREEZE_SCENARIOS: readonly FreezeScenario[] = ['freeze-async', 'freeze-semi-sync', 'freeze-strict', 'freeze-fencing'];
const GROUPS: Record<string, readonly Scenario[]> = { both: KILL_SCENARIOS, freeze: FREEZE_SCENARIOS, all: [...KILL_SCENARIOS, ...FREEZE_SCENARIOS] };

function isFreeze(s: Scenario): s is FreezeScenario {
  return s.startsWith('freeze-');
}

/** What each freeze scenario runs, and what invariant 4 says it must do. */
const FREEZE: Record<FreezeScenario, { durability: Durability; fencing: boolean; label: string; proofs: readonly string[]; during: boolean; expect: string }> = {
  'freeze-async': { durability: 'async', fencing: false, label: 'async', proofs: ['agent-fenced', 'sql-fenced'], during: false, expect: 'waits for SIGCONT, then a fence read back' },
  'freeze-semi-sync': { durability: 'semi-sync', fencing: false, label: 'semi-sync (with fallback)', proofs: ['agent-fenced', 'sql-fenced'], during: false, expect: 'waits for SIGCONT, then a fence read back' },
  'freeze-strict': { durability: 'strict', fencing: false, label: 'strict', proofs: ['strict-semi-sync'], during: true, expect: 'completes frozen: the revoke is the proof' },
  'freeze-fencing': { durability: 'semi-sync', fencing: true, label: 'semi-sync + fencing.command (kill -9)', proofs: ['fencing-command', 'server-gone'], during: true, expect: 'completes frozen: the command\'s exit 0 is the proof' },
};

function scenarioTitle(s: Scenario, freezeMs = DEFAULT_FREEZE_MS): string {
  if (s === 'mysqld') return 'kill -9 of the primary\'s mysqld';
  if (s === 'agent') return 'kill -9 of the primary\'s agent (mysqld alive)';
  return `SIGSTOP of the primary's mysqld for ${freezeMs / 1000} s, durability ${FREEZE[s].label}`;
}

/** Goals from the issues, on kill → ready primary and kill → first write on the new primary. */
const GOALS: Record<KillScenario, { medianMs: number | null; p99Ms: number; text: string }> = {
  mysqld: { medianMs: 600, p99Ms: 2000, text: 'median < 0.6 s, p99 < 2 s' },
  agent: { medianMs: null, p99Ms: 6500, text: 'p99 < TTL + 1.5 s = 6.5 s' },
};

const DEFAULT_FREEZE_MS = 8000;
/**
 * The replicas' slave_net_timeout in the freeze scenarios. A frozen primary keeps its replicas'
 * IO threads at `Yes` until it runs out, and no failover starts while a replica receives
 * (docs/configuration.md recommends a few seconds; MariaDB's default is 60 s).
 */
const DEFAULT_NET_TIMEOUT_S = 5;
/** The writer's client-side INSERT timeout in the freeze scenarios: an application's, not 15 s. */
const FREEZE_WRITE_TIMEOUT_MS = 2000;
/** After SIGCONT, a stale client (one that never looks at etcd) writes to the old primary for this long. */
const STALE_WRITES_MS = 3000;
const STALE_FIRST_ID = 1_000_000_000;

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

/** What a freeze trial saw of the frozen node and its proof; times from the SIGSTOP. */
interface FreezeInfo {
  readonly durability: Durability;
  readonly fencing: boolean;
  readonly freezeMs: number;
  readonly netTimeoutS: number;
  /** The durability record in etcd just before the SIGSTOP (strict: must say strict). */
  durabilityAtFault: DurabilityRecord | null;
  /** SIGSTOP sent → every thread of mysqld seen stopped. */
  stoppedMs: number | null;
  /** SIGCONT sent; null when mysqld was already dead (killed by the fencing command). */
  resumedMs: number | null;
  killedWhileFrozen: boolean;
  /** The new primary was `ready` before the SIGCONT (or before the end of the freeze, when killed). */
  readyDuringFreeze: boolean | null;
  /** Writes a stale client (never looking at etcd) got acknowledged by the old primary after SIGCONT. */
  staleAcked: number;
  staleErrors: number;
  /** The stale client's acknowledged writes: id, ms from the SIGSTOP, its GTID and the server's connection id. */
  staleAckDetail: Array<{ id: number; atMs: number; gtid: string; connection: number | null }>;
  /**
   * Acknowledgements by the old primary, from either writer, that this process received after the
   * `fenced` step was recorded (client clock: an OK can arrive late for a commit made before the fence).
   */
  ackedByOldAfterProof: number;
  /**
   * Of those, the ones whose own GTID (`@@last_gtid`) lies beyond the position the fence read back
   * (`proof.finalGtid`): committed after the fence, a real breach. Null when the proof has no position.
   */
  ackedBeyondFence: number | null;
  ackedByOldAfterProofSample: string[];
  /** Lines the fencing command appended to its log: when it ran and what it did. */
  fencingRuns: string[];
  /** The fence step's last "waiting" text, when the failover had to wait. */
  waited: string | null;
  /** From member-key puts seen through a watch: the old primary's agent first publishes its server not `up`. */
  oldDownMs: number | null;
  /** The poller's samples with two writable nodes, as ms from the SIGSTOP (first and last), and ms from the SIGCONT. */
  twoWritableMs: [number, number] | null;
  twoWritableAfterSigcontMs: [number, number] | null;
  /** Per replica: first put with its IO thread no longer `running` (it stopped receiving), and first put with `revokedEpoch` of this failover. */
  notReceivingMs: Record<string, number | null>;
  revokedMs: Record<string, number | null>;
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
  /** `op.proof`: its kind, fault → `proof.at`, and its text. */
  proofKind: string | null;
  proofMs: number | null;
  proofDetail: string | null;
  /** Fault → the `fenced` step: when the proof was recorded in `ops/<epoch>`. */
  provenMs: number | null;
  /** Fault → the `detect` step (the failover started). */
  detectMs: number | null;
  freeze: FreezeInfo | null;
  error: string | null;
  artifacts: string | null;
}

const benchDir = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, {
    trials: { type: 'string' },
    scenario: { type: 'string' },
    'freeze-seconds': { type: 'string' },
    'net-timeout': { type: 'string' },
    'keep-logs': { type: 'boolean' },
    'server-option': { type: 'string', multiple: true },
    'max-minutes': { type: 'string' },
    out: { type: 'string' },
    render: { type: 'string' },
  });
  const trials = intFlag(flags, 'trials', 20, 1, 200);
  const maxMinutes = intFlag(flags, 'max-minutes', 35, 1, 240);
  const freezeMs = intFlag(flags, 'freeze-seconds', DEFAULT_FREEZE_MS / 1000, 1, 60) * 1000;
  const netTimeoutS = intFlag(flags, 'net-timeout', DEFAULT_NET_TIMEOUT_S, 1, 120);
  const scenarios = parseScenarios(stringFlag(flags, 'scenario') ?? 'both');
  const keepLogs = flags['keep-logs'] === true;
  const serverOptions = parseServerOptions(flags['server-option']);
  const out = stringFlag(flags, 'out') ?? join(benchDir, 'results', 'failover.md');
  const render = stringFlag(flags, 'render');
  if (render !== undefined) {
    // Only re-renders the Markdown of an earlier run from its raw results.
    const saved = JSON.parse(readFileSync(render, 'utf8')) as { machine: Machine; info: RunInfo; results: Trial[]; finishedAt?: string };
    writeResults(out, saved.results, saved.machine, saved.info, saved.finishedAt ?? statSync(render).mtime.toISOString());
    progress(`wrote ${out}`);
    return;
  }
  const artifactsRoot = join(tmpdir(), `primacy-bench-failover-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const deadline = Date.now() + maxMinutes * 60_000;
  const machine = describeMachine();
  const info = (stoppedEarly: string | null): RunInfo => ({ trials, scenarios, stoppedEarly, artifactsRoot: basename(artifactsRoot), freezeMs, netTimeoutS, serverOptions });
  progress(`${machineLine(machine)}`);
  progress(`${trials} trials of ${scenarios.join(', ')}, at most ${maxMinutes} min; results to ${out}`);

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
        const t = await runTrial(etcd, scenario, i, artifactsRoot, { freezeMs, netTimeoutS, serverOptions, keepLogs });
        results.push(t);
        progress(describeTrial(t));
        consecutiveErrors = t.error !== null && t.oldPrimary === '' ? consecutiveErrors + 1 : 0;
        writeResults(out, results, machine, info(stoppedEarly));
        if (consecutiveErrors >= MAX_CONSECUTIVE_ERRORS) {
          stoppedEarly = `${consecutiveErrors} trials in a row could not start: ${t.error}`;
          break outer;
        }
      }
    }
  } finally {
    const end = describeMachine();
    writeResults(out, results, machine, { ...info(stoppedEarly), atEnd: { commit: end.commit, uncommitted: end.uncommitted } });
    await cleanupAll();
  }
  if (stoppedEarly) progress(`stopped early: ${stoppedEarly}`);
  progress(`wrote ${out} and ${out.replace(/\.md$/, '.json')}`);
}

function parseScenarios(raw: string): Scenario[] {
  const known = new Set<string>([...KILL_SCENARIOS, ...FREEZE_SCENARIOS]);
  const out: Scenario[] = [];
  for (const name of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
    const group = GROUPS[name];
    if (group) out.push(...group);
    else if (known.has(name)) out.push(name as Scenario);
    else fail(`--scenario: unknown ${JSON.stringify(name)}; expected ${[...known].join(', ')}, or both, freeze, all`);
  }
  if (out.length === 0) fail('--scenario: no scenario named');
  return [...new Set(out)];
}

interface TrialOptions {
  readonly freezeMs: number;
  readonly netTimeoutS: number;
  /** More mariadbd options for the freeze scenarios' servers (--server-option key=value). */
  readonly serverOptions: Record<string, string>;
}

function parseServerOptions(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of Array.isArray(raw) ? raw : []) {
    const m = /^([a-z0-9_-]+)=(.+)$/i.exec(String(item));
    if (!m) fail(`--server-option: expected key=value, got ${JSON.stringify(item)}`);
    out[m[1]!.replace(/_/g, '-')] = m[2]!;
  }
  return out;
}

async function runTrial(etcd: EtcdCluster, scenario: Scenario, index: number, artifactsRoot: string, o: TrialOptions & { readonly keepLogs: boolean }): Promise<Trial> {
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
    proofKind: null,
    proofMs: null,
    proofDetail: null,
    provenMs: null,
    detectMs: null,
    freeze: isFreeze(scenario)
      ? {
          durability: FREEZE[scenario].durability,
          fencing: FREEZE[scenario].fencing,
          freezeMs: o.freezeMs,
          netTimeoutS: o.netTimeoutS,
          durabilityAtFault: null,
          stoppedMs: null,
          resumedMs: null,
          killedWhileFrozen: false,
          readyDuringFreeze: null,
          staleAcked: 0,
          staleErrors: 0,
          staleAckDetail: [],
          ackedByOldAfterProof: 0,
          ackedBeyondFence: null,
          ackedByOldAfterProofSample: [],
          fencingRuns: [],
          waited: null,
          oldDownMs: null,
          twoWritableMs: null,
          twoWritableAfterSigcontMs: null,
          notReceivingMs: {},
          revokedMs: {},
        }
      : null,
    error: null,
    artifacts: null,
  };
  const fz = t.freeze;
  let c: TestCluster | null = null;
  let writer: AckWriter | null = null;
  let watch: WritableWatch | null = null;
  let cancelWatcher: () => Promise<void> = async () => undefined;
  const events: Array<{ at: number; p: Primary }> = [];
  let op: OpRecord | null = null;
  let fenceLog: string | null = null;
  let resumeTimer: NodeJS.Timeout | null = null;
  let stale: Promise<StaleResult> | null = null;
  let faultAt = Number.POSITIVE_INFINITY;
  /** Freeze trials: every member-key put after the fault, in short, for the kept logs. */
  const memberPuts: Array<Record<string, unknown>> = [];
  try {
    if (isFreeze(scenario)) {
      const started = await startFreezeCluster(etcd, scenario, o);
      c = started.cluster;
      fenceLog = started.fenceLog;
    } else {
      c = await startCluster(etcd);
    }
    const cluster = c;
    Object.assign(t, { cluster: c.name });
    writer = new AckWriter(c, { maxMs: 120_000, ...(fz ? { queryTimeoutMs: FREEZE_WRITE_TIMEOUT_MS, readGtid: true } : {}) }).start();
    watch = new WritableWatch(c).start();
    const w = writer;
    await waitFor('the writer\'s first acknowledgement', () => (w.acks.length > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    if (fz) {
      // The freeze is detected only once no replica receives from the primary: both must be receiving first.
      await cluster.settled(20_000);
      if (fz.durability === 'strict') {
        const p0 = await cluster.primary();
        await waitFor('the durability record to say strict', async () => {
          const rec = await durabilityRecord(cluster);
          return rec && rec.strict && rec.node === p0?.node && rec.epoch === p0?.epoch && rec.clients >= 2 ? true : undefined;
        }, { timeoutMs: 20_000, intervalMs: 50 });
      }
    }
    await sleep(STEADY_WRITES_MS);
    const old = await c.primary();
    if (!old || old.state !== 'ready') throw new Error(`no ready primary before the fault: ${JSON.stringify(old)}`);
    Object.assign(t, { oldPrimary: old.node, oldEpoch: old.epoch, coordinator: await coordinatorNode(c) });
    if (fz) fz.durabilityAtFault = await durabilityRecord(c);

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

    if (fz) {
      // The member keys tell when each agent saw what: the old primary's server down, each replica no longer receiving, each revoke.
      const members = await c.etcd.watch().prefix(c.keys.membersPrefix).create();
      const cancelPrimary = cancelWatcher;
      cancelWatcher = async () => {
        await cancelPrimary();
        await members.cancel().catch(() => undefined);
      };
      members.on('put', (kv) => {
        const at = Date.now() - faultAt;
        if (!(at >= 0)) return;
        let raw: unknown;
        try {
          raw = JSON.parse(kv.value.toString());
        } catch {
          return;
        }
        const m = MemberStateSchema.safeParse(raw);
        if (!m.success) return;
        const v = m.data;
        memberPuts.push({ at, node: v.node, health: v.health, error: v.error, io: v.server?.replication?.ioState ?? null, readOnly: v.server?.readOnly ?? null, revokedEpoch: v.revokedEpoch, fenced: v.fenced, fencedFor: v.fencedFor });
        if (v.node === old.node) {
          if (v.health !== 'up' && fz.oldDownMs === null) fz.oldDownMs = at;
          return;
        }
        if (fz.notReceivingMs[v.node] == null && v.server !== null && v.server.replication?.ioState !== 'running') fz.notReceivingMs[v.node] = at;
        if (fz.revokedMs[v.node] == null && v.revokedEpoch === old.epoch + 1) fz.revokedMs[v.node] = at;
      });
    }
    const oldServer = c.server(old.node);
    const killedAt = Date.now();
    faultAt = killedAt;
    let resumed: Promise<void> = Promise.resolve();
    if (scenario === 'mysqld') await oldServer.kill();
    else if (scenario === 'agent') await c.agents.get(old.node)!.kill();
    else {
      oldServer.pause();
      fz!.stoppedMs = Date.now() - killedAt;
      resumed = new Promise<void>((resolve) => {
        resumeTimer = setTimeout(() => {
          resumeTimer = null;
          if (oldServer.isRunning()) {
            oldServer.resume();
            fz!.resumedMs = Date.now() - killedAt;
            // A client that never looks at etcd keeps writing to the server it knew.
            stale = staleWrites(oldServer, STALE_WRITES_MS);
          } else {
            fz!.killedWhileFrozen = true;
          }
          resolve();
        }, Math.max(0, o.freezeMs - (Date.now() - killedAt)));
      });
    }

    const isNew = (e: { p: Primary }) => e.p.epoch > old.epoch;
    const ready = await waitFor('the primary key to be ready at a new epoch', () => events.find((e) => isNew(e) && e.p.state === 'ready'), {
      timeoutMs: FAILOVER_TIMEOUT_MS + (fz ? o.freezeMs : 0),
      intervalMs: 5,
    }).catch((err: unknown) => {
      throw new Error(`failover never completed: ${err instanceof Error ? err.message : String(err)}`);
    });
    t.readyMs = ready.at - killedAt;
    t.sinceMs = ready.p.since - killedAt;
    t.newPrimary = ready.p.node;
    t.newEpoch = ready.p.epoch;
    if (fz) fz.readyDuringFreeze = fz.resumedMs === null ? ready.at - killedAt < o.freezeMs : ready.at - killedAt < fz.resumedMs;
    const promoting = events.find((e) => isNew(e) && e.p.state === 'promoting');
    t.promotingMs = promoting ? promoting.at - killedAt : null;
    const first = await waitFor('a write acknowledged by the new primary', () => w.firstAck(killedAt, (a) => a.node !== old.node) ?? undefined, {
      timeoutMs: FAILOVER_TIMEOUT_MS,
      intervalMs: 5,
    }).catch((err: unknown) => {
      throw new Error(`no write on the new primary: ${err instanceof Error ? err.message : String(err)}`);
    });
    t.firstNewAckMs = first.at - killedAt;
    await resumed;
    const staleResult = stale ? await (stale as Promise<StaleResult>) : null;
    const lastOld = w.lastAck(killedAt, (a) => a.node === old.node);
    t.lastOldAckMs = lastOld ? lastOld.at - killedAt : null;
    await sleep(SETTLE_MS);

    await writer.stop();
    await watch.stop();
    await cancelWatcher();
    op = await c.op(ready.p.epoch);
    t.opOutcome = op?.outcome ?? null;
    t.steps = (op?.steps ?? []).map((s) => ({ name: s.name, startMs: s.startedAt - killedAt, endMs: s.endedAt === null ? null : s.endedAt - killedAt, outcome: s.outcome }));
    t.proofKind = op?.proof?.kind ?? null;
    t.proofMs = op?.proof ? op.proof.at - killedAt : null;
    t.proofDetail = op?.proof?.detail ?? null;
    const fencedStep = op?.steps.find((s) => s.name === 'fenced');
    t.provenMs = fencedStep ? fencedStep.startedAt - killedAt : null;
    const detect = op?.steps.find((s) => s.name === 'detect');
    t.detectMs = detect ? detect.startedAt - killedAt : null;
    const final = await c.primary();
    if (!final || final.node !== ready.p.node || final.epoch !== ready.p.epoch) {
      t.error = `the primary moved again after the failover: ${JSON.stringify(final)}`;
    }
    const target = final?.node ?? ready.p.node;
    const staleAcks = staleResult?.acks ?? [];
    const missing = await missingAcks(c, target, [...w.acks, ...staleAcks].map((a) => a.id));
    t.lost = missing.length;
    t.lostSample = missing.slice(0, 20);
    t.writableAtEnd = await writableNodes(cluster);
    if (fz) {
      fz.staleAcked = staleAcks.length;
      fz.staleErrors = staleResult?.errors ?? 0;
      fz.staleAckDetail = staleAcks.slice(0, 50).map((a) => ({ id: a.id, atMs: a.at - killedAt, gtid: a.gtid ?? '', connection: (a as Ack & { connection?: number }).connection ?? null }));
      // The moment the proof was recorded: every fence it stands for was done by then.
      const provenAt = fencedStep?.startedAt ?? op?.proof?.at ?? null;
      if (provenAt !== null) {
        const after = [...w.acks.filter((a) => a.node === old.node), ...staleAcks].filter((a) => a.at > provenAt);
        const finalGtid = op?.proof?.finalGtid ?? null;
        fz.ackedByOldAfterProof = after.length;
        fz.ackedBeyondFence = finalGtid ? after.filter((a) => beyond(a.gtid ?? '', finalGtid)).length : null;
        fz.ackedByOldAfterProofSample = after
          .slice(0, 10)
          .map((a) => `id ${a.id} (gtid ${a.gtid || '?'}${finalGtid ? `, fence read back ${finalGtid}` : ''}) acked at +${a.at - killedAt} ms, proof recorded at +${provenAt - killedAt} ms`);
      }
      fz.waited = op?.steps.find((s) => s.name === 'fence')?.detail ?? null;
    }
  } catch (err) {
    t.error = err instanceof Error ? err.message : String(err);
  } finally {
    if (resumeTimer !== null) clearTimeout(resumeTimer);
    if (writer) {
      await writer.stop();
      t.acked = writer.acks.length;
      t.writerErrors = writer.errorCount;
    }
    if (stale) await (stale as Promise<StaleResult>).catch(() => undefined);
    if (watch) {
      await watch.stop();
      t.splitBrain = watch.violations.length;
      t.splitBrainSample = watch.violations.slice(0, 10);
      t.watchSamples = watch.samples;
      if (fz && watch.violations.length > 0 && Number.isFinite(faultAt)) {
        const at = watch.violations.map((v) => Date.parse(v.split(' ')[0]!) - faultAt).filter((x) => !Number.isNaN(x));
        if (at.length > 0) {
          fz.twoWritableMs = [Math.min(...at), Math.max(...at)];
          if (fz.resumedMs !== null) fz.twoWritableAfterSigcontMs = [Math.min(...at) - fz.resumedMs, Math.max(...at) - fz.resumedMs];
        }
      }
    }
    await cancelWatcher();
    if (fz && fenceLog !== null && existsSync(fenceLog)) fz.fencingRuns = readFileSync(fenceLog, 'utf8').split('\n').filter(Boolean);
    const suspicious =
      t.error !== null || t.lost > 0 || t.splitBrain > 0 || t.writableAtEnd.length > 1 || (fz !== null && (fz.ackedByOldAfterProof > 0 || fz.readyDuringFreeze !== FREEZE[scenario as FreezeScenario].during));
    if (c && (suspicious || o.keepLogs)) t.artifacts = keepArtifacts(c, t, events, op, writer, artifactsRoot, fenceLog, memberPuts);
    if (c) await c.stop().catch(() => undefined);
  }
  return t;
}

async function durabilityRecord(c: TestCluster): Promise<DurabilityRecord | null> {
  const raw = await c.etcd.get(c.keys.durability).string();
  if (raw === null) return null;
  const parsed = DurabilityRecordSchema.safeParse(JSON.parse(raw));
  return parsed.success ? parsed.data : null;
}

/**
 * A freeze scenario's cluster: a short slave_net_timeout on every server, the durability in the
 * etcd config before the agents start, and for freeze-fencing a fencing command in every agent's
 * config (any of them may be the coordinator that runs it).
 */
async function startFreezeCluster(etcd: EtcdCluster, scenario: FreezeScenario, o: TrialOptions): Promise<{ cluster: TestCluster; fenceLog: string | null }> {
  const spec = FREEZE[scenario];
  let fenceLog: string | null = null;
  let script: string | null = null;
  if (spec.fencing) {
    const dir = await harnessDir('fence');
    fenceLog = join(dir, 'fence.log');
    script = join(dir, 'fence.sh');
  }
  // Every agent gets its server's pid file, as an agent beside its mysqld should: under strict
  // semi-sync with every replica revoked, it stops a server with waiting commits through it.
  const cluster = await startCluster(etcd, {
    semiSync: spec.durability !== 'async',
    pidFiles: true,
    serverOptions: { 'slave-net-timeout': o.netTimeoutS, ...o.serverOptions },
    etcdConfig: { durability: spec.durability },
    agentConfig: (db) => {
      if (script === null || fenceLog === null) return {};
      writeFileSync(script, fenceScript(db, fenceLog));
      return { fencing: { command: `sh ${script}`, timeoutMs: 5000, retryMs: 1000 } };
    },
  });
  return { cluster, fenceLog };
}

/**
 * STONITH for one loopback trial: kill -9 of the mysqld that serves $PRIMACY_NODE on $PRIMACY_PORT,
 * found by the pid the harness started it with, and only if that pid's command line still names
 * that port (a reused pid is never touched). Exit 0 once the process is dead (gone or a zombie).
 */
function fenceScript(db: MariaDbCluster, log: string): string {
  const cases = db.servers.map((s: MariaDbServer) => `  ${s.name}) pid=${s.pid}; port=${s.port} ;;`).join('\n');
  return `#!/bin/sh
# Written by bench/failover.ts (freeze-fencing): kills the frozen mysqld of one trial.
log='${log}'
now() { date +%s%3N; }
case "$PRIMACY_NODE" in
${cases}
  *) echo "$(now) unknown node $PRIMACY_NODE" >>"$log"; echo "unknown node $PRIMACY_NODE" >&2; exit 2 ;;
esac
if [ "$PRIMACY_PORT" != "$port" ]; then echo "$(now) $PRIMACY_NODE: port $PRIMACY_PORT is not $port" >>"$log"; echo "port mismatch" >&2; exit 3; fi
if tr '\\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--port=$port "; then
  kill -9 "$pid"
  echo "$(now) $PRIMACY_NODE: kill -9 $pid (port $port, epoch $PRIMACY_EPOCH -> $PRIMACY_FAILOVER_EPOCH)" >>"$log"
else
  echo "$(now) $PRIMACY_NODE: pid $pid already gone" >>"$log"
fi
i=0
while [ $i -lt 200 ]; do
  state=$(sed -n 's/^[0-9]* ([^)]*) \\([A-Za-z]\\).*/\\1/p' "/proc/$pid/stat" 2>/dev/null)
  if [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]; then
    echo "$(now) $PRIMACY_NODE: pid $pid dead" >>"$log"
    echo "mysqld of $PRIMACY_NODE (pid $pid) is dead"
    exit 0
  fi
  sleep 0.01
  i=$((i + 1))
done
echo "$(now) $PRIMACY_NODE: pid $pid still alive ($state)" >>"$log"
echo "pid $pid still alive" >&2
exit 1
`;
}

/** Whether a MariaDB GTID (`domain-server-seq`) lies beyond `position` (a comma-separated list) in its domain. Unknown ('' or unparsable) counts as not beyond. */
function beyond(gtid: string, position: string): boolean {
  const m = /^(\d+)-(\d+)-(\d+)$/.exec(gtid.trim());
  if (!m) return false;
  const known = position
    .split(',')
    .map((x) => /^(\d+)-(\d+)-(\d+)$/.exec(x.trim()))
    .find((x) => x !== null && x[1] === m[1]);
  return known ? BigInt(m[3]!) > BigInt(known[3]!) : true;
}

interface StaleResult {
  readonly acks: Ack[];
  readonly errors: number;
}

/** A client that kept its connection details and never looks at etcd: it writes to `s` for `ms`, one INSERT at a time. */
async function staleWrites(s: MariaDbServer, ms: number): Promise<StaleResult> {
  const acks: Ack[] = [];
  let errors = 0;
  let conn: Connection | null = null;
  let next = STALE_FIRST_ID;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      conn ??= await s.connect(APP, { connectTimeout: 1000 });
      const id = next++;
      await conn.query({ sql: 'INSERT INTO app.acks (id) VALUES (?)', timeout: FREEZE_WRITE_TIMEOUT_MS }, [id]);
      const at = Date.now();
      const connection = conn.threadId;
      acks.push({ id, node: s.name, epoch: -1, at, gtid: await lastGtid(conn, FREEZE_WRITE_TIMEOUT_MS), connection } as Ack);
    } catch {
      errors += 1;
      conn?.destroy();
      conn = null;
      await sleep(20);
    }
  }
  conn?.destroy();
  return { acks, errors };
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
function keepArtifacts(c: TestCluster, t: Trial, events: Array<{ at: number; p: Primary }>, op: OpRecord | null, writer: AckWriter | null, root: string, fenceLog: string | null = null, memberPuts: ReadonlyArray<Record<string, unknown>> = []): string {
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
    // With --server-option general_log=1 --server-option general_log_file=general.log: every statement, for evidence.
    const general = join(s.dataDir, 'general.log');
    if (existsSync(general)) cpSync(general, join(dir, `${s.name}-general.log`));
  }
  if (fenceLog !== null) {
    for (const f of [fenceLog, join(dirname(fenceLog), 'fence.sh')]) if (existsSync(f)) cpSync(f, join(dir, basename(f)));
  }
  writeFileSync(
    join(dir, 'trial.json'),
    JSON.stringify({ trial: t, primaryPuts: events, memberPuts, op, acks: writer?.acks.slice(-200), writerErrors: writer?.errors }, null, 2),
  );
  // Results name the folder, never this machine's temporary path.
  return join('<tmpdir>', basename(root), basename(dir));
}

function describeTrial(t: Trial): string {
  const head = `${t.scenario} #${t.index} (${t.cluster || '-'}: ${t.oldPrimary || '?'} → ${t.newPrimary ?? '?'}${t.coordinator === t.oldPrimary ? ', coordinator on it' : ''})`;
  const proof = t.proofKind ? `proof ${t.proofKind} at ${seconds(t.proofMs)}, ` : '';
  const f = t.freeze;
  const frozen = f
    ? `, ${f.readyDuringFreeze === null ? '?' : f.readyDuringFreeze ? 'during the freeze' : 'after SIGCONT'}${f.resumedMs !== null ? ` (SIGCONT ${seconds(f.resumedMs)})` : f.killedWhileFrozen ? ' (killed frozen)' : ''}, stale acks ${f.staleAcked}, old acks after proof ${f.ackedByOldAfterProof}`
    : '';
  const body = `detect ${seconds(t.detectMs)}, ${proof}ready ${seconds(t.readyMs)}, first write ${seconds(t.firstNewAckMs)}, acked ${t.acked}, lost ${t.lost}, two writable ${t.splitBrain}${frozen}`;
  return `${head}: ${body}${t.error ? `; ERROR ${t.error}` : ''}${t.artifacts ? `; kept ${t.artifacts}` : ''}`;
}

interface RunInfo {
  readonly trials: number;
  readonly scenarios: Scenario[];
  readonly stoppedEarly: string | null;
  /** The temp folder (its name only) where a suspicious trial's logs are kept. */
  readonly artifactsRoot: string;
  /** Freeze scenarios: how long mysqld stayed frozen, and the replicas' slave_net_timeout. Absent in runs before they existed. */
  readonly freezeMs?: number;
  readonly netTimeoutS?: number;
  readonly serverOptions?: Record<string, string>;
  /** The commit and the uncommitted agent/common files when the run ended: others may commit or edit while it runs. */
  readonly atEnd?: { readonly commit: string; readonly uncommitted: number };
}

function writeResults(out: string, results: Trial[], machine: Machine, info: RunInfo, finishedAt = new Date().toISOString()): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out.replace(/\.md$/, '') + '.json', JSON.stringify({ machine, info, finishedAt, results }, null, 2));
  writeFileSync(out, renderMarkdown(results, machine, info, finishedAt));
}

/** Median and p99 of the non-null values, as `0.52 s / 0.72 s`. */
function medP99(values: ReadonlyArray<number | null | undefined>): string {
  const s = summarize(values.filter((v): v is number => v !== null && v !== undefined));
  return s ? `${seconds(s.median)} / ${seconds(s.p99)}` : '—';
}

function countKinds(values: ReadonlyArray<string | null | undefined>): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v ?? 'none', (counts.get(v ?? 'none') ?? 0) + 1);
  return [...counts.entries()].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ×${n}`).join(', ') || '—';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function renderMarkdown(results: Trial[], machine: Machine, info: RunInfo, finishedAt: string): string {
  const freezeMs = info.freezeMs ?? DEFAULT_FREEZE_MS;
  const title = (s: Scenario) => scenarioTitle(s, freezeMs);
  const kills = info.scenarios.filter((s): s is KillScenario => !isFreeze(s));
  const freezes = info.scenarios.filter(isFreeze);
  const loads = results.map((r) => r.load1).filter((v) => !Number.isNaN(v));
  const lines: string[] = [];
  lines.push(`# Failover benchmark — ${finishedAt}`, '');
  lines.push(
    `Machine: ${machineLine(machine)}. 1-minute load average at the faults: mean ${fixed(mean(loads), 2)}` +
      (loads.length > 0 ? `, ${fixed(Math.min(...loads), 2)}–${fixed(Math.max(...loads), 2)}` : '') +
      '.' +
      (info.atEnd && (info.atEnd.commit !== machine.commit || info.atEnd.uncommitted !== machine.uncommitted)
        ? ` The tree changed during the run: at its end, commit ${info.atEnd.commit} with ${info.atEnd.uncommitted} uncommitted agent/common files.`
        : ''),
    '',
  );
  lines.push(
    'Agents: default timings (probe 250 ms, lease TTL 5 s, fence margin 1.5 s), run with `node --import tsx` by the test harness. ' +
      'Percentiles by nearest rank (the median is p50 by nearest rank; with fewer than 100 trials p99 is the maximum).',
    '',
  );
  if (freezes.length > 0) {
    lines.push(
      `Freeze scenarios: SIGSTOP of the primary's mysqld, SIGCONT ${freezeMs / 1000} s later. Every server runs with ` +
        `\`slave_net_timeout=${info.netTimeoutS ?? DEFAULT_NET_TIMEOUT_S}\` (a frozen primary keeps its replicas receiving until it runs out)` +
        Object.entries(info.serverOptions ?? {}).map(([k, v]) => `, \`${k.replace(/-/g, '_')}=${v}\``).join('') +
        '. ' +
        'The durability is the etcd `config` key, written before the agents start; `async` also runs the servers and agents without semi-sync; ' +
        '`strict` waits for the coordinator\'s `durability` record to say `strict: true` before the freeze. ' +
        `The writer's INSERT timeout is ${FREEZE_WRITE_TIMEOUT_MS / 1000} s. After SIGCONT a stale client, which never looks at etcd, writes to the old primary for ${STALE_WRITES_MS / 1000} s. ` +
        'freeze-fencing: every agent has `fencing: { command: sh fence.sh, timeoutMs: 5000, retryMs: 1000 }`; the script, written by the benchmark, maps `PRIMACY_NODE` to the pid of that mysqld and kills it with kill -9.',
      '',
    );
  }
  if (info.stoppedEarly) lines.push(`**Stopped early:** ${info.stoppedEarly}.`, '');

  if (kills.length > 0) {
    const rows: string[][] = [];
    for (const scenario of kills) {
      const done = results.filter((r) => r.scenario === scenario);
      const goal = GOALS[scenario];
      for (const [label, pick] of [
        ['kill → primary `ready` (etcd)', (r: Trial) => r.readyMs],
        ['kill → first write on new primary', (r: Trial) => r.firstNewAckMs],
      ] as const) {
        const s = summarize(done.map(pick).filter((v): v is number => v !== null));
        const met = s ? (goal.medianMs === null || s.median < goal.medianMs) && s.p99 < goal.p99Ms : false;
        rows.push([
          title(scenario),
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
  }

  if (freezes.length > 0) {
    lines.push(`## Frozen mysqld (SIGSTOP for ${freezeMs / 1000} s): time from the SIGSTOP, median / p99`, '');
    lines.push(
      table(
        ['durability', 'trials', 'failed over', 'proof', 'detect', 'proof (`op.proof.at`)', 'proof recorded (`fenced` step)', 'primary `ready`', 'first write on new primary', 'ready during the freeze', 'expected'],
        freezes.map((scenario) => {
          const done = results.filter((r) => r.scenario === scenario);
          const spec = FREEZE[scenario];
          const during = done.filter((r) => r.freeze?.readyDuringFreeze === true).length;
          const completed = done.filter((r) => r.readyMs !== null);
          const asExpected = completed.length === done.length && done.every((r) => r.freeze?.readyDuringFreeze === spec.during && spec.proofs.includes(r.proofKind ?? ''));
          return [
            spec.label,
            String(done.length),
            `${completed.length}/${done.length}`,
            countKinds(done.map((r) => r.proofKind)),
            medP99(done.map((r) => r.detectMs)),
            medP99(done.map((r) => r.proofMs)),
            medP99(done.map((r) => r.provenMs ?? null)),
            medP99(done.map((r) => r.readyMs)),
            medP99(done.map((r) => r.firstNewAckMs)),
            `${during}/${done.length}`,
            `${spec.expect}: ${done.length === 0 ? '—' : asExpected ? 'yes' : '**no**'}`,
          ];
        }),
        ['l', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
    );
    lines.push(
      table(
        ['durability', 'acknowledged writes', 'lost', 'samples with two writable nodes', 'trials with any', 'when (ms after SIGCONT)', 'old primary\'s acks received after the proof was recorded', 'of which committed beyond the fence\'s read-back', 'stale client\'s acks after SIGCONT', 'SIGCONT (median)', 'killed while frozen', 'writable nodes at end ≠ 1'],
        freezes.map((scenario) => {
          const done = results.filter((r) => r.scenario === scenario);
          const resumed = summarize(done.flatMap((r) => (r.freeze?.resumedMs == null ? [] : [r.freeze.resumedMs])));
          return [
            FREEZE[scenario].label,
            String(done.reduce((a, r) => a + r.acked + (r.freeze?.staleAcked ?? 0), 0)),
            String(done.reduce((a, r) => a + r.lost, 0)),
            String(done.reduce((a, r) => a + r.splitBrain, 0)),
            String(done.filter((r) => r.splitBrain > 0).length),
            (() => {
              const w = done.flatMap((r) => (r.freeze?.twoWritableAfterSigcontMs ? [r.freeze.twoWritableAfterSigcontMs] : []));
              return w.length === 0 ? '—' : `${Math.min(...w.map((x) => x[0]))} … ${Math.max(...w.map((x) => x[1]))}`;
            })(),
            String(done.reduce((a, r) => a + (r.freeze?.ackedByOldAfterProof ?? 0), 0)),
            done.some((r) => r.freeze?.ackedBeyondFence != null) ? String(done.reduce((a, r) => a + (r.freeze?.ackedBeyondFence ?? 0), 0)) : '— (no position in the proof)',
            String(done.reduce((a, r) => a + (r.freeze?.staleAcked ?? 0), 0)),
            seconds(resumed?.median),
            String(done.filter((r) => r.freeze?.killedWhileFrozen).length),
            String(done.filter((r) => r.error === null && r.writableAtEnd.length !== 1).length),
          ];
        }),
      ),
      '',
    );
  }

  lines.push('## Safety', '');
  lines.push(
    table(
      ['scenario', 'trials', 'incomplete', 'acknowledged writes', 'lost', 'samples with two writable nodes', 'read_only polls', 'writable nodes at end ≠ 1'],
      info.scenarios.map((scenario) => {
        const done = results.filter((r) => r.scenario === scenario);
        return [
          title(scenario),
          String(done.length),
          String(done.filter((r) => r.error !== null).length),
          String(done.reduce((a, r) => a + r.acked + (r.freeze?.staleAcked ?? 0), 0)),
          String(done.reduce((a, r) => a + r.lost, 0)),
          String(done.reduce((a, r) => a + r.splitBrain, 0)),
          String(done.reduce((a, r) => a + r.watchSamples, 0)),
          String(done.filter((r) => r.error === null && r.writableAtEnd.length !== 1).length),
        ];
      }),
    ),
    '',
  );

  lines.push('## Proofs (from the fault)', '');
  lines.push(
    table(
      ['scenario', 'proof kinds', '`proof.at`: median', 'p99', 'max', '`fenced` step: median', 'p99'],
      info.scenarios.map((scenario) => {
        const done = results.filter((r) => r.scenario === scenario);
        const s = summarize(done.flatMap((r) => (r.proofMs == null ? [] : [r.proofMs])));
        const f = summarize(done.flatMap((r) => (r.provenMs == null ? [] : [r.provenMs])));
        return [title(scenario), countKinds(done.map((r) => r.proofKind ?? null)), seconds(s?.median), seconds(s?.p99), seconds(s?.max), seconds(f?.median), seconds(f?.p99)];
      }),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  );

  lines.push('## By where the coordinator ran (fault → primary `ready`)', '');
  lines.push(
    table(
      ['scenario', 'coordinator', 'trials', 'median', 'max'],
      info.scenarios.flatMap((scenario) =>
        (['on the old primary\'s node', 'on another node'] as const).map((where) => {
          const done = results.filter((r) => r.scenario === scenario && r.readyMs !== null && (r.coordinator === r.oldPrimary) === (where === 'on the old primary\'s node'));
          const s = summarize(done.map((r) => r.readyMs!));
          return [title(scenario), where, String(done.length), seconds(s?.median), seconds(s?.max)];
        }),
      ),
      ['l', 'l', 'r', 'r', 'r'],
    ),
    '',
  );

  lines.push('## Where the time goes (median over trials, from the fault; steps from `ops/<epoch>`)', '');
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
  const lastOf = (rec: Record<string, number | null> | undefined): number | null => {
    const v = Object.values(rec ?? {});
    return v.length > 0 && v.every((x) => x !== null) ? Math.max(...(v as number[])) : null;
  };
  for (const [label, pick] of [
    ['old primary\'s agent publishes its server not `up`', (r: Trial) => r.freeze?.oldDownMs ?? null],
    ['last replica publishes it no longer receives', (r: Trial) => lastOf(r.freeze?.notReceivingMs)],
    ['last replica publishes its revoke', (r: Trial) => lastOf(r.freeze?.revokedMs)],
    ['proof (`op.proof.at`)', (r: Trial) => r.proofMs ?? null],
    ['SIGCONT', (r: Trial) => r.freeze?.resumedMs ?? null],
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
  // Rows that no scenario of this run has (the freeze timeline in a kill-only run) are left out.
  lines.push(table(['event', ...info.scenarios], phaseRows.filter((row) => row.slice(1).some((x) => x !== '—'))), '');

  if (freezes.length > 0) {
    lines.push('## What the waiting failovers said (the `fence` step\'s last text, first trial of each)', '');
    for (const scenario of freezes) {
      const r = results.find((x) => x.scenario === scenario && x.freeze?.waited);
      if (r?.freeze?.waited) lines.push(`- **${FREEZE[scenario].label}** (#${r.index}): ${r.freeze.waited}`);
      const runs = results.find((x) => x.scenario === scenario && (x.freeze?.fencingRuns.length ?? 0) > 0);
      if (runs?.freeze) lines.push(`- **${FREEZE[scenario].label}**, fencing command log (#${runs.index}, ms since the epoch): ${runs.freeze.fencingRuns.join(' · ')}`);
    }
    lines.push('');
  }

  lines.push('## Every trial', '');
  lines.push(
    table(
      ['scenario', '#', 'cluster', 'old → new', 'coordinator at fault', 'detect', 'proof', 'proof at', 'ready', 'first write', 'frozen until', 'acked', 'lost', 'two writable', 'old acks after proof', 'load', 'note'],
      results.map((r) => [
        r.scenario,
        String(r.index),
        r.cluster,
        `${r.oldPrimary || '?'} → ${r.newPrimary ?? '?'}`,
        r.coordinator ?? '?',
        seconds(r.detectMs ?? null),
        r.proofKind ?? '—',
        seconds(r.proofMs ?? null),
        seconds(r.readyMs),
        seconds(r.firstNewAckMs),
        r.freeze ? (r.freeze.resumedMs !== null ? seconds(r.freeze.resumedMs) : r.freeze.killedWhileFrozen ? 'killed' : '—') : '',
        String(r.acked + (r.freeze?.staleAcked ?? 0)),
        String(r.lost),
        String(r.splitBrain),
        r.freeze ? String(r.freeze.ackedByOldAfterProof) : '',
        fixed(r.load1, 2),
        cell(
          [
            r.error ?? '',
            r.splitBrainSample.length > 0
              ? `two writable: ${r.splitBrainSample.slice(0, 2).join('; ')}${r.freeze?.twoWritableAfterSigcontMs ? ` (+${r.freeze.twoWritableAfterSigcontMs[0]} … +${r.freeze.twoWritableAfterSigcontMs[1]} ms after SIGCONT)` : ''}`
              : '',
            (r.freeze?.ackedByOldAfterProofSample.length ?? 0) > 0 ? `old acks after proof: ${r.freeze!.ackedByOldAfterProofSample.slice(0, 2).join('; ')}` : '',
            r.lostSample.length > 0 ? `lost ids ${r.lostSample.slice(0, 5).join(', ')}` : '',
            r.artifacts ? `logs: ${r.artifacts}` : '',
          ]
            .filter(Boolean)
            .join('; '),
        ),
      ]),
      ['l', 'r', 'l', 'l', 'l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
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
