/**
 * The operator's hooks around a failover or switchover (the agent config's `hooks`): which command a
 * hook runs, what its environment says, which runs an op record still lacks, and when the new
 * primary's agent runs its post hook (all pure); and HookRunner, which runs them in the background,
 * each bounded (operator-command.ts), and keeps the last few runs until they are recorded.
 */
import type { AgentConfig, HookName, HookRun, OpRecord, OpStep, Primary } from '@primacy/common';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';
import { runOperatorCommand } from './operator-command.js';

export type HookRole = HookRun['role'];

/** How many finished runs an agent keeps (and publishes in its member key) until they are recorded. */
const KEEP_RUNS = 8;
/** How many started attempts an agent remembers, so that none runs its hook twice. */
const KEEP_STARTED = 100;

export interface HookNode {
  readonly node: string;
  /** Null when unknown: the old primary's address of a record written before `fromAddress` existed. */
  readonly host: string | null;
  readonly port: number | null;
}

/** What a hook is told: the operation, from whom to whom, why, and how it stands. */
export interface HookContext {
  readonly cluster: string;
  readonly kind: 'failover' | 'switchover';
  readonly epoch: number;
  /** The op record's `startedAt`: which attempt of the epoch the run belongs to. */
  readonly opStartedAt: number;
  readonly oldPrimary: HookNode | null;
  /** Null until one is chosen (a pre-failover hook), or when none was (an unsuccessful failover). */
  readonly newPrimary: HookNode | null;
  readonly reason: string;
  /** `running` for a pre hook; `done`, `aborted` or `refused` after. */
  readonly outcome: OpRecord['outcome'];
}

const CONFIG_FIELD: Record<HookName, Exclude<keyof AgentConfig['hooks'], 'timeoutMs'>> = {
  'pre-failover': 'preFailover',
  'post-failover': 'postFailover',
  'pre-switchover': 'preSwitchover',
  'post-switchover': 'postSwitchover',
  'post-unsuccessful-failover': 'postUnsuccessfulFailover',
};

export function hookCommand(hooks: AgentConfig['hooks'], name: HookName): string | null {
  return hooks[CONFIG_FIELD[name]] ?? null;
}

export function hookEnv(name: HookName, ctx: HookContext, runner: { readonly node: string; readonly role: HookRole }): Record<string, string> {
  const text = (v: string | number | null | undefined): string => (v === null || v === undefined ? '' : String(v));
  return {
    PRIMACY_HOOK: name,
    PRIMACY_HOOK_NODE: runner.node,
    PRIMACY_HOOK_ROLE: runner.role,
    PRIMACY_CLUSTER: ctx.cluster,
    PRIMACY_KIND: ctx.kind,
    PRIMACY_EPOCH: String(ctx.epoch),
    PRIMACY_OLD_PRIMARY: text(ctx.oldPrimary?.node),
    PRIMACY_OLD_HOST: text(ctx.oldPrimary?.host),
    PRIMACY_OLD_PORT: text(ctx.oldPrimary?.port),
    PRIMACY_NEW_PRIMARY: text(ctx.newPrimary?.node),
    PRIMACY_NEW_HOST: text(ctx.newPrimary?.host),
    PRIMACY_NEW_PORT: text(ctx.newPrimary?.port),
    PRIMACY_REASON: ctx.reason,
    PRIMACY_OUTCOME: ctx.outcome,
  };
}

/**
 * A hook's context from an op record: the old primary at the address the record kept, the new one
 * at `to` (its address, when the caller knows it). Null for operations that have no hooks.
 */
export function hookContext(cluster: string, op: OpRecord, to: { readonly host: string; readonly port: number } | null): HookContext | null {
  if (op.kind !== 'failover' && op.kind !== 'switchover') return null;
  return {
    cluster,
    kind: op.kind,
    epoch: op.epoch,
    opStartedAt: op.startedAt,
    oldPrimary: op.from === null ? null : { node: op.from, host: op.fromAddress?.host ?? null, port: op.fromAddress?.port ?? null },
    newPrimary: op.to === null || to === null ? null : { node: op.to, host: to.host, port: to.port },
    reason: op.reason,
    outcome: op.outcome,
  };
}

/** A pre-switchover hook's context: before the switchover's record exists, from the primary and the chosen target. */
export function preSwitchoverContext(cluster: string, p: Primary, to: HookNode, reason: string, now: number): HookContext {
  return { cluster, kind: 'switchover', epoch: p.epoch + 1, opStartedAt: now, oldPrimary: { node: p.node, host: p.host, port: p.port }, newPrimary: to, reason, outcome: 'running' };
}

/** The post hook of a finished operation of this kind, if it has one. */
export function postHookOf(kind: OpRecord['kind']): HookName | null {
  return kind === 'failover' ? 'post-failover' : kind === 'switchover' ? 'post-switchover' : null;
}

/** How a run ended, in words: its outcome and what it said. */
export function describeHookRun(run: HookRun): string {
  return `${run.outcome}${run.outputTail === '' ? '' : `: ${run.outputTail}`}`;
}

/** A record with its gate's run (the pre-switchover hook): in `hooks`, and as a step after `choose`. */
export function withGateRun(op: OpRecord, run: HookRun): OpRecord {
  const gateStep: OpStep = { name: `${run.name} hook`, startedAt: run.startedAt, endedAt: run.startedAt + run.ms, outcome: hookSucceeded(run) ? 'ok' : 'failed', detail: describeHookRun(run) };
  const at = op.steps.findIndex((s) => s.name === 'choose') + 1;
  return { ...op, hooks: [...(op.hooks ?? []), { ...run, epoch: op.epoch, opStartedAt: op.startedAt }], steps: [...op.steps.slice(0, at), gateStep, ...op.steps.slice(at)] };
}

function sameRun(a: HookRun, b: HookRun): boolean {
  return a.name === b.name && a.node === b.node && a.role === b.role && a.startedAt === b.startedAt;
}

/**
 * The op records that lack some of `runs`, each with them added: a run belongs to the record of its
 * epoch and attempt (`opStartedAt`); a run whose attempt is no longer in `ops` is left out.
 */
export function withHookRuns(ops: ReadonlyArray<OpRecord | null>, runs: readonly HookRun[]): OpRecord[] {
  const out: OpRecord[] = [];
  for (const op of ops) {
    if (op === null) continue;
    const have = op.hooks ?? [];
    const missing = runs.filter((r) => r.epoch === op.epoch && r.opStartedAt === op.startedAt && !have.some((h) => sameRun(h, r)));
    const unique = missing.filter((r, i) => missing.findIndex((x) => sameRun(x, r)) === i);
    if (unique.length > 0) out.push({ ...op, hooks: [...have, ...unique].sort((a, b) => a.startedAt - b.startedAt) });
  }
  return out;
}

/**
 * On the new primary's own agent: the post hook its promotion calls for, once the primary key names
 * it ready at the epoch it promoted itself to (a VIP moves to where writes go), or null.
 */
export function postHookDue(self: string, primary: Primary | null, op: OpRecord | null, promotedEpoch: number | null, hookedEpoch: number | null): HookName | null {
  if (!primary || primary.node !== self || primary.state !== 'ready' || primary.epoch !== promotedEpoch || hookedEpoch === promotedEpoch) return null;
  if (!op || op.epoch !== primary.epoch || op.to !== self || op.outcome !== 'done') return null;
  return postHookOf(op.kind);
}

export interface HookRunnerDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly role: HookRole;
  /** A run finished (the agent publishes it at once). */
  readonly onFinished?: () => void;
}

/**
 * Runs this agent's hooks in the background, each at most once per operation attempt, and keeps the
 * last KEEP_RUNS finished runs. A pre-switchover hook is a gate: the switchover waits for it (on
 * later ticks, never blocking one) and goes ahead only on exit 0.
 */
export class HookRunner {
  private readonly started = new Set<string>();
  private readonly gates = new Map<string, HookRun | 'running'>();
  private runs: HookRun[] = [];

  constructor(private readonly d: HookRunnerDeps) {}

  get finished(): readonly HookRun[] {
    return this.runs;
  }

  /** Starts the hook without waiting for it, unless none is configured or it ran for this attempt already. */
  start(name: HookName, ctx: HookContext | null): void {
    const command = hookCommand(this.d.config.hooks, name);
    if (command === null || ctx === null) return;
    const key = `${name} ${ctx.epoch} ${ctx.opStartedAt}`;
    if (this.started.has(key)) return;
    this.started.add(key);
    // Only recent attempts can come up again; the oldest key goes first.
    if (this.started.size > KEEP_STARTED) this.started.delete(this.started.values().next().value!);
    void this.run(name, command, ctx);
  }

  /**
   * The gate's run for `key` (say, a request id and its target): null when no such hook is
   * configured, `running` while it runs (started on the first call), else how it ended.
   */
  gate(name: HookName, key: string, ctx: HookContext): HookRun | 'running' | null {
    const command = hookCommand(this.d.config.hooks, name);
    if (command === null) return null;
    const known = this.gates.get(key);
    if (known !== undefined) return known;
    this.gates.set(key, 'running');
    void this.run(name, command, ctx).then((run) => this.gates.set(key, run));
    return 'running';
  }

  /** The gated operation was decided on: a later one with the same key runs the hook again. */
  settle(key: string): void {
    this.gates.delete(key);
  }

  private async run(name: HookName, command: string, ctx: HookContext): Promise<HookRun> {
    const { config, clock, log, role } = this.d;
    const startedAt = clock.now();
    const r = await runOperatorCommand({ command, timeoutMs: config.hooks.timeoutMs, env: hookEnv(name, ctx, { node: config.node, role }) });
    const run: HookRun = { name, node: config.node, role, epoch: ctx.epoch, opStartedAt: ctx.opStartedAt, startedAt, ms: r.ms, exitCode: r.exitCode, timedOut: r.timedOut, outcome: r.outcome, outputTail: r.tail };
    const line = { hook: name, role, epoch: ctx.epoch, outcome: r.outcome, ms: r.ms, tail: r.tail };
    if (r.ok) log.info(line, `${name} hook: ${r.outcome}`);
    else log.warn(line, `${name} hook: ${r.outcome}`);
    this.runs = [...this.runs, run].slice(-KEEP_RUNS);
    this.d.onFinished?.();
    return run;
  }
}

/** A run ended well: exit 0 within its bound. */
export function hookSucceeded(run: HookRun): boolean {
  return run.exitCode === 0 && !run.timedOut;
}
