/**
 * Fencing proofs (DESIGN.md invariant 4) against 3 real MariaDB servers and a 3-member etcd: no
 * promotion until something proves that the old primary can no longer acknowledge a write. A hung
 * mysqld (SIGSTOP) is not down, an expired lease proves nothing, and the failover waits, keeps
 * trying, and says why in its record. Every scenario runs the two witnesses of support/cluster.ts
 * (a writer recording each acknowledged write, a 20 ms read_only poller) and asserts: no
 * acknowledged write lost, never two nodes that can take writes, and the proof kind in ops/<epoch>.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { DurabilityRecordSchema, STRICT_SEMI_SYNC_TIMEOUT_MS, type Durability, type DurabilityRecord, type FenceProofKind, type OperatorRequest, type OpRecord, type Primary } from '@primacy/common';
import { ADMIN, APP, cleanupAll, harnessDir, sleep, startEtcd, waitFor, withTimeout, type EtcdCluster } from './harness/index.js';
import { finishWitnessed, missingAcks, startWitnessed, type ClusterOptions, type TestCluster, type WitnessedCluster } from './support/cluster.js';

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 3 });
});

after(async () => {
  await cleanupAll();
});

/**
 * Replicas notice a silent primary within 4 s (heartbeats every 2 s) instead of MariaDB's 60 s: a
 * frozen primary is only a failure once no replica still receives from it.
 */
const QUICK_REPLICAS = { slave_net_timeout: 4 } as const;

const running = (options: ClusterOptions = {}): Promise<WitnessedCluster> => startWitnessed(etcd, options);

/** Every line this file prints starts with '# ', so the runner shows it as a diagnostic. */
function note(line: string): void {
  process.stdout.write(`# ${line}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * An application session opened before a fault and the one INSERT it sends during it: what a
 * client that does not follow etcd (or had its statement in flight) gets from the old primary.
 */
class PinnedInsert {
  sentAt = 0;
  outcome: { readonly ok: true; readonly at: number } | { readonly ok: false; readonly at: number; readonly error: string } | null = null;
  private done: Promise<void> = Promise.resolve();

  private constructor(
    readonly node: string,
    readonly id: number,
    private readonly conn: Connection,
  ) {}

  static async open(c: TestCluster, node: string, id: number): Promise<PinnedInsert> {
    return new PinnedInsert(node, id, await c.server(node).connect(APP, { connectTimeout: 2000 }));
  }

  send(): this {
    this.sentAt = Date.now();
    this.done = this.conn.query({ sql: 'INSERT INTO app.acks (id) VALUES (?)', timeout: 120_000 }, [this.id]).then(
      () => void (this.outcome = { ok: true, at: Date.now() }),
      (err: unknown) => void (this.outcome = { ok: false, at: Date.now(), error: errorText(err) }),
    );
    return this;
  }

  get acknowledged(): boolean {
    return this.outcome?.ok === true;
  }

  /** Waits, bounded, for the INSERT to end either way. */
  async settle(timeoutMs: number): Promise<void> {
    await waitFor(`the pinned INSERT ${this.id} on ${this.node} to end`, () => (this.outcome ? true : undefined), { timeoutMs, intervalMs: 50 });
    await this.done;
  }

  describe(): string {
    const o = this.outcome;
    if (!o) return `pinned INSERT ${this.id} on ${this.node}: still waiting`;
    return o.ok ? `pinned INSERT ${this.id} on ${this.node}: acknowledged ${o.at - this.sentAt} ms after it was sent` : `pinned INSERT ${this.id} on ${this.node}: ${o.error} (${o.at - this.sentAt} ms after it was sent)`;
  }

  close(): void {
    this.conn.destroy();
  }
}

function describeOp(op: OpRecord | null): string {
  if (!op) return 'no op record';
  const steps = op.steps.map((s) => `${s.name} (${s.outcome}): ${s.detail}`).join(' | ');
  return `op ${op.epoch} ${op.kind} ${op.outcome}, proof ${op.proof ? `${op.proof.kind}: ${op.proof.detail}` : 'none'}; ${op.reason}; steps: ${steps}`;
}

/** The agents' last warnings and errors, for a failure message; with FENCING_TEST_LOGS=DIR, their whole logs are copied there. */
function agentWarnings(c: TestCluster, per = 12): string {
  const keep = process.env['FENCING_TEST_LOGS'];
  if (keep) {
    mkdirSync(join(keep, c.name), { recursive: true });
    for (const a of c.agents.values()) copyFileSync(a.process.logFile, join(keep, c.name, `${a.node}.log`));
  }
  return [...c.agents.values()]
    .map((a) => {
      const lines = a.logLines().filter((l) => ['warn', 'error', 'fatal'].includes(String(l['level']))).slice(-per);
      return `${a.node}: ${lines.map((l) => `${String(l['time'])} ${String(l['msg'])} ${JSON.stringify({ ...l, msg: undefined, time: undefined, level: undefined, cluster: undefined, node: undefined })}`).join(' / ')}`;
    })
    .join(' ||| ');
}

function fenceStep(op: OpRecord | null): OpRecord['steps'][number] | undefined {
  return op?.steps.find((s) => s.name === 'fence');
}

/**
 * For `ms`, checks every 200 ms that `old` stays the primary of its epoch and that any failover of it
 * is still running without a proof. Returns the last record seen, and every distinct fence text.
 */
async function holdsWithoutProof(c: TestCluster, old: Primary, ms: number): Promise<{ op: OpRecord | null; texts: string[] }> {
  const until = Date.now() + ms;
  let op: OpRecord | null = null;
  const texts: string[] = [];
  while (Date.now() < until) {
    const [p, seen] = await Promise.all([c.primary(), c.op(old.epoch + 1)]);
    assert.deepEqual([p?.node, p?.epoch], [old.node, old.epoch], `no promotion while ${old.node} cannot be proven fenced: ${describeOp(seen)}`);
    if (seen) {
      assert.equal(seen.outcome, 'running', describeOp(seen));
      assert.equal(seen.proof, null, `no proof: ${describeOp(seen)}`);
      assert.ok(!seen.steps.some((s) => s.name === 'choose' || s.name === 'write primary'), describeOp(seen));
      const text = fenceStep(seen)?.detail;
      if (text && !texts.includes(text)) texts.push(text);
      op = seen;
    }
    await sleep(200);
  }
  return { op, texts };
}

/**
 * Waits for the proof of the failover after `old`, then for its ready primary; both records, and
 * when the test saw the proof (`proof.at` is when the coordinator began the attempt that got it).
 */
async function provenAndReady(c: TestCluster, old: Primary, timeoutMs = 30_000): Promise<{ proven: OpRecord; seenAt: number; p: Primary; op: OpRecord }> {
  const proven = await waitFor(
    'a fencing proof',
    async () => {
      const op = await c.op(old.epoch + 1);
      return op?.proof ? op : undefined;
    },
    { timeoutMs, intervalMs: 20 },
  ).catch(async (err: unknown) => {
    throw new Error(`${errorText(err)}; ${describeOp(await c.op(old.epoch + 1))}`);
  });
  const seenAt = Date.now();
  const p = await c.readyPrimary({ after: old.epoch, timeoutMs }).catch(async (err: unknown) => {
    throw new Error(`${errorText(err)}; ${describeOp(await c.op(old.epoch + 1))}; ${agentWarnings(c)}`);
  });
  const op = (await c.op(p.epoch))!;
  assert.equal(p.epoch, old.epoch + 1, 'the failover that got the proof is the one that promoted');
  assert.notEqual(p.node, old.node);
  assert.deepEqual([op.kind, op.from, op.to, op.outcome], ['failover', old.node, p.node, 'done'], describeOp(op));
  assert.ok(op.proof, describeOp(op));
  // The proof came before any promotion: the fence step ended, and 'fenced' precedes 'choose'.
  const names = op.steps.map((s) => s.name);
  assert.ok(names.indexOf('fenced') !== -1 && names.indexOf('fenced') < names.indexOf('write primary'), describeOp(op));
  const written = op.steps.find((s) => s.name === 'write primary')!;
  assert.ok(op.proof.at <= written.startedAt, `proven at ${op.proof.at}, promoted at ${written.startedAt}`);
  return { proven, seenAt, p, op };
}

/** When the op's promotion was written (the coordinator's clock, the same host). */
function promotedAt(op: OpRecord): number {
  return op.steps.find((s) => s.name === 'write primary')!.startedAt;
}

function assertProof(op: OpRecord, kinds: readonly FenceProofKind[]): void {
  assert.ok(op.proof && kinds.includes(op.proof.kind), `proof ${op.proof?.kind ?? 'none'}, expected ${kinds.join(' or ')}: ${describeOp(op)}`);
  const fenced = op.steps.find((s) => s.name === 'fenced');
  assert.match(fenced?.detail ?? '', new RegExp(`^${op.proof.kind}: `), 'the fenced step names the proof');
}

/** A pinned INSERT that was acknowledged is on the final primary. */
async function assertPinnedKept(c: TestCluster, pinned: PinnedInsert): Promise<void> {
  if (!pinned.acknowledged) return;
  const p = (await c.primary())!;
  assert.deepEqual(await missingAcks(c, p.node, [pinned.id]), [], `${pinned.describe()}, so it is on ${p.node}`);
}

const readOnly = async (c: TestCluster, node: string): Promise<boolean> =>
  (await c.server(node).query<{ ro: number }>('SELECT @@global.read_only AS ro', [], { timeoutMs: 2000 }))[0]?.ro === 1;

async function endsReadOnly(c: TestCluster, node: string, timeoutMs = 15_000): Promise<number> {
  return waitFor(`${node} to be read-only`, async () => ((await readOnly(c, node)) ? Date.now() : undefined), { timeoutMs, intervalMs: 20 });
}

async function setDurability(c: TestCluster, durability: Durability): Promise<void> {
  const raw = await c.etcd.get(c.keys.config).string();
  const config = raw === null ? {} : (JSON.parse(raw) as Record<string, unknown>);
  await c.etcd.put(c.keys.config).value(JSON.stringify({ ...config, durability }));
}

/** Strict semi-sync set, seen on the primary's server and recorded by the coordinator. */
async function strictSemiSync(c: TestCluster, node: string): Promise<DurabilityRecord> {
  await setDurability(c, 'strict');
  return waitFor(
    `strict semi-sync on ${node}, recorded`,
    async () => {
      const [raw, m] = await Promise.all([c.etcd.get(c.keys.durability).string(), c.member(node)]);
      const d = raw === null ? null : DurabilityRecordSchema.parse(JSON.parse(raw));
      const ss = m?.server?.semiSync;
      return d?.strict && d.node === node && ss?.sourceTimeoutMs === STRICT_SEMI_SYNC_TIMEOUT_MS && ss.sourceWaitNoReplica === true ? d : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

/** Ids the writer had acknowledged by `node` at or after `t`. */
function ackedByAfter(run: WitnessedCluster, node: string, t: number): number[] {
  return [...run.writer.acked.entries()].filter(([id, at]) => at >= t && run.writer.ackedOn.get(id) === node).map(([id]) => id);
}

function fencingScript(dir: string, pids: Record<string, number>, failFirst: boolean): string {
  const cases = Object.entries(pids)
    .map(([node, pid]) => `  ${node}) pid=${pid} ;;`)
    .join('\n');
  return `#!/bin/sh
# A STONITH stand-in: kill -9 of the named node's mysqld. Like a power-off, it is idempotent: a
# mysqld already dead is fenced too.${failFirst ? ' Its first call fails.' : ''}
echo "$(date +%s%3N) node=$PRIMACY_NODE host=$PRIMACY_HOST port=$PRIMACY_PORT epoch=$PRIMACY_EPOCH failover=$PRIMACY_FAILOVER_EPOCH cluster=$PRIMACY_CLUSTER" >> '${join(dir, 'calls.log')}'
if [ ${failFirst ? 1 : 0} = 1 ] && [ ! -e '${join(dir, 'failed-once')}' ]; then
  touch '${join(dir, 'failed-once')}'
  echo "power controller busy"
  exit 1
fi
case "$PRIMACY_NODE" in
${cases}
  *) echo "unknown node $PRIMACY_NODE"; exit 2 ;;
esac
if kill -9 "$pid" 2>/dev/null; then echo "killed mysqld $pid of $PRIMACY_NODE"; else echo "mysqld $pid of $PRIMACY_NODE is not running"; fi
sleep 0.1
# Dead, or a zombie its parent (the test) has not reaped yet.
state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)
if [ -n "$state" ] && [ "$state" != Z ]; then echo "mysqld $pid still runs ($state)"; exit 1; fi
`;
}

function calls(dir: string): Array<Record<string, string>> {
  const file = join(dir, 'calls.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [at, ...kv] = line.split(' ');
      return { at: at!, ...Object.fromEntries(kv.map((p) => p.split('=') as [string, string])) };
    });
}

/** The failovers that ended aborted (kept under history/). */
async function abortedFailovers(c: TestCluster): Promise<OpRecord[]> {
  const all = await c.etcd.getAll().prefix(c.keys.historyPrefix).strings();
  return Object.values(all)
    .map((v) => JSON.parse(v) as OpRecord)
    .filter((op) => op.kind === 'failover' && op.outcome === 'aborted');
}

describe('fencing proofs', () => {
  /**
   * A frozen mysqld (SIGSTOP, then SIGCONT): the design's answer, for both semi-sync and async. While
   * frozen, nothing proves db1 fenced (a hung server is not down; its agent cannot fence it; the
   * coordinator's SQL fence times out), so the failover started by the silent server waits. It is
   * not rolled back when db1 wakes: an operation, once started, continues from its record
   * (invariant 7), and the first fence read back after SIGCONT (the agent's or the coordinator's)
   * is its proof, so a replica is promoted and db1 rejoins read-only.
   */
  async function frozenPrimary(label: string, options: ClusterOptions, frozenMs: number, fenceText: RegExp): Promise<void> {
    const run = await running({ serverOptions: QUICK_REPLICAS, pidFiles: true, ...options });
    const { c } = run;
    const old = (await c.primary())!;
    assert.equal(old.node, 'db1');
    const pinned = await PinnedInsert.open(c, 'db1', 1_000_001);
    const frozenAt = Date.now();
    c.server('db1').pause();
    pinned.send();
    const held = await holdsWithoutProof(c, old, frozenMs);
    assert.ok(held.op, `the failover of the silent db1 started within ${frozenMs} ms, and waits`);
    const text = fenceStep(held.op)?.detail ?? '';
    assert.match(text, /cannot prove db1 fenced/, describeOp(held.op));
    assert.match(text, fenceText, describeOp(held.op));
    const m = await c.member('db1');
    assert.notEqual(m?.health, 'up', 'db1\'s agent sees its server not answering');
    assert.equal(m?.serverGone, null, 'a stopped mysqld (its pid alive) is not gone');
    assert.equal(pinned.acknowledged, false, 'nothing is acknowledged by a frozen server');
    note(`${label}: frozen ${Date.now() - frozenAt} ms, no promotion; fence step: ${text}`);

    const resumedAt = Date.now();
    c.server('db1').resume();
    const { p, op, seenAt } = await provenAndReady(c, old);
    assertProof(op, ['agent-fenced', 'sql-fenced']);
    await pinned.settle(20_000);
    await assertPinnedKept(c, pinned);
    note(
      `${label}: after SIGCONT, proof ${op.proof!.kind} seen in ${seenAt - resumedAt} ms, ${p.node} ready in ${p.since - resumedAt} ms ` +
        `(${p.since - frozenAt} ms after the freeze); ${pinned.describe()}`,
    );
    await endsReadOnly(c, 'db1');
    pinned.close();
    await finishWitnessed(run);
  }

  test('1. frozen primary mysqld, semi-sync: no promotion while frozen; after SIGCONT it is fenced and the failover completes', async () => {
    await frozenPrimary('1 frozen, semi-sync', {}, 14_000, /semi-sync/);
  });

  test('2. frozen primary mysqld, async: no promotion while frozen; after SIGCONT it is fenced and the failover completes', async () => {
    await frozenPrimary('2 frozen, async', { semiSync: false }, 12_000, /durability is async/);
  });

  test('3. frozen primary mysqld, strict semi-sync: the revoke is the proof, and the failover completes while db1 is frozen', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS, pidFiles: true });
    const { c, watch } = run;
    const old = (await c.primary())!;
    const record = await strictSemiSync(c, 'db1');
    assert.equal(record.clients, 2);
    const pinned = await PinnedInsert.open(c, 'db1', 1_000_003);
    const frozenAt = Date.now();
    c.server('db1').pause();
    pinned.send();
    const { op, p } = await provenAndReady(c, old, 40_000);
    assertProof(op, ['strict-semi-sync']);
    // db1 is read_only=0 but revoked under strict semi-sync: it cannot commit. It counts as unable to take
    // writes from the proof on; what is asserted instead is that it acknowledged nothing after that.
    watch.exempt('db1', 'revoked under strict semi-sync: read_only=0 but no commit can complete', op.proof!.at);
    const names = op.steps.map((s) => s.name);
    assert.ok(names.indexOf('revoke') < names.indexOf('fenced'), `strict revokes first: ${names.join(', ')}`);
    assert.ok(c.server('db1').isRunning(), 'db1 is still frozen, not gone');
    assert.equal(pinned.outcome, null, 'the pinned INSERT still waits on the frozen db1');
    note(`3 strict, frozen: proof strict-semi-sync ${op.proof!.at - frozenAt} ms after the freeze, ${p.node} ready ${p.since - frozenAt} ms after, db1 still frozen`);

    // A little writing on the new primary, then db1 wakes: its agent fences it, and its pending commit never completes.
    await waitFor('a write on the new primary', () => run.writer.firstAckAfter(p.since) ?? undefined, { timeoutMs: 20_000 });
    const resumedAt = Date.now();
    c.server('db1').resume();
    // The pinned commit waits for an acknowledgement no replica can send, and killing any session would
    // acknowledge it: the agent stops mysqld instead (mysql.pidFile), so its client gets an error.
    const roAt = await waitFor('db1 stopped by its agent', () => (c.server('db1').isRunning() ? undefined : Date.now()), { timeoutMs: 15_000, intervalMs: 20 });
    await pinned.settle(20_000);
    assert.ok(!(pinned.acknowledged && pinned.outcome!.at >= p.since), `never acknowledged by db1 after ${p.node} was ready: ${pinned.describe()}`);
    assert.equal(pinned.acknowledged, false, pinned.describe());
    assert.deepEqual(ackedByAfter(run, 'db1', promotedAt(op)), [], 'the writer got no acknowledgement from db1 after the promotion');
    note(`3 strict, frozen: after SIGCONT db1's mysqld stopped by its agent in ${roAt - resumedAt} ms; ${pinned.describe()}; ${watch.exempted.length} exempted samples`);
    pinned.close();
    await finishWitnessed(run);
  });

  /** db1's agent killed, and db1's advertised port (the coordinator's and the replicas' way in) blackholed; clients still reach it. */
  async function cutOff(c: TestCluster): Promise<number> {
    await c.agents.get('db1')!.kill();
    c.proxies.get('db1')!.cut({ mode: 'blackhole' });
    return Date.now();
  }

  test('4a. primary agent killed, its MariaDB unreachable for the coordinator, semi-sync with fallback: waits; then fenced over SQL, no loss', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS, advertiseProxies: true });
    const { c, writer } = run;
    const old = (await c.primary())!;
    const cutAt = await cutOff(c);
    const held = await holdsWithoutProof(c, old, 15_000);
    assert.ok(held.op, 'the failover of db1 (its agent gone) started, and waits');
    const text = fenceStep(held.op)?.detail ?? '';
    assert.match(text, /cannot prove db1 fenced: its agent is gone/, describeOp(held.op));
    assert.match(text, /durability is semi-sync/, describeOp(held.op));
    assert.match(text, /over SQL: /, describeOp(held.op));
    const asyncAcks = ackedByAfter(run, 'db1', cutAt).length;
    note(`4a semi-sync, cut off: no promotion for 15 s; db1 acknowledged ${asyncAcks} writes meanwhile (semi-sync fell back); fence step: ${text}`);

    const restoredAt = Date.now();
    c.proxies.get('db1')!.restore();
    const { op, p, seenAt } = await provenAndReady(c, old);
    assertProof(op, ['sql-fenced']);
    assert.match(op.proof!.detail, /read_only read back ON/);
    const lost = await missingAcks(c, p.node, ackedByAfter(run, 'db1', cutAt));
    if (lost.length > 0) {
      const gtid = async (n: string) => (await c.server(n).query<{ g: string }>('SELECT @@gtid_current_pos AS g'))[0]?.g;
      assert.fail(
        `${lost.length} of the ${asyncAcks} writes db1 acknowledged asynchronously (ids ${lost[0]}..${lost.at(-1)}) are not on ${p.node}: ` +
          `db1 has ${await gtid('db1')}, ${p.node} ${await gtid(p.node)}; ${describeOp(op)}; ${agentWarnings(c)}`,
      );
    }
    note(
      `4a semi-sync, cut off: after the proxy was restored, proof sql-fenced seen in ${seenAt - restoredAt} ms ` +
        `(the attempt began ${op.proof!.at - restoredAt} ms after the restore), ${p.node} ready in ${p.since - restoredAt} ms`,
    );
    assert.ok(writer.acked.size > 0);
    await endsReadOnly(c, 'db1');
    await finishWitnessed(run);
  });

  test('4b. primary agent killed, its MariaDB unreachable for the coordinator, strict semi-sync: the revoke proves it, no loss', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS, advertiseProxies: true, pidFiles: true });
    const { c, watch } = run;
    const old = (await c.primary())!;
    await strictSemiSync(c, 'db1');
    const pinned = await PinnedInsert.open(c, 'db1', 1_000_004);
    const cutAt = await cutOff(c);
    const { op, p } = await provenAndReady(c, old);
    assertProof(op, ['strict-semi-sync']);
    watch.exempt('db1', 'revoked under strict semi-sync, its agent dead: read_only=0 but no commit can complete', op.proof!.at);
    note(`4b strict, cut off: proof strict-semi-sync ${op.proof!.at - cutAt} ms after the agent was killed, ${p.node} ready ${p.since - cutAt} ms after`);
    // A client still connected to db1 directly: its write is never acknowledged.
    pinned.send();
    await sleep(3000);
    assert.equal(pinned.outcome, null, `db1 does not acknowledge a write after the promotion: ${pinned.describe()}`);
    assert.equal(await readOnly(c, 'db1'), false, 'db1 is read_only=0 (nobody could fence it), and still cannot commit');
    assert.deepEqual(ackedByAfter(run, 'db1', promotedAt(op)), [], 'the writer got no acknowledgement from db1 after the promotion');
    // Its agent restarted, db1 is fenced: the waiting INSERT fails, and db1 turns read-only.
    c.proxies.get('db1')!.restore();
    await c.restartAgent('db1');
    // The pinned commit waits for an acknowledgement no replica can send; killing sessions would
    // acknowledge it, so the restarted agent stops mysqld instead (mysql.pidFile).
    await waitFor('db1 stopped by its agent', () => (c.server('db1').isRunning() ? undefined : true), { timeoutMs: 30_000, intervalMs: 50 });
    await pinned.settle(20_000);
    assert.equal(pinned.acknowledged, false, pinned.describe());
    note(`4b strict, cut off: ${pinned.describe()}`);
    pinned.close();
    await finishWitnessed(run);
  });

  async function fencingCommand(label: string, failFirst: boolean): Promise<void> {
    const dir = await harnessDir('fencing-command');
    const script = join(dir, 'fence.sh');
    const run = await running({
      serverOptions: QUICK_REPLICAS,
      advertiseProxies: true,
      // Semi-sync waits (60 s) for a replica rather than fall back while db1 is cut off: what it acknowledged, a replica has.
      agentConfig: { fencing: { command: `sh ${script}`, timeoutMs: 5000, retryMs: 500 }, replication: { semiSyncTimeoutMs: 60_000 } },
    });
    const { c } = run;
    const old = (await c.primary())!;
    const pids = Object.fromEntries(c.db.servers.map((s) => [s.name, s.pid]));
    await writeFile(script, fencingScript(dir, pids, failFirst));
    const cutAt = await cutOff(c);
    // The failed first run is recorded in the fence step before the retry proves it.
    const texts: string[] = [];
    const proven = await waitFor(
      'the fencing command to prove db1 fenced',
      async () => {
        const op = await c.op(old.epoch + 1);
        const text = fenceStep(op)?.detail;
        if (text && !texts.includes(text)) texts.push(text);
        return op?.proof ? op : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    const { op, p } = await provenAndReady(c, old);
    assertProof(op, ['fencing-command']);
    assert.match(op.proof!.detail, /the fencing command exited 0 in \d+ ms: (killed mysqld|mysqld \d+ of db1 is not running)/);
    await waitFor('db1\'s mysqld to be dead', () => (c.server('db1').isRunning() ? undefined : true), { timeoutMs: 5000 });
    const runs = calls(dir);
    // An attempt aborted after its proof (its revoke not answered in time) starts again without it, and runs the command again.
    const aborted = (await abortedFailovers(c)).map((a) => a.reason);
    assert.equal(runs.length, (failFirst ? 2 : 1) + aborted.length, `${JSON.stringify(runs)}; aborted: ${aborted.join(' || ')}`);
    for (const r of runs) {
      assert.deepEqual(
        [r['node'], r['host'], r['port'], r['epoch'], r['failover'], r['cluster']],
        ['db1', '127.0.0.1', String(c.proxies.get('db1')!.port), String(old.epoch), String(old.epoch + 1), c.name],
        'the command gets the old primary (as the cluster reaches it) in its environment',
      );
    }
    if (failFirst) {
      assert.ok(texts.some((t) => /the fencing command exit 1 \(tried again every 500 ms\): power controller busy/.test(t)), `the failed run is recorded: ${texts.join(' || ')}`);
      const gap = Number(runs[1]!['at']) - Number(runs[0]!['at']);
      assert.ok(gap >= 500, `tried again after retryMs (${gap} ms)`);
      note(`${label}: the command failed, then was tried again ${gap} ms later`);
    }
    note(
      `${label}: proof fencing-command ${proven.proof!.at - cutAt} ms after the agent was killed, ${p.node} ready ${p.since - cutAt} ms after; ` +
        `${runs.length} runs of the command; ${aborted.length} aborted attempts${aborted.length > 0 ? `: ${aborted.join(' || ')}` : ''}`,
    );
    await finishWitnessed(run);
  }

  test('4c. primary agent killed, its MariaDB unreachable for the coordinator, with a fencing command (kill -9 of mysqld): promoted on its proof', async () => {
    await fencingCommand('4c fencing command', false);
  });

  test('4c\'. the fencing command fails first: it is tried again after retryMs, and its second run is the proof', async () => {
    await fencingCommand('4c\' fencing command retried', true);
  });

  test('5. a long transaction rolling back on the old primary: the fence waits for read_only to read back, and only then is anyone promoted', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS, advertiseProxies: true });
    const { c } = run;
    const old = (await c.primary())!;
    await c.server('db1').query('CREATE TABLE app.big (id INT PRIMARY KEY) ENGINE=InnoDB');
    const admin = await c.server('db1').connect(ADMIN);
    await admin.query('BEGIN');
    await admin.query({ sql: 'INSERT INTO app.big (id) SELECT seq FROM app.seq_1_to_300000', timeout: 120_000 });
    // The coordinator is held off (db1's advertised port blackholed) until the same transaction runs
    // a big statement: its fence then always meets a running statement, and SET GLOBAL read_only
    // waits for its rollback (an idle transaction's rollback does not hold read_only back).
    const killedAt = await cutOff(c);
    const held = await waitFor('the failover to wait for a proof', async () => {
      const op = await c.op(old.epoch + 1);
      return op && /cannot prove db1 fenced.*over SQL/.test(fenceStep(op)?.detail ?? '') ? op : undefined;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    assert.equal(held.proof, null);
    let statementEnd: string | null = null;
    let statementEndAt = 0;
    const statementAt = Date.now();
    const statement = admin
      .query({ sql: 'INSERT INTO app.big (id) SELECT seq FROM app.seq_1000001_to_9000000', timeout: 600_000 })
      .then(
        () => void (statementEnd = 'completed'),
        (err: unknown) => void (statementEnd = errorText(err)),
      )
      .finally(() => void (statementEndAt = Date.now()));
    await sleep(1500);
    const [trx] = await c.server('db1').query<{ rows: number }>('SELECT trx_rows_modified AS `rows` FROM information_schema.INNODB_TRX ORDER BY trx_rows_modified DESC LIMIT 1');
    assert.equal(statementEnd, null, 'the big statement still runs');
    const restoredAt = Date.now();
    c.proxies.get('db1')!.restore();
    const texts: string[] = [];
    const proven = await waitFor(
      'the SQL fence to be read back',
      async () => {
        const op = await c.op(old.epoch + 1);
        const text = fenceStep(op)?.detail;
        if (text && !texts.includes(text)) texts.push(text);
        return op?.proof ? op : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const seenAt = Date.now();
    const { op, p } = await provenAndReady(c, old);
    assertProof(op, ['sql-fenced']);
    assert.match(op.proof!.detail, /read_only read back ON/);
    const fenceMs = seenAt - restoredAt;
    assert.ok(fenceMs > 1000, `the rollback outlasted the probe timeout: the fence took ${fenceMs} ms after the restore; ${texts.join(' || ')}`);
    assert.ok(texts.some((t) => /over SQL: .*SET GLOBAL read_only/.test(t)), `a fence whose read_only did not read back in time is recorded: ${texts.join(' || ')}`);
    await withTimeout(statement, 30_000, 'the killed statement to end');
    assert.notEqual(statementEnd, 'completed', 'the big statement was killed');
    assert.ok(statementEndAt < seenAt, 'the statement was killed before the proof');
    assert.equal((await c.server(p.node).query<{ n: number }>('SELECT COUNT(*) AS n FROM app.big'))[0]?.n, 0, 'the uncommitted transaction is nowhere');
    note(
      `5 long rollback: ${trx?.rows ?? '?'} rows uncommitted when the coordinator could reach db1 (${restoredAt - statementAt} ms into the statement); ` +
        `the fence took ${fenceMs} ms (the rollback), proof seen ${seenAt - killedAt} ms and ${p.node} ready ${p.since - killedAt} ms after the agent was killed`,
    );
    admin.destroy();
    await endsReadOnly(c, 'db1');
    await finishWitnessed(run);
  });
  test('6. SIGTERM to the primary\'s agent while its mysqld is frozen: it cannot fence, no promotion while frozen; after SIGCONT fenced over SQL', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS });
    const { c } = run;
    const old = (await c.primary())!;
    const pinned = await PinnedInsert.open(c, 'db1', 1_000_006);
    const frozenAt = Date.now();
    c.server('db1').pause();
    pinned.send();
    await waitFor('db1\'s agent to see its probe fail', async () => {
      const m = await c.member('db1');
      return m && m.health !== 'up' ? true : undefined;
    }, { timeoutMs: 15_000 });
    const agent = c.agents.get('db1')!;
    const stopAt = Date.now();
    await agent.stop();
    const exit = await agent.process.exited;
    const stopMs = Date.now() - stopAt;
    assert.equal(agent.process.isRunning(), false);
    const lines = agent.logLines();
    assert.ok(lines.some((l) => /could not fence the node; no promotion happens without another proof/.test(String(l['msg']))), 'the stopping agent says it could not fence');
    const held = await holdsWithoutProof(c, old, 10_000);
    assert.ok(held.op, 'the failover of db1 (its agent gone) started, and waits');
    assert.match(fenceStep(held.op)?.detail ?? '', /cannot prove db1 fenced: its agent is gone/, describeOp(held.op));
    note(`6 SIGTERM, frozen: the agent stopped in ${stopMs} ms (${exit.code !== null ? `exit ${exit.code}` : exit.signal}); no promotion for 10 s after`);

    const resumedAt = Date.now();
    c.server('db1').resume();
    const { op, p, seenAt } = await provenAndReady(c, old);
    assertProof(op, ['sql-fenced']);
    await pinned.settle(20_000);
    await assertPinnedKept(c, pinned);
    note(`6 SIGTERM, frozen: after SIGCONT proof sql-fenced seen in ${seenAt - resumedAt} ms, ${p.node} ready in ${p.since - resumedAt} ms (${p.since - frozenAt} ms after the freeze); ${pinned.describe()}`);
    assert.equal(await readOnly(c, 'db1'), true);
    pinned.close();
    await finishWitnessed(run);
  });

  test('7. the operator overrides: an unfenced failover request to db2 while db1 is frozen; the record says so, and db1 wakes read-only', async () => {
    const run = await running({ serverOptions: QUICK_REPLICAS });
    const { c, watch } = run;
    const old = (await c.primary())!;
    const pinned = await PinnedInsert.open(c, 'db1', 1_000_007);
    const frozenAt = Date.now();
    c.server('db1').pause();
    pinned.send();
    const waiting = await waitFor('the failover to wait for a proof', async () => {
      const op = await c.op(old.epoch + 1);
      return op && /cannot prove db1 fenced/.test(fenceStep(op)?.detail ?? '') ? op : undefined;
    }, { timeoutMs: 30_000, intervalMs: 50 });
    assert.equal(waiting.proof, null);
    assert.match(fenceStep(waiting)!.detail, /primacy failover --to NODE --unfenced/, 'the record tells the operator how to override');
    const id = `${Date.now()}-fencing-test`;
    const request: OperatorRequest = { kind: 'failover', to: 'db2', force: false, unfenced: true, requestedAt: Date.now(), by: 'fencing.test (db1 is frozen, and the operator knows it)' };
    const requestedAt = Date.now();
    await c.etcd.put(c.keys.request(id)).value(JSON.stringify(request));
    const { op, p } = await provenAndReady(c, old).catch(async (err: unknown) => {
      // Say plainly when the override was taken by an attempt that then aborted: the request is gone with it.
      const lost = (await abortedFailovers(c)).filter((a) => a.proof?.kind === 'operator');
      if (lost.length === 0) throw err;
      const now = await c.op(old.epoch + 1);
      throw new Error(
        `the override (request ${id}) was consumed by a failover attempt that then aborted (${lost.map((a) => a.reason).join(' || ')}); ` +
          `the request is gone, and the next attempt (proof ${now?.proof?.kind ?? 'none'}, ${now?.outcome ?? 'no record'}) waits without it: ${errorText(err)}`,
      );
    });
    assertProof(op, ['operator']);
    watch.exempt('db1', 'the operator said db1 takes no writes (an unfenced failover)', op.proof!.at);
    assert.equal(p.node, 'db2', 'the operator\'s choice');
    assert.match(op.proof!.detail, new RegExp(`operator override \\(request ${id}, by fencing\\.test`));
    assert.match(op.proof!.detail, /was not proven fenced/);
    assert.match(op.trigger, new RegExp(`override ${id}`));
    assert.equal(op.request?.id, id);
    assert.equal(await c.etcd.get(c.keys.request(id)).string(), null, 'the request was consumed');
    note(`7 operator override: proof operator ${op.proof!.at - requestedAt} ms after the request, db2 ready ${p.since - requestedAt} ms after (${p.since - frozenAt} ms after the freeze)`);

    const resumedAt = Date.now();
    c.server('db1').resume();
    const roAt = await endsReadOnly(c, 'db1');
    const beside = watch.exempted.filter((s) => s.at >= resumedAt && s.writable.includes('db1'));
    const besideMs = beside.length > 0 ? beside.at(-1)!.at - beside[0]!.at : 0;
    assert.ok(roAt - resumedAt < 5000, `db1's agent fenced it ${roAt - resumedAt} ms after it woke`);
    await pinned.settle(20_000);
    await assertPinnedKept(c, pinned);
    note(`7 operator override: after SIGCONT db1 read-only in ${roAt - resumedAt} ms; seen writable beside db2 in ${beside.length} samples over ${besideMs} ms; ${pinned.describe()}`);
    pinned.close();
    await finishWitnessed(run);
  });
});
