/**
 * The operator's hooks against a real cluster (3 MariaDB servers, 3 agents, etcd; issue 12): one
 * real shell script as every hook writes its environment to a file. A pre-failover hook that hangs
 * is killed at its bound while the failover completes without it; the new primary's own agent runs
 * post-failover too; a failing pre-switchover hook aborts the switchover before any write is held;
 * a refused failover runs post-unsuccessful-failover. Every run is in the op record and `explain`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RequestSchema, type HookRun, type OpRecord } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { cleanupAll, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { harnessDir } from './harness/processes.js';
import { startCluster, type TestCluster } from './support/cluster.js';

/** The bound of every hook here; the hanging pre-failover hook is killed at it, long after the failover (1-4 s here under load) is done. */
const HOOK_BOUND_MS = 12_000;

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 1 });
});

after(async () => {
  await cleanupAll();
});

const note = (line: string): void => void process.stdout.write(`# ${line}\n`);

/**
 * One script for every hook: it writes its PRIMACY_ environment to `<hook>.<role>.<node>.<epoch>.<pid>.env`;
 * pre-failover then hangs (its sleep's pid in hang.pid); pre-switchover fails while `refuse` exists.
 */
async function hookScript(): Promise<{ dir: string; hooks: Record<string, unknown> }> {
  const dir = await harnessDir('hooks');
  const script = join(dir, 'hook.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `out="${dir}/$PRIMACY_HOOK.$PRIMACY_HOOK_ROLE.$PRIMACY_HOOK_NODE.$PRIMACY_EPOCH.$$"`,
      'env | grep "^PRIMACY_[A-Z_]*=" | sort > "$out.tmp" && mv "$out.tmp" "$out.env"',
      'case "$PRIMACY_HOOK" in',
      `  pre-failover) echo "pre-failover hangs"; sleep 600 & echo $! > "${dir}/hang.pid"; wait ;;`,
      `  pre-switchover) if [ -e "${dir}/refuse" ]; then echo "change freeze until friday" >&2; exit 3; fi ;;`,
      'esac',
      'echo "$PRIMACY_HOOK ran on $PRIMACY_HOOK_NODE as $PRIMACY_HOOK_ROLE"',
      '',
    ].join('\n'),
  );
  const command = `sh ${script}`;
  return {
    dir,
    hooks: { preFailover: command, postFailover: command, preSwitchover: command, postSwitchover: command, postUnsuccessfulFailover: command, timeoutMs: HOOK_BOUND_MS },
  };
}

/** The environments the hook named by `prefix` (`post-failover.new-primary.db2.3`) ran with, oldest first. */
function envsOf(dir: string, prefix: string): Array<Record<string, string>> {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${prefix}.`) && f.endsWith('.env'))
    .map((f) => ({ at: statSync(join(dir, f)).mtimeMs, env: parseEnv(readFileSync(join(dir, f), 'utf8')) }))
    .sort((a, b) => a.at - b.at)
    .map((e) => e.env);
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function waitEnv(dir: string, prefix: string, count = 1): Promise<Array<Record<string, string>>> {
  return waitFor(`the ${prefix} hook to run`, () => {
    const envs = envsOf(dir, prefix);
    return envs.length >= count ? envs : undefined;
  }, { timeoutMs: 20_000 });
}

async function opWithHooks(c: TestCluster, epoch: number, count: number, timeoutMs = 20_000): Promise<OpRecord> {
  return waitFor(`${count} hook runs in ops/${epoch}`, async () => {
    const op = await c.op(epoch);
    return (op?.hooks?.length ?? 0) >= count ? op! : undefined;
  }, { timeoutMs });
}

function runOf(op: OpRecord, name: HookRun['name'], role: HookRun['role']): HookRun {
  const found = (op.hooks ?? []).find((h) => h.name === name && h.role === role);
  assert.ok(found, `a ${name} run as ${role} in ${JSON.stringify(op.hooks)}`);
  return found;
}

async function request(c: TestCluster, to: string): Promise<string> {
  const id = `${Date.now()}-hooks-test`;
  const value = RequestSchema.parse({ kind: 'switchover', to, force: false, requestedAt: Date.now(), by: 'hooks.test' });
  await c.etcd.put(c.keys.request(id)).value(JSON.stringify(value));
  return id;
}

async function explain(c: TestCluster, epoch: number): Promise<string> {
  let out = '';
  const io: Io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (out += s) }, isTTY: false, env: { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_CLUSTER: c.name } };
  assert.equal(await main(['explain', String(epoch)], io), 0, out);
  return out;
}

function processState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? '?';
  } catch {
    return 'gone';
  }
}

describe('hooks', () => {
  test('kill -9 of the primary: pre-failover hangs and is killed at its bound while the failover completes; post-failover runs on the coordinator and on the new primary', async () => {
    const { dir, hooks } = await hookScript();
    // db3 coordinates and is never promoted, so the new primary (db2) and the coordinator are two agents.
    const c = await startCluster(etcd, { coordinator: 'db3', agentConfig: { hooks }, etcdConfig: { nodes: { db3: { noPromote: true } } } });
    try {
      const old = (await c.primary())!;
      assert.equal(old.node, 'db1');
      const epoch = old.epoch + 1;
      const killedAt = Date.now();
      await c.server('db1').kill();
      const p = await c.readyPrimary({ after: old.epoch });
      const readyAt = Date.now();
      assert.deepEqual([p.node, p.epoch], ['db2', epoch]);

      const [pre] = await waitEnv(dir, `pre-failover.coordinator.db3.${epoch}`);
      const db1 = c.server('db1');
      const db2 = c.server('db2');
      assert.deepEqual(
        [pre!['PRIMACY_CLUSTER'], pre!['PRIMACY_KIND'], pre!['PRIMACY_EPOCH'], pre!['PRIMACY_OLD_PRIMARY'], pre!['PRIMACY_OLD_HOST'], pre!['PRIMACY_OLD_PORT'], pre!['PRIMACY_NEW_PRIMARY'], pre!['PRIMACY_OUTCOME'], pre!['PRIMACY_HOOK_NODE']],
        [c.name, 'failover', String(epoch), 'db1', db1.host, String(db1.port), '', 'running', 'db3'],
      );
      const [byCoordinator] = await waitEnv(dir, `post-failover.coordinator.db3.${epoch}`);
      const [byNewPrimary] = await waitEnv(dir, `post-failover.new-primary.db2.${epoch}`).catch((err: unknown) => {
        // What db2's agent said about its promotion and hooks, and what etcd says now.
        const said = c.agents.get('db2')!.logLines().filter((l) => /promot|hook|ready/.test(String(l['msg']))).map((l) => `${String(l['time'])} ${String(l['msg'])}`);
        throw new Error(`${String(err)}; db2's agent: ${said.join(' || ')}`);
      });
      for (const env of [byCoordinator!, byNewPrimary!]) {
        assert.deepEqual(
          [env['PRIMACY_EPOCH'], env['PRIMACY_OLD_PRIMARY'], env['PRIMACY_OLD_PORT'], env['PRIMACY_NEW_PRIMARY'], env['PRIMACY_NEW_HOST'], env['PRIMACY_NEW_PORT'], env['PRIMACY_OUTCOME']],
          [String(epoch), 'db1', String(db1.port), 'db2', db2.host, String(db2.port), 'done'],
        );
      }
      assert.equal(byNewPrimary!['PRIMACY_HOOK_NODE'], 'db2');

      // The hanging hook is killed at its bound, with its sleep, and its run then joins the record.
      const op = await opWithHooks(c, epoch, 3, HOOK_BOUND_MS + 20_000);
      assert.equal(byCoordinator!['PRIMACY_REASON'], op.reason);
      const hung = runOf(op, 'pre-failover', 'coordinator');
      assert.deepEqual([hung.node, hung.timedOut, hung.exitCode, hung.outcome, hung.outputTail], ['db3', true, null, `killed after ${HOOK_BOUND_MS} ms`, 'pre-failover hangs']);
      assert.ok(hung.ms >= HOOK_BOUND_MS && hung.ms < HOOK_BOUND_MS + 5000, `killed after ${hung.ms} ms`);
      assert.ok(p.since < hung.startedAt + hung.ms, `the primary was ready (${p.since}) before the hook was killed (${hung.startedAt + hung.ms}): nothing waited for it`);
      assert.ok(['gone', 'Z'].includes(processState(Number(readFileSync(join(dir, 'hang.pid'), 'utf8')))), "the hook's sleep was killed with it");
      for (const [node, role] of [['db3', 'coordinator'], ['db2', 'new-primary']] as const) {
        const r = runOf(op, 'post-failover', role);
        assert.deepEqual([r.node, r.exitCode, r.timedOut, r.outputTail], [node, 0, false, `post-failover ran on ${node} as ${role}`]);
      }
      const text = await explain(c, epoch);
      assert.match(text, new RegExp(`pre-failover +db3 \\(coordinator\\) +killed after ${HOOK_BOUND_MS} ms`));
      assert.match(text, /post-failover +db2 \(new-primary\) +exit 0 .*post-failover ran on db2 as new-primary/);
      const section = text.slice(text.indexOf('\nhooks\n') + 1, text.indexOf('\noutcome\n')).trimEnd();
      for (const line of section.split('\n')) note(`explain: ${line}`);
      note(`failover: ready ${readyAt - killedAt} ms after kill -9 (primary key since ${p.since - op.startedAt} ms after the record began); the hanging pre-failover hook was killed after ${hung.ms} ms`);
    } finally {
      await c.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failing pre-switchover hook aborts the switchover before writes are held; a passing one lets it go on; a refused failover runs post-unsuccessful-failover', async () => {
    const { dir, hooks } = await hookScript();
    const c = await startCluster(etcd, { coordinator: 'db3', agentConfig: { hooks }, etcdConfig: { nodes: { db3: { noPromote: true } } } });
    try {
      await c.settled();
      const before = (await c.primary())!;
      const epoch = before.epoch + 1;
      writeFileSync(join(dir, 'refuse'), '');
      const id = await request(c, 'db2');
      const aborted = await waitFor('the switchover to abort', async () => {
        const op = await c.op(epoch);
        return op?.outcome === 'aborted' ? op : undefined;
      }, { timeoutMs: 20_000 });
      assert.equal(aborted.kind, 'switchover');
      assert.match(aborted.reason, /aborted: the pre-switchover hook exit 3: change freeze until friday$/);
      assert.deepEqual(aborted.steps.map((s) => [s.name, s.outcome]), [['choose', 'ok'], ['pre-switchover hook', 'failed']]);
      assert.deepEqual((aborted.hooks ?? []).map((h) => [h.name, h.node, h.exitCode]), [['pre-switchover', 'db3', 3]]);
      assert.equal(await c.etcd.get(c.keys.request(id)).string(), null, 'the request was consumed');
      const still = (await c.primary())!;
      assert.deepEqual([still.node, still.epoch, still.state, still.since], [before.node, before.epoch, 'ready', before.since], 'the primary key was never rewritten: no write was held');
      const [pre] = envsOf(dir, `pre-switchover.coordinator.db3.${epoch}`);
      assert.deepEqual(
        [pre?.['PRIMACY_KIND'], pre?.['PRIMACY_OLD_PRIMARY'], pre?.['PRIMACY_NEW_PRIMARY'], pre?.['PRIMACY_NEW_HOST'], pre?.['PRIMACY_NEW_PORT'], pre?.['PRIMACY_OUTCOME']],
        ['switchover', 'db1', 'db2', c.server('db2').host, String(c.server('db2').port), 'running'],
      );
      assert.match(await explain(c, epoch), /pre-switchover +db3 \(coordinator\) +exit 3 .*change freeze until friday/);

      rmSync(join(dir, 'refuse'));
      await request(c, 'db2');
      const p = await c.readyPrimary({ after: before.epoch });
      assert.deepEqual([p.node, p.epoch], ['db2', epoch]);
      const done = await opWithHooks(c, epoch, 3);
      assert.deepEqual(done.steps.slice(0, 2).map((s) => [s.name, s.outcome]), [['choose', 'ok'], ['pre-switchover hook', 'ok']]);
      assert.equal(runOf(done, 'pre-switchover', 'coordinator').exitCode, 0);
      assert.equal(runOf(done, 'post-switchover', 'coordinator').exitCode, 0);
      assert.equal(runOf(done, 'post-switchover', 'new-primary').node, 'db2');
      const [vip] = await waitEnv(dir, `post-switchover.new-primary.db2.${epoch}`);
      assert.deepEqual([vip!['PRIMACY_OLD_PRIMARY'], vip!['PRIMACY_NEW_PRIMARY'], vip!['PRIMACY_NEW_PORT'], vip!['PRIMACY_OUTCOME']], ['db1', 'db2', String(c.server('db2').port), 'done']);

      // Paused: the failure of db2 is refused, and post-unsuccessful-failover says so.
      await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: true, nodes: { db3: { noPromote: true } } }));
      await c.settled();
      await c.server('db2').kill();
      const [refused] = await waitEnv(dir, `post-unsuccessful-failover.coordinator.db3.${epoch + 1}`);
      assert.deepEqual([refused!['PRIMACY_OLD_PRIMARY'], refused!['PRIMACY_NEW_PRIMARY'], refused!['PRIMACY_OUTCOME']], ['db2', '', 'refused']);
      assert.match(refused!['PRIMACY_REASON'] ?? '', /paused/);
      const record = await opWithHooks(c, epoch + 1, 1);
      assert.deepEqual([record.outcome, runOf(record, 'post-unsuccessful-failover', 'coordinator').exitCode], ['refused', 0]);
      assert.deepEqual(envsOf(dir, `pre-failover.coordinator.db3.${epoch + 1}`), [], 'a refused failover never started');
    } finally {
      await c.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
