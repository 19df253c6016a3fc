/**
 * `primacy topology`: the replication tree from the primary, built from each member's replication
 * source (host:port) matched to the members' own host:port. Pure: a view in, lines out.
 */
import type { MemberState } from '@primacy/common';
import { knownNodes, type ClusterView } from './cluster.js';
import { formatDuration, oneLine } from './format.js';
import type { Style } from './io.js';
import { colorCondition, conditionOf, describeReplication, replicationBroken } from './status.js';

/** `localhost` and `127.0.0.1` are one place; host names compare without case. */
function endpointKey(host: string, port: number): string {
  const h = host.toLowerCase();
  return `${h === 'localhost' || h === '::1' ? '127.0.0.1' : h}:${port}`;
}

export interface Topology {
  /** The tree's root: the primary named in etcd (or null when there is none). */
  readonly root: string | null;
  /** The replicas of each node. */
  readonly children: ReadonlyMap<string, readonly string[]>;
  /** Nodes outside the tree from the primary, and why. */
  readonly apart: ReadonlyArray<{ readonly node: string; readonly why: string }>;
}

export function buildTopology(view: Pick<ClusterView, 'members' | 'primary' | 'lastOp'>): Topology {
  const byEndpoint = new Map<string, string>();
  for (const m of view.members.values()) byEndpoint.set(endpointKey(m.host, m.port), m.node);
  // A primary whose agent is gone is still where its replicas point.
  const p = view.primary;
  if (p && !byEndpoint.has(endpointKey(p.host, p.port))) byEndpoint.set(endpointKey(p.host, p.port), p.node);
  const parent = new Map<string, string>();
  const children = new Map<string, string[]>();
  for (const m of view.members.values()) {
    const r = m.server?.replication;
    if (!r || m.role === 'diverged') continue;
    const source = byEndpoint.get(endpointKey(r.sourceHost, r.sourcePort));
    if (source === undefined || source === m.node) continue;
    parent.set(m.node, source);
    children.set(source, [...(children.get(source) ?? []), m.node]);
  }
  const root = view.primary?.node ?? null;
  const inTree = new Set<string>();
  const visit = (n: string) => {
    if (inTree.has(n)) return;
    inTree.add(n);
    for (const c of children.get(n) ?? []) visit(c);
  };
  if (root !== null && (view.members.has(root) || children.has(root))) visit(root);
  const apart = knownNodes(view)
    .filter((n) => !inTree.has(n))
    .map((node) => ({ node, why: whyApart(view.members.get(node), parent.get(node) ?? null, root) }));
  return { root: root !== null && inTree.has(root) ? root : null, children, apart };
}

function whyApart(m: MemberState | undefined, source: string | null, root: string | null): string {
  if (!m) return 'gone: no member key';
  if (m.role === 'diverged') return `diverged${m.errant ? `: errant ${m.errant}` : ''}`;
  const r = m.server?.replication ?? null;
  if (m.server === null) return `not probed: ${m.error ?? 'server state unknown'}`;
  if (r === null) return m.node === root ? 'primary, but its agent has not published it' : 'replicates from nowhere';
  if (source === null) return `replicates from ${r.sourceHost}:${r.sourcePort}, which is no member`;
  return `replicates from ${source}, which is not under the primary`;
}

function nodeLine(m: MemberState | undefined, node: string, style: Style): string {
  if (!m) return `${node}  ${style.dim('gone')}`;
  const s = m.server;
  const r = s?.replication ?? null;
  const parts = [`${style.bold(node)}  ${m.host}:${m.port}`, colorCondition(conditionOf(m), style)];
  if (s?.lagMs !== null && s?.lagMs !== undefined && r !== null) parts.push(`lag ${formatDuration(s.lagMs)}`);
  if (s) parts.push(s.readOnly ? 'read-only' : 'writable');
  if (r && replicationBroken(r)) parts.push(style.red(oneLine(describeReplication(r), 160)));
  return parts.join('  ');
}

export function renderTopology(view: ClusterView, style: Style): string[] {
  const t = buildTopology(view);
  const lines: string[] = [];
  if (t.root === null) {
    lines.push(view.primary ? style.red(`primary ${view.primary.node} (epoch ${view.primary.epoch}) has no member key`) : style.red('no primary'));
  } else {
    const p = view.primary!;
    lines.push(`${nodeLine(view.members.get(t.root), t.root, style)}  ${style.cyan(`primary, epoch ${p.epoch}, ${p.state}`)}`);
    const walk = (node: string, indent: string, seen: Set<string>) => {
      const kids = t.children.get(node) ?? [];
      kids.forEach((c, i) => {
        const last = i === kids.length - 1;
        lines.push(`${indent}${last ? '└─ ' : '├─ '}${nodeLine(view.members.get(c), c, style)}`);
        if (!seen.has(c)) walk(c, `${indent}${last ? '   ' : '│  '}`, new Set([...seen, c]));
      });
    };
    walk(t.root, '', new Set([t.root]));
  }
  if (t.apart.length > 0) {
    lines.push('', 'apart from the tree:');
    for (const a of t.apart) lines.push(`  ${nodeLine(view.members.get(a.node), a.node, style)}  ${style.yellow(oneLine(a.why, 160))}`);
  }
  return [...lines, ...view.warnings.map((w) => style.yellow(`warning: ${w}`))];
}
