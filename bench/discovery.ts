/**
 * Client discovery latency: how long after the `primary` key changes in etcd every client has
 * switched to the new value.
 *
 *   node --conditions=@primacy/source --import tsx bench/discovery.ts [--changes N] [--clients N] [--gap-ms MS] [--out FILE.md]
 *
 * A 3-member etcd (the test harness's), a cluster name that no agent serves, and `--clients`
 * (default 10) independent `watchPrimary` clients, each with its own etcd client and connections.
 * The bench plays the coordinator: it writes `--changes` (default 30) synthetic primaries, each at
 * the next epoch and on another node, waits until every client has reported it, then pauses a
 * random 0..`--gap-ms` before the next one. A client has switched when it emits 'primary' with the
 * new epoch: the point where a pool on that watch has retired the old primary's connections and
 * routes to the new one. Two latencies per (change, client):
 *   - from the put's acknowledgement, which etcd sends once the revision is committed and applied:
 *     discovery proper, the number the goal (p99 < 100 ms) is about. A client can be told before the
 *     writer hears its acknowledgement; such samples count as 0.
 *   - from the moment the writer issues the put: discovery plus the raft commit, which on a loaded
 *     machine (fsync) is most of it.
 * Every client runs in this one process, each with its own etcd client and connections.
 */
import { writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { clusterKeys, PrimarySchema, type Primary } from '@primacy/common';
import { watchPrimary, type PrimaryWatch } from '@primacy/client';
import { cleanupAll, startEtcd, waitFor } from '../test/harness/index.js';

const USAGE = 'usage: node --conditions=@primacy/source --import tsx bench/discovery.ts [--changes N] [--clients N] [--gap-ms MS] [--out FILE.md]';
const GOAL_P99_MS = 100;
const SEEN_TIMEOUT_MS = 10_000;

function fail(line: string): never {
  process.stderr.write(`bench: ${line}\n${USAGE}\n`);
  process.exit(2);
}

function intFlag(values: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Nearest rank: the p-th percentile of n sorted values is the ⌈p·n/100⌉-th. */
function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

const ms = (v: number): string => `${v.toFixed(1)} ms`;

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({ options: { changes: { type: 'string' }, clients: { type: 'string' }, 'gap-ms': { type: 'string' }, out: { type: 'string' } }, strict: true }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const changes = intFlag(values, 'changes', 30, 20, 10_000);
  const clients = intFlag(values, 'clients', 10, 1, 200);
  const gapMs = intFlag(values, 'gap-ms', 200, 0, 10_000);

  const etcd = await startEtcd({ members: 3 });
  const cluster = `discovery${process.pid}`;
  const keys = clusterKeys(cluster);
  const writer = etcd.client();
  const watches: PrimaryWatch[] = [];
  /** seen[epoch][client] = performance.now() when that client reported that epoch. */
  const seen = new Map<number, Map<number, number>>();
  const fromIssue: number[] = [];
  const fromAck: number[] = [];
  const putMs: number[] = [];
  try {
    const primary = (epoch: number): Primary =>
      PrimarySchema.parse({ node: `db${(epoch % 3) + 1}`, host: '127.0.0.1', port: 3306 + (epoch % 3), epoch, state: 'ready', since: Date.now(), gtid: '', serverId: (epoch % 3) + 1, serverUuid: null });
    await writer.put(keys.primary).value(JSON.stringify(primary(1)));
    for (let i = 0; i < clients; i++) {
      const w = watchPrimary({ etcd: etcd.endpoints, cluster });
      w.on('primary', (p) => {
        if (!p) return;
        const byClient = seen.get(p.epoch) ?? new Map<number, number>();
        if (!byClient.has(i)) byClient.set(i, performance.now());
        seen.set(p.epoch, byClient);
      });
      watches.push(w);
    }
    await Promise.all(watches.map((w) => w.ready(20_000)));
    await waitFor('every client to see the first primary', () => (watches.every((w) => w.current()?.epoch === 1) ? true : undefined), { timeoutMs: 10_000 });

    for (let epoch = 2; epoch < changes + 2; epoch++) {
      const value = JSON.stringify(primary(epoch));
      const issued = performance.now();
      await writer.put(keys.primary).value(value);
      putMs.push(performance.now() - issued);
      const acked = performance.now();
      const byClient = await waitFor(`all ${clients} clients to see epoch ${epoch}`, () => {
        const m = seen.get(epoch);
        return m && m.size === clients ? m : undefined;
      }, { timeoutMs: SEEN_TIMEOUT_MS, intervalMs: 5 });
      for (const t of byClient.values()) {
        fromIssue.push(t - issued);
        fromAck.push(Math.max(0, t - acked));
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * gapMs));
    }
  } finally {
    await Promise.all(watches.map((w) => w.close()));
    await cleanupAll();
  }

  const sort = (v: readonly number[]): number[] => [...v].sort((a, b) => a - b);
  const [ack, issue, puts] = [sort(fromAck), sort(fromIssue), sort(putMs)];
  const p99 = percentile(ack, 99);
  const row = (what: string, v: readonly number[]): string =>
    `| ${what} | ${v.length} | ${ms(percentile(v, 50))} | ${ms(percentile(v, 90))} | ${ms(percentile(v, 99))} | ${ms(v.at(-1)!)} |`;
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const table = [
    '| from → to | samples | median | p90 | p99 | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('put acknowledged (committed) → client switched', ack),
    row('put issued → client switched (includes the commit)', issue),
    row('put issued → put acknowledged (the commit alone)', puts),
  ].join('\n');
  const report =
    `${table}\n\n` +
    `${clients} clients × ${changes} changes. Goal p99 < ${GOAL_P99_MS} ms from the commit: ${p99 < GOAL_P99_MS ? 'met' : 'missed'} (${ms(p99)}). ` +
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} CPUs (load average ${load} while it ran), Node ${process.version}, a 3-member etcd 3.4 on loopback.\n`;
  process.stdout.write(report);
  if (values['out']) writeFileSync(values['out'], report);
  if (p99 >= GOAL_P99_MS) process.exitCode = 1;
}

await main();
