/**
 * `primacy status`: the cluster as one model (also the `--json` output, schema version 1 in
 * docs/cli.md) and its rendering as a header and an aligned table. Pure: a view and a time in, lines out.
 */
import { rejoinPolicy } from '@primacy/agent';
import { isInMaintenance, type ClusterConfig, type Durability, type DurabilityRecord, type FenceProofKind, type Health, type MemberState, type OpRecord, type RejoinPolicy, type ReplicationState, type SemiSyncState } from '@primacy/common';
import { knownNodes, type ClusterView } from './cluster.js';
import { recoveryNote } from './rejoin.js';
import { fields, formatAge, formatDuration, formatTime, table } from './format.js';
import type { Style } from './io.js';

/** What the CLI makes of a node, worst first: see docs/cli.md. */
export type NodeCondition = 'gone' | 'diverged' | 'fenced' | 'down' | 'refusing' | 'auth_error' | 'broken' | 'ok';

export interface NodeStatus {
  readonly node: string;
  /** Named by the cluster's primary key. */
  readonly primary: boolean;
  readonly state: NodeCondition;
  readonly role: MemberState['role'] | null;
  readonly health: Health | null;
  readonly error: string | null;
  readonly fenced: boolean | null;
  /** The failover (by epoch) for which its agent fenced the node and read it back. */
  readonly fencedFor: number | null;
  /** Why its agent knows the server is gone, not merely silent. */
  readonly serverGone: string | null;
  readonly readOnly: boolean | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly gtidExecuted: string | null;
  readonly gtidReceived: string | null;
  readonly lagMs: number | null;
  readonly replication: Omit<ReplicationState, 'autoPosition' | 'secondsBehind'> | null;
  readonly semiSync: Omit<SemiSyncState, 'sourceClients'> | null;
  readonly errant: string | null;
  /** A diverged node's salvage, the rejoin policy that applies, and its last rejoin, in one line. */
  readonly recovery?: string | null;
  readonly agentVersion: string | null;
  readonly serverVersion: string | null;
  readonly updatedAt: number | null;
}

export interface OpSummary {
  readonly epoch: number;
  readonly kind: OpRecord['kind'];
  readonly from: string | null;
  readonly to: string | null;
  readonly trigger: string;
  readonly outcome: OpRecord['outcome'];
  readonly reason: string;
  readonly startedAt: number;
  readonly endedAt: number | null;
  readonly durationMs: number | null;
  /** How the old primary was proven fenced; null until it was, and for operations that need no proof. */
  readonly proof: FenceProofKind | null;
}

/** A failover that may not promote anyone until the old primary is proven fenced (invariant 4). */
export interface FailoverWait {
  readonly epoch: number;
  readonly from: string | null;
  readonly to: string | null;
  readonly since: number;
  /** What was tried and what an operator can do: the `fence` step's detail. */
  readonly detail: string;
}

export interface StatusJson {
  readonly version: 1;
  readonly cluster: string;
  readonly revision: string;
  readonly readAt: number;
  readonly paused: boolean;
  /** The config key cannot be read: no automatic failover and no request until it is fixed (then `paused` is not the truth). */
  readonly configProblem: string | null;
  readonly epoch: number | null;
  readonly primary: { node: string; host: string; port: number; epoch: number; state: string; since: number; gtid: string } | null;
  readonly coordinator: string | null;
  readonly lastOp: OpSummary | null;
  /** The last op, when it is a failover waiting for a fencing proof. */
  readonly failoverWaits: FailoverWait | null;
  /** How diverged nodes rejoin (the config's rejoin policy; method none by default). */
  readonly rejoin?: RejoinPolicy;
  /** After the whole cluster was down, the first node back is promoted even without proof it holds everything. */
  readonly restartUnsafe?: boolean;
  readonly durability: {
    /** The config key's; null: each agent's own replication.semiSync. */
    readonly configured: Durability | null;
    /** The durability key: a primary's semi-sync state as the coordinator last recorded it. */
    readonly record: DurabilityRecord | null;
  };
  readonly requests: ReadonlyArray<{ id: string; kind: string; to: string | null; force: boolean; requestedAt: number; by: string }>;
  /** Nodes the config puts in maintenance: never a candidate, and their absence blocks no failover. */
  readonly maintenance: readonly string[];
  readonly nodes: readonly NodeStatus[];
  readonly warnings: readonly string[];
}

export function conditionOf(m: MemberState | undefined): NodeCondition {
  if (!m) return 'gone';
  if (m.role === 'diverged') return 'diverged';
  if (m.fenced) return 'fenced';
  if (m.health !== 'up') return m.health;
  if (replicationBroken(m.server?.replication ?? null)) return 'broken';
  return 'ok';
}

export function replicationBroken(r: ReplicationState | null): boolean {
  return r !== null && (r.ioState !== 'running' || !r.sqlRunning || r.lastIoError !== '' || r.lastSqlError !== '');
}

export function summarizeOp(op: OpRecord): OpSummary {
  return {
    epoch: op.epoch,
    kind: op.kind,
    from: op.from,
    to: op.to,
    trigger: op.trigger,
    outcome: op.outcome,
    reason: op.reason,
    startedAt: op.startedAt,
    endedAt: op.endedAt,
    durationMs: op.endedAt === null ? null : op.endedAt - op.startedAt,
    proof: op.proof?.kind ?? null,
  };
}

/** A running failover with no proof yet: what it waits for. Null for anything else. */
export function failoverWait(op: OpRecord | null): FailoverWait | null {
  if (op === null || op.kind !== 'failover' || op.outcome !== 'running' || op.proof !== null) return null;
  const fence = op.steps.find((s) => s.name === 'fence' && s.outcome === 'running') ?? op.steps.findLast((s) => s.name === 'fence');
  return { epoch: op.epoch, from: op.from, to: op.to, since: fence?.startedAt ?? op.startedAt, detail: fence?.detail || op.reason };
}

function nodeStatus(node: string, m: MemberState | undefined, isPrimary: boolean): NodeStatus {
  const s = m?.server ?? null;
  const r = s?.replication ?? null;
  return {
    node,
    primary: isPrimary,
    state: conditionOf(m),
    role: m?.role ?? null,
    health: m?.health ?? null,
    error: m?.error ?? null,
    fenced: m?.fenced ?? null,
    fencedFor: m?.fencedFor ?? null,
    serverGone: m?.serverGone ?? null,
    readOnly: s?.readOnly ?? null,
    host: m?.host ?? null,
    port: m?.port ?? null,
    gtidExecuted: s?.gtid.executed ?? null,
    gtidReceived: s?.gtid.received ?? null,
    lagMs: s?.lagMs ?? null,
    replication: r && { sourceHost: r.sourceHost, sourcePort: r.sourcePort, ioState: r.ioState, sqlRunning: r.sqlRunning, lastIoError: r.lastIoError, lastSqlError: r.lastSqlError },
    semiSync: s && { sourceEnabled: s.semiSync.sourceEnabled, sourceActive: s.semiSync.sourceActive, replicaEnabled: s.semiSync.replicaEnabled, replicaActive: s.semiSync.replicaActive, sourceTimeoutMs: s.semiSync.sourceTimeoutMs, sourceWaitNoReplica: s.semiSync.sourceWaitNoReplica },
    errant: m?.errant ?? null,
    agentVersion: m?.agentVersion ?? null,
    serverVersion: s?.version ?? null,
    updatedAt: m?.updatedAt ?? null,
  };
}

export function statusModel(view: ClusterView, readAt: number): StatusJson {
  const p = view.primary;
  return {
    version: 1,
    cluster: view.cluster,
    revision: view.revision,
    readAt,
    paused: view.config.paused,
    configProblem: view.configProblem,
    epoch: view.epoch,
    primary: p && { node: p.node, host: p.host, port: p.port, epoch: p.epoch, state: p.state, since: p.since, gtid: p.gtid },
    coordinator: view.coordinator,
    lastOp: view.lastOp && summarizeOp(view.lastOp),
    failoverWaits: failoverWait(view.lastOp),
    durability: { configured: view.config.durability ?? null, record: view.durability },
    requests: [...view.requests].map(([id, r]) => ({ id, kind: r.kind, to: r.to, force: r.force, requestedAt: r.requestedAt, by: r.by })),
    maintenance: inMaintenance(view.config),
    rejoin: rejoinPolicy(view),
    restartUnsafe: view.config.restartUnsafe === true,
    nodes: knownNodes(view).map((n) => ({ ...nodeStatus(n, view.members.get(n), p?.node === n), recovery: recoveryNote(view, n) })),
    warnings: view.warnings,
  };
}

/** The nodes the config puts in maintenance, by name. */
export function inMaintenance(config: ClusterConfig): string[] {
  return Object.keys(config.nodes)
    .filter((node) => isInMaintenance(config, node))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** `src active, rep off`: each side off, on (enabled but not waiting or acknowledging) or active. */
export function formatSemiSync(s: NodeStatus['semiSync'], style: Style): string {
  if (!s) return '-';
  const side = (enabled: boolean, active: boolean) => (!enabled ? 'off' : active ? style.green('active') : style.yellow('on'));
  return `src ${side(s.sourceEnabled, s.sourceActive)}, rep ${side(s.replicaEnabled, s.replicaActive)}`;
}

export function colorCondition(state: NodeCondition, style: Style): string {
  switch (state) {
    case 'ok':
      return style.green(state);
    case 'gone':
      return style.dim(state);
    case 'refusing':
    case 'fenced':
      return style.yellow(state);
    default:
      return style.red(state);
  }
}

export function describeOp(op: OpSummary, now: number, style: Style): string {
  const outcome = op.outcome === 'done' ? style.green(op.outcome) : op.outcome === 'running' ? style.yellow(op.outcome) : style.red(op.outcome);
  const when = op.endedAt === null ? `started ${formatAge(op.startedAt, now)}` : `${formatAge(op.endedAt, now)} (took ${formatDuration(op.endedAt - op.startedAt)})`;
  return `epoch ${op.epoch} ${op.kind} ${op.from ?? '-'} → ${op.to ?? '-'}, ${outcome} ${when}`;
}

const PER_AGENT = "not set: each agent's replication.semiSync";

function replicas(n: number): string {
  return `${n} semi-sync replica${n === 1 ? '' : 's'}`;
}

/**
 * The cluster's durability in one line: the mode, and what the primary was last seen doing, with a
 * fallback (writes that may exist on the primary alone) or a strict mode not yet in force highlighted.
 */
export function describeDurability(d: StatusJson['durability'], primary: { node: string; epoch: number } | null, now: number, style: Style): string {
  const { configured, record: r } = d;
  if (r === null || primary === null || r.node !== primary.node || r.epoch !== primary.epoch) {
    const why = r === null ? 'no record from the coordinator yet' : `no record for ${primary ? `${primary.node} (epoch ${primary.epoch})` : 'a primary'} yet; the last is of ${r.node} (epoch ${r.epoch})`;
    return `${configured ?? PER_AGENT}; ${why}`;
  }
  const since = formatDuration(now - r.since);
  let state: string;
  switch (r.state) {
    case 'active':
      state =
        r.mode === 'strict' && !r.strict
          ? style.yellow(`strict, but ${r.node} is not seen strict yet (semi-sync active since ${since}): a revoke proves nothing until it is`)
          : `${r.mode} (active since ${since}, ${replicas(r.clients)})`;
      break;
    case 'fallback':
      state = style.yellow(`${r.mode}, fallen back to async since ${formatTime(r.since)} (${formatAge(r.since, now)}): writes acknowledged since then may exist only on ${r.node}`);
      break;
    case 'off':
      state = r.mode === 'async' ? `async (semi-sync off since ${since})` : style.yellow(`${r.mode}, but semi-sync is off on ${r.node} (since ${since})`);
      break;
    case 'unknown':
      state = `${r.mode} (${r.node}'s semi-sync state unknown)`;
      break;
  }
  if (configured === null) return `${state}; ${PER_AGENT}`;
  return configured === r.mode ? state : `${state}; set to ${configured}, not applied yet`;
}

export function renderStatus(s: StatusJson, now: number, style: Style): string[] {
  const p = s.primary;
  const primaryLine = p
    ? `${style.bold(p.node)}, epoch ${p.epoch}, ${p.state === 'ready' ? style.green(p.state) : style.yellow(p.state)} since ${formatDuration(now - p.since)}`
    : style.red('none');
  const header: Array<[string, string]> = [
    ['cluster', `${style.bold(s.cluster)} (etcd revision ${s.revision})`],
    ['primary', primaryLine],
    ['coordinator', s.coordinator ?? style.red('none')],
    [
      'paused',
      s.configProblem !== null
        ? style.red(`unknown: the config key cannot be read (${s.configProblem}); no automatic failover and no request is taken until it is fixed or deleted`)
        : s.paused
          ? style.yellow('yes: no automatic failover')
          : 'no',
    ],
    ['last op', s.lastOp ? describeOp(s.lastOp, now, style) : 'none'],
    ['durability', describeDurability(s.durability, p, now, style)],
    ...(s.rejoin && s.rejoin.method !== 'none' ? [['rejoin', `diverged nodes rejoin by ${s.rejoin.method}${s.rejoin.allowUnacknowledgedFlashback ? ', flashback even of acknowledged writes' : ''}`] as [string, string]] : []),
    ...(s.restartUnsafe ? [['restart', style.yellow('restartUnsafe: after the whole cluster was down, the first node back is promoted, even if writes are lost')] as [string, string]] : []),
  ];
  if (s.maintenance.length > 0) header.push(['maintenance', style.yellow(`${s.maintenance.join(', ')}: never ${s.maintenance.length === 1 ? 'a candidate; its' : 'candidates; their'} absence blocks no failover`)]);
  for (const r of s.requests) {
    header.push(['request', `${r.id}: ${r.kind}${r.to ? ` to ${r.to}` : ''}${r.force ? ' (forced)' : ''} by ${r.by}, ${formatAge(r.requestedAt, now)}, not taken yet`]);
  }
  const rows = s.nodes.map((n) => [
    `${n.primary ? '*' : ' '} ${n.primary ? style.bold(n.node) : n.node}`,
    n.role ?? '-',
    colorCondition(n.state, style),
    n.health === null ? '-' : n.health === 'up' ? n.health : style.red(n.health),
    n.readOnly === null ? '-' : n.readOnly ? 'on' : n.primary ? 'off' : style.red('off'),
    n.gtidExecuted || '-',
    n.lagMs === null ? '-' : formatDuration(n.lagMs),
    formatSemiSync(n.semiSync, style),
    n.agentVersion ?? '-',
  ]);
  const w = s.failoverWaits;
  // Nothing is promoted until this is resolved: the line says what was tried and what an operator can do.
  const waits = w ? [style.red(`failover to epoch ${w.epoch} waits: ${w.detail}`)] : [];
  return [
    ...fields(header),
    ...waits,
    '',
    ...table(['  NODE', 'ROLE', 'STATE', 'HEALTH', 'READ_ONLY', 'GTID EXECUTED', 'LAG', 'SEMI-SYNC', 'AGENT'], rows, style),
    ...(s.nodes.some((n) => n.primary) ? [style.dim('* the primary named in etcd')] : []),
    ...positionsAge(s.nodes, now, style),
    ...s.nodes.flatMap((n) => {
      const why = nodeNote(n);
      return why === null ? [] : [`${n.node}: ${why}`];
    }),
    ...s.warnings.map((w) => style.yellow(`warning: ${w}`)),
  ];
}

/**
 * Replicas' member keys are rewritten every replicaPublishRefreshMs (5 s by default, 30 s in big fleets) when nothing that decisions
 * use changed, so their GTID and lag columns can be that old: said when any is older than 5 s.
 */
function positionsAge(nodes: readonly NodeStatus[], now: number, style: Style): string[] {
  const times = nodes.map((n) => n.updatedAt).filter((t): t is number => t !== null);
  if (times.length === 0 || now - Math.min(...times) <= 5000) return [];
  return [style.dim(`GTID EXECUTED and LAG as each agent last published them, the oldest ${formatAge(Math.min(...times), now)}`)];
}

/** Why a node is not `ok`, and what its agent proved of it (fenced for a failover, server gone), in one line; null when there is nothing to say. */
export function nodeNote(n: NodeStatus): string | null {
  const parts = [explainCondition(n)];
  if (n.fencedFor !== null && n.state !== 'fenced') parts.push(`fenced for the failover to epoch ${n.fencedFor}`);
  if (n.serverGone !== null) parts.push(`its agent knows the server is gone: ${n.serverGone}`);
  if (n.recovery) parts.push(n.recovery);
  const said = parts.filter((p): p is string => p !== null);
  return said.length === 0 ? null : said.join('; ');
}

/** Why a node is not `ok`, in one line; null when it is. */
export function explainCondition(n: NodeStatus): string | null {
  switch (n.state) {
    case 'ok':
      return null;
    case 'gone':
      return 'no member key: its agent is gone (lease expired) or was never started';
    case 'diverged':
      return `diverged${n.errant ? `: errant transactions ${n.errant}` : ''}; kept out of rotation`;
    case 'fenced':
      return `fenced by its agent${n.fencedFor === null ? '' : ` for the failover to epoch ${n.fencedFor}`}: read-only, client sessions killed`;
    case 'broken':
      return describeReplication(n.replication);
    default:
      return `server ${n.state}${n.error ? `: ${n.error}` : ''}`;
  }
}

/** The state of a replica's threads, in one line: `IO connecting (error …), SQL stopped (error …)`. */
export function describeReplication(r: NodeStatus['replication']): string {
  if (!r) return 'replicates from nowhere';
  const parts = [`IO ${r.ioState}${r.lastIoError ? ` (${r.lastIoError})` : ''}`, `SQL ${r.sqlRunning ? 'running' : 'stopped'}${r.lastSqlError ? ` (${r.lastSqlError})` : ''}`];
  return `replication from ${r.sourceHost}:${r.sourcePort}: ${parts.join(', ')}`;
}
