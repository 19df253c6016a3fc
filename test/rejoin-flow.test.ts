/**
 * Crash recovery wired into the agents and the coordinator (issue 11), on live MariaDB and etcd: the
 * old primary comes back with writes no replica received while semi-sync was in sync (so none was
 * acknowledged), its agent salvages them, and the cluster's policy (flashback) rejoins it
 * automatically, ending with the new primary's data; then, under policy none, an operator's dry run
 * and a rejoin by a script that fails, which leaves the node diverged and says why. Under policy
 * script, failed rejoins are tried again on the operator's request, never by themselves, and the
 * node rejoins once the script is fixed, under the same agent process throughout.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OpRecordSchema, SalvageManifestSchema, type OpRecord, type Primary, type SalvageManifest } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { ADMIN, APP, cleanupAll, harnessDir, startEtcd, waitFor, type EtcdCluster, type MariaDbServer } from './harness/index.js';
import { binlogPos, checksums } from './support/checksums.js';
import { startCluster, type TestCluster } from './support/cluster.js';

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd({ members: 1 });
});
after(cleanupAll);

/**
 * The primary's replicas stop receiving from it (its advertised port is cut), it commits `ids` that
 * wait for an acknowledgement that never comes (semi-sync still in sync: within its 10 s timeout),
 * and its mysqld is killed: the cluster fails over; then its server comes back with those writes.
 */
async function divergeAndFailOver(c: TestCluster, ids: number[]): Promise<{ old: Primary; next: Primary; extra: string; count: number }> {
  await c.settled(30_000);
  const old = (await c.primary())!;
  const from = c.server(old.node);
  const before = await binlogPos(from);
  c.proxies.get(old.node)!.cut({ mode: 'reset' });
  const conns = await Promise.all(ids.map(() => from.connect(APP)));
  const failed: string[] = [];
  const pending = conns.map((conn, i) => conn.query('INSERT INTO app.acks (id) VALUES (?)', [ids[i]]).catch((err: unknown) => void failed.push(String(err))));
  const seq = (p: string) => Number(/0-\d+-(\d+)/.exec(p)?.[1] ?? 0);
  let pos = before;
  const extra = await waitFor('the unacknowledged writes in the old primary\'s binlog', async () => {
    pos = await binlogPos(from);
    if (failed.length > 0) throw new Error(`writes failed before ${old.node} was killed: ${failed.join('; ')}`);
    return seq(pos) >= seq(before) + ids.length ? pos : undefined;
  }, { timeoutMs: 3_000, intervalMs: 20 }).catch(async (err: unknown) => {
    // Commits that came in another binlog group than the first may wait behind its acknowledgement
    // and never reach the binlog: what did is the divergence (seen in CI: 2 of 3).
    pos = await binlogPos(from);
    if (seq(pos) > seq(before)) return pos;
    throw new Error(`${String(err)}; ${old.node}'s binlog went from ${before} to ${pos}`);
  });
  await from.kill();
  // A destroyed connection's query may never settle: the writes' outcome is read from the servers instead.
  for (const conn of conns) conn.destroy();
  void Promise.allSettled(pending);
  const next = await c.readyPrimary({ after: old.epoch, timeoutMs: 40_000 });
  c.proxies.get(old.node)!.restore();
  await from.start();
  return { old, next, extra, count: seq(extra) - seq(before) };
}

async function readJson<T>(c: TestCluster, key: string, parse: (v: unknown) => T): Promise<T | null> {
  const raw = await c.etcd.get(key).string();
  return raw === null ? null : parse(JSON.parse(raw));
}

const rejoinRecord = (c: TestCluster, node: string): Promise<OpRecord | null> => readJson(c, c.keys.rejoin(node), (v) => OpRecordSchema.parse(v));
const salvageOf = (c: TestCluster, node: string): Promise<SalvageManifest | null> => readJson(c, c.keys.salvage(node), (v) => SalvageManifestSchema.parse(v));

async function appRows(s: MariaDbServer): Promise<number[]> {
  return (await s.query<{ id: number }>('SELECT id FROM app.acks ORDER BY id')).map((r) => r.id);
}

/** The CLI in-process, with captured output. */
async function cli(c: TestCluster, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: { write: (x: string) => (out += x) }, stderr: { write: (x: string) => (err += x) }, isTTY: false, env: { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_CLUSTER: c.name } };
  const code = await main(argv, io);
  return { code, out, err };
}

describe('a diverged old primary rejoins by the cluster\'s policy', () => {
  let c: TestCluster;
  let failingScript: string;

  before(async () => {
    const dir = await harnessDir('rejoin-flow');
    failingScript = join(dir, 'rejoin-fails.sh');
    await writeFile(failingScript, '#!/bin/sh\necho "restoring $1 from $2"\necho "cannot restore: no backup of $PRIMACY_NODE" >&2\nexit 3\n');
    await chmod(failingScript, 0o755);
    c = await startCluster(etcd, {
      coordinator: 'db3',
      advertiseProxies: true,
      etcdConfig: { rejoin: { method: 'flashback' } },
      agentConfig: { timings: { antiFlapMs: 0 }, rejoin: { script: failingScript, scriptTimeoutMs: 10_000 } },
    });
  });
  after(() => c.stop());

  test('flashback after a failover with semi-sync in sync: salvaged, undone, replicating, the new primary\'s data', { timeout: 180_000 }, async () => {
    for (let i = 1; i <= 20; i++) await c.server('db1').query('INSERT INTO app.acks (id) VALUES (?)', [i], { creds: APP });
    const started = Date.now();
    const { old, next, extra, count } = await divergeAndFailOver(c, [1001, 1002, 1003]);
    assert.equal(old.node, 'db1');
    const failover = (await c.op(next.epoch))!;
    assert.equal(failover.durability?.state, 'active', `the failover record shows semi-sync in sync: ${JSON.stringify(failover.durability)}`);

    const record = await waitFor('the rejoin of db1 to end', async () => {
      const r = await rejoinRecord(c, 'db1');
      return r && r.outcome !== 'running' ? r : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    const took = Date.now() - started;
    assert.equal(record.outcome, 'done', `rejoin record: ${record.reason}`);
    assert.equal(record.kind, 'rejoin');
    assert.equal(record.rejoin?.method, 'flashback');
    assert.match(record.rejoin?.allowed ?? '', /semi-sync was in sync on db1 when it was failed over/);
    // The coordinator records the progress it sees: a short 'replicate' step may go unseen.
    const names = record.steps.map((s) => s.name).filter((n) => n !== 'replicate');
    assert.deepEqual(names, ['decide', 'flashback', 'rejoined']);
    assert.ok(record.steps.every((s) => s.outcome === 'ok'), JSON.stringify(record.steps));

    const salvage = (await salvageOf(c, 'db1'))!;
    assert.equal(salvage.gtids, extra, 'the salvage holds exactly the extra transactions');
    assert.deepEqual(salvage.extra.map((r) => [r.fromSeqExclusive, r.toSeq].map(Number)), [[Number(extra.split('-')[2]) - count, Number(extra.split('-')[2])]]);
    assert.ok(salvage.files.length >= 1);
    const history = await c.etcd.getAll().prefix(c.keys.historyPrefix).keys();
    assert.ok(history.some((k) => k.endsWith(`${next.epoch}-rejoin-done`)), `history: ${history.join(', ')}`);

    const primary = c.server(next.node);
    await c.settled(30_000);
    await waitFor('db1 to have the new primary\'s position', async () => ((await binlogPos(c.server('db1'))) === (await binlogPos(primary)) ? true : undefined), { timeoutMs: 20_000 });
    assert.deepEqual(await checksums(c.server('db1')), await checksums(primary));
    const rows = await appRows(c.server('db1'));
    assert.ok(!rows.includes(1001) && !rows.includes(1003), 'the unacknowledged writes were undone');
    const m = (await c.member('db1'))!;
    assert.equal(m.errant, null);
    assert.equal(m.role, 'replica');
    process.stdout.write(`# failover and automatic flashback rejoin of db1: ${took} ms from the cut to the record's end (${record.steps.map((s) => `${s.name} ${s.endedAt !== null ? s.endedAt - s.startedAt : '?'} ms`).join(', ')})\n`);
  });

  test('policy none: the node stays diverged, salvaged; the dry run says why; a failing script leaves it diverged and says why', { timeout: 240_000 }, async () => {
    await c.etcd.put(c.keys.config).value(JSON.stringify({ rejoin: { method: 'none' } }));
    const { old, next, extra, count } = await divergeAndFailOver(c, [2001, 2002]);
    const node = old.node;
    const salvage = await waitFor(`${node}'s salvage`, async () => {
      const s = await salvageOf(c, node);
      return s && s.gtids === extra ? s : undefined;
    }, { timeoutMs: 40_000, intervalMs: 100 }).catch(async (err: unknown) => {
      const m = await c.member(node);
      const said = c.agents.get(node)!.logLines().filter((l) => /salvage|diverged/.test(String(l['msg']))).map((l) => `${String(l['msg'])} ${String(l['err'] ?? '')}`);
      throw new Error(`${String(err)}; member: errant ${m?.errant}, role ${m?.role}, salvageProblem ${m?.salvageProblem}, binlogState ${m?.server?.gtid.binlogState}; log: ${said.join(' | ')}`);
    });
    assert.deepEqual(salvage.extra.map((r) => [r.fromSeqExclusive, r.toSeq].map(Number)), [[Number(extra.split('-')[2]) - count, Number(extra.split('-')[2])]]);
    const m = await waitFor(`${node} reported diverged`, async () => {
      const x = await c.member(node);
      return x?.errant ? x : undefined;
    }, { timeoutMs: 20_000 });
    assert.equal(m.role, 'diverged');
    // Nothing happens by itself under policy none.
    assert.equal((await rejoinRecord(c, node))?.rejoin?.salvageAt === salvage.at, false);

    const status = await cli(c, ['status']);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, new RegExp(`diverged: errant transactions ${extra}; kept out of rotation; salvaged ${extra} into .*; rejoin policy: none`));

    const dry = await cli(c, ['rejoin', node, '--dry-run']);
    assert.equal(dry.code, 1, dry.out + dry.err);
    assert.match(dry.out, new RegExp(`diverged: +transactions ${next.node} lacks: ${extra}`));
    assert.match(dry.out, /refused: +the cluster's rejoin policy is none/);
    const dryFlashback = await cli(c, ['rejoin', node, '--dry-run', '--method', 'flashback']);
    assert.equal(dryFlashback.code, 0, dryFlashback.out + dryFlashback.err);
    assert.match(dryFlashback.out, new RegExp(`would: +undo ${extra} with mariadb-binlog --flashback from the salvage's mariadb-bin\\.\\d+`));
    assert.match(dryFlashback.out, /allowed: +semi-sync was in sync on db\d when it was failed over/);

    const dataBefore = await checksums(c.server(node));
    const run = await cli(c, ['rejoin', node, '--method', 'script', '--yes', '--timeout', '60']);
    assert.equal(run.code, 1, run.out + run.err);
    assert.match(run.err, /rejoin aborted: .*script failed: the rejoin script exit 3: .*cannot restore: no backup of db\d/);
    assert.match(run.out, /✓ decide/);
    const record = (await rejoinRecord(c, node))!;
    assert.equal(record.outcome, 'aborted');
    assert.equal(record.trigger.startsWith('request '), true);
    const after = (await c.member(node))!;
    assert.equal(after.errant, m.errant, 'still diverged');
    assert.equal(after.rejoin?.outcome, 'failed');
    assert.deepEqual(await checksums(c.server(node)), dataBefore, 'the node was left as it was');
    const explained = await cli(c, ['explain', String(next.epoch)]);
    assert.match(explained.out, new RegExp(`${node} now: diverged \\(${extra}\\); salvaged ${extra} into .*; rejoin policy: none; last rejoin by script: aborted`));
  });
});

describe('a node that a reseed left half-copied', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster(etcd, { coordinator: 'db1' });
  });
  after(() => c.stop());

  test('never replicates again under a restarted agent: it stays diverged and says it needs a reseed; without the mark it replicates', { timeout: 120_000 }, async () => {
    const p = (await c.primary())!;
    const node = ['db2', 'db3'].find((n) => n !== p.node)!;
    await c.agents.get(node)!.kill();
    // What a reseed killed mid-copy leaves: the mark (outside the binlog), and replication gone.
    const conn = await c.server(node).connect();
    const unlogged = async (sql: string): Promise<void> => {
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query(sql);
    };
    await unlogged('CREATE DATABASE IF NOT EXISTS primacy_rejoin');
    await unlogged('CREATE TABLE IF NOT EXISTS primacy_rejoin.reseed (id TINYINT PRIMARY KEY, source VARCHAR(255) NOT NULL, started_at DATETIME(3) NOT NULL)');
    await unlogged(`REPLACE INTO primacy_rejoin.reseed (id, source, started_at) VALUES (1, '${p.node}', NOW(3))`);
    await conn.query('STOP SLAVE');
    await conn.query('RESET SLAVE ALL');
    await c.restartAgent(node);
    const m = await waitFor(`${node} to be kept out as half-reseeded`, async () => {
      const m = await c.member(node);
      return m?.role === 'diverged' ? m : undefined;
    }, { timeoutMs: 20_000 });
    assert.match(m.errant ?? '', new RegExp(`a reseed from ${p.node} started at .* did not finish: the node holds partial data`));
    await new Promise((r) => setTimeout(r, 2000));
    const [status] = await c.server(node).query('SHOW SLAVE STATUS');
    assert.equal(status, undefined, 'it never replicated');
    // The mark gone (a reseed finished), a restarted agent makes it replicate as usual.
    await c.agents.get(node)!.kill();
    await unlogged('DROP DATABASE primacy_rejoin');
    conn.destroy();
    await c.restartAgent(node);
    await waitFor(`${node} to replicate again`, async () => ((await c.member(node))?.role === 'replica' ? true : undefined), { timeoutMs: 20_000 });
  });
});

/** The operator's rejoin script, as its versions are written over one another (the agent runs whatever the file holds then). */
async function writeScript(path: string, body: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\nopts="--no-defaults --protocol=TCP --user=${ADMIN.user} --password=${ADMIN.password}"\n${body}`);
  await chmod(path, 0o755);
}

/** What a half-done restore leaves: a write on the node (its binlog moves), then a failure. */
const HALF_RESTORE = `mariadb $opts -h "$PRIMACY_NODE_HOST" -P "$PRIMACY_NODE_PORT" -e "INSERT INTO app.acks (id) VALUES (3999)"
echo "restore of $PRIMACY_NODE failed half-way: the backup is truncated" >&2
exit 1
`;

/** An operator's restore: the primary's databases dumped and loaded outside the node's binlog, which then starts at the dump's position. */
const REBUILD = `set -eu
dbs=$(mariadb $opts -h "$PRIMACY_PRIMARY_HOST" -P "$PRIMACY_PRIMARY_PORT" -N -e "SELECT GROUP_CONCAT(schema_name SEPARATOR ' ') FROM information_schema.schemata WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")
dump=$(mktemp)
mariadb-dump $opts -h "$PRIMACY_PRIMARY_HOST" -P "$PRIMACY_PRIMARY_PORT" --single-transaction --gtid --master-data=2 --databases $dbs > "$dump"
pos=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\\(.*\\)';/\\1/p" "$dump")
mariadb $opts -h "$PRIMACY_NODE_HOST" -P "$PRIMACY_NODE_PORT" --init-command="SET SESSION sql_log_bin=0" < "$dump"
mariadb $opts -h "$PRIMACY_NODE_HOST" -P "$PRIMACY_NODE_PORT" -e "RESET MASTER; SET GLOBAL gtid_slave_pos='$pos'"
rm -f "$dump"
echo "rebuilt $1 from $2 at $pos"
`;

describe('a failed rejoin is tried again without an agent restart', () => {
  let c: TestCluster;
  let script: string;

  before(async () => {
    script = join(await harnessDir('rejoin-retry'), 'rejoin.sh');
    await writeScript(script, 'echo "no backup of $1 yet" >&2\nexit 2\n');
    c = await startCluster(etcd, {
      coordinator: 'db3',
      advertiseProxies: true,
      etcdConfig: { rejoin: { method: 'script' } },
      agentConfig: { timings: { antiFlapMs: 0 }, rejoin: { script, scriptTimeoutMs: 60_000 } },
    });
  });
  after(() => c.stop());

  test('a script that fails, then one that fails half-way, then the fixed one: asked again each time, never by itself; the node rejoins', { timeout: 300_000 }, async () => {
    const { old, next } = await divergeAndFailOver(c, [3001, 3002]);
    const node = old.node;
    const agent = c.agents.get(node)!;
    const pid = agent.process.pid;
    const ended = (after: number) => waitFor(`a rejoin of ${node} after ${after} to end`, async () => {
      const r = await rejoinRecord(c, node);
      return r && r.startedAt > after && r.outcome !== 'running' ? r : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    const attempts = () => agent.logLines().filter((l) => String(l['msg']) === 'rejoin by script started').length;
    /** Nothing starts by itself for a while: no retry loop. */
    const staysEnded = async (r: OpRecord): Promise<void> => {
      const before = attempts();
      await new Promise((resolve) => setTimeout(resolve, 4000));
      assert.equal((await rejoinRecord(c, node))?.startedAt, r.startedAt, 'no new rejoin by itself');
      assert.equal(attempts(), before, 'the agent ran the script no more');
    };

    // 1. The policy's own attempt fails and changes nothing: it ends, and is not repeated.
    const first = await ended(0);
    assert.equal(first.outcome, 'aborted', first.reason);
    assert.match(first.reason, /script failed: the rejoin script exit 2: .*no backup of db\d yet/);
    const salvage = (await salvageOf(c, node))!;
    assert.equal(first.rejoin?.salvageAt, salvage.at);
    await staysEnded(first);
    assert.equal((await salvageOf(c, node))?.at, salvage.at, 'the binlog did not move: no new salvage');

    // 2. Asked again (as `primacy rejoin` does), by a script that writes on the node and fails: it reuses the salvage, and says so.
    await writeScript(script, HALF_RESTORE);
    const second = await cli(c, ['rejoin', node, '--yes', '--timeout', '60']);
    assert.equal(second.code, 1, second.out + second.err);
    assert.match(second.err, /rejoin aborted: .*exit 1: .*failed half-way/);
    const secondRecord = (await rejoinRecord(c, node))!;
    assert.ok(secondRecord.trigger.startsWith('request '), secondRecord.trigger);
    assert.match(secondRecord.rejoin?.allowed ?? '', new RegExp(`the salvage of ${new Date(salvage.at).toISOString()} is reused: ${node}'s binlog is as it was then`));

    // Its write moved the binlog: the agent salvages again, naming the salvage before and the attempt; still no retry by itself.
    const fresh = await waitFor(`${node}'s salvage after the half-way restore`, async () => {
      const s = await salvageOf(c, node);
      return s && s.at !== salvage.at ? s : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    assert.deepEqual(fresh.afterRejoin, { startedAt: secondRecord.startedAt, method: 'script' });
    assert.deepEqual(fresh.earlier?.map((e) => e.folder), [salvage.folder]);
    assert.notEqual(fresh.gtids, salvage.gtids, 'the fresh salvage holds the restore\'s write too');
    await staysEnded(secondRecord);
    const flash = await cli(c, ['rejoin', node, '--dry-run', '--method', 'flashback']);
    assert.equal(flash.code, 1, flash.out + flash.err);
    assert.match(flash.out, /refused: +flashback of db\d would undo only .*, but its rejoin by script of .* failed part-way and changed it/);

    // 3. The operator fixes the script and asks again: the node rejoins by the fresh salvage, under the same agent process.
    await writeScript(script, REBUILD);
    const third = await cli(c, ['rejoin', node, '--yes', '--timeout', '90']);
    assert.equal(third.code, 0, third.out + third.err);
    const done = (await rejoinRecord(c, node))!;
    assert.equal(done.outcome, 'done', done.reason);
    assert.match(done.rejoin?.allowed ?? '', new RegExp(`a fresh salvage \\(${new Date(fresh.at).toISOString().replace(/\./g, '\\.')}\\): ${node}'s binlog moved from ${salvage.nodeState} to ${fresh.nodeState} since the salvage the last rejoin by script used: that rejoin failed part-way and changed it; the earlier salvage stays in `));
    assert.match(done.reason, /the rejoin script exited 0 .*rebuilt db\d from db\d/);
    await waitFor(`${node} replicating`, async () => ((await c.member(node))?.role === 'replica' ? true : undefined), { timeoutMs: 20_000 });
    const primary = c.server(next.node);
    await waitFor(`${node} to have the primary's position`, async () => ((await binlogPos(c.server(node))) === (await binlogPos(primary)) ? true : undefined), { timeoutMs: 20_000 });
    await c.settled(30_000);
    assert.deepEqual(await checksums(c.server(node)), await checksums(primary));
    const rows = await appRows(c.server(node));
    assert.ok(!rows.includes(3999) && !rows.includes(3001), 'the half-way restore\'s write and the unacknowledged writes are gone');
    assert.equal(agent.process.pid, pid);
    assert.equal(c.agents.get(node), agent, 'the same agent process throughout');
    assert.equal(attempts(), 3);
  });
});
