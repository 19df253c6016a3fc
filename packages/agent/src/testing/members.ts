/** Builders of member and primary values for the pure decision tests. */
import type { MemberState, NodeState, Primary, ReplicationState } from '@primacy/common';
import type { ClusterView } from '../coordinator/model.js';

export function server(over: Partial<NodeState> = {}): NodeState {
  return {
    flavor: 'mariadb',
    version: '10.11.6-MariaDB',
    serverId: 1,
    serverUuid: null,
    readOnly: true,
    superReadOnly: null,
    logBin: true,
    gtid: { executed: '0-1-10', received: '0-1-10' },
    replication: null,
    lagMs: null,
    heartbeatEpoch: null,
    semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
    connections: 3,
    maxConnections: 100,
    ...over,
  };
}

export function replicatingFrom(host: string, port: number, over: Partial<ReplicationState> = {}): ReplicationState {
  return { sourceHost: host, sourcePort: port, ioState: 'running', sqlRunning: true, lastIoError: '', lastSqlError: '', autoPosition: true, secondsBehind: 0, ...over };
}

export function member(node: string, over: Partial<MemberState> = {}, s: Partial<NodeState> | null = {}): MemberState {
  return {
    node,
    cluster: 'main',
    agentVersion: '0.1.0',
    host: '127.0.0.1',
    port: portOf(node),
    apiUrl: 'http://127.0.0.1:8008',
    updatedAt: 0,
    health: 'up',
    error: null,
    downProbes: 0,
    probeMs: 1,
    role: 'unknown',
    fenced: false,
    fencedFor: null,
    serverGone: null,
    lastAnswer: null,
    downSinceRevision: null,
    errant: null,
    revokedEpoch: null,
    revokedAttempt: null,
    priority: 0,
    noPromote: false,
    server: s === null ? null : server(s),
    ...over,
  };
}

/** db1 → 3301, db2 → 3302, …: stable ports so tests read naturally. */
export function portOf(node: string): number {
  return 3300 + Number(node.replace(/\D/g, '') || 0);
}

export function primary(node: string, over: Partial<Primary> = {}): Primary {
  return { node, host: '127.0.0.1', port: portOf(node), epoch: 1, state: 'ready', since: 0, gtid: '0-1-10', serverId: 1, serverUuid: null, ...over };
}

export function membersOf(...ms: MemberState[]): Map<string, MemberState> {
  return new Map(ms.map((m) => [m.node, m]));
}

/** The coordinator's timings at their config defaults, for decision tests. */
export const timings: ClusterView['timings'] = {
  antiFlapMs: 300_000,
  maxLagMs: 10_000,
  revokeWaitMs: 8000,
  switchoverCatchUpMs: 10_000,
  clientPauseWaitMs: 2000,
  relayApplyTimeoutMs: 10_000,
  failoverRetryMs: 5000,
};
