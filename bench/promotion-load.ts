/**
 * Failover under a sustained write load: how long the candidate's relay-log backlog adds to a
 * failover, with a single applier and with parallel replication (issue 14).
 *
 *   node --conditions=@primacy/source --import tsx bench/promotion-load.ts [--trials N] [--writers W] [--load-seconds S] [--modes serial,parallel] [--out FILE.md]
 *
 * Each trial starts a fresh cluster (3 MariaDB servers, semi-sync, real agents on a 3-member etcd
 * shared by all trials), runs W writers (back-to-back single-row INSERTs as the application user,
 * each on its own connection, to whichever node etcd names the ready primary) for S seconds, then
 * kills the primary's mysqld with SIGKILL while they write. It records, at the kill, each replica's
 * backlog (transactions received but not applied: the sequence numbers between gtid_current_pos
 * and Gtid_IO_Pos in domain 0), and then fault → `primary` ready, the time the candidate spent
 * applying before its promotion (the op's `ready` step), and whether every acknowledged write is on
 * the new primary. Modes alternate, so drifting load hits both alike:
 *   - serial: slave_parallel_threads=0 (MariaDB's default, one applier);
 *   - parallel: slave_parallel_threads=4, slave_parallel_mode=optimistic (what the sandbox sets).
 */
import { writeFileSync } from 'node:fs';
import type { Connection } from 'mysql2/promise';
import { PrimarySchema, type OpRecord, type Primary } from '@primacy/common';
import { APP, cleanupAll, sleep, startEtcd, waitFor, type EtcdCluster } from '../test/harness/index.js';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { describeMachine, machineLine } from './lib/machine.js';
import { fixed, seconds, table } from './lib/markdown.js';
import { fail, intFlag, parseFlags, progress, stringFlag } from './lib/options.js';
import { summarize } from './lib/percentiles.js';
import { loadAverage } from './lib/proc-stats.js';

const USAGE = 'usage: node --conditions=@primacy/source --import tsx bench/promotion-load.ts [--trials N] [--writers W] [--load-seconds S] [--modes serial,parallel] [--out FILE.md]';

type Mode = 'serial' | 'parallel';
const MODES: Record<Mode, Record<string, string | number>> = {
  serial: { 'slave-parallel-threads': 0 },
  parallel: { 'slave-parallel-threads': 4, 'slave-parallel-mode': 'optimistic' },
};

interface Trial {
  readonly mode: Mode;
  readonly index: number;
  load1: number;
  /** Per replica, transactions received but not yet applied at the kill. */
  backlog: Record<string, number>;
  /** Acknowledged writes per second over the load phase. */
  writesPerS: number;
  oldPrimary: string;
  newPrimary: string | null;
  readyMs: number | null;
  /** The op's `ready` step: from writing the primary key to the candidate's promotion done. */
  promoteMs: number | null;
  acked: number;
  lost: number;
  error: string | null;
}

const flags = parseFlags(USAGE, { trials: { type: 'string' }, writers: { type: 'string' }, 'load-seconds': { type: 'string' }, modes: { type: 'string' }, out: { type: 'string' } });
const trials = intFlag(flags, 'trials', 6, 1, 100);
const writers = intFlag(flags, 'writers', 8, 1, 64);
const loadMs = intFlag(flags, 'load-seconds', 10, 1, 300) * 1000;
const modes = (stringFlag(flags, 'modes') ?? 'serial,parallel').split(',').map((m) => {
  if (!(m in MODES)) fail(`--modes: unknown mode ${JSON.stringify(m)} (serial, parallel)`);
  return m as Mode;
});
const out = stringFlag(flags, 'out');

/** One writer: back-to-back INSERTs to the ready primary; reconnects after any error. */
class LoadWriter {
  readonly acked: number[] = [];
  private stopped = false;
  private conn: Connection | null = null;
  private next = 1;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly c: TestCluster,
    private readonly id: number,
  ) {}

  start(): this {
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.destroy();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.conn === null) {
          const p = await this.c.primary();
          if (!p || p.state !== 'ready') {
            await sleep(10);
            continue;
          }
          this.conn = await this.c.server(p.node).connect(APP, { connectTimeout: 1000 });
        }
        const n = this.next++;
        await this.conn.query('INSERT INTO app.load (w, n, pad) VALUES (?, ?, REPEAT(?, 200))', [this.id, n, 'x']);
        this.acked.push(n);
      } catch {
        this.conn?.destroy();
        this.conn = null;
        if (!this.stopped) await sleep(10);
      }
    }
  }
}

function seqOf(gtid: string, domain = 0): number {
  let seq = 0;
  for (const part of gtid.split(',')) {
    const [d, , s] = part.trim().split('-');
    if (Number(d) === domain) seq = Math.max(seq, Number(s));
  }
  return seq;
}

async function backlogOf(c: TestCluster, node: string): Promise<number> {
  const server = c.server(node);
  const [pos] = await server.query<{ pos: string }>('SELECT @@GLOBAL.gtid_current_pos AS pos');
  const [status] = await server.query<{ Gtid_IO_Pos: string }>('SHOW SLAVE STATUS');
  return Math.max(0, seqOf(status?.Gtid_IO_Pos ?? '') - seqOf(pos?.pos ?? ''));
}

async function runTrial(etcd: EtcdCluster, mode: Mode, index: number): Promise<Trial> {
  const t: Trial = { mode, index, load1: loadAverage(), backlog: {}, writesPerS: 0, oldPrimary: '', newPrimary: null, readyMs: null, promoteMs: null, acked: 0, lost: 0, error: null };
  let c: TestCluster | null = null;
  const load: LoadWriter[] = [];
  let cancel: () => Promise<void> = async () => undefined;
  try {
    c = await startCluster(etcd, { semiSync: true, serverOptions: MODES[mode] });
    const cluster = c;
    const old = await c.readyPrimary();
    t.oldPrimary = old.node;
    await c.server(old.node).query('CREATE TABLE IF NOT EXISTS app.load (w INT NOT NULL, n INT NOT NULL, pad VARCHAR(255), PRIMARY KEY (w, n))');
    await c.settled(20_000);
    for (let i = 0; i < writers; i++) load.push(new LoadWriter(c, i).start());
    await sleep(loadMs);
    t.writesPerS = load.reduce((a, w) => a + w.acked.length, 0) / (loadMs / 1000);
    const replicas = c.db.servers.map((s) => s.name).filter((n) => n !== old.node);
    for (const r of replicas) t.backlog[r] = await backlogOf(c, r);
    let ready: number | null = null;
    const watcher = await c.etcd.watch().key(c.keys.primary).create();
    cancel = async () => void (await watcher.cancel().catch(() => undefined));
    watcher.on('put', (kv) => {
      const p: Primary = PrimarySchema.parse(JSON.parse(kv.value.toString()));
      if (p.epoch > old.epoch && p.state === 'ready' && ready === null) ready = Date.now();
    });
    const killedAt = Date.now();
    await c.server(old.node).kill();
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 120_000 });
    await waitFor('the ready put to be watched', () => (ready !== null ? true : undefined), { timeoutMs: 5000, intervalMs: 5 });
    t.newPrimary = p.node;
    t.readyMs = ready! - killedAt;
    await Promise.all(load.map((w) => w.stop()));
    const op: OpRecord | null = await c.op(p.epoch);
    const step = op?.steps.find((s) => s.name === 'ready');
    t.promoteMs = step?.endedAt != null ? step.endedAt - step.startedAt : null;
    // Every acknowledged write must be on the new primary.
    const rows = await cluster.server(p.node).query<{ w: number; n: number }>('SELECT w, n FROM app.load');
    const have = new Set(rows.map((r) => `${r.w}:${r.n}`));
    for (const [i, w] of load.entries()) {
      t.acked += w.acked.length;
      for (const n of w.acked) if (!have.has(`${i}:${n}`)) t.lost += 1;
    }
  } catch (err) {
    t.error = err instanceof Error ? err.message : String(err);
  } finally {
    await Promise.allSettled(load.map((w) => w.stop()));
    await cancel();
    await c?.stop().catch(() => undefined);
  }
  return t;
}

function maxBacklog(t: Trial): number {
  return Math.max(0, ...Object.values(t.backlog));
}

function render(all: readonly Trial[]): string {
  const machine = describeMachine();
  const lines = [`# Failover under a sustained write load`, '', machineLine(machine), '', `${writers} writers, ${loadMs / 1000} s of load before the kill, semi-sync; ${all.length} trials.`, ''];
  const rows = modes.map((m) => {
    const ts = all.filter((t) => t.mode === m && t.error === null);
    const ready = summarize(ts.map((t) => t.readyMs!).filter((x) => x !== null));
    const promote = summarize(ts.map((t) => t.promoteMs ?? 0));
    const backlog = summarize(ts.map(maxBacklog));
    const wps = summarize(ts.map((t) => t.writesPerS));
    return [m, `${ts.length}/${all.filter((t) => t.mode === m).length}`, fixed(wps?.median, 0), fixed(backlog?.median, 0), fixed(backlog?.max, 0), seconds(promote?.median), seconds(ready?.median), seconds(ready?.p99), String(ts.reduce((a, t) => a + t.lost, 0))];
  });
  lines.push(table(['mode', 'trials', 'writes/s (median)', 'backlog at kill (median, trx)', 'backlog (max)', 'promotion wait (median)', 'kill → ready (median)', 'kill → ready (p99)', 'lost'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']));
  lines.push('', '## Every trial', '');
  lines.push(
    table(
      ['mode', '#', 'old → new', 'writes/s', 'backlog per replica', 'promotion wait', 'kill → ready', 'acked', 'lost', 'load', 'error'],
      all.map((t) => [t.mode, String(t.index), `${t.oldPrimary} → ${t.newPrimary ?? '?'}`, fixed(t.writesPerS, 0), Object.entries(t.backlog).map(([n, b]) => `${n} ${b}`).join(', '), seconds(t.promoteMs), seconds(t.readyMs), String(t.acked), String(t.lost), fixed(t.load1, 2), t.error ?? '']),
    ),
  );
  return `${lines.join('\n')}\n`;
}

const etcd = await startEtcd({ members: 3 });
const all: Trial[] = [];
try {
  progress(`${trials} trials per mode (${modes.join(', ')}), ${writers} writers, ${loadMs / 1000} s of load`);
  for (let i = 1; i <= trials; i++) {
    for (const mode of modes) {
      const t = await runTrial(etcd, mode, i);
      all.push(t);
      progress(`${mode} #${i}: ${fixed(t.writesPerS, 0)} writes/s, backlog ${JSON.stringify(t.backlog)}, promotion wait ${seconds(t.promoteMs)}, ready ${seconds(t.readyMs)}, acked ${t.acked}, lost ${t.lost}${t.error ? `; ERROR ${t.error}` : ''}`);
    }
  }
} finally {
  await etcd.stop().catch(() => undefined);
  await cleanupAll();
}
const md = render(all);
if (out) {
  writeFileSync(out, md);
  writeFileSync(out.replace(/\.md$/, '.json'), `${JSON.stringify(all, null, 2)}\n`);
  progress(`wrote ${out}`);
} else process.stdout.write(md);
