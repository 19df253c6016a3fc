/**
 * Operator requests (`primacy switchover` and `primacy failover`): the checks before writing one,
 * the request value, and the wait for the coordinator's answer in `ops/`. The wait is a pure
 * reducer over events (`advanceWait`) driven by a thin loop over any `OpFeed`, so that its handling
 * of done, aborted, refused and timeout is tested without etcd.
 */
import { randomBytes } from 'node:crypto';
import type { OperatorRequest, OpRecord, OpStep, Primary } from '@primacy/common';
import type { RequestOptions } from './args.js';
import type { ClusterView } from './cluster.js';
import { ExitCode, refused, unknownNode, usageError, type ExitCodeValue } from './errors.js';
import { confirmationOf } from './confirm.js';
import { formatDuration } from './format.js';
import type { Io } from './io.js';

export type RequestKind = 'switchover' | 'failover';

/** Throws the CliError the operator should see when the request cannot make sense now. */
export function checkRequest(view: ClusterView, kind: RequestKind, o: RequestOptions): void {
  const p = view.primary;
  if (!p) throw refused(`cluster ${view.cluster} has no primary: there is nothing to ${kind === 'switchover' ? 'switch over' : 'fail over'} from`);
  if (o.to !== null) {
    if (!view.members.has(o.to)) throw unknownNode(o.to, view.cluster, [...view.members.keys()]);
    if (o.to === p.node) throw refused(`${o.to} is already the primary of ${view.cluster} (epoch ${p.epoch})`);
  }
}

/**
 * How an `--unfenced` request is confirmed, decided before etcd is read: `--yes`, or the operator
 * types the old primary's name at the terminal. Off a terminal without --yes nobody can be asked, so
 * it is a usage error and nothing is written.
 */
export function unfencedConfirmation(o: RequestOptions, terminal: boolean): 'none' | 'ask' {
  if (!o.unfenced || o.yes) return 'none';
  if (terminal) return 'ask';
  throw usageError('failover --unfenced must be confirmed, and stdin is not a terminal: add --yes once you are sure the old primary takes no writes');
}

/**
 * How a switchover or failover is confirmed: an --unfenced one as above (typing the old primary's
 * name); any other by a yes on a terminal, or --yes.
 */
export function requestConfirmation(kind: RequestKind, o: RequestOptions, terminal: boolean): 'none' | 'ask' | 'ask-unfenced' {
  if (o.unfenced) return unfencedConfirmation(o, terminal) === 'ask' ? 'ask-unfenced' : 'none';
  return confirmationOf(kind, o.yes, terminal);
}

/** The question before a switchover or failover is requested. */
export function requestQuestion(view: ClusterView, kind: RequestKind, o: RequestOptions): string {
  const p = view.primary;
  const from = p ? `${p.node} (epoch ${p.epoch})` : 'its primary';
  const to = o.to ?? 'a replica the coordinator chooses';
  const forced = o.force ? ', overriding the safety rules (errant GTIDs, no-promote, lag limit)' : '';
  return kind === 'switchover' ? `Switch over ${view.cluster} from ${from} to ${to}?` : `Fail over ${view.cluster} from ${from} to ${to} now${forced}?`;
}

/** The paragraph shown before the operator is asked to type the old primary's name. */
export function unfencedWarning(oldPrimary: string, to: string): string[] {
  return [
    `WARNING: ${oldPrimary}, the old primary, could not be proven fenced. Promoting ${to} without that proof is safe only if`,
    `${oldPrimary} can take no more writes: if it is still alive and takes writes, two nodes take writes and acknowledged`,
    `writes can be lost. Make sure ${oldPrimary} is powered off or cut off from its clients before you go on.`,
  ];
}

/** Asks the operator to type the old primary's name; anything else throws (exit 1), before anything is written. */
export async function confirmUnfenced(view: ClusterView, o: RequestOptions, io: Pick<Io, 'stderr' | 'stdin'>): Promise<void> {
  const old = view.primary?.node;
  if (old === undefined || !io.stdin) throw refused('failover --unfenced: nobody to confirm it; nothing was written');
  io.stderr.write(`${unfencedWarning(old, o.to ?? 'a replica').join('\n')}\n`);
  const answer = await io.stdin.ask(`Type ${old} to fail over without a fencing proof, anything else to abort: `);
  if (answer === null) throw refused('not confirmed; nothing was written');
  if (answer.trim() !== old) throw refused(`not confirmed: "${answer.trim()}" is not ${old}; nothing was written`);
}

/** Time-sortable and unique enough: milliseconds, then 6 random hex digits. */
export function newRequestId(now: number, random: string = randomBytes(3).toString('hex')): string {
  return `${now}-${random}`;
}

export function buildRequest(kind: RequestKind, o: RequestOptions, now: number, by: string): OperatorRequest {
  return { kind, to: o.to, force: o.force, unfenced: o.unfenced, requestedAt: now, by };
}

export type WaitEvent =
  | { readonly kind: 'op'; readonly op: OpRecord }
  | { readonly kind: 'primary'; readonly primary: Primary }
  /** The request key was deleted: the coordinator took it. */
  | { readonly kind: 'request-gone' }
  | { readonly kind: 'warning'; readonly message: string };

export interface WaitState {
  readonly requestId: string;
  readonly kind: RequestKind | 'rejoin';
  /** The primary's epoch when the request was written: the answer is in a later epoch. */
  readonly afterEpoch: number;
  readonly taken: boolean;
  readonly op: OpRecord | null;
  /** How far each step (by index) has been printed. */
  readonly printed: ReadonlyArray<'started' | 'ended'>;
  readonly lastPrimary: string | null;
}

export interface WaitResult {
  readonly code: ExitCodeValue;
  readonly line: string;
}

export function initialWait(requestId: string, kind: RequestKind | 'rejoin', afterEpoch: number): WaitState {
  return { requestId, kind, afterEpoch, taken: false, op: null, printed: [], lastPrimary: null };
}

/** Whether an op record answers this request: by its trigger, or by the request it names. */
export function answers(op: OpRecord, requestId: string, afterEpoch: number): boolean {
  if (op.epoch <= afterEpoch) return false;
  const named: unknown = (op as unknown as { request?: { id?: unknown } }).request?.id;
  return op.trigger === `request ${requestId}` || named === requestId;
}

function stepLine(s: OpStep, ended: boolean): string {
  if (!ended) return `  … ${s.name}${s.detail ? `: ${s.detail}` : ''}`;
  const mark = s.outcome === 'ok' ? '✓' : s.outcome === 'failed' ? '✗' : '-';
  const took = s.endedAt === null ? '' : ` (${formatDuration(s.endedAt - s.startedAt)})`;
  return `  ${mark} ${s.name}${took}${s.detail ? `: ${s.detail}` : ''}${s.outcome === 'skipped' ? ' (skipped)' : ''}`;
}

/** One event in; the new state, the lines to print, and the result once the wait is over. */
export function advanceWait(state: WaitState, event: WaitEvent): { state: WaitState; lines: string[]; result: WaitResult | null } {
  switch (event.kind) {
    case 'warning':
      return { state, lines: [`warning: ${event.message}`], result: null };
    case 'request-gone':
      return { state: { ...state, taken: true }, lines: state.taken ? [] : ['the coordinator took the request'], result: null };
    case 'primary': {
      const p = event.primary;
      const key = `${p.node}/${p.epoch}/${p.state}`;
      if (p.epoch <= state.afterEpoch || key === state.lastPrimary) return { state, lines: [], result: null };
      return { state: { ...state, lastPrimary: key }, lines: [`primary: ${p.node}, epoch ${p.epoch}, ${p.state}`], result: null };
    }
    case 'op': {
      const op = event.op;
      if (!answers(op, state.requestId, state.afterEpoch)) return { state, lines: [], result: null };
      const lines: string[] = [];
      if (state.op === null) lines.push(`epoch ${op.epoch}: ${op.kind} ${op.from ?? '-'} → ${op.to ?? '-'}, coordinated by ${op.coordinator.node}`);
      const printed = [...state.printed];
      op.steps.forEach((s, i) => {
        const ended = s.outcome !== 'running';
        if (printed[i] === 'ended' || (printed[i] === 'started' && !ended)) return;
        lines.push(stepLine(s, ended));
        printed[i] = ended ? 'ended' : 'started';
      });
      const next: WaitState = { ...state, taken: true, op, printed };
      const took = op.endedAt === null ? '' : ` in ${formatDuration(op.endedAt - op.startedAt)}`;
      switch (op.outcome) {
        case 'running':
          return { state: next, lines, result: null };
        case 'done':
          if (op.kind === 'rejoin') return { state: next, lines, result: { code: ExitCode.OK, line: `done: ${op.rejoin?.node ?? op.from ?? '?'} rejoined by ${op.rejoin?.method ?? '?'} and replicates from ${op.to ?? '?'}${took}` } };
          return { state: next, lines, result: { code: ExitCode.OK, line: `done: ${op.to ?? '?'} is the primary (epoch ${op.epoch})${took}` } };
        case 'aborted':
        case 'refused':
          return { state: next, lines, result: { code: ExitCode.FAILED, line: `${op.kind} ${op.outcome}: ${op.reason || 'no reason recorded'}` } };
      }
    }
  }
}

/** Where the wait's events come from: a watch on etcd, or a fake in tests. */
export interface OpFeed {
  /** Starts delivering events; `onError` ends the wait (etcd lost for good). */
  start(onEvent: (e: WaitEvent) => void, onError: (err: unknown) => void): void;
  stop(): Promise<void>;
  /** Deletes the request if it is still there, atomically; true when this call deleted it. */
  withdraw(): Promise<boolean>;
}

export interface WaitOptions {
  readonly requestId: string;
  readonly kind: RequestKind | 'rejoin';
  readonly afterEpoch: number;
  readonly timeoutMs: number;
  readonly print: (line: string) => void;
  readonly signal?: AbortSignal;
}

/** Waits for the op record that answers the request, printing its steps as they appear. */
export async function waitForAnswer(feed: OpFeed, o: WaitOptions): Promise<WaitResult> {
  let state = initialWait(o.requestId, o.kind, o.afterEpoch);
  let settle!: (r: WaitResult | { error: unknown } | 'timeout' | 'interrupted') => void;
  const settled = new Promise<WaitResult | { error: unknown } | 'timeout' | 'interrupted'>((resolve) => (settle = resolve));
  const timer = setTimeout(() => settle('timeout'), o.timeoutMs);
  const onAbort = () => settle('interrupted');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  let over = false;
  feed.start(
    (event) => {
      if (over) return;
      const step = advanceWait(state, event);
      state = step.state;
      for (const l of step.lines) o.print(l);
      if (step.result) {
        over = true;
        settle(step.result);
      }
    },
    (error) => settle({ error }),
  );
  try {
    const r = await settled;
    over = true;
    if (r === 'interrupted') {
      return { code: ExitCode.INTERRUPTED, line: `stopped waiting; request ${o.requestId} stands: follow it with primacy history` };
    }
    if (r === 'timeout') return await timedOutResult(feed, state, o);
    if ('error' in r) throw r.error;
    return r;
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    await feed.stop();
  }
}

async function timedOutResult(feed: OpFeed, state: WaitState, o: WaitOptions): Promise<WaitResult> {
  const waited = formatDuration(o.timeoutMs);
  if (!state.taken && (await feed.withdraw())) {
    return { code: ExitCode.TIMEOUT, line: `nobody took request ${o.requestId} within ${waited} (is a coordinator running? see primacy status); the request was deleted` };
  }
  const op = state.op;
  if (op === null) {
    return { code: ExitCode.TIMEOUT, line: `timed out after ${waited}: the coordinator took request ${o.requestId} but has recorded no operation for it yet` };
  }
  const running = op.steps.find((s) => s.outcome === 'running');
  return {
    code: ExitCode.TIMEOUT,
    line: `timed out after ${waited}: epoch ${op.epoch} (${op.kind} ${op.from ?? '-'} → ${op.to ?? '-'}) is still ${op.outcome}${running ? ` at step "${running.name}"` : ''}; follow it with primacy explain ${op.epoch}`,
  };
}
