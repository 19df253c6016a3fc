/// <reference lib="dom" />
// The page functions that playwright runs in the browser use its globals (document, window).
/**
 * `primacy web` against a live cluster (3 MariaDB servers, 3 real agents, etcd), its page in Debian's
 * headless Chromium through playwright-core: the page follows a kill -9 of the primary's mysqld
 * within a second of etcd's primary key, is read-only without --allow-actions (no buttons, and the
 * POST endpoints answer 403), and its buttons switch over, pause and resume with it. Bad input is one
 * line with the CLI's exit codes.
 *
 * PRIMACY_WEB_SCREENSHOT=docs/web-view.png also saves a screenshot of the page at the end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ClusterConfigSchema, clusterKeys } from '@primacy/common';
import { cleanupAll, harnessDir, logTail, onCleanup, spawnManaged, startEtcd, WaitAborted, waitFor, type EtcdCluster, type ManagedProcess } from './harness/index.js';
import { startCluster, type TestCluster } from './support/cluster.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cliMain = join(repoRoot, 'packages/cli/src/main.ts');
const CHROMIUM = '/usr/bin/chromium';
/** Required on this machine: no sandbox as root, no GPU, and nothing that reaches out to the network. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let etcd: EtcdCluster;
let c: TestCluster;
let browser: BrowserContext;
/** `primacy web --cluster <c>`: read-only. */
let ro: Web;
/** `primacy web --allow-actions`: every cluster under the root, with buttons. */
let rw: Web;

interface Web {
  readonly url: string;
  readonly process: ManagedProcess;
}

async function startWeb(args: string[]): Promise<Web> {
  const logFile = join(await harnessDir('web'), 'web.log');
  const proc = await spawnManaged({
    name: `primacy web ${args.join(' ')}`,
    command: process.execPath,
    args: ['--conditions=@primacy/source', '--import', 'tsx', cliMain, 'web', '--port', '0', ...args],
    logFile,
    cwd: repoRoot,
    env: { ...process.env, PRIMACY_ETCD: etcd.endpoints.join(','), NO_COLOR: '1' },
  });
  const url = await waitFor(
    'primacy web to serve',
    () => {
      if (!proc.isRunning()) throw new WaitAborted(`primacy web exited: ${logTail(logFile)}`);
      return /serving .* at (http:\/\/\S+) /.exec(readFileSync(logFile, 'utf8'))?.[1];
    },
    { timeoutMs: 30_000 },
  );
  return { url, process: proc };
}

interface Run {
  readonly code: number;
  readonly err: string;
}

function cliProcess(argv: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=@primacy/source', '--import', 'tsx', cliMain, ...argv],
      { cwd: repoRoot, env: { ...process.env, PRIMACY_ETCD: etcd.endpoints.join(','), NO_COLOR: '1' }, timeout: 30_000 },
      (error, _stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, err: stderr }),
    );
  });
}

/** A POST as any client may send it, headers included (fetch would not send Origin). */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; json: { ok: boolean; error?: string; message?: string } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'Content-Length': Buffer.byteLength(body), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`POST ${url} took over 10 s`)));
    req.end(body);
  });
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

async function requestKeys(): Promise<string[]> {
  return Object.keys(await c.etcd.getAll().prefix(c.keys.requestsPrefix).strings());
}

async function paused(): Promise<boolean> {
  const raw = await c.etcd.get(c.keys.config).string();
  return ClusterConfigSchema.parse(raw === null ? {} : JSON.parse(raw)).paused;
}

async function openPage(url: string): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(url);
  return page;
}

function section(page: Page, cluster: string) {
  return page.locator(`section.cluster[data-cluster="${cluster}"]`);
}

/** Waits until the page names `node` the ready primary of an epoch after `after`. */
async function pageShowsPrimary(page: Page, cluster: string, node: string, after = 0): Promise<void> {
  await page.waitForFunction(
    ([cl, n, e]) => {
      const p = document.querySelector(`section.cluster[data-cluster="${cl}"] .primary`);
      return p?.getAttribute('data-node') === n && p.getAttribute('data-state') === 'ready' && Number(p.getAttribute('data-epoch')) > Number(e);
    },
    [cluster, node, String(after)] as const,
    { timeout: 15_000 },
  );
}

before(async () => {
  etcd = await startEtcd({ members: 1 });
  c = await startCluster(etcd);
  const userDataDir = await harnessDir('chromium');
  [ro, rw, browser] = await Promise.all([
    startWeb(['--cluster', c.name]),
    startWeb(['--allow-actions']),
    chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1360, height: 1100 } }),
  ]);
  onCleanup(() => browser.close());
  await c.settled();
});

after(async () => {
  await browser?.close();
  await c?.stop();
  await cleanupAll();
});

describe('primacy web', () => {
  test('read-only: the tree with roles and GTID positions, the history; no buttons, and every action answers 403', async () => {
    const p = (await c.primary())!;
    const page = await openPage(ro.url);
    await pageShowsPrimary(page, c.name, p.node);
    const s = section(page, c.name);
    // The primary at the root of the tree, each replica under it, with the executed position its agent published.
    assert.equal(await s.locator('ul.tree > li > .node').getAttribute('data-node'), p.node);
    const replicas = await s.locator('ul.tree > li > ul > li > .node').evaluateAll((ns) => ns.map((n) => [n.getAttribute('data-node'), n.getAttribute('data-role'), n.getAttribute('data-state')]));
    assert.deepEqual(replicas.sort(), ['db1', 'db2', 'db3'].filter((n) => n !== p.node).map((n) => [n, 'replica', 'ok']));
    const member = (await c.member(p.node))!;
    assert.ok(member.server?.gtid.executed, 'the primary published a GTID position');
    await page.waitForFunction(([n, g]) => document.querySelector(`.node[data-node="${n}"] .gtid`)?.textContent?.includes(g), [p.node, member.server!.gtid.executed] as const);
    assert.equal(await s.locator('details.op[data-epoch="1"] summary').count(), 1, 'the bootstrap is in the history');
    assert.match((await s.locator('details.op[data-epoch="1"] pre.explain').textContent()) ?? '', /^epoch 1: bootstrap/);
    assert.equal(await page.locator('button').count(), 0, 'no buttons without --allow-actions');
    for (const action of ['switchover', 'pause', 'resume']) {
      const r = await post(new URL(`api/clusters/${c.name}/${action}`, ro.url).href, JSON_HEADERS, '{}');
      assert.equal(r.status, 403, action);
      assert.match(r.json.error ?? '', /--allow-actions/);
    }
    assert.deepEqual(await requestKeys(), [], 'nothing was requested');
    assert.equal(await paused(), false);
    await page.close();
  });

  test("kill -9 of the primary's mysqld: the page shows the new primary within 1 s of the primary key turning ready", async (t) => {
    const old = (await c.primary())!;
    const page = await openPage(ro.url);
    await pageShowsPrimary(page, c.name, old.node);
    // The moment the page first names a ready primary of a later epoch, on the page's own clock (this machine's).
    // (No named function inside: tsx would wrap it in a helper the page does not have.)
    await page.evaluate(([cl, epoch]) => {
      new MutationObserver(() => {
        const w = window as unknown as { shown?: { at: number; node: string } };
        const p = document.querySelector(`section.cluster[data-cluster="${cl}"] .primary`);
        if (!w.shown && p?.getAttribute('data-state') === 'ready' && Number(p.getAttribute('data-epoch')) > epoch) w.shown = { at: Date.now(), node: p.getAttribute('data-node') ?? '' };
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, [c.name, old.epoch] as const);
    // When etcd's primary key turned ready for the new epoch: after its `since` (the coordinator's
    // clock, this machine's, just before its write) and before this test's watch saw it.
    let readyAt: { at: number; since: number; node: string } | null = null;
    const watcher = await c.etcd.watch().key(c.keys.primary).create();
    watcher.on('put', (kv) => {
      const v = JSON.parse(kv.value.toString()) as { node: string; epoch: number; state: string; since: number };
      if (readyAt === null && v.state === 'ready' && v.epoch > old.epoch) readyAt = { at: Date.now(), since: v.since, node: v.node };
    });
    try {
      await c.server(old.node).kill();
      const p = await c.readyPrimary({ after: old.epoch });
      const keyAt = await waitFor('the watch to see the ready primary', () => readyAt ?? undefined);
      const shown = await waitFor('the page to show it', () => page.evaluate(() => (window as unknown as { shown?: { at: number; node: string } }).shown));
      // At most this long after the key changed, and at least the second figure (negative: the page
      // was told before this busy test process).
      const delay = shown.at - keyAt.since;
      t.diagnostic(`page showed ${shown.node} (epoch ${p.epoch}) at most ${delay} ms after the primary key turned ready (${shown.at - keyAt.at} ms after this test's watch saw it)`);
      assert.equal(shown.node, p.node);
      assert.equal(keyAt.node, p.node);
      assert.ok(delay < 1000, `the page showed the new primary ${delay} ms after the key turned ready`);
      // The failover itself, step by step, and the old primary marked.
      const op = section(page, c.name).locator(`.current-op[data-epoch="${p.epoch}"]`);
      await op.waitFor();
      await page.waitForFunction((e) => document.querySelector(`.current-op[data-epoch="${e}"]`)?.getAttribute('data-outcome') === 'done', p.epoch);
      const steps = await op.locator('tr[data-step]').evaluateAll((rs) => rs.map((r) => [r.getAttribute('data-step'), r.getAttribute('data-outcome')]));
      const record = (await c.op(p.epoch))!;
      assert.deepEqual(steps, record.steps.map((s) => [s.name, s.outcome]));
      const oldState = await page.locator(`.node[data-node="${old.node}"]`).first().getAttribute('data-state');
      assert.ok(oldState === 'down' || oldState === 'gone', `the old primary shows ${oldState}`);
    } finally {
      await watcher.cancel();
      await page.close();
    }
    // Back for the switchover below: the old primary rejoins as a replica.
    await c.server(old.node).start();
    await c.settled(30_000);
  });

  test('every cluster under the root: a new one appears without a reload, its running steps, a diverged node and a refusal highlighted', async () => {
    const page = await openPage(rw.url);
    await pageShowsPrimary(page, c.name, (await c.primary())!.node);
    // A second cluster written by hand: a primary, a diverged member, and an operation that goes on.
    const k = clusterKeys('web-synth');
    const [p, m, bootstrap] = [(await c.primary())!, (await c.member((await c.primary())!.node))!, (await c.op(1))!];
    const running = { ...bootstrap, epoch: 2, kind: 'failover', from: 's1', to: null, trigger: 'automatic', outcome: 'running', endedAt: null, reason: 's1 is down', candidates: [], steps: [{ name: 'detect', startedAt: Date.now(), endedAt: null, outcome: 'running', detail: 's1 seems down' }] };
    await c.etcd.put(k.member('s1')).value(JSON.stringify({ ...m, cluster: 'web-synth', node: 's1', role: 'primary' }));
    await c.etcd.put(k.member('s2')).value(JSON.stringify({ ...m, cluster: 'web-synth', node: 's2', port: m.port + 1000, role: 'diverged', errant: '0-9-1', server: { ...m.server, readOnly: true, replication: null } }));
    await c.etcd.put(k.primary).value(JSON.stringify({ ...p, node: 's1' }));
    await c.etcd.put(k.op(2)).value(JSON.stringify(running));
    try {
      const s = section(page, 'web-synth');
      await s.locator('.current-op[data-outcome="running"] tr[data-step="detect"][data-outcome="running"]').waitFor();
      const diverged = s.locator('.node[data-node="s2"]');
      assert.equal(await diverged.getAttribute('data-state'), 'diverged');
      assert.match((await diverged.getAttribute('class')) ?? '', /state-diverged/);
      assert.match((await diverged.locator('.note').textContent()) ?? '', /diverged: errant transactions 0-9-1/);
      // The next step, as the coordinator would record it.
      const t1 = Date.now();
      await c.etcd.put(k.op(2)).value(JSON.stringify({ ...running, steps: [{ ...running.steps[0], endedAt: t1, outcome: 'ok' }, { name: 'fence', startedAt: t1, endedAt: null, outcome: 'running', detail: 'waiting for a proof' }] }));
      await s.locator('.current-op tr[data-step="fence"][data-outcome="running"]').waitFor();
      assert.equal(await s.locator('.current-op tr[data-step="detect"]').getAttribute('data-outcome'), 'ok');
      await c.etcd.put(k.op(2)).value(JSON.stringify({ ...running, outcome: 'refused', endedAt: t1, reason: 'paused: no automatic failover', steps: [] }));
      await s.locator('.banner.refusal').waitFor();
      assert.match((await s.locator('.banner.refusal').textContent()) ?? '', /epoch 2 failover refused: paused/);
      assert.equal(await s.locator('details.op.outcome-refused[data-epoch="2"]').count(), 1);
      // Buttons for each cluster with --allow-actions.
      assert.equal(await s.locator('button.switchover').count(), 1);
    } finally {
      await c.etcd.delete().prefix(k.prefix);
    }
    await section(page, 'web-synth').waitFor({ state: 'detached' });
    await page.close();
  });

  test('--allow-actions: pause and resume write the config, the switchover button moves the primary; foreign requests are refused', async (t) => {
    const old = (await c.primary())!;
    const page = await openPage(rw.url);
    await pageShowsPrimary(page, c.name, old.node);
    const s = section(page, c.name);
    // Another site's page may not act: no JSON body, or a foreign Origin.
    const action = new URL(`api/clusters/${c.name}/pause`, rw.url).href;
    assert.equal((await post(action, { 'Content-Type': 'text/plain' }, '{}')).status, 415);
    assert.equal((await post(action, { ...JSON_HEADERS, Origin: 'http://127.0.0.2:8000' }, '{}')).status, 403);
    assert.equal((await post(new URL('api/clusters/nosuch/pause', rw.url).href, JSON_HEADERS, '{}')).status, 404);
    assert.equal(await paused(), false);

    await s.locator('button.pause').click();
    await s.locator('.action-result.ok', { hasText: `paused ${c.name}` }).waitFor();
    assert.equal(await paused(), true);
    await s.locator('button.resume').click();
    await s.locator('.action-result.ok', { hasText: `resumed ${c.name}` }).waitFor();
    assert.equal(await paused(), false);

    const to = ['db1', 'db2', 'db3'].find((n) => n !== old.node)!;
    await s.locator('select.switchover-to').selectOption(to);
    // The page asks first, as the CLI does on a terminal.
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.message());
      void d.accept();
    });
    const clickedAt = Date.now();
    await s.locator('button.switchover').click();
    await s.locator('.action-result.ok', { hasText: 'requested switchover' }).waitFor();
    assert.deepEqual(asked, [`Switch ${c.name} over from ${old.node} to ${to}?`]);
    const p = await c.readyPrimary({ after: old.epoch, timeoutMs: 30_000 });
    assert.equal(p.node, to);
    await pageShowsPrimary(page, c.name, to, old.epoch);
    t.diagnostic(`switchover ${old.node} → ${to} shown on the page ${Date.now() - clickedAt} ms after the click`);
    const record = (await c.op(p.epoch))!;
    assert.equal(record.kind, 'switchover');
    assert.match(record.trigger, /^request /);
    await page.waitForFunction((e) => document.querySelector(`.current-op[data-epoch="${e}"]`)?.getAttribute('data-outcome') === 'done', p.epoch);
    // The failover's explanation, opened as an operator would; it stays open through the updates.
    await s.locator(`details.op[data-epoch="${old.epoch}"] summary`).click();
    await s.locator(`details.op[data-epoch="${old.epoch}"][open] pre.explain`).waitFor();
    const shot = process.env['PRIMACY_WEB_SCREENSHOT'];
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    await page.close();
  });

  test('bad input: no --port, a port in use, an unreachable etcd and an unknown cluster are one line each', async () => {
    const port = new URL(ro.url).port;
    const runs = await Promise.all([
      cliProcess(['web', '--cluster', c.name]),
      cliProcess(['web', '--port', port, '--cluster', c.name]),
      cliProcess(['web', '--port', '0', '--etcd', 'http://127.0.0.1:1', '--cluster', c.name]),
      cliProcess(['web', '--port', '0', '--cluster', 'nosuch']),
    ]);
    const expected: Array<[number, RegExp]> = [
      [2, /^primacy: web needs --port P/],
      [1, new RegExp(`^primacy: cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`)],
      [3, /^primacy: cannot reach etcd at http:\/\/127\.0\.0\.1:1: /],
      [4, /^primacy: unknown cluster nosuch: /],
    ];
    runs.forEach((r, i) => {
      const [code, line] = expected[i]!;
      assert.equal(r.code, code, r.err);
      assert.match(r.err, line);
      assert.equal(r.err.trimEnd().split('\n').length, 1, r.err);
    });
  });

  test('etcd stopped and started again: the page says so, keeps the last read, and follows again', async () => {
    const page = await openPage(ro.url);
    const p = (await c.primary())!;
    await pageShowsPrimary(page, c.name, p.node);
    const member = etcd.members[0]!;
    await member.stop();
    try {
      await page.locator('#problem:not([hidden])', { hasText: 'etcd' }).waitFor();
      assert.equal(await section(page, c.name).locator('.primary').getAttribute('data-node'), p.node, 'the last good read stays');
    } finally {
      await member.start();
    }
    await page.locator('#problem[hidden]').waitFor({ state: 'attached', timeout: 30_000 });
    // Following again: a change after the restart reaches the page.
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: true }));
    await section(page, c.name).locator('.facts', { hasText: 'paused yes' }).waitFor();
    await c.etcd.put(c.keys.config).value(JSON.stringify({ paused: false }));
    await page.close();
  });

  test('Ctrl-C ends it with exit 0', async () => {
    const status = await ro.process.terminate(10_000);
    assert.deepEqual(status, { code: 0, signal: null });
  });
});
