/**
 * A MariaDB fact that the freeze benchmark ran into, shown on its own (no agents, no etcd):
 * under strict semi-sync (timeout 2^32-1 ms, wait_no_slave ON) with no replica receiving, a commit
 * waits for an acknowledgement that never comes, and then
 *   - KILL QUERY of the waiting session: that client gets OK;
 *   - SET GLOBAL rpl_semi_sync_master_enabled = OFF: every waiting client gets OK;
 *   - KILL CONNECTION of the session that leads a binlog group commit: the other sessions of the same
 *     group, not killed, get OK.
 * Each OK is a write acknowledged that no replica has. Prints one line per case.
 *
 *   node --conditions=@primacy/source --import tsx bench/semisync-kill.ts [--rounds N]
 */
import type { Connection } from 'mysql2/promise';
import { APP, cleanupAll, sleep, startMariaDb, type MariaDbServer } from '../test/harness/index.js';
import { intFlag, parseFlags, progress } from './lib/options.js';

const USAGE = 'usage: node --conditions=@primacy/source --import tsx bench/semisync-kill.ts [--rounds N]';

type Outcome = 'OK' | 'waiting' | string;

async function insert(c: Connection, id: number): Promise<Outcome> {
  return c.query({ sql: 'INSERT INTO app.t (id) VALUES (?)', timeout: 10_000 }, [id]).then(
    () => 'OK',
    (e: unknown) => `error ${(e as { code?: string }).code ?? String(e)}`,
  );
}

function settle(p: Promise<Outcome>, ms: number): Promise<Outcome> {
  return Promise.race([p, sleep(ms).then(() => 'waiting')]);
}

async function main(): Promise<void> {
  const flags = parseFlags(USAGE, { rounds: { type: 'string' } });
  const rounds = intFlag(flags, 'rounds', 4, 1, 50);
  const db = await startMariaDb({ count: 2, primary: 0, semiSync: true });
  const [p, r] = db.servers as [MariaDbServer, MariaDbServer];
  await r.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
  await p.query('SET GLOBAL rpl_semi_sync_master_timeout = 4294967295');
  await p.query('SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON');
  await p.query('SET GLOBAL read_only = OFF');
  await p.query('CREATE TABLE app.t (id INT PRIMARY KEY)');
  // The revoke: the only replica stops receiving.
  await r.query('STOP SLAVE IO_THREAD');
  await sleep(300);
  const admin = await p.connect();
  let id = 1;
  const open = async () => {
    const c = await p.connect(APP);
    return { c, thread: c.threadId };
  };

  const a = await open();
  const ra = insert(a.c, id++);
  await sleep(300);
  const before = await settle(ra, 10);
  await admin.query('KILL QUERY ?', [a.thread]);
  progress(`KILL QUERY of a session waiting for the ack (it was ${before}): its client got ${await settle(ra, 1500)}`);
  a.c.destroy();

  const b = await open();
  const rb = insert(b.c, id++);
  await sleep(300);
  await p.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
  progress(`rpl_semi_sync_master_enabled = OFF with a session waiting: its client got ${await settle(rb, 1500)}`);
  await p.query('SET GLOBAL rpl_semi_sync_master_enabled = ON');
  b.c.destroy();

  // Two commits in one group (the server waits up to 0.5 s for a second one), then the first one's session is killed.
  await p.query('SET GLOBAL binlog_commit_wait_count = 2');
  await p.query('SET GLOBAL binlog_commit_wait_usec = 500000');
  for (let i = 1; i <= rounds; i++) {
    const x = await open();
    const y = await open();
    const rx = insert(x.c, id++);
    await sleep(20);
    const ry = insert(y.c, id++);
    await sleep(600);
    const pending = `${await settle(rx, 5)} / ${await settle(ry, 5)}`;
    await admin.query('KILL CONNECTION ?', [x.thread]);
    progress(`round ${i}: two commits waiting (${pending}); KILL CONNECTION of the first: it got ${await settle(rx, 1500)}, the other (not killed) got ${await settle(ry, 1500)}`);
    x.c.destroy();
    y.c.destroy();
  }
  const [status] = await p.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_no_tx'");
  progress(`Rpl_semi_sync_master_no_tx (commits that got no acknowledgement) = ${status?.Value}`);
  admin.destroy();
  await db.stop();
}

main().then(
  async () => {
    await cleanupAll();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
export {};
