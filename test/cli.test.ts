/**
 * The `primacy` CLI against a live cluster: 3 MariaDB servers, 3 real agents and a 3-member etcd.
 * Most commands run in-process through `main(argv, io)`; a few run as a real process to check what
 * an operator sees: the exit code and one line on stderr.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClusterConfigSchema, RequestSchema, clusterKeys } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { cleanupAll, freePort, startEtcd, startProxy, waitFor, type EtcdCluster } from './harness/index.js';
import { startCluster, type TestCluster } from './support/cluster.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

let etcd: EtcdCluster;
let c: TestCluster;

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

function env(over: Record<string, string> = {}): Record<string, string> {
  return { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_CLUSTER: c.name, ...over };
}

/** Runs the CLI in-process with captured output, bounded in time. */
async function cli(argv: string[], over: Partial<Io> & { envOver?: Record<string, string> } = {}): Promise<Run> {
  let out = '';
  let err = '';
  const io: Io = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    isTTY: false,
    env: env(over.envOver),
    ...(over.signal ? { signal: over.signal } : {}),
  };
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    main(argv, io),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`primacy ${argv.join(' ')} took over 30 s`)), 30_000))),
  ]).finally(() => clearTimeout(timer));
  return { code, out, err };
}

/** Runs the CLI as a real process, as an operator would. */
function cliProcess(argv: string[], envOver: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=@primacy/source', '--import', 'tsx', 'packages/cli/src/main.ts', ...argv],
      { cwd: repoRoot, env: { ...process.env, ...env(envOver), NO_COLOR: '1' }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: stdout, err: stderr }),
    );
  });
}

before(async () => {
  etcd = await startEtcd({ members: 3 });
  c = await startCluster(etcd);
  // Replicas publish their role and replication once they have repointed; wait for the settled picture.
  await c.settled();
});

after(async () => {
  await c?.stop();
  await cleanupAll();
});

describe('primacy against a live cluster', () => {
  test('status: the cluster, the primary marked, three nodes', async () => {
    const r = await cli(['status']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const lines = r.out.split('\n');
    assert.match(lines[0]!, new RegExp(`^cluster +${c.name} \\(etcd revision \\d+\\)$`));
    assert.match(lines[1]!, /^primary +db1, epoch 1, ready since /);
    assert.match(lines[2]!, /^coordinator +db[123]$/);
    assert.match(lines[3]!, /^paused +no$/);
    assert.match(lines[4]!, /^last op +epoch 1 bootstrap - → db1, done .* ago \(took .*\)$/);
    const header = lines.findIndex((l) => l.startsWith('  NODE'));
    assert.match(lines[header]!, /^ {2}NODE +ROLE +STATE +HEALTH +READ_ONLY +GTID EXECUTED +LAG +SEMI-SYNC +AGENT$/);
    assert.match(lines[header + 1]!, /^\* db1 +primary +ok +up +off +0-\d+-\d+ +- +src (active|on), rep (off|on) +\d+\.\d+\.\d+$/);
    assert.match(lines[header + 2]!, /^ {2}db2 +replica +ok +up +on +0-\d+-\d+ +(\d+(\.\d+)? m?s|-) +src \w+, rep (active|on) +\d+\.\d+\.\d+$/);
    assert.match(lines[header + 3]!, /^ {2}db3 +replica +ok +up +on /);
    assert.ok(!r.out.includes('\x1b['), 'no colours off a terminal');
  });

  test('status --json: schema version 1, three nodes, db1 the primary', async () => {
    const r = await cli(['status', '--json']);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out);
    assert.equal(s.version, 1);
    assert.equal(s.cluster, c.name);
    assert.match(s.revision, /^\d+$/);
    assert.equal(s.paused, false);
    assert.equal(s.epoch, 1);
    assert.deepEqual([s.primary.node, s.primary.epoch, s.primary.state], ['db1', 1, 'ready']);
    assert.ok(['db1', 'db2', 'db3'].includes(s.coordinator));
    assert.deepEqual([s.lastOp.epoch, s.lastOp.kind, s.lastOp.to, s.lastOp.outcome], [1, 'bootstrap', 'db1', 'done']);
    assert.deepEqual(s.nodes.map((n: { node: string; primary: boolean; state: string; role: string; readOnly: boolean }) => [n.node, n.primary, n.state, n.role, n.readOnly]), [
      ['db1', true, 'ok', 'primary', false],
      ['db2', false, 'ok', 'replica', true],
      ['db3', false, 'ok', 'replica', true],
    ]);
    const db2 = s.nodes[1];
    assert.equal(db2.replication.sourcePort, c.server('db1').port);
    assert.equal(db2.replication.ioState, 'running');
    assert.equal(typeof db2.semiSync.replicaEnabled, 'boolean');
    assert.match(db2.gtidExecuted, /^0-\d+-\d+/);
    assert.deepEqual(s.warnings, []);
  });

  test('topology: db1 at the root, db2 and db3 under it', async () => {
    const r = await cli(['topology']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^db1  127\\.0\\.0\\.1:${c.server('db1').port}  ok  writable  primary, epoch 1, ready$`));
    assert.match(lines[1]!, new RegExp(`^├─ db2  127\\.0\\.0\\.1:${c.server('db2').port}  ok  (lag .+  )?read-only$`));
    assert.match(lines[2]!, new RegExp(`^└─ db3  127\\.0\\.0\\.1:${c.server('db3').port}  ok  (lag .+  )?read-only$`));
    assert.equal(lines.length, 3, r.out);
  });

  test('history after bootstrap: one operation', async () => {
    const r = await cli(['history']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^EPOCH +KIND +FROM +TO +STARTED +DURATION +OUTCOME +REASON$/);
    assert.match(lines[1]!, /^1 +bootstrap +- +db1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +\d+(\.\d+)? m?s +done +\S/);
    assert.equal(lines.length, 2);
    const j = JSON.parse((await cli(['history', '--json'])).out);
    assert.equal(j.version, 1);
    assert.deepEqual(j.ops.map((o: { epoch: number; kind: string; outcome: string }) => [o.epoch, o.kind, o.outcome]), [[1, 'bootstrap', 'done']]);
  });

  test('explain of epoch 1, and of the newest; an unknown epoch is exit 4', async () => {
    const r = await cli(['explain', '1']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^epoch 1: bootstrap - → db1, done\n/);
    assert.match(r.out, /trigger +bootstrap: /);
    assert.match(r.out, /steps\n +STEP +OUTCOME +DURATION +AT +DETAIL\n +write primary +ok +\d+ ms +\+0 ms +epoch 1, state promoting\n +ready +ok /);
    assert.match(r.out, /outcome\n {2}done: /);
    const newest = await cli(['explain']);
    const noAges = (s: string) => s.replace(/\([^)]* ago\)/g, '(…)');
    assert.equal(noAges(newest.out), noAges(r.out), 'the newest is epoch 1');
    const j = JSON.parse((await cli(['explain', '1', '--json'])).out);
    assert.deepEqual([j.version, j.op.epoch, j.op.kind, j.op.to], [1, 1, 'bootstrap', 'db1']);
    const missing = await cli(['explain', '99']);
    assert.equal(missing.code, 4);
    assert.equal(missing.err, `primacy: no operation recorded for epoch 99 in cluster ${c.name} (see primacy history)\n`);
  });

  test('pause and resume: a round trip that keeps the other config fields, seen by status', async () => {
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: false, nodes: { db3: { priority: 5 } }, note: 'kept by the CLI' }));
    const paused = await cli(['pause']);
    assert.deepEqual([paused.code, paused.out, paused.err], [0, `paused ${c.name}: no automatic failover until primacy resume\n`, '']);
    const stored = JSON.parse((await c.etcd.get(c.keys.config).string())!);
    assert.deepEqual(stored, { paused: true, nodes: { db3: { priority: 5 } }, note: 'kept by the CLI' });
    assert.equal(ClusterConfigSchema.parse(stored).paused, true);
    assert.match((await cli(['status'])).out, /\npaused +yes: no automatic failover\n/);
    assert.equal(JSON.parse((await cli(['status', '--json'])).out).paused, true);
    assert.equal((await cli(['pause'])).out, `${c.name} is already paused\n`);
    const resumed = await cli(['resume']);
    assert.deepEqual([resumed.code, resumed.out], [0, `resumed ${c.name}: automatic failover is allowed again\n`]);
    assert.deepEqual(JSON.parse((await c.etcd.get(c.keys.config).string())!), { paused: false, nodes: { db3: { priority: 5 } }, note: 'kept by the CLI' });
    assert.match((await cli(['status'])).out, /\npaused +no\n/);
  });

  test('status --watch redraws on a change and stops on Ctrl-C', async () => {
    const ctl = new AbortController();
    const run = cli(['status', '--watch', '--json'], { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 500));
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: true }));
    await new Promise((r) => setTimeout(r, 1000));
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: false }));
    await new Promise((r) => setTimeout(r, 500));
    ctl.abort();
    const r = await run;
    assert.equal(r.code, 0, r.err);
    const docs = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    const pausedFlags = docs.map((d: { paused: boolean }) => d.paused);
    assert.ok(pausedFlags.includes(true) && pausedFlags.at(-1) === false, `saw the pause and the resume: ${pausedFlags.join(',')}`);
  });

  test('an unknown cluster is exit 4; an unknown node for failover --to is exit 4 and writes nothing', async () => {
    const r = await cli(['status', '--cluster', 'nosuch']);
    assert.equal(r.code, 4);
    assert.match(r.err, /^primacy: unknown cluster nosuch: no keys under \/primacy\/nosuch\/ in etcd at http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(r.err.split('\n').length, 2, 'one line');
    const before = await c.etcd.getAll().prefix(c.keys.requestsPrefix).keys();
    const f = await cli(['failover', '--to', 'db9', '--yes']);
    assert.deepEqual([f.code, f.err], [4, `primacy: unknown node db9 in cluster ${c.name}; its members are db1, db2, db3\n`]);
    assert.deepEqual(await c.etcd.getAll().prefix(c.keys.requestsPrefix).keys(), before);
  });

  test('etcd unreachable: exit 3 and one line, promptly', async () => {
    const port = await freePort();
    const refused = await cli(['status'], { envOver: { PRIMACY_ETCD: `http://127.0.0.1:${port}` } });
    assert.equal(refused.code, 3);
    assert.match(refused.err, new RegExp(`^primacy: cannot reach etcd at http://127\\.0\\.0\\.1:${port}: .+\\n$`));
    // A partitioned etcd accepts connections and never answers: the CLI's own deadline ends the wait.
    const first = new URL(etcd.endpoints[0]!);
    const proxy = await startProxy({ targetHost: first.hostname, targetPort: Number(first.port) });
    proxy.cut({ mode: 'blackhole' });
    const started = Date.now();
    const hung = await cli(['history'], { envOver: { PRIMACY_ETCD: `http://127.0.0.1:${proxy.port}` } });
    assert.equal(hung.code, 3, hung.err);
    assert.ok(Date.now() - started < 6_000, `gave up after ${Date.now() - started} ms`);
    assert.equal(hung.err.split('\n').length, 2, 'one line');
    await proxy.close();
  });

  test('as a real process: exit codes and one line on stderr, never a stack trace', async () => {
    const ok = await cliProcess(['status']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^cluster +c\d+ /);
    const unreachable = await cliProcess(['status'], { PRIMACY_ETCD: `http://127.0.0.1:${await freePort()}` });
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.err, /^primacy: cannot reach etcd at [^\n]+\n$/);
    const unknown = await cliProcess(['topology', '--cluster', 'nosuch']);
    assert.equal(unknown.code, 4);
    assert.match(unknown.err, /^primacy: unknown cluster nosuch: [^\n]+\n$/);
    const bad = await cliProcess(['switchover', '--timeout', 'soon']);
    assert.deepEqual([bad.code, bad.err], [2, 'primacy: bad --timeout "soon": expected seconds, more than 0 and at most 86400 (see primacy --help)\n']);
  });
});

/**
 * Requests are checked against a copy of the live cluster's keys under another name, where no
 * coordinator runs: the request stays for the test to read, and nobody answers it.
 */
describe('requests, where no coordinator runs', () => {
  const copy = clusterKeys('nocoord');

  before(async () => {
    for (const node of ['db1', 'db2', 'db3']) await c.etcd.put(copy.member(node)).value(JSON.stringify(await c.member(node)));
    await c.etcd.put(copy.primary).value(JSON.stringify(await c.primary()));
    await c.etcd.put(copy.epoch).value('1');
  });

  after(async () => {
    await c.etcd.delete().prefix(copy.prefix);
  });

  test('switchover --no-wait writes a well-formed request and prints its id', async () => {
    const r = await cli(['switchover', '--to', 'db2', '--no-wait', '--yes'], { envOver: { PRIMACY_CLUSTER: 'nocoord' } });
    assert.equal(r.code, 0, r.err);
    const id = r.out.trim();
    assert.match(id, /^\d{13}-[0-9a-f]{6}$/);
    const raw = await c.etcd.get(copy.request(id)).string();
    assert.ok(raw !== null, 'the request key exists');
    const request = RequestSchema.parse(JSON.parse(raw));
    assert.deepEqual({ ...request, requestedAt: 0, by: '' }, { kind: 'switchover', to: 'db2', force: false, unfenced: false, requestedAt: 0, by: '' });
    assert.match(request.by, /^.+@.+$/);
    assert.ok(Math.abs(request.requestedAt - Number(id.split('-')[0])) === 0);
    await c.etcd.delete().key(copy.request(id));
  });

  test('off a terminal a switchover or failover without --yes is exit 2, and nothing is written', async () => {
    for (const argv of [['switchover', '--to', 'db2'], ['failover', '--to', 'db3', '--no-wait']]) {
      const r = await cli(argv, { envOver: { PRIMACY_CLUSTER: 'nocoord' } });
      assert.deepEqual([r.code, r.err], [2, `primacy: ${argv[0]} must be confirmed, and stdin is not a terminal: add --yes to go ahead without being asked (see primacy --help)\n`]);
    }
    assert.deepEqual(await c.etcd.getAll().prefix(copy.requestsPrefix).keys(), []);
  });

  test('failover --force --no-wait, and a switchover to the primary is refused (exit 1)', async () => {
    const r = await cli(['failover', '--to', 'db3', '--force', '--no-wait', '--yes'], { envOver: { PRIMACY_CLUSTER: 'nocoord' } });
    assert.equal(r.code, 0, r.err);
    const request = RequestSchema.parse(JSON.parse((await c.etcd.get(copy.request(r.out.trim())).string())!));
    assert.deepEqual([request.kind, request.to, request.force], ['failover', 'db3', true]);
    await c.etcd.delete().key(copy.request(r.out.trim()));
    const same = await cli(['switchover', '--to', 'db1', '--yes'], { envOver: { PRIMACY_CLUSTER: 'nocoord' } });
    assert.deepEqual([same.code, same.err], [1, 'primacy: db1 is already the primary of nocoord (epoch 1)\n']);
  });

  test('waiting with nobody to answer: exit 5 after the timeout, and the request is deleted', async () => {
    const r = await cliProcess(['switchover', '--timeout', '1', '--yes'], { PRIMACY_CLUSTER: 'nocoord' });
    assert.equal(r.code, 5, r.err);
    assert.match(r.out, /^requested switchover of db1 \(epoch 1\): request \d+-[0-9a-f]+\n/);
    assert.match(r.err, /^primacy: nobody took request \d+-[0-9a-f]+ within 1\.00 s \(is a coordinator running\? see primacy status\); the request was deleted\n$/);
    assert.deepEqual(await c.etcd.getAll().prefix(copy.requestsPrefix).keys(), []);
  });
});

describe('requests answered by the live coordinator', () => {
  test('switchover --to waits, shows each step, and exits 0 when the new primary is ready', async () => {
    const before = (await c.primary())!;
    const to = before.node === 'db2' ? 'db3' : 'db2';
    const r = await cli(['switchover', '--to', to, '--timeout', '25', '--yes']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /demote/);
    assert.match(r.out, /done/);
    const p = (await c.primary())!;
    assert.deepEqual([p.node, p.epoch, p.state], [to, before.epoch + 1, 'ready']);
  });

  test('a node in maintenance is never chosen: a switchover to it is refused, one without --to picks another', async () => {
    const p = (await c.primary())!;
    const [kept, away] = ['db1', 'db2', 'db3'].filter((n) => n !== p.node) as [string, string];
    assert.equal((await cli(['maintenance', away, 'on'])).code, 0);
    try {
      const refusedTo = await cli(['switchover', '--to', away, '--timeout', '10', '--yes']);
      assert.equal(refusedTo.code, 1, refusedTo.out);
      assert.equal(refusedTo.err, `primacy: switchover refused: ${away} cannot be promoted: in maintenance\n`);
      const r = await cli(['switchover', '--timeout', '25', '--yes']);
      assert.equal(r.code, 0, r.err);
      assert.equal((await c.primary())!.node, kept);
    } finally {
      await cli(['maintenance', away, 'off']);
    }
  });

  test('a refused switchover exits 1 with the coordinator\'s reason', async () => {
    const p = (await c.primary())!;
    const r = await cli(['switchover', '--to', p.node, '--timeout', '10', '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.err, /already the primary/);
  });
});
