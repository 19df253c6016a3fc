import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { OpRecord } from '@primacy/common';
import type { RequestOptions } from './args.js';
import { CliError, ExitCode } from './errors.js';
import type { Terminal } from './io.js';
import { advanceWait, buildRequest, checkRequest, confirmUnfenced, initialWait, newRequestId, unfencedConfirmation, waitForAnswer, type OpFeed, type WaitEvent } from './request.js';
import { T0, captureIo, healthyView, op, primary } from './testing/fixtures.js';

const ID = '1767323045000-a1b2c3';

/** An op record answering request ID in epoch 3 (the primary is at epoch 2). */
function answer(over: Partial<OpRecord> = {}): OpRecord {
  return op({ epoch: 3, kind: 'switchover', from: 'db2', to: 'db1', trigger: `request ${ID}`, outcome: 'running', endedAt: null, steps: [], ...over });
}

const step = (name: string, endedAt: number | null, outcome: 'ok' | 'running' | 'failed' = endedAt === null ? 'running' : 'ok') => ({
  name,
  startedAt: T0,
  endedAt,
  outcome,
  detail: `${name} detail`,
});

/** A watch source under the test's control. */
class FakeFeed implements OpFeed {
  onEvent: ((e: WaitEvent) => void) | null = null;
  onError: ((err: unknown) => void) | null = null;
  requestThere = true;
  stopped = false;
  withdrawals = 0;

  start(onEvent: (e: WaitEvent) => void, onError: (err: unknown) => void): void {
    this.onEvent = onEvent;
    this.onError = onError;
  }
  emit(...events: WaitEvent[]): void {
    for (const e of events) this.onEvent!(e);
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  async withdraw(): Promise<boolean> {
    this.withdrawals += 1;
    const was = this.requestThere;
    this.requestThere = false;
    return was;
  }
}

function waiting(feed: FakeFeed, timeoutMs = 5_000, signal?: AbortSignal) {
  const lines: string[] = [];
  const result = waitForAnswer(feed, { requestId: ID, kind: 'switchover', afterEpoch: 2, timeoutMs, print: (l) => lines.push(l), ...(signal ? { signal } : {}) });
  return { lines, result };
}

describe('the wait for an answer', () => {
  test('done: each step printed once as it appears and once as it ends, then exit 0', async () => {
    const feed = new FakeFeed();
    const { lines, result } = waiting(feed);
    feed.emit(
      { kind: 'request-gone' },
      { kind: 'op', op: answer({ steps: [step('demote', null)] }) },
      { kind: 'op', op: answer({ steps: [step('demote', T0 + 120)] }) },
      { kind: 'op', op: answer({ steps: [step('demote', T0 + 120), step('catch up', T0 + 400)] }) },
      { kind: 'primary', primary: primary('db1', { epoch: 3, state: 'promoting' }) },
      { kind: 'primary', primary: primary('db1', { epoch: 3, state: 'promoting' }) },
      { kind: 'op', op: answer({ outcome: 'done', startedAt: T0, endedAt: T0 + 1_400, steps: [step('demote', T0 + 120), step('catch up', T0 + 400), step('ready', T0 + 1_400)] }) },
    );
    assert.deepEqual(await result, { code: ExitCode.OK, line: 'done: db1 is the primary (epoch 3) in 1.40 s' });
    assert.deepEqual(lines, [
      'the coordinator took the request',
      'epoch 3: switchover db2 → db1, coordinated by db3',
      '  … demote: demote detail',
      '  ✓ demote (120 ms): demote detail',
      '  ✓ catch up (400 ms): catch up detail',
      'primary: db1, epoch 3, promoting',
      '  ✓ ready (1.40 s): ready detail',
    ]);
    assert.ok(feed.stopped, 'the watch is stopped');
    assert.equal(feed.withdrawals, 0);
  });

  test('aborted: exit 1 with the reason', async () => {
    const feed = new FakeFeed();
    const { lines, result } = waiting(feed);
    feed.emit({ kind: 'op', op: answer({ outcome: 'aborted', reason: 'db1 could not catch up; db2 restored', steps: [step('catch up', T0 + 5, 'failed')] }) });
    assert.deepEqual(await result, { code: ExitCode.FAILED, line: 'switchover aborted: db1 could not catch up; db2 restored' });
    assert.deepEqual(lines.slice(1), ['  ✗ catch up (5 ms): catch up detail']);
  });

  test('refused: exit 1 with the reason', async () => {
    const feed = new FakeFeed();
    const { result } = waiting(feed);
    feed.emit({ kind: 'op', op: answer({ outcome: 'refused', reason: 'db1 has errant GTIDs 0-1-9' }) });
    assert.deepEqual(await result, { code: ExitCode.FAILED, line: 'switchover refused: db1 has errant GTIDs 0-1-9' });
  });

  test('op records of other requests, of automatic failovers and of older epochs are not the answer', async () => {
    const feed = new FakeFeed();
    const { lines, result } = waiting(feed, 50);
    feed.emit(
      { kind: 'op', op: answer({ trigger: 'request 1-other', outcome: 'done' }) },
      { kind: 'op', op: answer({ trigger: 'automatic', outcome: 'refused' }) },
      { kind: 'op', op: answer({ epoch: 2, outcome: 'done' }) },
      { kind: 'primary', primary: primary('db2', { epoch: 2 }) },
    );
    const r = await result;
    assert.equal(r.code, ExitCode.TIMEOUT);
    assert.deepEqual(lines, []);
  });

  test('the request named by the op record\'s `request` field is the answer too', async () => {
    const feed = new FakeFeed();
    const { result } = waiting(feed);
    feed.emit({ kind: 'op', op: answer({ trigger: 'operator', request: { id: ID, to: 'db1', force: false }, outcome: 'done', endedAt: T0 }) });
    assert.equal((await result).code, ExitCode.OK);
  });

  test('timeout with the request still there: it is deleted, and exit 5 says nobody took it', async () => {
    const feed = new FakeFeed();
    const { result } = waiting(feed, 30);
    const r = await result;
    assert.equal(r.code, ExitCode.TIMEOUT);
    assert.match(r.line, /^nobody took request 1767323045000-a1b2c3 within 30 ms \(is a coordinator running\? see primacy status\); the request was deleted$/);
    assert.equal(feed.withdrawals, 1);
    assert.equal(feed.requestThere, false);
  });

  test('timeout with the operation still running: exit 5 names the step, and nothing is deleted', async () => {
    const feed = new FakeFeed();
    const { result } = waiting(feed, 50);
    feed.emit({ kind: 'request-gone' }, { kind: 'op', op: answer({ steps: [step('demote', T0 + 1), step('catch up', null)] }) });
    feed.requestThere = false;
    const r = await result;
    assert.equal(r.code, ExitCode.TIMEOUT);
    assert.equal(r.line, 'timed out after 50 ms: epoch 3 (switchover db2 → db1) is still running at step "catch up"; follow it with primacy explain 3');
    assert.equal(feed.withdrawals, 0, 'a taken request is not withdrawn');
  });

  test('timeout when the coordinator took the request in the same instant: says so', async () => {
    const feed = new FakeFeed();
    feed.requestThere = false;
    const { result } = waiting(feed, 20);
    const r = await result;
    assert.equal(r.code, ExitCode.TIMEOUT);
    assert.match(r.line, /took request .* but has recorded no operation for it yet/);
  });

  test('Ctrl-C: stops waiting, the request stands', async () => {
    const feed = new FakeFeed();
    const ctl = new AbortController();
    const { result } = waiting(feed, 5_000, ctl.signal);
    ctl.abort();
    assert.deepEqual(await result, { code: ExitCode.INTERRUPTED, line: `stopped waiting; request ${ID} stands: follow it with primacy history` });
    assert.equal(feed.withdrawals, 0);
  });

  test('a watch that fails for good ends the wait with its error', async () => {
    const feed = new FakeFeed();
    const { result } = waiting(feed);
    const lost = new CliError(ExitCode.ETCD_UNREACHABLE, 'cannot reach etcd');
    feed.onError!(lost);
    await assert.rejects(result, lost);
    assert.ok(feed.stopped);
  });

  test('a malformed op record is a warning line, not the end', () => {
    const s = advanceWait(initialWait(ID, 'switchover', 2), { kind: 'warning', message: 'ignoring malformed value at /primacy/main/ops/0000000003: not JSON' });
    assert.deepEqual(s.lines, ['warning: ignoring malformed value at /primacy/main/ops/0000000003: not JSON']);
    assert.equal(s.result, null);
  });
});

describe('requests', () => {
  const o: RequestOptions = { to: 'db1', force: false, unfenced: false, yes: false, wait: true, timeoutMs: 1000 };

  test('the value and a time-sortable id', () => {
    assert.deepEqual(buildRequest('failover', { ...o, force: true }, T0, 'ann@host'), { kind: 'failover', to: 'db1', force: true, unfenced: false, requestedAt: T0, by: 'ann@host' });
    assert.deepEqual(buildRequest('failover', { ...o, unfenced: true, yes: true }, T0, 'ann@host'), { kind: 'failover', to: 'db1', force: false, unfenced: true, requestedAt: T0, by: 'ann@host' });
    assert.equal(newRequestId(T0, 'abcdef'), `${T0}-abcdef`);
    assert.match(newRequestId(T0), new RegExp(`^${T0}-[0-9a-f]{6}$`));
    assert.ok(newRequestId(T0, 'ffffff') < newRequestId(T0 + 1, '000000'), 'later ids sort after earlier ones');
  });

  test('checked against the cluster: a primary is needed, and the target must be a member other than the primary', () => {
    checkRequest(healthyView(), 'switchover', o);
    checkRequest(healthyView(), 'switchover', { ...o, to: null });
    const code = (f: () => void) => {
      try {
        f();
      } catch (err) {
        return err instanceof CliError ? [err.exitCode, err.message] : err;
      }
      return null;
    };
    assert.deepEqual(code(() => checkRequest(healthyView(), 'failover', { ...o, to: 'db9' })), [ExitCode.UNKNOWN, 'unknown node db9 in cluster main; its members are db1, db2, db3']);
    assert.deepEqual(code(() => checkRequest(healthyView(), 'switchover', { ...o, to: 'db2' })), [ExitCode.FAILED, 'db2 is already the primary of main (epoch 2)']);
    assert.deepEqual(code(() => checkRequest(healthyView({ primary: null }), 'switchover', o)), [ExitCode.FAILED, 'cluster main has no primary: there is nothing to switch over from']);
  });
});

describe('failover --unfenced: the confirmation', () => {
  const o: RequestOptions = { to: 'db1', force: false, unfenced: true, yes: false, wait: true, timeoutMs: 1000 };

  /** A terminal that answers `answer` and records what it was asked. */
  function terminal(answer: string | null): Terminal & { asked: string[] } {
    const asked: string[] = [];
    return { isTTY: true, asked, ask: async (prompt) => (asked.push(prompt), answer) };
  }

  const failure = async (f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (err) {
      return err instanceof CliError ? [err.exitCode, err.message] : err;
    }
    return null;
  };

  test('how it is confirmed: not needed, asked at the terminal, --yes, or a usage error off a terminal', async () => {
    const cases: Array<[string, Partial<RequestOptions>, boolean, 'none' | 'ask' | RegExp]> = [
      ['a failover with a proof to come needs no confirmation', { unfenced: false }, false, 'none'],
      ['on a terminal, the operator is asked', {}, true, 'ask'],
      ['--yes on a terminal: not asked again', { yes: true }, true, 'none'],
      ['--yes off a terminal', { yes: true }, false, 'none'],
      ['off a terminal without --yes', {}, false, /^failover --unfenced must be confirmed, and stdin is not a terminal: add --yes once you are sure the old primary takes no writes \(see primacy --help\)$/],
    ];
    for (const [name, over, tty, expected] of cases) {
      const run = () => unfencedConfirmation({ ...o, ...over }, tty);
      if (expected instanceof RegExp) {
        assert.throws(run, (err: unknown) => err instanceof CliError && err.exitCode === ExitCode.USAGE && expected.test(err.message) && !err.message.includes('\n'), name);
      } else {
        assert.equal(run(), expected, name);
      }
    }
  });

  test("typing the old primary's name confirms; the warning comes first, on stderr", async () => {
    const stdin = terminal('db2');
    const io = captureIo({ stdin });
    await confirmUnfenced(healthyView(), o, io);
    assert.deepEqual(stdin.asked, ['Type db2 to fail over without a fencing proof, anything else to abort: ']);
    const warning = io.err();
    assert.match(warning, /^WARNING: db2, the old primary, could not be proven fenced\. Promoting db1 without that proof/);
    assert.match(warning.replace(/\n/g, ' '), /if it is still alive and takes writes, two nodes take writes and acknowledged writes can be lost\. Make sure db2 is powered off or cut off/);
    assert.doesNotMatch(warning, /\n\n/, 'one paragraph');
    assert.equal(io.out(), '');
    await confirmUnfenced(healthyView(), o, captureIo({ stdin: terminal('  db2 ') }));
  });

  test('anything else aborts with exit 1, before anything is written', async () => {
    const cases: Array<[string | null, string]> = [
      ['db1', 'not confirmed: "db1" is not db2; nothing was written'],
      ['yes', 'not confirmed: "yes" is not db2; nothing was written'],
      ['', 'not confirmed: "" is not db2; nothing was written'],
      ['DB2', 'not confirmed: "DB2" is not db2; nothing was written'],
      [null, 'not confirmed; nothing was written'],
    ];
    for (const [answer, message] of cases) {
      assert.deepEqual(await failure(() => confirmUnfenced(healthyView(), o, captureIo({ stdin: terminal(answer) }))), [ExitCode.FAILED, message], String(answer));
    }
  });
});
