/**
 * The agent's Prometheus metrics in text exposition format 0.0.4, through prom-client: the agent's own
 * families, read from one AgentView and the Counters at each scrape, then the process's and Node's
 * standard metrics once the program has asked for them. Every series carries `cluster` and `node`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { leaseRemainingMs } from './health.js';
import type { AgentView, Counters } from './view.js';

export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

const ROLES = ['primary', 'replica', 'diverged', 'unknown'] as const;
const PROBE_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/**
 * prom-client samples event-loop delay every 10 ms by default. Scraped every 15 s, that cost an idle
 * agent 0.34 % of a core more than no scrape (1.89 % against 1.55 %, of a 2 % budget); every 100 ms
 * costs 0.07 % and still sees each stall that matters next to a 250 ms probe and a 1.5 s fencing
 * margin. Node records the whole interval between two samples, so the figures start at 0.1 s.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Probe round trips: observed in ms as the agent measures them, exposed in seconds. */
export class ProbeLatency {
  readonly histogram = new Histogram({
    name: 'primacy_probe_duration_seconds',
    help: 'Round trip of one probe of the local server.',
    buckets: PROBE_BUCKETS_MS.map((ms) => ms / 1000),
    registers: [],
  });
  observe(ms: number): void {
    this.histogram.observe(ms / 1000);
  }
}

export async function renderMetrics(view: AgentView, counters: Counters, now: number): Promise<string> {
  const registry = new Registry();
  const registers = [registry];
  const counter = (name: string, help: string, value: number): void => new Counter({ name, help, registers }).inc(value);
  const gauge = (name: string, help: string, value: number): void => new Gauge({ name, help, registers }).set(value);
  const flag = (on: boolean): number => (on ? 1 : 0);
  const state = view.observation?.state ?? null;

  registry.registerMetric(counters.probeLatency.histogram);
  counter('primacy_probes_total', 'Probes of the local server.', counters.probes);
  counter('primacy_probe_failures_total', 'Probes of the local server that failed.', counters.probeFailures);
  gauge(
    'primacy_replication_lag_seconds',
    "Age of the primary's heartbeat row as read on this node; NaN when unknown.",
    state === null || state.lagMs === null ? NaN : state.lagMs / 1000,
  );
  const role = new Gauge({ name: 'primacy_role', help: "The agent's view of its node's role in the current epoch.", labelNames: ['role'], registers });
  for (const r of ROLES) role.set({ role: r }, flag(r === (view.member?.role ?? 'unknown')));
  gauge('primacy_read_only', 'Whether the local server is read-only; NaN when unknown.', state === null ? NaN : flag(state.readOnly));
  gauge('primacy_node_up', 'Whether the last probe found the local server up.', flag(view.observation?.health === 'up'));
  gauge('primacy_lease_remaining_seconds', "Time left before the agent's own lease deadline.", leaseRemainingMs(view, now) / 1000);
  gauge('primacy_etcd_reachable', 'Whether the agent currently reaches etcd.', flag(view.etcd.reachable));
  counter('primacy_etcd_errors_total', 'Failed etcd requests.', counters.etcdErrors);
  counter('primacy_member_writes_total', "Writes of this node's member key.", counters.memberWrites);
  counter('primacy_lease_losses_total', 'Times the agent lost its etcd lease.', counters.leaseLosses);
  counter('primacy_fencings_total', 'Times the agent fenced its node (read-only and client sessions killed).', counters.fencings);
  gauge('primacy_coordinator', "Whether this agent is its cluster's coordinator.", flag(view.coordinator.self));
  gauge('primacy_epoch', "The cluster's epoch as this agent last read it; 0 before the first primary.", view.primary?.epoch ?? 0);
  const operations = new Counter({ name: 'primacy_operations_total', help: 'Operations carried out, by kind and outcome.', labelNames: ['kind', 'outcome'], registers });
  for (const [key, count] of [...counters.operations.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    operations.inc(splitOperationKey(key), count);
  }

  const standard = processRegistry();
  const scraped = standard === null ? registry : Registry.merge([registry, standard]);
  scraped.setDefaultLabels({ cluster: view.config.cluster, node: view.config.node });
  return exposition(scraped);
}

/** The Counters map key is `kind:outcome`; a key without a colon has an unknown outcome. */
function splitOperationKey(key: string): { kind: string; outcome: string } {
  const at = key.indexOf(':');
  return at < 0 ? { kind: key, outcome: 'unknown' } : { kind: key.slice(0, at), outcome: key.slice(at + 1) };
}

// The process's metrics are the process's, not one agent's: tests run several agents in one process.
let processMetrics: 'off' | 'wanted' | Registry = 'off';

/**
 * Adds the process's and Node's standard metrics (CPU, memory, handles, event-loop delay, GC) to
 * every scrape. The program calls it once. Nothing of theirs runs before the first scrape: no
 * event-loop sampling timer and no GC observer costs CPU on an agent nobody scrapes.
 */
export function exposeProcessMetrics(): void {
  if (processMetrics === 'off') processMetrics = 'wanted';
}

function processRegistry(): Registry | null {
  if (processMetrics === 'off') return null;
  if (processMetrics === 'wanted') {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    processMetrics = registry;
  }
  return processMetrics;
}

// One family after another without prom-client's blank lines; NaN spelled as the format spells it
// (prom-client writes `Nan`, which Prometheus reads but stricter parsers refuse).
async function exposition(registry: Registry): Promise<string> {
  const families = await Promise.all(registry.getMetricsAsArray().map((m) => registry.getSingleMetricAsString(m.name)));
  return families.map((f) => f.replace(/^([^#].*) Nan$/gm, '$1 NaN')).join('\n') + '\n';
}
