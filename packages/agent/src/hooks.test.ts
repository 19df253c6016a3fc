import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileAgentConfig, type HookRun, type OpRecord } from '@primacy/common';
import { systemClock } from './clock.js';
import { HookRunner, hookContext, hookEnv, postHookDue, preSwitchoverContext, withGateRun, withHookRuns, type HookContext } from './hooks.js';
import { createLogger } from './log.js';
import { primary } from './testing/members.js';

const T0 = 1_800_000_000_000;

function op(over: Partial<OpRecord> = {}): OpRecord {
  return {
    epoch: 3,
    kind: 'failover',
    from: 'db1',
    to: 'db2',
    trigger: 'automatic',
    request: null,
    coordinator: { node: 'db3', revision: '7' },
    startedAt: T0,
    endedAt: T0 + 900,
    outcome: 'done',
    reason: "db1's agent sees its server down",
    catchUpFrom: null,
    mustContain: null,
    applied: null,
    proof: null,
    durability: null,
    fromAddress: { host: '10.0.0.21', port: 3306 },
    members: {},
    candidates: [],
    steps: [{ name: 'choose', startedAt: T0 + 400, endedAt: T0 + 400, outcome: 'ok', detail: 'db2 has the most' }],
    ...over,
  };
}

function run(over: Partial<HookRun> = {}): HookRun {
  return { name: 'post-failover', node: 'db3', role: 'coordinator', epoch: 3, opStartedAt: T0, startedAt: T0 + 950, ms: 12, exitCode: 0, timedOut: false, outcome: 'exit 0', outputTail: '', ...over };
}

describe('hook environment', () => {
  test('a post-failover hook is told the cluster, epoch, both primaries with host and port, the reason and the outcome', () => {
    const ctx = hookContext('main', op(), { host: '10.0.0.22', port: 3307 })!;
    assert.deepEqual(hookEnv('post-failover', ctx, { node: 'db2', role: 'new-primary' }), {
      PRIMACY_HOOK: 'post-failover',
      PRIMACY_HOOK_NODE: 'db2',
      PRIMACY_HOOK_ROLE: 'new-primary',
      PRIMACY_CLUSTER: 'main',
      PRIMACY_KIND: 'failover',
      PRIMACY_EPOCH: '3',
      PRIMACY_OLD_PRIMARY: 'db1',
      PRIMACY_OLD_HOST: '10.0.0.21',
      PRIMACY_OLD_PORT: '3306',
      PRIMACY_NEW_PRIMARY: 'db2',
      PRIMACY_NEW_HOST: '10.0.0.22',
      PRIMACY_NEW_PORT: '3307',
      PRIMACY_REASON: "db1's agent sees its server down",
      PRIMACY_OUTCOME: 'done',
    });
  });

  test('a pre-failover hook has no new primary yet; an old record without the address leaves it empty', () => {
    const env = hookEnv('pre-failover', hookContext('main', op({ to: null, outcome: 'running', fromAddress: undefined }), null)!, { node: 'db3', role: 'coordinator' });
    assert.deepEqual([env['PRIMACY_OLD_PRIMARY'], env['PRIMACY_OLD_HOST'], env['PRIMACY_OLD_PORT'], env['PRIMACY_NEW_PRIMARY'], env['PRIMACY_NEW_HOST'], env['PRIMACY_OUTCOME']], ['db1', '', '', '', '', 'running']);
  });

  test('an unsuccessful failover names no new primary even when the operator asked for one', () => {
    const ctx = hookContext('main', op({ outcome: 'aborted', to: 'db2' }), null)!;
    assert.equal(ctx.newPrimary, null);
  });

  test('a pre-switchover hook is told the target before the record exists', () => {
    const ctx = preSwitchoverContext('main', primary('db1', { epoch: 4 }), { node: 'db2', host: '127.0.0.1', port: 3302 }, 'the operator asked', T0);
    const env = hookEnv('pre-switchover', ctx, { node: 'db3', role: 'coordinator' });
    assert.deepEqual([env['PRIMACY_KIND'], env['PRIMACY_EPOCH'], env['PRIMACY_OLD_PRIMARY'], env['PRIMACY_NEW_PRIMARY'], env['PRIMACY_NEW_PORT'], env['PRIMACY_OUTCOME']], ['switchover', '5', 'db1', 'db2', '3302', 'running']);
  });

  test('bootstraps and rejoins have no hooks', () => {
    assert.equal(hookContext('main', op({ kind: 'bootstrap' }), null), null);
    assert.equal(hookContext('main', op({ kind: 'rejoin' }), null), null);
  });
});

describe('recording hook runs', () => {
  test('a run goes into the record of its epoch and attempt, once', () => {
    const current = op();
    const pending = op({ epoch: 4, startedAt: T0 + 5000, outcome: 'refused', to: null });
    const runs = [run(), run({ name: 'pre-failover', startedAt: T0 + 1, ms: 2000, timedOut: true, exitCode: null, outcome: 'killed after 2000 ms' }), run({ name: 'post-unsuccessful-failover', epoch: 4, opStartedAt: T0 + 5000, startedAt: T0 + 5001 })];
    const updated = withHookRuns([current, pending], [...runs, runs[0]!]);
    assert.equal(updated.length, 2);
    assert.deepEqual(updated[0]!.hooks!.map((h) => h.name), ['pre-failover', 'post-failover'], 'in the order they started, without the duplicate');
    assert.deepEqual(updated[1]!.hooks!.map((h) => h.name), ['post-unsuccessful-failover']);
    assert.deepEqual(withHookRuns(updated, runs), [], 'nothing is left to record');
  });

  test("a run of an earlier attempt of the same epoch is not put in a later attempt's record", () => {
    assert.deepEqual(withHookRuns([op({ startedAt: T0 + 9000 })], [run()]), []);
    assert.deepEqual(withHookRuns([null], [run()]), []);
  });

  test('the same hook on two agents is two runs', () => {
    const updated = withHookRuns([op()], [run(), run({ node: 'db2', role: 'new-primary' })]);
    assert.deepEqual(updated[0]!.hooks!.map((h) => `${h.node} ${h.role}`), ['db3 coordinator', 'db2 new-primary']);
  });

  test("a pre-switchover hook's run is kept in the record and as a step after the choice", () => {
    const started = op({ kind: 'switchover', outcome: 'running', endedAt: null, steps: [{ name: 'choose', startedAt: T0, endedAt: T0, outcome: 'ok', detail: 'db2' }, { name: 'clients paused', startedAt: T0, endedAt: T0, outcome: 'ok', detail: '' }] });
    const failed = withGateRun(started, run({ name: 'pre-switchover', epoch: 9, opStartedAt: 1, startedAt: T0 - 300, ms: 250, exitCode: 3, outcome: 'exit 3', outputTail: 'change freeze' }));
    assert.deepEqual(failed.steps.map((s) => [s.name, s.outcome, s.detail]), [['choose', 'ok', 'db2'], ['pre-switchover hook', 'failed', 'exit 3: change freeze'], ['clients paused', 'ok', '']]);
    assert.deepEqual([failed.hooks![0]!.epoch, failed.hooks![0]!.opStartedAt], [3, T0], 'it belongs to this record');
  });
});

describe("the new primary's post hook", () => {
  const ready = primary('db2', { epoch: 3, state: 'ready' });
  const cases: Array<[string, Parameters<typeof postHookDue>, ReturnType<typeof postHookDue>]> = [
    ['ready at the epoch it promoted itself to, after a failover', ['db2', ready, op(), 3, null], 'post-failover'],
    ['after a switchover', ['db2', ready, op({ kind: 'switchover' }), 3, 2], 'post-switchover'],
    ['already run for that epoch', ['db2', ready, op(), 3, 3], null],
    ['still promoting', ['db2', { ...ready, state: 'promoting' }, op({ outcome: 'running' }), 3, null], null],
    ['promoted by another agent run (it did not promote itself)', ['db2', ready, op(), null, null], null],
    ['another node is the primary', ['db3', ready, op(), 3, null], null],
    ['the first primary (bootstrap)', ['db2', ready, op({ kind: 'bootstrap', from: null }), 3, null], null],
    ['the record is of another epoch', ['db2', ready, op({ epoch: 2 }), 3, null], null],
  ];
  for (const [name, args, expected] of cases) {
    test(name, () => assert.equal(postHookDue(...args), expected));
  }
});

describe('HookRunner (real shell commands)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'primacy-hooks-'));
  const log = createLogger({ level: 'silent', cluster: 'main', node: 'db3' });
  const runner = (hooks: Record<string, unknown>, onFinished?: () => void): HookRunner => {
    const config = compileAgentConfig(
      { cluster: 'main', node: 'db3', etcd: { endpoints: ['http://127.0.0.1:2379'] }, mysql: { user: 'p', password: { env: 'PW' } }, replication: { user: 'r', password: { env: 'PW' } }, hooks },
      { env: { PW: 'x' } },
    );
    return new HookRunner({ config, clock: systemClock, log, role: 'coordinator', ...(onFinished ? { onFinished } : {}) });
  };
  const ctx: HookContext = hookContext('main', op({ outcome: 'running', to: null }), null)!;
  const finished = (r: HookRunner, count: number): Promise<readonly HookRun[]> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const check = (): void => {
        if (r.finished.length >= count) resolve(r.finished);
        else if (Date.now() - started > 20_000) reject(new Error(`only ${r.finished.length} of ${count} runs ended`));
        else setTimeout(check, 10);
      };
      check();
    });

  test('runs in the background with its environment, once per attempt, and says when it ended', async () => {
    const out = join(dir, 'env');
    let told = 0;
    const r = runner({ preFailover: `env > ${out}; echo started; echo done >&2; exit 4` }, () => (told += 1));
    r.start('pre-failover', ctx);
    r.start('pre-failover', ctx);
    r.start('post-failover', ctx); // not configured
    const [only] = await finished(r, 1);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(r.finished.length, 1, 'once per attempt');
    assert.equal(told, 1);
    assert.deepEqual([only!.name, only!.node, only!.role, only!.epoch, only!.opStartedAt, only!.exitCode, only!.timedOut, only!.outcome, only!.outputTail], ['pre-failover', 'db3', 'coordinator', 3, T0, 4, false, 'exit 4', 'started | done']);
    const env = readFileSync(out, 'utf8');
    assert.match(env, /^PRIMACY_HOOK=pre-failover$/m);
    assert.match(env, /^PRIMACY_OLD_HOST=10\.0\.0\.21$/m);
    assert.match(env, /^PRIMACY_NEW_PRIMARY=$/m);
  });

  test('a hook that hangs is killed, with everything it started, at its bound', async () => {
    const pidFile = join(dir, 'child.pid');
    const r = runner({ postFailover: `sleep 300 & echo $! > ${pidFile}; wait`, timeoutMs: 300 });
    r.start('post-failover', ctx);
    const [killed] = await finished(r, 1);
    assert.deepEqual([killed!.timedOut, killed!.exitCode, killed!.outcome], [true, null, 'killed after 300 ms']);
    assert.ok(killed!.ms >= 300 && killed!.ms < 5000, `killed after ${killed!.ms} ms`);
    const child = Number(readFileSync(pidFile, 'utf8'));
    // Gone, or a zombie that nobody has reaped yet: either way it runs no more.
    const state = (): string => {
      try {
        return readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]?.[0] ?? '?';
      } catch {
        return 'gone';
      }
    };
    assert.ok(['gone', 'Z'].includes(state()), `its sleep went with it (state ${state()})`);
  });

  test('a gate reports running until its run ends, then the run, until settled', async () => {
    const r = runner({ preSwitchover: 'sleep 0.2; echo no; exit 1' });
    assert.equal(runner({}).gate('pre-switchover', 'k', ctx), null, 'no hook, no gate');
    assert.equal(r.gate('pre-switchover', 'k', ctx), 'running');
    assert.equal(r.gate('pre-switchover', 'k', ctx), 'running');
    await finished(r, 1);
    const done = r.gate('pre-switchover', 'k', ctx);
    assert.ok(done !== null && done !== 'running');
    assert.deepEqual([done.exitCode, done.outputTail], [1, 'no']);
    r.settle('k');
    assert.equal(r.gate('pre-switchover', 'k', ctx), 'running', 'settled: a new request runs it again');
    await finished(r, 2);
    rmSync(dir, { recursive: true, force: true });
  });
});
