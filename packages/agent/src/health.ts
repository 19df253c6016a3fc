/**
 * What each HTTP health endpoint answers, decided from one AgentView and the time. Pure: load
 * balancers act on these answers, so every condition has a table test in health.test.ts.
 */
import type { Health, NodeState, Primary } from '@primacy/common';
import type { AgentView } from './view.js';

export interface Verdict {
  readonly ok: boolean;
  /** One short sentence for the response body and the logs. */
  readonly reason: string;
}

/** Time left on the agent's own lease deadline; 0 when no lease is held or it has passed. */
export function leaseRemainingMs(view: AgentView, now: number): number {
  if (view.lease.id === null) return 0;
  return Math.max(0, view.lease.deadline - now);
}

export function leaseIsLive(view: AgentView, now: number): boolean {
  return view.lease.id !== null && now < view.lease.deadline;
}

/** Ok only while this node may take writes: the one `ready` primary, writable, under a live lease. */
export function primaryCheck(view: AgentView, now: number): Verdict {
  const server = serverState(view);
  if (!server.ok) return server;
  const { state } = server;
  const primary = view.primary;
  if (primary === null) return fail('no primary in the cluster');
  if (primary.node !== view.config.node) return fail(`not the primary: ${primary.node} is`);
  if (primary.state !== 'ready') return fail(`primary is ${primary.state}`);
  if (state.readOnly) return fail('server is read-only');
  const lease = leaseVerdict(view, now);
  if (!lease.ok) return lease;
  // A heartbeat row from an older epoch means this node has not yet taken up its new epoch.
  if (state.heartbeatEpoch !== null && state.heartbeatEpoch < primary.epoch) {
    return fail(`heartbeat is from epoch ${state.heartbeatEpoch}, the primary's epoch is ${primary.epoch}`);
  }
  return { ok: true, reason: `primary of epoch ${primary.epoch}; ${lease.reason}` };
}

/**
 * Ok while this node is a read-only, healthy replica of the current primary, within `maxLagMs` when
 * given. `now` keeps every check's shape alike; a replica's answer does not depend on the lease.
 */
export function replicaCheck(view: AgentView, now: number, maxLagMs?: number): Verdict {
  const server = serverState(view);
  if (!server.ok) return server;
  const { state } = server;
  const primary = view.primary;
  if (primary === null) return fail('no primary in the cluster');
  if (primary.node === view.config.node) return fail('this node is the primary');
  const repl = state.replication;
  if (repl === null) return fail('replication is not configured');
  if (repl.ioState !== 'running') return fail(withError(`replication IO thread is ${repl.ioState}`, repl.lastIoError));
  if (!repl.sqlRunning) return fail(withError('replication SQL thread is stopped', repl.lastSqlError));
  // While the primary is switching, following the switchover's target is following the primary.
  const to = primary.state === 'switching' ? view.switchoverTo : null;
  if (!sameEndpoint(repl.sourceHost, repl.sourcePort, primary) && !(to && sameEndpoint(repl.sourceHost, repl.sourcePort, to))) {
    const source = hostPort(repl.sourceHost, repl.sourcePort);
    return fail(`replicating from ${source}, not from the primary ${primary.node} at ${hostPort(primary.host, primary.port)}`);
  }
  if (!state.readOnly) return fail('server is writable');
  if (maxLagMs !== undefined) {
    if (state.lagMs === null) return fail('replication lag is unknown');
    if (state.lagMs > maxLagMs) return fail(`replication lag ${state.lagMs} ms exceeds ${maxLagMs} ms`);
  }
  const lag = state.lagMs === null ? 'lag unknown' : `lag ${state.lagMs} ms`;
  return { ok: true, reason: `replica of ${primary.node}, ${lag}` };
}

/** Ok while the agent runs and its server answers; etcd trouble is reported, not a failure. */
export function healthCheck(view: AgentView, now: number): Verdict {
  const server = serverState(view);
  const etcd = view.etcd.reachable ? 'etcd is reachable' : withError('etcd is unreachable', view.etcd.lastError ?? '');
  if (!server.ok) return fail(`${server.reason}; ${etcd}`);
  return { ok: true, reason: `server is up; ${etcd}` };
}

type ServerState = { ok: true; state: NodeState } | { ok: false; reason: string };

function serverState(view: AgentView): ServerState {
  const obs = view.observation;
  if (obs === null) return { ok: false, reason: 'server not probed yet' };
  if (obs.health !== 'up') return { ok: false, reason: withError(HEALTH_TEXT[obs.health], obs.error ?? '') };
  if (obs.state === null) return { ok: false, reason: 'server state unknown' };
  return { ok: true, state: obs.state };
}

const HEALTH_TEXT: Record<Exclude<Health, 'up'>, string> = {
  down: 'server is down',
  refusing: 'server refuses connections',
  auth_error: 'agent cannot log in to the server',
};

function leaseVerdict(view: AgentView, now: number): Verdict {
  if (view.lease.id === null) return fail('no lease held');
  const left = view.lease.deadline - now;
  if (left <= 0) return fail(`lease expired ${seconds(-left)} ago`);
  return { ok: true, reason: `lease expires in ${seconds(left)}` };
}

// Host names are case-insensitive; IP literals are unaffected.
function sameEndpoint(host: string, port: number, primary: { readonly host: string; readonly port: number }): boolean {
  return host.toLowerCase() === primary.host.toLowerCase() && port === primary.port;
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function withError(what: string, error: string): string {
  const line = error.split('\n')[0]?.trim() ?? '';
  return line === '' ? what : `${what}: ${line}`;
}

function fail(reason: string): Verdict {
  return { ok: false, reason };
}
