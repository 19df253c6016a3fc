/**
 * Every cluster under a key root (`primacy clusters`, `primacy status --all`), from the keys of one
 * ranged read of the root: grouped by cluster into the same raw shape one cluster's read gives,
 * decoded with `decodeCluster`, and summarised. Pure: key-values and a time in, a model and lines out.
 */
import { clusterKeys, isValidName } from '@primacy/common';
import { decodeCluster, type ClusterView, type RawCluster, type RawKv } from './cluster.js';
import { fields, formatAge, table } from './format.js';
import type { Style } from './io.js';
import { failoverWait, inMaintenance, statusModel } from './status.js';

interface MutableRaw {
  keyCount: number;
  members: RawKv[];
  election: RawKv[];
  primary: RawKv | null;
  epoch: RawKv | null;
  config: RawKv | null;
  durability: RawKv | null;
  lastOp: RawKv | null;
  requests: RawKv[];
}

/** The keys of a root read, by cluster (sorted by name), each in the shape of one cluster's read. */
export function groupByCluster(root: string, revision: string, kvs: readonly RawKv[]): Map<string, RawCluster> {
  const prefix = `${root.replace(/\/+$/, '')}/`;
  const byCluster = new Map<string, MutableRaw>();
  for (const kv of kvs) {
    if (!kv.key.startsWith(prefix)) continue;
    const rest = kv.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    const name = slash < 0 ? '' : rest.slice(0, slash);
    if (!isValidName(name)) continue;
    let c = byCluster.get(name);
    if (!c) {
      c = { keyCount: 0, members: [], election: [], primary: null, epoch: null, config: null, durability: null, lastOp: null, requests: [] };
      byCluster.set(name, c);
    }
    c.keyCount++;
    const sub = rest.slice(slash + 1);
    if (sub.startsWith('members/')) c.members.push(kv);
    else if (sub.startsWith('election/')) c.election.push(kv);
    else if (sub.startsWith('requests/')) c.requests.push(kv);
    else if (sub.startsWith('ops/')) {
      if (c.lastOp === null || kv.key > c.lastOp.key) c.lastOp = kv;
    } else if (sub === 'primary') c.primary = kv;
    else if (sub === 'epoch') c.epoch = kv;
    else if (sub === 'config') c.config = kv;
    else if (sub === 'durability') c.durability = kv;
  }
  const names = [...byCluster.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return new Map(
    names.map((name) => {
      const c = byCluster.get(name)!;
      // The oldest election key is the coordinator's, as the one-cluster read sorts them.
      const election = [...c.election].sort((a, b) => (BigInt(a.createRevision) < BigInt(b.createRevision) ? -1 : 1));
      return [name, { revision, ...c, election }];
    }),
  );
}

/** A cluster at a glance. `down`: no ready primary on a working node, so writes fail; `degraded`: something else needs a look. */
export type ClusterHealth = 'ok' | 'degraded' | 'down';

export interface ClusterSummary {
  readonly cluster: string;
  readonly primary: { node: string; host: string; port: number; epoch: number; state: string; since: number } | null;
  readonly epoch: number | null;
  readonly health: ClusterHealth;
  /** Why it is not ok, one phrase each, worst first. */
  readonly problems: readonly string[];
  readonly nodes: { readonly total: number; readonly ok: number };
  readonly maintenance: readonly string[];
  readonly paused: boolean;
  readonly coordinator: string | null;
  /** The newest op record while it runs. */
  readonly operation: { epoch: number; kind: string; from: string | null; to: string | null; step: string | null; startedAt: number } | null;
  /** Operator requests nobody has taken yet. */
  readonly requests: number;
}

export interface FleetJson {
  readonly version: 1;
  readonly root: string;
  readonly revision: string;
  readonly readAt: number;
  readonly clusters: readonly ClusterSummary[];
  readonly warnings: readonly string[];
}

export function summarizeCluster(view: ClusterView, now: number): ClusterSummary {
  const s = statusModel(view, now);
  const maintenance = inMaintenance(view.config);
  const p = s.primary;
  const primaryNode = p ? s.nodes.find((n) => n.node === p.node) : undefined;
  const problems: string[] = [];
  if (!p) problems.push('no primary');
  else if (p.state !== 'ready') problems.push(`primary ${p.node} ${p.state}`);
  else if (primaryNode && primaryNode.state !== 'ok') problems.push(`primary ${p.node} ${primaryNode.state}`);
  const wait = failoverWait(view.lastOp);
  if (wait) problems.push(`failover to epoch ${wait.epoch} waits for a fencing proof`);
  for (const n of s.nodes) {
    if (n.node !== p?.node && n.state !== 'ok' && !maintenance.includes(n.node)) problems.push(`${n.node} ${n.state}`);
  }
  if (view.coordinator === null) problems.push('no coordinator');
  if (view.configProblem !== null) problems.push('config unreadable');
  const writable = p !== null && p.state === 'ready' && (primaryNode === undefined || primaryNode.state === 'ok');
  const op = view.lastOp;
  const running = op && op.outcome === 'running' ? op : null;
  return {
    cluster: view.cluster,
    primary: p && { node: p.node, host: p.host, port: p.port, epoch: p.epoch, state: p.state, since: p.since },
    epoch: view.epoch,
    health: !writable ? 'down' : problems.length > 0 ? 'degraded' : 'ok',
    problems,
    nodes: { total: s.nodes.length, ok: s.nodes.filter((n) => n.state === 'ok').length },
    maintenance,
    paused: view.config.paused,
    coordinator: view.coordinator,
    operation: running && {
      epoch: running.epoch,
      kind: running.kind,
      from: running.from,
      to: running.to,
      step: running.steps.findLast((st) => st.outcome === 'running')?.name ?? null,
      startedAt: running.startedAt,
    },
    requests: view.requests.size,
  };
}

/** The fleet from the keys of one root read. */
export function fleetModel(root: string, revision: string, kvs: readonly RawKv[], readAt: number): FleetJson {
  const warnings: string[] = [];
  const clusters = [...groupByCluster(root, revision, kvs)].map(([name, raw]) => {
    const view = decodeCluster(name, clusterKeys(name, root), raw);
    warnings.push(...view.warnings);
    return summarizeCluster(view, readAt);
  });
  return { version: 1, root, revision, readAt, clusters, warnings };
}

function colorHealth(h: ClusterHealth, style: Style): string {
  return h === 'ok' ? style.green(h) : h === 'degraded' ? style.yellow(h) : style.red(h);
}

function describeOperation(o: ClusterSummary['operation'], now: number): string {
  if (!o) return '-';
  return `${o.kind} ${o.from ?? '-'} → ${o.to ?? '-'} (epoch ${o.epoch}${o.step ? `, ${o.step}` : ''}, ${formatAge(o.startedAt, now)})`;
}

function notes(c: ClusterSummary): string {
  const parts = [...c.problems];
  if (c.paused) parts.push('paused');
  if (c.maintenance.length > 0) parts.push(`maintenance: ${c.maintenance.join(', ')}`);
  if (c.requests > 0) parts.push(`${c.requests} request${c.requests === 1 ? '' : 's'} not taken`);
  return parts.join('; ') || '-';
}

function rows(clusters: readonly ClusterSummary[], now: number, style: Style): string[][] {
  return clusters.map((c) => [
    c.cluster,
    c.primary?.node ?? '-',
    c.epoch === null ? '-' : String(c.epoch),
    colorHealth(c.health, style),
    `${c.nodes.ok}/${c.nodes.total}`,
    describeOperation(c.operation, now),
    notes(c),
  ]);
}

const HEADER = ['CLUSTER', 'PRIMARY', 'EPOCH', 'HEALTH', 'NODES', 'OPERATION', 'NOTES'];

/** `primacy clusters`: one line per cluster. */
export function renderClusters(f: FleetJson, now: number, style: Style): string[] {
  if (f.clusters.length === 0) return [`no clusters under ${f.root.replace(/\/+$/, '')}/`, ...f.warnings.map((w) => style.yellow(`warning: ${w}`))];
  return [...table(HEADER, rows(f.clusters, now, style), style), ...f.warnings.map((w) => style.yellow(`warning: ${w}`))];
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

/**
 * `primacy status --all`: the fleet on one screen. Counts first; then only the clusters that need
 * a look (not ok, paused, running an operation, or with a request not taken), one line each.
 */
export function renderFleetStatus(f: FleetJson, now: number, style: Style): string[] {
  const count = (h: ClusterHealth) => f.clusters.filter((c) => c.health === h).length;
  const paused = f.clusters.filter((c) => c.paused).map((c) => c.cluster);
  const running = f.clusters.filter((c) => c.operation !== null);
  const maintenance = f.clusters.reduce((n, c) => n + c.maintenance.length, 0);
  const down = count('down');
  const degraded = count('degraded');
  const pairs: Array<[string, string]> = [
    ['root', `${f.root.replace(/\/+$/, '')}/ (etcd revision ${f.revision}): ${plural(f.clusters.length, 'cluster')}`],
    ['ok', `${count('ok')}`],
    ['degraded', degraded === 0 ? '0' : style.yellow(String(degraded))],
    ['down', down === 0 ? '0' : style.red(`${down}: no ready primary`)],
    ['paused', paused.length === 0 ? '0' : style.yellow(`${paused.length}: ${paused.slice(0, 10).join(', ')}${paused.length > 10 ? ', …' : ''}`)],
    ['operations', running.length === 0 ? 'none running' : `${running.length} running`],
  ];
  if (maintenance > 0) pairs.push(['maintenance', plural(maintenance, 'node')]);
  const head = fields(pairs);
  const attention = f.clusters
    .filter((c) => c.health !== 'ok' || c.paused || c.operation !== null || c.requests > 0)
    .sort((a, b) => rank(a.health) - rank(b.health) || a.cluster.localeCompare(b.cluster, 'en', { numeric: true }));
  const body =
    f.clusters.length === 0
      ? []
      : attention.length === 0
        ? ['', style.green('every cluster has a ready primary and every node ok')]
        : ['', ...table(HEADER, rows(attention, now, style), style)];
  return [...head, ...body, ...f.warnings.map((w) => style.yellow(`warning: ${w}`))];
}

function rank(h: ClusterHealth): number {
  return h === 'down' ? 0 : h === 'degraded' ? 1 : 2;
}
