/**
 * The agent's Prometheus metrics in text exposition format 0.0.4, rendered from one AgentView and
 * the Counters. Pure: the HTTP API only serves the string.
 */
import { leaseRemainingMs } from './health.js';
import type { AgentView, Counters, Histogram } from './view.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const ROLES = ['primary', 'replica', 'diverged', 'unknown'] as const;

type MetricType = 'counter' | 'gauge' | 'histogram';
type Labels = Readonly<Record<string, string>>;

interface Sample {
  /** `_bucket`, `_sum` or `_count` for histograms, empty otherwise. */
  readonly suffix: string;
  readonly labels: Labels;
  readonly value: number;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

export function renderMetrics(view: AgentView, counters: Counters, now: number): string {
  const base: Labels = { cluster: view.config.cluster, node: view.config.node };
  const sample = (value: number, labels: Labels = {}): Sample => ({ suffix: '', labels: { ...base, ...labels }, value });
  const counter = (name: string, help: string, value: number): Family => ({ name, help, type: 'counter', samples: [sample(value)] });
  const gauge = (name: string, help: string, value: number): Family => ({ name, help, type: 'gauge', samples: [sample(value)] });
  const flag = (on: boolean): number => (on ? 1 : 0);
  const state = view.observation?.state ?? null;
  const role = view.member?.role ?? 'unknown';
  const operations = [...counters.operations.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const families: Family[] = [
    {
      name: 'primacy_probe_duration_seconds',
      help: 'Round trip of one probe of the local server.',
      type: 'histogram',
      samples: histogramSamples(counters.probeLatency, base),
    },
    counter('primacy_probes_total', 'Probes of the local server.', counters.probes),
    counter('primacy_probe_failures_total', 'Probes of the local server that failed.', counters.probeFailures),
    gauge(
      'primacy_replication_lag_seconds',
      "Age of the primary's heartbeat row as read on this node; NaN when unknown.",
      state === null || state.lagMs === null ? NaN : state.lagMs / 1000,
    ),
    {
      name: 'primacy_role',
      help: "The agent's view of its node's role in the current epoch.",
      type: 'gauge',
      samples: ROLES.map((r) => sample(flag(r === role), { role: r })),
    },
    gauge('primacy_read_only', 'Whether the local server is read-only; NaN when unknown.', state === null ? NaN : flag(state.readOnly)),
    gauge('primacy_node_up', 'Whether the last probe found the local server up.', flag(view.observation?.health === 'up')),
    gauge('primacy_lease_remaining_seconds', "Time left before the agent's own lease deadline.", leaseRemainingMs(view, now) / 1000),
    gauge('primacy_etcd_reachable', 'Whether the agent currently reaches etcd.', flag(view.etcd.reachable)),
    counter('primacy_etcd_errors_total', 'Failed etcd requests.', counters.etcdErrors),
    counter('primacy_member_writes_total', "Writes of this node's member key.", counters.memberWrites),
    counter('primacy_lease_losses_total', 'Times the agent lost its etcd lease.', counters.leaseLosses),
    counter('primacy_fencings_total', 'Times the agent fenced its node (read-only and client sessions killed).', counters.fencings),
    gauge('primacy_coordinator', "Whether this agent is its cluster's coordinator.", flag(view.coordinator.self)),
    gauge('primacy_epoch', "The cluster's epoch as this agent last read it; 0 before the first primary.", view.primary?.epoch ?? 0),
    {
      name: 'primacy_operations_total',
      help: 'Operations carried out, by kind and outcome.',
      type: 'counter',
      samples: operations.map(([key, count]) => sample(count, splitOperationKey(key))),
    },
  ];
  return families.map(renderFamily).join('');
}

/** The Counters map key is `kind:outcome`; a key without a colon has an unknown outcome. */
function splitOperationKey(key: string): { kind: string; outcome: string } {
  const at = key.indexOf(':');
  return at < 0 ? { kind: key, outcome: 'unknown' } : { kind: key.slice(0, at), outcome: key.slice(at + 1) };
}

// Histogram bounds and sum are kept in ms; Prometheus wants base units.
function histogramSamples(h: Histogram, base: Labels): Sample[] {
  const buckets = h.bounds.map(
    (bound, i): Sample => ({ suffix: '_bucket', labels: { ...base, le: formatValue(bound / 1000) }, value: h.counts[i] ?? 0 }),
  );
  return [
    ...buckets,
    { suffix: '_bucket', labels: { ...base, le: '+Inf' }, value: h.count },
    { suffix: '_sum', labels: base, value: h.sum / 1000 },
    { suffix: '_count', labels: base, value: h.count },
  ];
}

function renderFamily(f: Family): string {
  const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`];
  for (const s of f.samples) lines.push(`${f.name}${s.suffix}${renderLabels(s.labels)} ${formatValue(s.value)}`);
  return lines.join('\n') + '\n';
}

function renderLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/** Label values escape backslash, double quote and line feed (exposition format 0.0.4). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed only. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
