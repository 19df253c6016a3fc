/**
 * `primacy which-primary` and `primacy dsn`, for scripts: where the ready primary (or the ready
 * replicas) can be reached. Pure: a view in, endpoints out, or the CliError that says why there is none.
 */
import type { ClusterView } from './cluster.js';
import { refused } from './errors.js';
import { conditionOf, inMaintenance } from './status.js';
import { buildTopology } from './topology.js';

export interface Endpoint {
  readonly node: string;
  readonly host: string;
  readonly port: number;
}

/** The primary clients may write to: named in etcd and `ready`. */
export function readyPrimary(view: ClusterView): Endpoint {
  const p = view.primary;
  if (!p) throw refused(`${view.cluster} has no primary`);
  if (p.state !== 'ready') throw refused(`${view.cluster} has no ready primary: ${p.node} (epoch ${p.epoch}) is ${p.state}`);
  return { node: p.node, host: p.host, port: p.port };
}

/**
 * The replicas fit to read from, least lag first: replicating from the primary without a broken
 * thread, read-only, not in maintenance, and within `maxLagMs` when given (an unknown lag is not).
 */
export function readyReplicas(view: ClusterView, maxLagMs: number | null): Endpoint[] {
  const p = view.primary;
  if (!p) throw refused(`${view.cluster} has no primary, so no replica of it`);
  const maintenance = inMaintenance(view.config);
  const lagOf = (node: string) => view.members.get(node)?.server?.lagMs ?? null;
  const fit = (buildTopology(view).children.get(p.node) ?? []).filter((node) => {
    const m = view.members.get(node);
    if (!m || m.role !== 'replica' || conditionOf(m) !== 'ok' || m.server?.readOnly !== true || maintenance.includes(node)) return false;
    const lag = lagOf(node);
    return maxLagMs === null || (lag !== null && lag <= maxLagMs);
  });
  if (fit.length === 0) throw refused(`${view.cluster} has no ready replica of ${p.node}${maxLagMs === null ? '' : ` within ${maxLagMs} ms of lag`}`);
  return fit
    .sort((a, b) => (lagOf(a) ?? Infinity) - (lagOf(b) ?? Infinity) || a.localeCompare(b, 'en', { numeric: true }))
    .map((node) => {
      const m = view.members.get(node)!;
      return { node, host: m.host, port: m.port };
    });
}

/** `host:port`, with an IPv6 address in brackets. */
export function hostPort(e: Pick<Endpoint, 'host' | 'port'>): string {
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

/** `mysql://user@host:port/database`, as mysql2 and most drivers take it; never a password. */
export function mysqlDsn(e: Endpoint, user: string | null, database: string | null): string {
  return `mysql://${user === null ? '' : `${encodeURIComponent(user)}@`}${hostPort(e)}/${database === null ? '' : encodeURIComponent(database)}`;
}
