/**
 * `primacy sandbox`: the README's first command. `up` in a temp folder gives a 3-node cluster with a
 * ready primary that the application user can write to and replicas that refuse it; `kill db1` leads
 * to a failover; `down` (as a real process) leaves no process and no folder. Every wait is bounded,
 * and an `after()` runs `down` so that nothing survives a failed test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createConnection } from 'mysql2/promise';
import { createPool, watchPrimary } from '@primacy/client';
import { PrimarySchema, type Primary } from '@primacy/common';
import { runSandbox } from '../packages/cli/src/sandbox/index.js';
import { writeState } from '../packages/cli/src/sandbox/state.js';
import { ER_READ_ONLY, waitFor } from './harness/index.js';
import { TEMP_PREFIX } from './harness/processes.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

// Named like the harness's folders, with its owner file and pid list: if this process dies without
// its after(), the next test process that uses the harness kills what the sandbox left and removes it.
const root = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}sandbox-`));
const dir = join(root, 'sandbox');
writeFileSync(join(root, 'owner'), `${process.pid} ${procStartTime(process.pid) ?? ''}\n`);
writeFileSync(join(root, 'pids'), '');

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sandbox(...args: string[]): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await runSandbox(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    isTTY: false,
    env: process.env,
  });
  return { code, stdout, stderr };
}

interface ProcessEntry {
  pid: number | null;
  command?: { command: string; args: string[]; cwd: string };
}

/** Processes started by hand from a recorded command line, as an operator might: `down` must stop them too. */
const handStarted: number[] = [];

/** argv of a live process, from /proc. */
function argv(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
}

/** A node that is neither db1 nor the primary: killing its server or agent starts no failover. */
async function quietReplica(state: StateFile): Promise<StateFile['nodes'][number]> {
  const primary = await readPrimary(state.etcd.endpoint);
  const node = state.nodes.find((n) => n.name !== 'db1' && n.name !== primary?.node);
  assert.ok(node, `no replica other than db1 besides the primary ${primary?.node}`);
  return node;
}

interface StateFile {
  etcd: { endpoint: string; process: { pid: number | null } };
  nodes: Array<{ name: string; port: number; httpPort: number; mariadb: ProcessEntry; agent: ProcessEntry }>;
}

function readStateFile(): StateFile {
  return JSON.parse(readFileSync(join(dir, 'sandbox.json'), 'utf8')) as StateFile;
}

function recordedPids(state: StateFile): number[] {
  return [state.etcd.process.pid, ...state.nodes.flatMap((n) => [n.mariadb.pid, n.agent.pid])].filter((p): p is number => p !== null);
}

/** Alive and not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function readPrimary(endpoint: string): Promise<Primary | null> {
  const response = await fetch(`${endpoint}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from('/primacy/sandbox/primary').toString('base64') }),
    signal: AbortSignal.timeout(2_000),
  });
  const body = (await response.json()) as { kvs?: Array<{ value: string }> };
  const raw = body.kvs?.[0]?.value;
  return raw === undefined ? null : PrimarySchema.parse(JSON.parse(Buffer.from(raw, 'base64').toString('utf8')));
}

function appPassword(): string {
  return readFileSync(join(dir, 'app.password'), 'utf8').trim();
}

/** One statement as the application user; resolves to the error number, or 0 when it worked. */
async function asApp(port: number, sql: string): Promise<{ errno: number; rows: unknown }> {
  const connection = await createConnection({ host: '127.0.0.1', port, user: 'app', password: appPassword(), database: 'app', connectTimeout: 5_000 });
  connection.on('error', () => undefined);
  try {
    const [rows] = await connection.query({ sql, timeout: 5_000 });
    return { errno: 0, rows };
  } catch (error) {
    return { errno: (error as { errno?: number }).errno ?? -1, rows: null };
  } finally {
    connection.destroy();
  }
}

after(async () => {
  if (existsSync(join(dir, 'sandbox.json'))) {
    const state = readStateFile();
    const result = await sandbox('down', '--dir', dir);
    if (result.code !== 0) process.stderr.write(`sandbox test cleanup: ${result.stderr}`);
    // Last resort: whatever down could not stop.
    for (const pid of [...recordedPids(state), ...handStarted]) {
      if (!isRunning(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  rmSync(root, { recursive: true, force: true, maxRetries: 3 });
});

test('a bad flag or subcommand is exit 2 with one line on stderr, and starts nothing', async () => {
  for (const args of [['up', '--bogus'], ['up', '--nodes', '0'], ['up', '--base-port', 'x'], ['frobnicate'], ['kill'], []]) {
    const r = await sandbox(...args, '--dir', dir);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^primacy: [^\n]+\n$/, `${args.join(' ')} printed ${JSON.stringify(r.stderr)}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.equal(existsSync(dir), false);
  const help = await sandbox('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /primacy sandbox up/);
});

test('up on a sandbox that did not finish starting refuses, with one line, and starts nothing', async () => {
  // What an up that failed halfway leaves: etcd recorded, a server never started.
  const half = join(root, 'half');
  mkdirSync(half);
  const proc = (pid: number | null) => ({ pid, log: join(half, 'x.log') });
  const node = { name: 'db1', serverId: 1, port: 1, httpPort: 2, dir: half, dataDir: half, agentConfig: join(half, 'a.yaml'), mariadb: proc(null), agent: proc(null) };
  writeState({ version: 1, cluster: 'sandbox', dir: half, createdAt: new Date().toISOString(), semiSync: false, basePort: 1, etcd: { clientPort: 1, peerPort: 2, endpoint: 'http://127.0.0.1:1', dataDir: half, process: proc(process.pid) }, nodes: [node] });
  const r = await sandbox('up', '--dir', half);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^primacy: [^\n]+ holds a sandbox that did not finish starting; remove it with `[^`]+ sandbox down --dir [^`]+`, then run up again\n$/);
  assert.equal(r.stdout, '');
});

describe('a sandbox of 3 nodes', { timeout: 240_000 }, () => {
  test('up starts etcd, 3 servers and 3 agents in the background, and waits for a ready primary', { timeout: 90_000 }, async (t) => {
    const started = Date.now();
    const r = await sandbox('up', '--dir', dir);
    t.diagnostic(`up took ${Date.now() - started} ms`);
    assert.equal(r.code, 0, r.stderr);
    const state = readStateFile();
    writeFileSync(join(root, 'pids'), recordedPids(state).map((pid) => `${pid} sandbox`).join('\n'));
    assert.equal(state.nodes.length, 3);
    assert.equal(recordedPids(state).length, 7);
    for (const file of ['admin.password', 'repl.password', 'app.password']) {
      assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600, file);
    }
    for (const node of state.nodes) assert.ok(r.stdout.includes(`-P${node.port} -uapp`), `no connect line for ${node.name}:\n${r.stdout}`);
    assert.match(r.stdout, /PRIMACY_ETCD=http:\/\/127\.0\.0\.1:\d+ PRIMACY_CLUSTER=sandbox .* status --watch/);
    assert.match(r.stdout, /\/status .*\/primary .*\/metrics/);

    const primary = await readPrimary(state.etcd.endpoint);
    assert.equal(primary?.state, 'ready');
    assert.equal(primary?.node, 'db1');
    assert.equal(primary?.epoch, 1);
    const readOnly = await Promise.all(
      state.nodes.map(async (n) => ((await asApp(n.port, 'SELECT @@GLOBAL.read_only AS ro')).rows as Array<{ ro: number }>)[0]?.ro),
    );
    assert.deepEqual(readOnly, [0, 1, 1], 'exactly one writable node, the primary');
  });

  test('the application user writes on the primary and is refused (1290) on a replica', async () => {
    const state = readStateFile();
    const [db1, db2] = state.nodes;
    assert.ok(db1 && db2);
    assert.equal((await asApp(db1.port, 'CREATE TABLE t (id INT PRIMARY KEY)')).errno, 0);
    assert.equal((await asApp(db1.port, 'INSERT INTO t VALUES (1)')).errno, 0);
    assert.equal((await asApp(db2.port, 'INSERT INTO t VALUES (2)')).errno, ER_READ_ONLY);
    // The agents' admin user and the replication user are not the application's.
    assert.equal((await asApp(db1.port, 'SELECT 1 FROM mysql.user')).errno, 1142);
  });

  test("the README's @primacy/client example runs against the sandbox as the app user", { timeout: 60_000 }, async () => {
    const state = readStateFile();
    const db1 = state.nodes[0];
    assert.ok(db1);
    // The README's own code, with the sandbox's etcd, cluster and database in place of its examples.
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const block = /## Use it from an application\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'README.md has the client example');
    const code = block
      .replace(/^import .*\n/m, '')
      .replace(/\['http:\/\/10\.0\.0\.\d:2379'(, 'http:\/\/10\.0\.0\.\d:2379')*\]/g, JSON.stringify([state.etcd.endpoint]))
      .replaceAll("cluster: 'main'", "cluster: 'sandbox'")
      .replaceAll("database: 'shop'", "database: 'app'");
    assert.equal((await asApp(db1.port, 'CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10, 2))')).errno, 0);
    const logged: unknown[][] = [];
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<{ pool: { end(): Promise<void> }; watch: { close(): Promise<void> } }>;
    const example = new AsyncFunction('createPool', 'watchPrimary', 'process', 'console', 'id', 'total', `${code}\nreturn { pool, watch };`);
    const { pool, watch } = await example(createPool, watchPrimary, { env: { APP_PASSWORD: appPassword() } }, { log: (...args: unknown[]) => logged.push(args) }, 42, 9.5);
    try {
      await waitFor('the watch to report the primary', async () => (logged.length > 0 ? true : undefined), { timeoutMs: 10_000 });
      assert.deepEqual(logged[0], ['db1', 1, 'ready']);
      assert.deepEqual((await asApp(db1.port, 'SELECT id, total FROM orders')).rows, [{ id: 42, total: '9.50' }]);
    } finally {
      await pool.end();
      await watch.close();
    }
  });

  test('status reports every process alive and the cluster', async () => {
    const r = await sandbox('status', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split('\n').filter((line) => /^(etcd|db\d (mariadbd|agent)) /.test(line));
    assert.equal(rows.length, 7, r.stdout);
    for (const row of rows) assert.match(row, / alive /, row);
    assert.match(r.stdout, /primary\s+db1, epoch 1, ready/);
  });

  test('up on a running sandbox says so and changes nothing', async () => {
    const before = recordedPids(readStateFile());
    const r = await sandbox('up', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /already running/);
    assert.deepEqual(recordedPids(readStateFile()), before);
    for (const pid of before) assert.ok(isRunning(pid), `pid ${pid} stopped`);
  });

  test('kill db1 kills its server, and another node becomes the ready primary of epoch 2', { timeout: 60_000 }, async (t) => {
    const state = readStateFile();
    const db1 = state.nodes[0];
    assert.ok(db1?.mariadb.pid);
    const unknown = await sandbox('kill', 'db9', '--dir', dir);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^primacy: no node "db9"[^\n]*\n$/);

    const killedAt = Date.now();
    const r = await sandbox('kill', 'db1', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(isRunning(db1.mariadb.pid), false);
    const primary = await waitFor(
      'a new ready primary',
      async () => {
        const p = await readPrimary(state.etcd.endpoint).catch(() => null);
        return p !== null && p.state === 'ready' && p.epoch >= 2 ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    t.diagnostic(`failover to ${primary.node} ${Date.now() - killedAt} ms after the kill`);
    assert.notEqual(primary.node, 'db1');
    assert.equal(primary.epoch, 2);
    const promoted = state.nodes.find((n) => n.name === primary.node);
    assert.ok(promoted);
    await waitFor(
      `${primary.node} to take the application's writes`,
      async () => ((await asApp(promoted.port, 'INSERT INTO t VALUES (3)')).errno === 0 ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const status = await sandbox('status', '--dir', dir);
    assert.match(status.stdout, /^db1 mariadbd +\d+ +dead /m);
    assert.match(status.stdout, new RegExp(`primary\\s+${primary.node}, epoch 2`));
  });

  test('start db1 brings the killed server back with the command line of up; again, it has nothing to do', { timeout: 60_000 }, async () => {
    const killed = readStateFile().nodes[0];
    assert.ok(killed?.mariadb.pid && killed.mariadb.command);
    const r = await sandbox('start', 'db1', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Started db1's mariadbd \(pid \d+, port \d+\) with the command line of up/);
    const db1 = readStateFile().nodes[0];
    assert.ok(db1?.mariadb.pid && db1.mariadb.command);
    assert.notEqual(db1.mariadb.pid, killed.mariadb.pid);
    assert.deepEqual(argv(db1.mariadb.pid), [db1.mariadb.command.command, ...db1.mariadb.command.args]);
    assert.deepEqual(db1.mariadb.command, killed.mariadb.command);
    // Back read-only, as every server starts: the new primary keeps the writes.
    assert.equal(((await asApp(db1.port, 'SELECT @@GLOBAL.read_only AS ro')).rows as Array<{ ro: number }>)[0]?.ro, 1);
    const again = await sandbox('start', 'db1', '--dir', dir);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^db1's mariadbd is already running \(pid \d+\); nothing to start\.\n$/);
    const unknown = await sandbox('start', 'db9', '--dir', dir);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^primacy: no node "db9"[^\n]*\n$/);
  });

  test('kill --agent, then start --agent, brings the agent back the same way', { timeout: 60_000 }, async () => {
    const node = await quietReplica(readStateFile());
    const killed = await sandbox('kill', node.name, '--agent', '--dir', dir);
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(killed.stdout, new RegExp(`sandbox start ${node.name} --agent`));
    const r = await sandbox('start', node.name, '--agent', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Started ${node.name}'s agent \\(pid \\d+, HTTP on port ${node.httpPort}\\)`));
    const agent = readStateFile().nodes.find((n) => n.name === node.name)?.agent;
    assert.ok(agent?.pid && agent.command);
    assert.notEqual(agent.pid, node.agent.pid);
    assert.deepEqual(argv(agent.pid), [agent.command.command, ...agent.command.args]);
  });

  test('a server restarted by hand: start records it instead of starting a second; down stops one nobody recorded', { timeout: 60_000 }, async () => {
    const state = readStateFile();
    const byHand = (entry: ProcessEntry): number => {
      assert.ok(entry.command);
      const child = spawn(entry.command.command, entry.command.args, { cwd: entry.command.cwd, detached: true, stdio: 'ignore' });
      child.unref();
      assert.ok(child.pid);
      handStarted.push(child.pid);
      writeFileSync(join(root, 'pids'), `${readFileSync(join(root, 'pids'), 'utf8')}\n${child.pid} sandbox`);
      return child.pid;
    };
    // db1's server, killed and started again by hand: start adopts it.
    assert.equal((await sandbox('kill', 'db1', '--dir', dir)).code, 0);
    const adopted = byHand(state.nodes[0]!.mariadb);
    const db1Port = state.nodes[0]!.port;
    await waitFor('the hand-started db1 to answer', async () => ((await asApp(db1Port, 'SELECT 1')).errno === 0 ? true : undefined), { timeoutMs: 30_000 });
    const r = await sandbox('start', 'db1', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^db1's mariadbd is already running \\(pid ${adopted}, started by hand\\); recorded it`));
    assert.equal(readStateFile().nodes[0]?.mariadb.pid, adopted);
    // A quiet replica's server, killed and started again by hand, left unrecorded: down must find it.
    const node = await quietReplica(state);
    assert.equal((await sandbox('kill', node.name, '--dir', dir)).code, 0);
    byHand(node.mariadb);
    await waitFor(`the hand-started ${node.name} to answer`, async () => ((await asApp(node.port, 'SELECT 1')).errno === 0 ? true : undefined), { timeoutMs: 30_000 });
    const status = await sandbox('status', '--dir', dir);
    assert.match(status.stdout, new RegExp(`^${node.name} mariadbd +\\d+ +dead `, 'm'));
  });

  test('down, as a real process, stops every recorded process and removes the folder; again, it has nothing to do', { timeout: 90_000 }, async (t) => {
    const pids = recordedPids(readStateFile());
    const started = Date.now();
    const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--conditions=@primacy/source', '--import', 'tsx', join(repoRoot, 'packages/cli/src/main.ts'), 'sandbox', 'down', '--dir', dir],
        { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`sandbox down did not finish within 60 s: ${output}`));
      }, 60_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
    t.diagnostic(`down took ${Date.now() - started} ms (with the CLI's start-up)`);
    assert.equal(result.code, 0, result.output);
    // The exited children of this process are reaped as the event loop turns.
    await waitFor('every recorded pid to be gone', async () => (pids.every((pid) => !isRunning(pid)) ? true : undefined), { timeoutMs: 5_000 });
    assert.ok(handStarted.length > 0);
    await waitFor('the server started by hand to be gone', async () => (handStarted.every((pid) => !isRunning(pid)) ? true : undefined), { timeoutMs: 5_000 });
    assert.equal(existsSync(dir), false);

    const again = await sandbox('down', '--dir', dir);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to stop/);
    const status = await sandbox('status', '--dir', dir);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /^primacy: no sandbox in [^\n]+\n$/);
  });
});
