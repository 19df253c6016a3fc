import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renderExplain } from '../explain.js';
import { PLAIN } from '../io.js';
import { statusModel } from '../status.js';
import { T0, healthyView, member, op, replicatingFrom } from '../testing/fixtures.js';
import { HISTORY_SHOWN, clusterPage, webState } from './model.js';
import { parseActionBody, statusOf } from './server.js';
import { parseInvocation } from '../args.js';
import { CliError, ExitCode } from '../errors.js';

describe('web model', () => {
  test('a healthy cluster: status as --json says it, the tree from the primary, each op with its explain', () => {
    const v = healthyView();
    const ops = [op({ epoch: 1, kind: 'bootstrap', from: null, to: 'db1', candidates: [], steps: [] }), op()];
    const page = clusterPage(v, ops, [], T0);
    assert.deepEqual(page.status, statusModel(v, T0));
    assert.deepEqual(page.tree, { root: 'db2', children: { db2: ['db1', 'db3'] }, apart: [] });
    assert.deepEqual(page.notes, {});
    assert.deepEqual(page.semiSync, { db1: 'src on, rep active', db2: 'src active, rep off', db3: 'src on, rep active' });
    assert.equal(page.current?.epoch, 2);
    assert.deepEqual(page.history.map((h) => [h.op.epoch, h.op.kind]), [[1, 'bootstrap'], [2, 'failover']]);
    assert.deepEqual(page.history[1]!.explain, renderExplain({ version: 1, cluster: 'main', op: ops[1]!, warnings: [] }, T0, PLAIN));
    assert.equal(page.olderOps, 0);
    assert.match(page.durability, /no record from the coordinator yet/);
  });

  test('a diverged node is apart from the tree and says why; a refused op keeps its reason', () => {
    const v = healthyView({
      members: [
        member('db1', { role: 'diverged', errant: '0-1-201' }, { replication: null, gtid: { executed: '0-1-201', received: '0-1-201' } }),
        member('db2', { role: 'primary' }, { readOnly: false }),
        member('db3', {}, { replication: replicatingFrom('db2'), lagMs: 5 }),
      ],
      lastOp: op({ epoch: 3, outcome: 'refused', reason: 'paused: no automatic failover', to: null }),
    });
    const page = clusterPage(v, [op({ epoch: 3, outcome: 'refused', reason: 'paused: no automatic failover', to: null })], ['ignoring malformed value at /x'], T0);
    assert.deepEqual(page.tree.apart, [{ node: 'db1', why: 'diverged: errant 0-1-201' }]);
    assert.equal(page.notes['db1'], 'diverged: errant transactions 0-1-201; kept out of rotation; not salvaged yet; rejoin policy: none');
    assert.equal(page.status.nodes.find((n) => n.node === 'db1')?.state, 'diverged');
    assert.equal(page.history[0]!.op.outcome, 'refused');
    assert.ok(page.history[0]!.explain.includes('  refused: paused: no automatic failover'), page.history[0]!.explain.join('\n'));
    assert.deepEqual(page.warnings, ['ignoring malformed value at /x']);
  });

  test(`the newest ${HISTORY_SHOWN} operations are sent, the older ones counted`, () => {
    const ops = Array.from({ length: HISTORY_SHOWN + 7 }, (_, i) => op({ epoch: i + 1, startedAt: T0 - 100_000 + i }));
    const page = clusterPage(healthyView(), ops, [], T0);
    assert.equal(page.history.length, HISTORY_SHOWN);
    assert.equal(page.olderOps, 7);
    assert.equal(page.history[0]!.op.epoch, 8);
    assert.equal(page.history.at(-1)!.op.epoch, HISTORY_SHOWN + 7);
    assert.equal(page.history.at(-1)!.explain[0], renderExplain({ version: 1, cluster: 'main', op: ops.at(-1)!, warnings: [] }, T0, PLAIN)[0]);
  });

  test('the state lists clusters by name, numbers in order', () => {
    const pages = ['c10', 'c2', 'c1'].map((c) => clusterPage(healthyView({}), [], [], T0)).map((p, i) => ({ ...p, cluster: ['c10', 'c2', 'c1'][i]! }));
    const s = webState({ root: '/primacy', only: null, actions: false, problem: null, pages, now: T0 });
    assert.deepEqual(s.clusters.map((c) => c.cluster), ['c1', 'c2', 'c10']);
    assert.equal(s.readAt, T0);
    assert.equal(JSON.parse(JSON.stringify(s)).clusters.length, 3);
  });
});

describe('web actions', () => {
  test('the body of an action', () => {
    assert.deepEqual(parseActionBody('switchover', ''), { to: null });
    assert.deepEqual(parseActionBody('switchover', '{"to":"db3"}'), { to: 'db3' });
    assert.deepEqual(parseActionBody('switchover', '{"to":""}'), { to: null });
    assert.deepEqual(parseActionBody('pause', '{}'), { to: null });
    assert.equal(parseActionBody('switchover', '{'), 'the body is not JSON');
    assert.equal(parseActionBody('switchover', '[1]'), 'the body must be a JSON object');
    assert.equal(parseActionBody('switchover', '{"to":3}'), '"to" must be a node name or null');
    assert.equal(parseActionBody('pause', '{"to":"db1"}'), '"to" means nothing to pause');
  });

  test("a CLI error's exit code becomes the HTTP status", () => {
    assert.equal(statusOf(new CliError(ExitCode.USAGE, 'x')), 400);
    assert.equal(statusOf(new CliError(ExitCode.UNKNOWN, 'x')), 404);
    assert.equal(statusOf(new CliError(ExitCode.FAILED, 'x')), 409);
    assert.equal(statusOf(new CliError(ExitCode.ETCD_UNREACHABLE, 'x')), 503);
    assert.equal(statusOf(new Error('x')), 500);
  });
});

describe('web args', () => {
  const where = { endpoints: ['http://127.0.0.1:2379'], root: '/primacy', tls: null, auth: null };

  test('every cluster under the root unless one is named; loopback unless told otherwise', () => {
    assert.deepEqual(parseInvocation(['web', '--port', '8080'], {}), { command: 'web', where, cluster: null, host: '127.0.0.1', port: 8080, allowActions: false });
    assert.deepEqual(parseInvocation(['web', '--port', '0', '--host', '0.0.0.0', '--allow-actions'], { PRIMACY_CLUSTER: 'main' }), {
      command: 'web',
      where,
      cluster: 'main',
      host: '0.0.0.0',
      port: 0,
      allowActions: true,
    });
  });

  test('a missing or bad port, and a bad cluster name, are usage errors', () => {
    const usage = (argv: string[], message: RegExp) =>
      assert.throws(() => parseInvocation(argv, {}), (e: unknown) => e instanceof CliError && e.exitCode === ExitCode.USAGE && message.test(e.message));
    usage(['web'], /^web needs --port P/);
    usage(['web', '--port', 'http'], /^bad --port "http": expected a port number from 0 to 65535/);
    usage(['web', '--port', '65536'], /^bad --port "65536"/);
    usage(['web', '--port', '1', '--cluster', 'a/b'], /^bad cluster name "a\/b"/);
    usage(['web', '--port', '1', '--json'], /^unknown flag --json for primacy web/);
  });
});
