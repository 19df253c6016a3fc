import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runRejoinScript, type RejoinScript } from './script.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'primacy-script-test-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

const base = (command: string, timeoutMs = 10_000): RejoinScript => ({
  command,
  cluster: 'main',
  node: { name: 'db1', host: '127.0.0.1', port: 3307 },
  primary: { name: 'db2', host: '127.0.0.2', port: 3308 },
  timeoutMs,
  salvageFolder: '/var/lib/primacy/crash/db1-x',
});

test('a script that succeeds gets the node and the new primary as arguments and environment', async () => {
  const path = await script('ok.sh', 'echo "args $1 $2"; echo "node $PRIMACY_NODE_HOST:$PRIMACY_NODE_PORT primary $PRIMACY_PRIMARY $PRIMACY_PRIMARY_HOST:$PRIMACY_PRIMARY_PORT"; echo "cluster $PRIMACY_CLUSTER salvage $PRIMACY_SALVAGE_DIR" >&2');
  const run = await runRejoinScript(base(path));
  assert.equal(run.ok, true);
  assert.equal(run.outcome, 'exit 0');
  assert.equal(run.exitCode, 0);
  assert.match(run.tail, /args db1 db2/);
  assert.match(run.tail, /node 127\.0\.0\.1:3307 primary db2 127\.0\.0\.2:3308/);
  assert.match(run.tail, /cluster main salvage \/var\/lib\/primacy\/crash\/db1-x/);
});

test('a script that fails says so with its exit status and the tail of its output', async () => {
  const lines = Array.from({ length: 50 }, (_, i) => `echo line${i}`).join('\n');
  const path = await script('fail.sh', `${lines}\necho "cannot restore: disk full" >&2\nexit 3`);
  const run = await runRejoinScript(base(path));
  assert.equal(run.ok, false);
  assert.equal(run.outcome, 'exit 3');
  assert.equal(run.exitCode, 3);
  assert.match(run.tail, /cannot restore: disk full$/);
  assert.doesNotMatch(run.tail, /line0 /, 'only the tail is kept');
});

test('a script that hangs is killed at its bound, with everything it started', async () => {
  const pidFile = join(dir, 'child.pid');
  const path = await script('hang.sh', `sleep 60 &\necho $! > ${pidFile}\necho started\nwait`);
  const started = performance.now();
  const run = await runRejoinScript(base(path, 500));
  const ms = performance.now() - started;
  assert.equal(run.ok, false);
  assert.equal(run.timedOut, true);
  assert.equal(run.outcome, 'killed after 500 ms');
  assert.match(run.tail, /started/);
  assert.ok(ms < 5_000, `returned after ${ms} ms`);
  const child = Number((await readFile(pidFile, 'utf8')).trim());
  // The whole process group went: the script's own child does not outlive it.
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    try {
      process.kill(child, 0);
      // A killed child whose reaper is slow is a zombie: gone, only not yet collected.
      const stat = await readFile(`/proc/${child}/stat`, 'utf8').catch(() => '');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) alive = false;
      else await new Promise((r) => setTimeout(r, 20));
    } catch {
      alive = false;
    }
  }
  assert.equal(alive, false, `the script's child ${child} survived`);
});

test('a command that does not exist fails like any other', async () => {
  const run = await runRejoinScript(base(join(dir, 'missing.sh')));
  assert.equal(run.ok, false);
  assert.equal(run.outcome, 'exit 127');
  assert.match(run.tail, /not found/);
});
