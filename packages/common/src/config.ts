/**
 * The agent's configuration: one YAML file, then environment overrides, parsed once by one zod
 * schema that fills every default, then frozen. Passwords are read from files or the environment,
 * never from the YAML itself and never from etcd.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, ErrorCodes } from './errors.js';
import { DEFAULT_ROOT, isValidName } from './keys.js';
import { describeIssues } from './schemas.js';

const name = z.string().refine(isValidName, 'expected a name of letters, digits, ".", "_" or "-"');
const port = z.number().int().min(1).max(65535);
const ms = z.number().int().positive();

/** A secret is named by a file or an environment variable; the value itself never sits in the config. */
const secret = z
  .strictObject(
    { file: z.string().optional(), env: z.string().optional() },
    { error: 'expected { file: PATH } or { env: NAME }; a password never sits in the config itself' },
  )
  .refine((s) => (s.file === undefined) !== (s.env === undefined), 'expected exactly one of "file" or "env"');
export type SecretRef = z.infer<typeof secret>;

const EtcdSchema = z.strictObject({
  endpoints: z.array(z.string().url()).min(1),
  root: z.string().startsWith('/').default(DEFAULT_ROOT),
  tls: z.strictObject({ ca: z.string(), cert: z.string().optional(), key: z.string().optional() }).optional(),
  user: z.string().optional(),
  password: secret.optional(),
  dialTimeoutMs: ms.default(2000),
});

const MysqlSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: port.default(3306),
  socket: z.string().optional(),
  user: z.string(),
  password: secret,
  flavor: z.enum(['auto', 'mariadb', 'mysql']).default('auto'),
  /**
   * mysqld's pid file, when the agent runs beside it: a process that has exited is proof that the
   * server is gone (a refused connection on a loopback address or a socket is one too).
   */
  pidFile: z.string().optional(),
  /** Where replicas and clients reach this server, when it differs from host/port. */
  advertiseHost: z.string().optional(),
  advertisePort: port.optional(),
});

const ReplicationSchema = z.strictObject({
  user: z.string(),
  password: secret,
  /** Semi-synchronous replication: the promoted primary turns source mode on, replicas turn replica mode on. */
  semiSync: z.boolean().default(false),
  semiSyncTimeoutMs: ms.default(10000),
});

const TimingsSchema = z.strictObject({
  probeIntervalMs: ms.default(250),
  probeTimeoutMs: ms.default(1000),
  leaseTtlS: z.number().int().min(2).default(5),
  fenceMarginMs: ms.default(1500),
  /** Consecutive failed probes before the agent reports its server down. */
  downAfterProbes: z.number().int().positive().default(2),
  heartbeatIntervalMs: ms.default(1000),
  /** The primary's member key is rewritten at least this often even when nothing changed. */
  publishRefreshMs: ms.default(5000),
  /**
   * The same for every other node. Their positions matter to decisions only once the primary is in
   * doubt or an operation runs, and every agent publishes at once then; in between they are for `status`.
   * 30000 takes most member-key writes off a big fleet's etcd; the default stays 5000 (see docs/configuration.md).
   */
  replicaPublishRefreshMs: ms.default(5000),
  antiFlapMs: z.number().int().nonnegative().default(300_000),
  maxLagMs: ms.default(10_000),
  relayApplyTimeoutMs: ms.default(10_000),
  drainMs: ms.default(500),
  /** How long a switchover waits for the candidate to apply everything the old primary has, before it aborts. */
  switchoverCatchUpMs: ms.default(10_000),
  /** How long a switchover waits for every registered client to report its writes paused before demoting. */
  clientPauseWaitMs: ms.default(2000),
  /** How long a failover waits for every replica to stop receiving from the old primary. */
  revokeWaitMs: ms.default(8000),
  /** After an automatic failover aborted (too few nodes answered, say), how long before it is tried again. */
  failoverRetryMs: ms.default(5000),
});

/**
 * An operator's fencing command (STONITH: power off, a cloud API, a firewall rule), run by the
 * coordinator when it cannot otherwise prove the old primary fenced. Exit 0 within `timeoutMs` is a
 * proof; anything else is not, and it is tried again `retryMs` later.
 */
const FencingSchema = z.strictObject({
  command: z.string().min(1).optional(),
  timeoutMs: ms.default(10_000),
  retryMs: ms.default(5_000),
});

/**
 * Crash recovery on this node (issue 11): where the salvage of a diverged node goes (relative to the
 * config file's folder), and the operator's rejoin script for the `script` method. The script lives
 * here rather than in etcd, so that etcd write access is not a way to run commands on database hosts.
 */
const RejoinSchema = z.strictObject({
  crashDir: z.string().min(1).default('crash'),
  script: z.string().min(1).optional(),
  scriptTimeoutMs: ms.default(600_000),
  /** Bounds a salvage, a flashback and a reseed each. */
  timeoutMs: ms.default(3_600_000),
});

/**
 * The operator's hooks: shell commands (`sh -c`) run around a failover or switchover, each killed
 * (its whole process group) after `timeoutMs`. Only a failing pre-switchover hook changes anything:
 * it aborts the switchover. Nothing waits for a pre-failover hook.
 */
const command = z.string().min(1);
const HooksSchema = z.strictObject({
  preFailover: command.optional(),
  postFailover: command.optional(),
  preSwitchover: command.optional(),
  postSwitchover: command.optional(),
  postUnsuccessfulFailover: command.optional(),
  timeoutMs: ms.default(10_000),
});

const PromotionSchema = z.strictObject({
  priority: z.number().default(0),
  noPromote: z.boolean().default(false),
});

export const AgentConfigSchema = z.strictObject({
  cluster: name,
  node: name,
  etcd: EtcdSchema,
  mysql: MysqlSchema,
  replication: ReplicationSchema,
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: port.default(8008),
      /** The URL others reach the API at, published in the member key. */
      advertiseUrl: z.url({ protocol: /^https?$/ }).optional(),
    })
    .default({ host: '127.0.0.1', port: 8008 }),
  timings: TimingsSchema.default(TimingsSchema.parse({})),
  promotion: PromotionSchema.default({ priority: 0, noPromote: false }),
  fencing: FencingSchema.default({ timeoutMs: 10_000, retryMs: 5_000 }),
  hooks: HooksSchema.default({ timeoutMs: 10_000 }),
  rejoin: RejoinSchema.default(RejoinSchema.parse({})),
  /** The node to make primary when the cluster has none yet. */
  bootstrap: z.strictObject({ primary: name.optional() }).default({}),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') }).default({ level: 'info' }),
});

type Parsed = z.infer<typeof AgentConfigSchema>;

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** Passwords, read once at load time. */
export interface Secrets {
  readonly mysqlPassword: string;
  readonly replicationPassword: string;
  readonly etcdPassword: string | undefined;
}

export type AgentConfig = DeepReadonly<Parsed> & { readonly secrets: Secrets; readonly source: string };

const ENV_PREFIX = 'PRIMACY__';

/**
 * Environment overrides: `PRIMACY__MYSQL__PORT=3307` sets `mysql.port`. Segments match the config's
 * keys without regard to case; values are read as YAML scalars, so numbers, booleans and lists work.
 */
export function applyEnvOverrides(doc: unknown, env: NodeJS.ProcessEnv): unknown {
  const root: Record<string, unknown> = isRecord(doc) ? { ...doc } : {};
  for (const [envName, raw] of Object.entries(env)) {
    if (!envName.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const path = envName.slice(ENV_PREFIX.length).split('__').filter(Boolean);
    let node: Record<string, unknown> = root;
    let shape: unknown = AgentConfigSchema;
    path.forEach((segment, i) => {
      const keys = shapeKeys(shape);
      const key = keys.find((k) => k.toLowerCase() === segment.toLowerCase().replace(/_/g, '')) ?? segment.toLowerCase();
      shape = childShape(shape, key);
      if (i === path.length - 1) {
        node[key] = parseYaml(raw) as unknown;
      } else {
        const next = isRecord(node[key]) ? { ...(node[key] as Record<string, unknown>) } : {};
        node[key] = next;
        node = next;
      }
    });
  }
  return root;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unwrap(schema: unknown): unknown {
  let s = schema as { def?: { innerType?: unknown; type?: string }; shape?: unknown };
  while (s?.def && s.def.innerType !== undefined && !s.shape) s = s.def.innerType as typeof s;
  return s;
}

function shapeKeys(schema: unknown): string[] {
  const s = unwrap(schema) as { shape?: Record<string, unknown> };
  return s?.shape ? Object.keys(s.shape) : [];
}

function childShape(schema: unknown, key: string): unknown {
  const s = unwrap(schema) as { shape?: Record<string, unknown> };
  return s?.shape?.[key];
}

function readSecret(ref: SecretRef, what: string, baseDir: string, env: NodeJS.ProcessEnv): string {
  if (ref.env !== undefined) {
    const value = env[ref.env];
    if (value === undefined) throw new ConfigError(ErrorCodes.SECRET_READ, `${what}: environment variable ${ref.env} is not set`);
    return value;
  }
  const file = resolve(baseDir, ref.file ?? '');
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (cause) {
    throw new ConfigError(ErrorCodes.SECRET_READ, `${what}: cannot read password file ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
}

/** TLS files resolve against the config file's folder and must be readable now, not at the first etcd call. */
function resolveTls<T extends { ca: string; cert?: string | undefined; key?: string | undefined }>(tls: T, baseDir: string, source: string): T {
  const check = (what: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    const path = resolve(baseDir, file);
    try {
      accessSync(path, constants.R_OK);
    } catch (cause) {
      throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${source}: etcd.tls.${what}: cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
    }
    return path;
  };
  return { ...tls, ca: check('ca', tls.ca)!, cert: check('cert', tls.cert), key: check('key', tls.key) };
}

/** Freezes a value and everything inside it: a parsed config or plan is read, never changed. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates an already-read config document (YAML parsed, or an object built in code). */
export function compileAgentConfig(doc: unknown, options: { source?: string; env?: NodeJS.ProcessEnv; baseDir?: string } = {}): AgentConfig {
  const env = options.env ?? process.env;
  const source = options.source ?? '<config>';
  const parsed = AgentConfigSchema.safeParse(applyEnvOverrides(doc, env));
  if (!parsed.success) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${source}: ${describeIssues(parsed.error.issues)}`);
  }
  const c = parsed.data;
  const baseDir = options.baseDir ?? process.cwd();
  if (c.timings.fenceMarginMs >= c.timings.leaseTtlS * 1000) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${source}: timings.fenceMarginMs: expected less than the lease TTL (${c.timings.leaseTtlS * 1000} ms)`);
  }
  // Half of a login is a mistake, not a wish to connect without one.
  if ((c.etcd.user === undefined) !== (c.etcd.password === undefined)) {
    const [set, missing] = c.etcd.user === undefined ? ['password', 'user'] : ['user', 'password'];
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${source}: etcd.${missing}: required when etcd.${set} is set`);
  }
  const tls = c.etcd.tls ? resolveTls(c.etcd.tls, baseDir, source) : undefined;
  const secrets: Secrets = {
    mysqlPassword: readSecret(c.mysql.password, 'mysql.password', baseDir, env),
    replicationPassword: readSecret(c.replication.password, 'replication.password', baseDir, env),
    etcdPassword: c.etcd.password ? readSecret(c.etcd.password, 'etcd.password', baseDir, env) : undefined,
  };
  // Like the TLS files, relative to the config file's folder; it need not exist while mysqld is stopped.
  const mysql = c.mysql.pidFile === undefined ? c.mysql : { ...c.mysql, pidFile: resolve(baseDir, c.mysql.pidFile) };
  const rejoin = { ...c.rejoin, crashDir: resolve(baseDir, c.rejoin.crashDir) };
  return deepFreeze({ ...c, etcd: { ...c.etcd, tls }, mysql, rejoin, secrets, source });
}

/** Reads and validates the agent's YAML config file. Throws ConfigError with one line naming the field. */
export function loadAgentConfig(file: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(ErrorCodes.CONFIG_READ, `cannot read config file ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    const first = cause instanceof Error ? (cause.message.split('\n')[0] ?? '') : String(cause);
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${file}: not valid YAML: ${first}`, { cause });
  }
  return compileAgentConfig(doc, { source: file, env, baseDir: dirname(resolve(file)) });
}
