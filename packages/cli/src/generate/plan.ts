/**
 * The input of `primacy config generate`: a short YAML (or JSON) description of one cluster, its
 * nodes and its etcd, parsed once by one zod schema that fills every default. Pure: text in, a
 * frozen ClusterPlan or a one-line CliError out.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_ROOT, deepFreeze, describeIssues, isValidName } from '@primacy/common';
import { CliError, ExitCode } from '../errors.js';

const name = z.string().refine(isValidName, 'expected a name of letters, digits, ".", "_" or "-"');
const port = z.number().int().min(1).max(65535);

const NodeSchema = z.strictObject({
  name,
  /** Where the other nodes, HAProxy and clients reach this node. */
  host: z.string().min(1),
  mysqlPort: port.default(3306),
  /** The agent's HTTP API: health checks, status, metrics. */
  apiPort: port.default(8008),
});

const HaproxySchema = z.strictObject({
  /** Where HAProxy listens; empty means every address. */
  bind: z.string().default(''),
  writePort: port.default(3306),
  readPort: port.default(3307),
  /** A replica further behind than this leaves the read pool (docs/operations.md, "Read pool"). */
  maxLagMs: z.number().int().positive().default(5000),
  /** The runtime API socket (`show servers state`). */
  statsSocket: z.string().startsWith('/').default('/run/haproxy/admin.sock'),
  /** The server-state file that makes every server start DOWN (HAProxy 2.6 has no init-state). */
  stateFile: z.string().startsWith('/').default('/etc/haproxy/primacy.state'),
});

const KubernetesSchema = z.strictObject({
  namespace: name.default('default'),
  /** The StatefulSet, its headless Service and its pods' prefix; default `primacy-<cluster>`. */
  name: name.optional(),
  mariadbImage: z.string().min(1).default('mariadb:10.11'),
  agentImage: z.string().min(1).default('primacy-agent:0.1.0'),
  /** The Secret with the keys root-password, mysql-password and repl-password; default `<name>-secrets`. */
  secret: name.optional(),
  storage: z.string().regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti)$/, 'expected a size such as 10Gi').default('10Gi'),
  storageClass: name.optional(),
});

/** Where the generated files expect the nodes' own files; these are paths on the nodes, not here. */
const PathsSchema = z.strictObject({
  agentConfig: z.string().startsWith('/').default('/etc/primacy/agent.yaml'),
  mysqlPassword: z.string().startsWith('/').default('/etc/primacy/mysql.password'),
  replPassword: z.string().startsWith('/').default('/etc/primacy/repl.password'),
  pidFile: z.string().startsWith('/').default('/run/mysqld/mysqld.pid'),
});

export const ClusterPlanSchema = z.strictObject({
  cluster: name,
  root: z.string().startsWith('/').default(DEFAULT_ROOT),
  etcd: z.array(z.url({ protocol: /^https?$/ }), { error: 'expected a list of etcd URLs, such as [http://10.0.0.11:2379]' }).min(1, 'expected at least one etcd URL'),
  nodes: z.array(NodeSchema).min(1, 'expected at least one node'),
  /** The first primary, when the cluster has none yet; default the first node. */
  bootstrap: name.optional(),
  semiSync: z.boolean().default(true),
  mysqlUser: z.string().min(1).default('primacy'),
  replUser: z.string().min(1).default('repl'),
  paths: PathsSchema.default(PathsSchema.parse({})),
  haproxy: HaproxySchema.default(HaproxySchema.parse({})),
  kubernetes: KubernetesSchema.default(KubernetesSchema.parse({})),
});

type Parsed = z.infer<typeof ClusterPlanSchema>;
export type NodePlan = Readonly<Parsed['nodes'][number]>;

/** Every field filled: `bootstrap`, the Kubernetes name and secret are resolved. */
export interface ClusterPlan extends Readonly<Omit<Parsed, 'nodes' | 'bootstrap' | 'kubernetes'>> {
  readonly nodes: readonly NodePlan[];
  readonly bootstrap: string;
  readonly kubernetes: Readonly<Parsed['kubernetes'] & { name: string; secret: string }>;
}

function invalid(source: string, message: string): CliError {
  return new CliError(ExitCode.USAGE, `${source}: ${message}`);
}

/** Validates an already-read plan document and checks what the schema cannot: names and ports that collide. */
export function compileClusterPlan(doc: unknown, source = '<plan>'): ClusterPlan {
  const parsed = ClusterPlanSchema.safeParse(doc);
  if (!parsed.success) throw invalid(source, describeIssues(parsed.error.issues));
  const p = parsed.data;
  const names = new Set<string>();
  const endpoints = new Map<string, string>();
  p.nodes.forEach((n, i) => {
    if (names.has(n.name)) throw invalid(source, `nodes.${i}.name: ${n.name} is listed twice`);
    names.add(n.name);
    for (const [what, value] of [['mysqlPort', n.mysqlPort], ['apiPort', n.apiPort]] as const) {
      const key = `${n.host.toLowerCase()}:${value}`;
      const taken = endpoints.get(key);
      if (taken !== undefined) throw invalid(source, `nodes.${i}.${what}: ${n.host}:${value} is already ${taken}`);
      endpoints.set(key, `${n.name}'s ${what}`);
    }
  });
  const bootstrap = p.bootstrap ?? p.nodes[0]!.name;
  if (!names.has(bootstrap)) throw invalid(source, `bootstrap: ${bootstrap} is not one of the nodes (${[...names].join(', ')})`);
  if (p.haproxy.writePort === p.haproxy.readPort) throw invalid(source, `haproxy.readPort: ${p.haproxy.readPort} is already the write port`);
  const k8sName = p.kubernetes.name ?? `primacy-${p.cluster}`.toLowerCase();
  const kubernetes = { ...p.kubernetes, name: k8sName, secret: p.kubernetes.secret ?? `${k8sName}-secrets` };
  return deepFreeze({ ...p, bootstrap, kubernetes });
}

/** Reads a plan from YAML text (JSON is YAML too). */
export function parseClusterPlan(text: string, source: string): ClusterPlan {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    const first = cause instanceof Error ? (cause.message.split('\n')[0] ?? '') : String(cause);
    throw new CliError(ExitCode.USAGE, `${source}: not valid YAML or JSON: ${first}`, { cause });
  }
  if (doc === null || doc === undefined) throw invalid(source, 'the file is empty: expected cluster, etcd and nodes');
  return compileClusterPlan(doc, source);
}
