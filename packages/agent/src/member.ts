/**
 * The member key: what this agent tells the cluster about its node. Built purely from the last
 * observation, and rewritten only when something an operator or the coordinator acts on changed,
 * or when the refresh interval has passed (GTID positions and lag move with every heartbeat and
 * would otherwise cost a write per second).
 */
import { hostPort } from './health.js';
import type { HookRun, LastAnswer, MemberState, NodeState, Primary } from '@primacy/common';
import type { Observation } from './node/driver.js';
import { AGENT_VERSION } from './version.js';

export type Role = MemberState['role'];

export interface MemberInput {
  readonly cluster: string;
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly apiUrl: string;
  readonly observation: Observation | null;
  readonly downProbes: number;
  readonly role: Role;
  readonly fenced: boolean;
  readonly fencedFor: number | null;
  readonly serverGone: string | null;
  readonly lastAnswer: LastAnswer | null;
  readonly downSinceRevision: string | null;
  readonly errant: string | null;
  readonly revokedEpoch: number | null;
  readonly revokedAttempt: number | null;
  /** Hook runs not yet in their op records. */
  readonly hooks?: readonly HookRun[];
  readonly salvageProblem?: string | null;
  readonly rejoin?: MemberState['rejoin'];
  readonly priority: number;
  readonly noPromote: boolean;
  readonly now: number;
}

export function buildMember(i: MemberInput): MemberState {
  return {
    node: i.node,
    cluster: i.cluster,
    agentVersion: AGENT_VERSION,
    host: i.host,
    port: i.port,
    apiUrl: i.apiUrl,
    updatedAt: i.now,
    health: i.observation?.health ?? 'down',
    error: i.observation?.error ?? (i.observation ? null : 'not probed yet'),
    downProbes: i.downProbes,
    probeMs: i.observation?.probeMs ?? null,
    role: i.role,
    fenced: i.fenced,
    fencedFor: i.fencedFor,
    serverGone: i.serverGone,
    lastAnswer: i.lastAnswer,
    downSinceRevision: i.downSinceRevision,
    errant: i.errant,
    revokedEpoch: i.revokedEpoch,
    revokedAttempt: i.revokedAttempt,
    ...(i.hooks && i.hooks.length > 0 ? { hooks: [...i.hooks] } : {}),
    salvageProblem: i.salvageProblem ?? null,
    rejoin: i.rejoin ?? null,
    priority: i.priority,
    noPromote: i.noPromote,
    server: i.observation?.state ?? null,
  };
}

/** The parts of a member that matter for decisions, with moving counters left out. */
function material(m: MemberState, maxLagMs: number, gtidMatters: boolean): unknown {
  const s: NodeState | null = m.server;
  return {
    ...m,
    updatedAt: 0,
    probeMs: 0,
    // Moves with every probe; published when the GTID positions are (and when a down member needs it).
    lastAnswer: gtidMatters ? m.lastAnswer : null,
    server: s && {
      ...s,
      gtid: gtidMatters ? s.gtid.executed : null,
      connections: 0,
      lagMs: s.lagMs === null ? null : s.lagMs > maxLagMs,
      replication: s.replication && { ...s.replication, secondsBehind: null },
    },
  };
}

/** `gtidMatters`: during a switchover the coordinator waits on the candidate's position, so it is published at once. */
export function materiallyChanged(prev: MemberState | null, next: MemberState, maxLagMs: number, gtidMatters = false): boolean {
  if (prev === null) return true;
  return JSON.stringify(material(prev, maxLagMs, gtidMatters)) !== JSON.stringify(material(next, maxLagMs, gtidMatters));
}

/**
 * The API's URL as published in the member key: `advertiseUrl` when set; else the address it
 * listens on, unless that is every address (0.0.0.0, ::), which nobody can reach: then `host` (the
 * node's advertised host, or its name) with the listening port.
 */
export function publishedApiUrl(http: { host: string; port: number; advertiseUrl?: string | undefined }, listening: string | null, host: string): string {
  if (http.advertiseUrl !== undefined) return http.advertiseUrl.replace(/\/+$/, '');
  const port = listening === null ? http.port : Number(new URL(listening).port);
  if (!['0.0.0.0', '::', '[::]', ''].includes(http.host)) return listening ?? `http://${hostPort(http.host, port)}`;
  return `http://${hostPort(host, port)}`;
}

/**
 * The node's role as the member key reports it. While the primary is switching, a replica may
 * already follow the switchover's target.
 */
export function roleOf(self: string, state: NodeState | null | undefined, primary: Primary | null, switchoverTo: { host: string; port: number } | null, diverged: boolean): Role {
  if (diverged) return 'diverged';
  if (!state || !primary) return 'unknown';
  if (primary.node === self) return state.readOnly ? 'unknown' : 'primary';
  const r = state.replication;
  const to = primary.state === 'switching' ? switchoverTo : null;
  const follows = (e: { host: string; port: number } | null): boolean => e !== null && r !== null && r.sourceHost === e.host && r.sourcePort === e.port;
  return follows(primary) || follows(to) ? 'replica' : 'unknown';
}

/**
 * The primary republishes its positions once a member went down after its last publication: a
 * replica whose server has been down since before this probe cannot hold anything newer than what
 * the primary had then, and the coordinator may then fail over without it (decide.ts).
 * `answeredRevision`: the etcd revision read before the primary's last answered probe.
 */
export function answerNeeded(self: string, primary: Primary | null, published: MemberState | null, answeredRevision: string | null, members: Iterable<MemberState>): boolean {
  if (primary?.node !== self || answeredRevision === null) return false;
  const before = BigInt(published?.lastAnswer?.seenRevision ?? '0');
  const now = BigInt(answeredRevision);
  for (const m of members) {
    if (m.node === self || m.downSinceRevision === null) continue;
    const down = BigInt(m.downSinceRevision);
    if (down > before && now >= down) return true;
  }
  return false;
}
