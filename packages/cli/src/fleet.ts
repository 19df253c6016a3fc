/**
 * Every cluster under a key root (`primacy clusters`, `primacy status --all`, `primacy web`): which
 * ranges one fleet read asks etcd for, the keys it returns grouped by cluster into the shape one
 * cluster's read gives, decoded with `decodeCluster`, and summarised. Pure: key-values and a time
 * in, a model and lines out.
 */
import { clusterKeys, isValidName, type ClusterKeys } from '@primacy/common';
import { decodeCluster, type ClusterView, type RawCluster, type RawKv } from './cluster.js';
import { fields, formatAge, table } from './format.js';
import type { Style } from './io.js';
import { failoverWait, inMaintenance, statusModel } from './status.js';

/** One range of a fleet read: the keys from `key` up to `end` (excluded), with etcd's range options. */
export interface RangeSpec {
  readonly key: string;
  readonly end: string;
  readonly limit?: number;
  /** Newest key first (with `limit` 1: the last key of the range). */
  readonly descend?: boolean;
  readonly countOnly?: boolean;
}

/** The end of a prefix's range: its last character moved on by one (keys here are ASCII). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/**
 * One cluster's part of a fleet read. In key order a cluster's keys are clients/, config, durability,
 * election/, epoch, history/, last-seen, members/, ops/, primary, rejoin/, requests/, salvage/: the
 * ranges stop short of history/ and ops/ (which grow with every operation, without bound), of
 * clients/ (one per application process) and of last-seen, and take only the newest ops/ key.
 * `withOps`: every ops/ and history/ record too, for a page that lists the history.
 */
export function clusterRanges(keys: ClusterKeys, withOps: boolean): RangeSpec[] {
  const end = prefixEnd(keys.prefix);
  return [
    // Any key at all: none means there is no such cluster.
    { key: keys.prefix, end, countOnly: true },
    { key: keys.config, end: keys.historyPrefix },
    { key: keys.membersPrefix, end: keys.opsPrefix },
    { key: keys.opsPrefix, end: prefixEnd(keys.opsPrefix), limit: 1, descend: true },
    { key: keys.primary, end },
    ...(withOps ? [{ key: keys.opsPrefix, end: prefixEnd(keys.opsPrefix) }, { key: keys.historyPrefix, end: prefixEnd(keys.historyPrefix) }] : []),
  ];
}

/** What the ranges of `clusterRanges` returned, in their order: the count first, then key-values. */
export interface ClusterRangesRead {
  readonly count: number;
  readonly kvs: ReadonlyArray<readonly RawKv[]>;
}

/** One cluster from its `clusterRanges`, in the shape of one cluster's read; ops/ and history/ apart when asked for. */
export function clusterFromRanges(keys: ClusterKeys, revision: string, read: ClusterRangesRead): { raw: RawCluster; ops: { ops: RawKv[]; history: RawKv[] } | null } {
  const c = emptyRaw();
  for (const kvs of read.kvs.slice(0, 4)) for (const kv of kvs) place(c, kv.key.slice(keys.prefix.length), kv);
  const [, , , , ops, history] = read.kvs;
  return { raw: finish(revision, { ...c, keyCount: read.count }), ops: ops && history ? { ops: [...ops], history: [...history] } : null };
}

/**
 * Where a keys-only listing of the root goes on after `key`: past the rest of its cluster, since the
 * listing wants only the clusters' names; past `key` itself when it belongs to no cluster.
 */
export function listingResume(root: string, key: string): string {
  const prefix = `${root.replace(/\/+$/, '')}/`;
  const name = key.startsWith(prefix) ? key.slice(prefix.length).split('/', 1)[0]! : '';
  return isValidName(name) && key.length > prefix.length + name.length ? prefixEnd(`${prefix}${name}/`) : `${key}\0`;
}

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
  salvages: RawKv[];
  rejoins: RawKv[];
}

function emptyRaw(): MutableRaw {
  return { keyCount: 0, members: [], election: [], primary: null, epoch: null, config: null, durability: null, lastOp: null, requests: [], salvages: [], rejoins: [] };
}

/** Files one key of a cluster by its kind (`sub`: the key after the cluster's prefix). */
function place(c: MutableRaw, sub: string, kv: RawKv): void {
  if (sub.startsWith('members/')) c.members.push(kv);
  else if (sub.startsWith('election/')) c.election.push(kv);
  else if (sub.startsWith('requests/')) c.requests.push(kv);
  else if (sub.startsWith('salvage/')) c.salvages.push(kv);
  else if (sub.startsWith('rejoin/')) c.rejoins.push(kv);
  else if (sub.startsWith('ops/')) {
    if (c.lastOp === null || kv.key > c.lastOp.key) c.lastOp = kv;
  } else if (sub === 'primary') c.primary = kv;
  else if (sub === 'epoch') c.epoch = kv;
  else if (sub === 'config') c.config = kv;
  else if (sub === 'durability') c.durability = kv;
}

function finish(revision: string, c: MutableRaw): RawCluster {
  // The oldest election key is the coordinator's, as the one-cluster read sorts them.
  const election = [...c.election].sort((a, b) => {
    const d = BigInt(a.createRevision) - BigInt(b.createRevision);
    return d < 0n ? -1 : d > 0n ? 1 : a.key < b.key ? -1 : 1;
  });
  return { revision, ...c, election };
}

/** Cluster names in the order every fleet view shows them: by name, numbers in order. */
export function byName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
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
      c = emptyRaw();
      byCluster.set(name, c);
    }
    c.keyCount++;
    place(c, rest.slice(slash + 1), kv);
  }
  const names = [...byCluster.keys()].sort(byName);
  return new Map(names.map((name) => [name, finish(revision, byCluster.get(name)!)]));
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

/** The fleet from one fleet read (clusters by name, in order), or from `groupByCluster` of a root read. */
export function fleetModel(root: string, revision: string, raws: ReadonlyMap<string, RawCluster>, readAt: number): FleetJson {
  const warnings: string[] = [];
  const clusters = [...raws].map(([name, raw]) => {
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
    .sort((a, b) => rank(a.health) - rank(b.health) || byName(a.cluster, b.cluster));
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
