/**
 * What the agent knows at one moment, as read by its HTTP API and metrics. The agent's loops update
 * it; readers never change it.
 */
import type { AgentConfig, MemberState, Primary } from '@primacy/common';
import { ProbeLatency } from './metrics.js';
import type { Observation } from './node/driver.js';

export interface LeaseView {
  /** The lease id in hex, or null while none is granted. */
  readonly id: string | null;
  /** The agent's own deadline (last acknowledged keepalive's send time + TTL − margin), ms since epoch. */
  readonly deadline: number;
}

export interface EtcdView {
  readonly reachable: boolean;
  readonly lastError: string | null;
}

export interface AgentView {
  readonly config: AgentConfig;
  readonly startedAt: number;
  readonly observation: Observation | null;
  /** Consecutive probes that found the server down. */
  readonly downProbes: number;
  /** The member state last written to etcd. */
  readonly member: MemberState | null;
  /** The primary key as last read or watched; null when the cluster has none. */
  readonly primary: Primary | null;
  readonly lease: LeaseView;
  readonly etcd: EtcdView;
  /** Whether this agent currently wins the election, and who does. */
  readonly coordinator: { readonly self: boolean; readonly node: string | null };
  /** The target of a switchover under way, which replicas follow while the primary is switching. */
  readonly switchoverTo?: { readonly node: string; readonly host: string; readonly port: number } | null;
}

export interface Counters {
  probes: number;
  probeFailures: number;
  /** Probe round trips. */
  readonly probeLatency: ProbeLatency;
  etcdErrors: number;
  memberWrites: number;
  leaseLosses: number;
  fencings: number;
  /** Operations carried out, by kind and outcome. */
  readonly operations: Map<string, number>;
}

export function newCounters(): Counters {
  return { probes: 0, probeFailures: 0, probeLatency: new ProbeLatency(), etcdErrors: 0, memberWrites: 0, leaseLosses: 0, fencings: 0, operations: new Map() };
}
