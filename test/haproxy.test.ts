/**
 * A real HAProxy (Debian's 2.6) in front of a real cluster, with the config rendered from the same
 * template as deploy/haproxy.cfg and `primacy config generate` (issue 12). Writes and reads go
 * through HAProxy's ports as the application user: right after HAProxy starts no statement reaches
 * the wrong node, a kill -9 of the primary's mysqld moves the write port to the new primary, a
 * switchover costs a few statements refused with 1290 (counted and reported), and a replica whose
 * SQL thread stops leaves the read port and loses its open sessions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as connectSocket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createConnection, type Connection } from 'mysql2/promise';
import { RequestSchema } from '@primacy/common';
import { compileClusterPlan } from '../packages/cli/src/generate/plan.js';
import { READ_LISTENER, renderHaproxyConfig, renderHaproxyStartState, WRITE_LISTENER } from '../packages/cli/src/generate/haproxy.js';
import { APP, cleanupAll, ER_READ_ONLY, findExecutable, freePorts, harnessDir, LOOPBACK, sleep, spawnManaged, startEtcd, waitFor, type EtcdCluster, type ManagedProcess } from './harness/index.js';
import { startCluster, type TestCluster } from './support/cluster.js';

const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

let etcd: EtcdCluster;

before(async () => {
  etcd = await startEtcd({ members: 1 });
});

after(async () => {
  await cleanupAll();
});

interface Haproxy {
  readonly logFile: string;
  readonly writePort: number;
  readonly readPort: number;
  readonly process: ManagedProcess;
  readonly startedAt: number;
  /** Each server's state per listener, from the runtime API: `mysql-write/db1` → true when UP. */
  states(): Promise<Map<string, boolean>>;
  stop(): Promise<void>;
}

/** The HAProxy config for this cluster, from the generator's template, checked with `haproxy -c`, then started. */
async function startHaproxy(c: TestCluster): Promise<Haproxy> {
  const haproxy = findExecutable('haproxy', SBIN);
  const dir = await harnessDir('haproxy');
  const [writePort, readPort] = (await freePorts(2)) as [number, number];
  const socket = join(dir, 'admin.sock');
  const plan = compileClusterPlan({
    cluster: c.name,
    etcd: etcd.endpoints,
    nodes: c.db.servers.map((s) => ({ name: s.name, host: s.host, mysqlPort: s.port, apiPort: Number(new URL(c.agents.get(s.name)!.url).port) })),
    haproxy: { bind: LOOPBACK, writePort, readPort, statsSocket: socket, stateFile: join(dir, 'primacy.state') },
  });
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, renderHaproxyConfig(plan));
  writeFileSync(plan.haproxy.stateFile, renderHaproxyStartState(plan));
  const check = spawnSync(haproxy, ['-c', '-f', config], { encoding: 'utf8' });
  assert.equal(check.status, 0, `haproxy -c: ${check.stdout}${check.stderr}`);
  // The one kind of warning expected: each server set DOWN by the start-up state file.
  const warnings = `${check.stdout}${check.stderr}`.split('\n').filter((l) => /WARNING|ALERT/.test(l) && !/is DOWN, changed from server-state/.test(l));
  assert.deepEqual(warnings, [], 'the config is valid without other warnings');
  const startedAt = Date.now();
  const logFile = join(dir, 'haproxy.log');
  const proc = await spawnManaged({ name: 'haproxy', command: haproxy, args: ['-db', '-f', config], logFile });
  const states = async (): Promise<Map<string, boolean>> => {
    const text = await new Promise<string>((resolve, reject) => {
      const s = connectSocket(socket);
      let out = '';
      s.setTimeout(2000, () => s.destroy(new Error('the runtime API did not answer within 2 s')));
      s.on('connect', () => s.write('show servers state\n'));
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('end', () => resolve(out));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    const map = new Map<string, boolean>();
    for (const line of text.split('\n')) {
      const f = line.split(' ');
      if (!/^\d+$/.test(f[0] ?? '') || f.length < 6) continue;
      map.set(`${f[1]}/${f[3]}`, f[5] === '2');
    }
    return map;
  };
  await waitFor('the runtime API', async () => ((await states().catch(() => new Map())).size === c.db.servers.length * 2 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
  return { logFile, writePort, readPort, process: proc, startedAt, states, stop: async () => void (await proc.terminate()) };
}

/**
 * Follows HAProxy's log (every 20 ms) and stamps each "Server L/S is UP|DOWN" line as it appears:
 * when HAProxy changed its mind, and the check result that made it.
 */
class StateLog {
  readonly changes: Array<{ at: number; server: string; up: boolean; line: string }> = [];
  private offset = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly file: string) {
    this.timer = setInterval(() => this.read(), 20);
  }

  private read(): void {
    const text = readFileSync(this.file, 'utf8');
    const lines = text.slice(this.offset).split('\n');
    // A line still being written waits for the next read.
    const complete = lines.slice(0, -1);
    this.offset += complete.reduce((n, l) => n + l.length + 1, 0);
    const at = Date.now();
    for (const line of complete) {
      const m = / Server (\S+) is (UP|DOWN)/.exec(line);
      if (m && !line.includes('changed from server-state')) this.changes.push({ at, server: m[1]!, up: m[2] === 'UP', line });
    }
  }

  /** The first time at or after `from` when `server` (`listener/node`) was marked up or down. */
  firstSeen(server: string, up: boolean, from: number): number | null {
    this.read();
    return this.changes.find((ch) => ch.server === server && ch.up === up && ch.at >= from)?.at ?? null;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function appConnection(port: number): Promise<Connection> {
  return createConnection({ host: LOOPBACK, port, user: APP.user, password: APP.password, database: 'app', connectTimeout: 1000 });
}

function errnoOf(err: unknown): number | string {
  const e = err as { errno?: number; code?: string };
  return e.errno ?? e.code ?? String(err);
}

/**
 * Writes one row at a time through HAProxy's write port, as an application would through a load
 * balancer: on any error it drops the connection, waits 10 ms and connects again. Records which
 * server (by port) acknowledged each row and every error with its number.
 */
class PortWriter {
  /** Row ids, unique across the writers of one test file. */
  private static next = 1;
  readonly acks: Array<{ at: number; id: number; port: number }> = [];
  readonly errors: Array<{ at: number; errno: number | string }> = [];
  private stopped = false;
  private conn: Connection | null = null;
  private readonly loop: Promise<void>;

  constructor(private readonly port: number) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.conn === null) {
          this.conn = await appConnection(this.port);
          this.conn.on('error', () => undefined);
        }
        const id = PortWriter.next++;
        const [rows] = await this.conn.query({ sql: 'INSERT INTO app.via_haproxy (id, port) VALUES (?, @@port) RETURNING port', timeout: 5000 }, [id]);
        this.acks.push({ at: Date.now(), id, port: (rows as Array<{ port: number }>)[0]!.port });
      } catch (err) {
        this.errors.push({ at: Date.now(), errno: errnoOf(err) });
        this.conn?.destroy();
        this.conn = null;
        await sleep(10);
      }
    }
  }

  /** Error counts by number or code, for the diagnostics. */
  errorSummary(from = 0): string {
    const counts = new Map<string, number>();
    for (const e of this.errors) if (e.at >= from) counts.set(String(e.errno), (counts.get(String(e.errno)) ?? 0) + 1);
    return [...counts].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none';
  }

  firstAckOn(port: number, after: number): number | null {
    return this.acks.find((a) => a.port === port && a.at >= after)?.at ?? null;
  }

  refusedReadOnly(from: number, to = Infinity): number[] {
    return this.errors.filter((e) => e.errno === ER_READ_ONLY && e.at >= from && e.at <= to).map((e) => e.at);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.conn?.destroy();
  }
}

/** Which server a new connection through `port` reaches: its port, or the error. */
async function landsOn(port: number): Promise<number | string> {
  let conn: Connection | null = null;
  try {
    conn = await appConnection(port);
    conn.on('error', () => undefined);
    const [rows] = await conn.query({ sql: 'SELECT @@port AS port', timeout: 2000 });
    return (rows as Array<{ port: number }>)[0]!.port;
  } catch (err) {
    return String(errnoOf(err));
  } finally {
    conn?.destroy();
  }
}

async function requestSwitchover(c: TestCluster, to: string): Promise<void> {
  const id = `${Date.now()}-haproxy-test`;
  await c.etcd.put(c.keys.request(id)).value(JSON.stringify(RequestSchema.parse({ kind: 'switchover', to, force: false, requestedAt: Date.now(), by: 'test' })));
}

describe('HAProxy in front of a cluster', { timeout: 240_000 }, () => {
  let c: TestCluster;
  let h: Haproxy;
  let log: StateLog;

  before(async () => {
    c = await startCluster(etcd, { pidFiles: true });
    await c.settled();
    await c.server('db1').query('CREATE TABLE app.via_haproxy (id INT PRIMARY KEY, port INT NOT NULL)');
    h = await startHaproxy(c);
    log = new StateLog(h.logFile);
  });

  after(async () => {
    log?.stop();
    await h?.stop();
    await c?.stop();
  });

  test('from its start, HAProxy sends writes only to the primary and reads only to replicas', async (t) => {
    const primary = c.server('db1').port;
    const replicas = c.db.servers.filter((s) => s.name !== 'db1').map((s) => s.port);
    const writes: Array<number | string> = [];
    const reads: Array<number | string> = [];
    let firstWriteAt: number | null = null;
    const served = () => writes.includes(primary) && replicas.every((p) => reads.includes(p));
    // Every server starts DOWN (the state file), so until the checks pass a connection is closed, not
    // misrouted. At least the first 3 s, and on until both ports have served (15 s at most).
    while (Date.now() - h.startedAt < 3000 || (!served() && Date.now() - h.startedAt < 15_000)) {
      const [w, r] = await Promise.all([landsOn(h.writePort), landsOn(h.readPort)]);
      if (w === primary && firstWriteAt === null) firstWriteAt = Date.now();
      writes.push(w);
      reads.push(r);
    }
    t.diagnostic(`the first write connection reached the primary ${firstWriteAt === null ? '?' : firstWriteAt - h.startedAt} ms after HAProxy was started; ${writes.length} connections to each port`);
    assert.deepEqual(writes.filter((p) => typeof p === 'number' && p !== primary), [], 'no write connection reached a replica');
    assert.deepEqual(reads.filter((p) => p === primary), [], 'no read connection reached the primary');
    assert.ok(writes.includes(primary), `the write port reached the primary: ${writes.slice(-5).join(' ')}`);
    assert.deepEqual(new Set(reads.filter((p) => typeof p === 'number')), new Set(replicas), 'reads reach both replicas');
    // The start-up state was loaded: all 6 servers (2 listeners × 3 nodes) began DOWN.
    assert.equal(readFileSync(h.logFile, 'utf8').match(/is DOWN, changed from server-state/g)?.length, 6);
  });

  test('switchovers through HAProxy: statements refused with 1290 are counted, and end once HAProxy marks the old primary down', async (t) => {
    const writer = new PortWriter(h.writePort);
    const totals = { refused: 0, unavailableMs: 0 };
    const rounds = 3;
    try {
      for (let round = 1; round <= rounds; round++) {
        await c.settled(30_000);
        await waitFor('writes through HAProxy', async () => (writer.acks.filter((a) => a.at > Date.now() - 1000).length >= 20 ? true : undefined), { timeoutMs: 10_000 });
        const old = (await c.primary())!;
        // Each round to the next node, so that every node is demoted once.
        const names = c.db.servers.map((s) => s.name);
        const to = names[(names.indexOf(old.node) + 1) % names.length]!;
        const askedAt = Date.now();
        await requestSwitchover(c, to);
        const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
        assert.equal(p.node, to);
        const newPort = c.server(to).port;
        const firstAck = await waitFor('a write through HAProxy on the new primary', async () => writer.firstAckOn(newPort, askedAt) ?? undefined, { timeoutMs: 15_000, intervalMs: 20 });
        await waitFor('50 more writes', async () => (writer.acks.filter((a) => a.at > firstAck).length >= 50 ? true : undefined), { timeoutMs: 10_000 });
        // The new primary is marked up after one check (rise 1), the old one down after two (fall 2):
        // the 50 writes can all reach the new one before the old one is marked down. Wait for that too.
        const down = await waitFor('HAProxy to mark the old primary down', async () => log.firstSeen(`${WRITE_LISTENER}/${old.node}`, false, askedAt) ?? undefined, { timeoutMs: 10_000, intervalMs: 20 });
        const refused = writer.refusedReadOnly(askedAt, firstAck);
        const lastAckOld = writer.acks.filter((a) => a.port === c.server(old.node).port).at(-1)?.at ?? askedAt;
        const window = refused.length > 0 ? `${refused[0]! - askedAt} to ${refused.at(-1)! - askedAt} ms` : 'none';
        totals.refused += refused.length;
        totals.unavailableMs += firstAck - lastAckOld;
        t.diagnostic(
          `switchover ${old.node} → ${to}: last write on ${old.node} at ${lastAckOld - askedAt} ms, ${refused.length} statements refused with 1290 (${window}), ` +
            `${old.node} marked down at ${down - askedAt} ms, ${to} ready at ${p.since - askedAt} ms and marked up at ${(log.firstSeen(`${WRITE_LISTENER}/${to}`, true, askedAt) ?? NaN) - askedAt} ms, ` +
            `first write on ${to} at ${firstAck - askedAt} ms; other errors: ${writer.errors.filter((e) => e.at >= askedAt && e.at <= firstAck && e.errno !== ER_READ_ONLY).length}`,
        );
        // A statement sent just before HAProxy cut the session answers just after; the log is read every 20 ms.
        assert.deepEqual(writer.refusedReadOnly(down + 200), [], 'no statement is refused with 1290 once HAProxy has marked the old primary down');
        assert.deepEqual(writer.acks.filter((a) => a.at > firstAck && a.port !== newPort), [], 'every later write went to the new primary');
      }
      t.diagnostic(`${rounds} switchovers: ${totals.refused} statements refused with 1290 in all (the writer retries 10 ms after an error); writes stopped for ${Math.round(totals.unavailableMs / rounds)} ms on average`);
    } finally {
      await writer.stop();
    }
  });

  test('a replica whose SQL thread stops while writes go on leaves the read port, and its open read session is cut', async (t) => {
    await c.settled(30_000);
    const p = (await c.primary())!;
    const lagging = c.db.servers.find((s) => s.name !== p.node)!;
    const other = c.db.servers.find((s) => s.name !== p.node && s !== lagging)!;
    await waitFor('both replicas in the read pool', async () => {
      const s = await h.states();
      return s.get(`${READ_LISTENER}/${lagging.name}`) && s.get(`${READ_LISTENER}/${other.name}`) ? true : undefined;
    }, { timeoutMs: 20_000 });
    // leastconn: of a few connections, some reach the replica we stop; keep one of them open.
    const conns: Connection[] = [];
    let held: Connection | null = null;
    for (let i = 0; i < 8 && held === null; i++) {
      const conn = await appConnection(h.readPort);
      conn.on('error', () => undefined);
      conns.push(conn);
      const [rows] = await conn.query('SELECT @@port AS port');
      if ((rows as Array<{ port: number }>)[0]!.port === lagging.port) held = conn;
    }
    for (const conn of conns) if (conn !== held) conn.destroy();
    assert.ok(held, `a read connection reached ${lagging.name}`);
    const writer = new PortWriter(h.writePort);
    try {
      const stoppedAt = Date.now();
      await lagging.query('STOP SLAVE SQL_THREAD');
      let cutAt: number | null = null;
      await waitFor(`the read session on ${lagging.name} to be cut`, async () => {
        try {
          await held!.query({ sql: 'SELECT 1', timeout: 2000 });
          return undefined;
        } catch {
          cutAt = Date.now();
          return true;
        }
      }, { timeoutMs: 15_000, intervalMs: 50 });
      const marked = log.firstSeen(`${READ_LISTENER}/${lagging.name}`, false, stoppedAt);
      const seen = log.changes.filter((ch) => ch.server === `${READ_LISTENER}/${lagging.name}` && ch.at >= stoppedAt).map((ch) => `${ch.up ? 'up' : 'down'} at ${ch.at - stoppedAt} ms`);
      assert.ok(marked !== null, `HAProxy marked ${lagging.name} down in the read pool`);
      t.diagnostic(`${lagging.name}'s SQL thread stopped: marked down after ${marked === null ? '?' : marked - stoppedAt} ms, its open read session cut after ${cutAt! - stoppedAt} ms; ${writer.acks.length} writes meanwhile (errors: ${writer.errorSummary()}); HAProxy's read pool saw ${lagging.name} ${seen.join(', ')}`);
      assert.ok(writer.acks.length > 0, 'writes went on');
      const landed = await Promise.all(Array.from({ length: 10 }, () => landsOn(h.readPort)));
      assert.deepEqual(landed, Array(10).fill(other.port), `new reads go to ${other.name} only`);
      await lagging.query('START SLAVE SQL_THREAD');
      await waitFor(`${lagging.name} back in the read pool`, async () => ((await h.states()).get(`${READ_LISTENER}/${lagging.name}`) ? true : undefined), { timeoutMs: 20_000 });
    } finally {
      held?.destroy();
      await writer.stop();
    }
  });

  test('kill -9 of the primary\'s mysqld: writes through HAProxy reach the new primary', async (t) => {
    const writer = new PortWriter(h.writePort);
    try {
      await waitFor('writes through HAProxy', async () => (writer.acks.length >= 20 ? true : undefined), { timeoutMs: 10_000 });
      const old = (await c.primary())!;
      const killedAt = Date.now();
      await c.server(old.node).kill();
      const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 20_000 });
      const newPort = c.server(p.node).port;
      const firstAck = await waitFor('a write through HAProxy on the new primary', async () => writer.firstAckOn(newPort, killedAt) ?? undefined, { timeoutMs: 15_000, intervalMs: 20 });
      const up = log.firstSeen(`${WRITE_LISTENER}/${p.node}`, true, killedAt);
      t.diagnostic(`kill -9 of ${old.node}: ${p.node} ready after ${p.since - killedAt} ms, marked up by HAProxy after ${up === null ? '?' : up - killedAt} ms, first write through HAProxy after ${firstAck - killedAt} ms`);
      assert.ok(firstAck - killedAt < 10_000, `the first write through HAProxy reached ${p.node} ${firstAck - killedAt} ms after the kill`);
      assert.deepEqual(writer.acks.filter((a) => a.at > firstAck && a.port !== newPort), [], 'every later write went to the new primary');
    } finally {
      await writer.stop();
    }
  });
});
