/**
 * `bash scripts/install.sh --prefix DIR` (issue 12, "Install"): `primacy` and `primacy-agent` land in
 * DIR/bin and work from there, away from the repository: versions, help, a bad config's one-line
 * error, and the installed agent, run with the systemd unit's node flags, leading a real MariaDB
 * server through a real etcd while the installed CLI reads the cluster.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { cleanupAll, freePort, startEtcd, startMariaDb, waitFor, WaitAborted, type EtcdCluster, type MariaDbCluster } from './harness/index.js';
import { harnessDir, spawnManaged } from './harness/processes.js';
import { agentConfig } from './support/agents.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const version = (pkg: string): string => (JSON.parse(readFileSync(join(repoRoot, 'packages', pkg, 'package.json'), 'utf8')) as { version: string }).version;
/** deploy/primacy-agent.service runs the agent with these. */
const UNIT_NODE_FLAGS = ['--lite-mode', '--no-expose-wasm', '--single-threaded-gc'];

let prefix: string;
let bin: string;
let work: string;
let installOutput: string;

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  // From a folder outside the repository, with nothing of the workspace to lean on.
  const r = spawnSync(command, args, { cwd: work, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, HOME: work, ...env } });
  assert.ok(!r.error, `${command} runs: ${r.error?.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  prefix = mkdtempSync(join(tmpdir(), 'primacy-install-'));
  work = mkdtempSync(join(tmpdir(), 'primacy-install-cwd-'));
  bin = join(prefix, 'bin');
  const r = spawnSync('bash', ['scripts/install.sh', '--prefix', prefix], { cwd: repoRoot, encoding: 'utf8', timeout: 300_000 });
  installOutput = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, installOutput);
});

after(async () => {
  await cleanupAll();
  rmSync(prefix, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test('the install puts both programs in the prefix\'s bin and says where', () => {
  assert.deepEqual(readdirSync(bin).sort(), ['primacy', 'primacy-agent']);
  assert.match(installOutput, new RegExp(`installed primacy ${version('cli')} and primacy-agent ${version('agent')} in ${bin}`));
  // Self-contained: nothing in the installed files points back into this checkout.
  const installed = join(prefix, 'lib/node_modules/@primacy');
  for (const pkg of ['cli', 'agent']) {
    for (const file of readdirSync(join(installed, pkg, 'dist'))) {
      assert.ok(!readFileSync(join(installed, pkg, 'dist', file), 'utf8').includes(repoRoot), `${pkg}/dist/${file} names the checkout`);
    }
  }
});

test('primacy --version and --help, and primacy-agent --version, from the installed bin', () => {
  const v = run(join(bin, 'primacy'), ['--version']);
  assert.deepEqual([v.status, v.stdout, v.stderr], [0, `${version('cli')}\n`, '']);
  const h = run(join(bin, 'primacy'), ['--help']);
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /^usage: primacy COMMAND/);
  assert.match(h.stdout, /\bstatus\b/);
  const a = run(join(bin, 'primacy-agent'), ['--version']);
  assert.deepEqual([a.status, a.stdout, a.stderr], [0, `${version('agent')}\n`, '']);
});

test('bad input to the installed programs gets one line and exit code 2, never a stack trace', () => {
  writeFileSync(join(work, 'bad.yaml'), 'cluster: main\nnode: db1\netcd: { endpoints: [] }\n');
  writeFileSync(join(work, 'broken.yaml'), 'cluster: [\n');
  const cases: Array<[string, string[], RegExp]> = [
    ['primacy-agent', ['--config', 'bad.yaml'], /^primacy-agent: PRIMACY_E_CONFIG_\w+: bad\.yaml: /],
    ['primacy-agent', ['--config', 'broken.yaml'], /^primacy-agent: PRIMACY_E_CONFIG_\w+: broken\.yaml: not valid YAML/],
    ['primacy-agent', ['--config', 'missing.yaml'], /^primacy-agent: PRIMACY_E_CONFIG_\w+: .*missing\.yaml/],
    ['primacy-agent', ['--bogus'], /^primacy-agent: .*--bogus.*; usage: primacy-agent --config FILE$/],
    ['primacy', ['--bogus'], /^primacy: .*--bogus/],
    // The sandbox runs a checkout's agent; an install has none, and says so before it starts anything.
    ['primacy', ['sandbox', 'up', '--dir', 'sb'], /^primacy: sandbox runs from a checkout of the Primacy repository: run `npm run sandbox` there$/],
  ];
  for (const [program, args, line] of cases) {
    const r = run(join(bin, program), args);
    assert.equal(r.status, 2, `${program} ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr.trimEnd(), line);
    assert.doesNotMatch(r.stderr, /\bat .+:\d+:\d+|node_modules/);
  }
});

test('the installed agent, with the unit\'s node flags, leads a real server, and the installed primacy reads it', async () => {
  let etcd: EtcdCluster;
  let db: MariaDbCluster;
  [etcd, db] = await Promise.all([startEtcd({ members: 1 }), startMariaDb({ count: 1, primary: null })]);
  const server = db.servers[0]!;
  const dir = await harnessDir('installed-agent');
  const httpPort = await freePort();
  const config = agentConfig({ cluster: 'inst', node: server.name, etcd: etcd.endpoints, db: server, config: { bootstrap: { primary: server.name }, log: { level: 'info' } } }, dir, httpPort);
  writeFileSync(join(dir, 'agent.yaml'), stringify(config));
  const logFile = join(dir, 'agent.log');
  const agent = await spawnManaged({ name: 'installed-agent', command: process.execPath, args: [...UNIT_NODE_FLAGS, join(bin, 'primacy-agent'), '--config', 'agent.yaml'], logFile, cwd: dir, env: { PATH: process.env.PATH } });
  const url = `http://127.0.0.1:${httpPort}`;
  await waitFor('the installed agent to serve a ready primary', async () => {
    if (!agent.isRunning()) throw new WaitAborted(`the installed agent exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    return fetch(`${url}/primary`).then((r) => (r.status === 200 ? true : undefined), () => undefined);
  }, { timeoutMs: 30_000 });
  assert.equal((await server.query<{ ro: number }>('SELECT @@global.read_only AS ro'))[0]?.ro, 0, 'its agent made it writable');

  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^primacy_role\{role="primary",cluster="inst",node="db1"\} 1$/m);
  assert.match(metrics, /^process_resident_memory_bytes\{cluster="inst",node="db1"\} \d+$/m);

  const status = run(join(bin, 'primacy'), ['status', '--json'], { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_CLUSTER: 'inst' });
  assert.equal(status.status, 0, status.stderr);
  const doc = JSON.parse(status.stdout) as { primary?: { node?: string; state?: string } };
  assert.deepEqual([doc.primary?.node, doc.primary?.state], ['db1', 'ready']);

  await agent.terminate(15_000);
  await Promise.all([db.stop(), etcd.stop()]);
});
