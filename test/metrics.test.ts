/**
 * The agents' /metrics against a real cluster (etcd and 3 MariaDB servers, issue 12): the agent's own
 * families, then the process's and Node's standard ones, all labelled with cluster and node; and the
 * example alert rules in deploy/prometheus, checked and unit-tested by Debian's promtool, naming only
 * metrics that a live agent serves.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { cleanupAll, sleep, startEtcd, waitFor, type EtcdCluster } from './harness/index.js';
import { startCluster, type TestCluster } from './support/cluster.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const ALERTS = 'deploy/prometheus/primacy-alerts.yaml';
const ALERT_TESTS = 'deploy/prometheus/primacy-alerts.test.yaml';

/** What operators alert on from any Node service: CPU, memory, file descriptors, event-loop delay, GC. */
const STANDARD = [
  'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total', 'process_start_time_seconds',
  'process_resident_memory_bytes', 'process_virtual_memory_bytes', 'process_heap_bytes', 'process_open_fds', 'process_max_fds',
  'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes', 'nodejs_gc_duration_seconds', 'nodejs_version_info',
];

let etcd: EtcdCluster;
let cluster: TestCluster;

before(async () => {
  etcd = await startEtcd({ members: 1 });
  cluster = await startCluster(etcd);
  await cluster.settled();
});

after(async () => {
  await cluster?.stop();
  await cleanupAll();
});

interface Scrape {
  readonly text: string;
  /** Family name → TYPE, in the order served. */
  readonly types: Map<string, string>;
  value(sample: string, labels?: Record<string, string>): number;
}

async function scrape(node: string): Promise<Scrape> {
  const response = await fetch(`${cluster.agents.get(node)!.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const));
  const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return {
    text,
    types,
    value(sample, labels = {}) {
      const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      const found = samples.filter((l) => l.startsWith(`${sample}{`) && wanted.every((w) => l.includes(w)));
      assert.equal(found.length, 1, `one sample ${sample} ${wanted.join(',')}`);
      return Number(found[0]!.slice(found[0]!.lastIndexOf(' ') + 1));
    },
  };
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  assert.ok(!r.error, `promtool runs (scripts/setup.sh installs Debian's prometheus): ${r.error?.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('an agent serves its own families, then the standard process and Node metrics, every series with cluster and node', async () => {
  const first = await scrape('db2');
  const names = [...first.types.keys()];
  const own = names.filter((n) => n.startsWith('primacy_'));
  assert.equal(own.length, 16, own.join(' '));
  assert.deepEqual(names.slice(0, own.length), own, "the agent's own families come first");
  for (const name of STANDARD) assert.ok(first.types.has(name), `${name} served`);
  assert.equal(first.types.get('nodejs_gc_duration_seconds'), 'histogram');
  assert.equal(first.types.get('process_cpu_seconds_total'), 'counter');
  for (const line of first.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
    assert.match(line, /\{(.*,)?cluster="c\d+"(,.*)?\}/, line);
    assert.match(line, /[{,]node="db2"[,}]/, line);
  }
  assert.equal(first.value('primacy_role', { role: 'replica' }), 1);
  assert.equal(first.value('nodejs_version_info', { version: process.version }), 1);
  const rss = first.value('process_resident_memory_bytes');
  assert.ok(rss > 20e6 && rss < 1e9, `resident memory ${rss} bytes`);
  assert.ok(first.value('process_cpu_seconds_total') > 0);

  // Event-loop delay is sampled from the first scrape on, every 100 ms (not prom-client's 10 ms):
  // Node records the whole interval between two samples, so no sample is under 0.1 s.
  await sleep(1000);
  const second = await scrape('db2');
  const min = second.value('nodejs_eventloop_lag_min_seconds');
  const max = second.value('nodejs_eventloop_lag_max_seconds');
  assert.ok(min > 0.09 && min <= max && Number.isFinite(max), `event-loop delay min ${min} s, max ${max} s`);
  // And GC pauses are observed. An idle agent may go minutes without one; scrapes allocate, so scrape until one.
  await waitFor('a GC pause counted', async () => {
    const s = await scrape('db2');
    const kinds = [...s.text.matchAll(/^nodejs_gc_duration_seconds_count\{[^}]*\bkind="(\w+)"/gm)].map((m) => m[1]!);
    return kinds.some((kind) => s.value('nodejs_gc_duration_seconds_count', { kind }) > 0) ? true : undefined;
  }, { timeoutMs: 60_000, intervalMs: 100 });
});

// prom-client's standard gauges of active handles, requests and resources end in _total; nothing else may lint.
const STANDARD_LINT = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

test('what the agents serve parses in promtool check metrics, and only prom-client\'s own names lint', async () => {
  for (const node of cluster.agents.keys()) {
    const { text } = await scrape(node);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 60_000 });
    assert.ok(!r.error, `promtool runs: ${r.error?.message}`);
    const findings = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
    assert.deepEqual(findings, STANDARD_LINT.map((name) => `${name} non-counter metrics should not have "_total" suffix`), node);
    assert.equal(r.status, 3, 'lint findings, not a parse error');
  }
});

test('the example alert rules pass promtool check and their unit tests', () => {
  const check = promtool('check', 'rules', ALERTS);
  assert.equal(check.status, 0, check.output);
  assert.match(check.output, /SUCCESS: 16 rules found/);
  const unit = promtool('test', 'rules', ALERT_TESTS);
  assert.equal(unit.status, 0, unit.output);
  assert.match(unit.output, /SUCCESS/);
});

test('every metric the alert rules and docs/operations.md name is served by a live agent', async () => {
  const served = new Set<string>();
  for (const node of cluster.agents.keys()) for (const name of (await scrape(node)).types.keys()) served.add(name);
  const family = (name: string): string => (served.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));

  const doc = parse(readFileSync(`${repoRoot}${ALERTS}`, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  const rules = doc.groups.flatMap((g) => g.rules);
  assert.equal(rules.length, 16);
  for (const rule of rules) {
    const named = [...rule.expr.matchAll(/\b(?:primacy|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]);
    assert.ok(named.length > 0 || /^up\{job="primacy-agent"\}/.test(rule.expr), `${rule.alert} names a metric: ${rule.expr}`);
    for (const name of named) assert.ok(served.has(family(name)), `${rule.alert}: ${name} is not served`);
  }

  const operations = readFileSync(`${repoRoot}docs/operations.md`, 'utf8');
  const section = operations.slice(operations.indexOf('## Metrics worth alerting on'), operations.indexOf('## Not built yet'));
  const documented = new Set([...section.matchAll(/\b(?:primacy|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]));
  for (const name of documented) assert.ok(served.has(family(name)), `docs/operations.md names ${name}, which is not served`);
  for (const name of served) if (name.startsWith('primacy_')) assert.ok(documented.has(name), `docs/operations.md does not name ${name}`);
});
