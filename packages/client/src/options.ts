/**
 * The options of watchPrimary, createPool and registerClient: each parsed once by a zod schema that
 * fills every default, then frozen, so the code never asks "was this set?". A wrong field is one
 * line naming its path and what was expected.
 */
import { Etcd3 } from 'etcd3';
import type { ConnectionOptions } from 'mysql2/promise';
import { z } from 'zod';
import { DEFAULT_ROOT, describeIssues, isValidName } from '@primacy/common';
import { ClientError, ClientErrorCodes } from './errors.js';
import { EtcdConnectionSchema, compileEtcdConnection, type EtcdConnection, type EtcdConnectionOptions } from './etcd-access.js';
import type { PrimaryWatch } from './watch.js';

const name = z.string().refine(isValidName, 'expected a name of letters, digits, ".", "_" or "-"');
const ms = z.number().int().positive();
/** Endpoint URLs; endpoints with TLS or a user; or an Etcd3 client the library only borrows. */
export type EtcdOption = readonly string[] | EtcdConnectionOptions | Etcd3;

/** Each form is checked by its own schema, so that a wrong field inside the object form is named by its path. */
const etcd = z.custom<EtcdOption>().transform((v, ctx) => {
  if (v instanceof Etcd3) return v;
  const form = Array.isArray(v) ? { endpoints: v } : typeof v === 'object' && v !== null ? v : null;
  const parsed = form && EtcdConnectionSchema.safeParse(form);
  if (parsed?.success) return parsed.data;
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: 'expected a list of etcd endpoint URLs, { endpoints, tls?, auth? }, or an Etcd3 client', input: v });
  } else {
    const arrayForm = Array.isArray(v);
    for (const issue of parsed.error.issues) {
      // The array form is { endpoints } inside: name the array, not a field the caller never wrote.
      ctx.addIssue({ ...issue, code: 'custom', path: arrayForm ? issue.path.slice(1) : issue.path, input: v } as never);
    }
  }
  return z.NEVER;
});
const watchInstance = z.custom<PrimaryWatch>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { current?: unknown }).current === 'function' && typeof (v as { refresh?: unknown }).refresh === 'function',
  'expected a PrimaryWatch from watchPrimary()',
);

export const WatchOptionsSchema = z.strictObject({
  /** Endpoints, or endpoints with TLS and a user (the library makes and closes its own client), or a client it only borrows. */
  etcd,
  cluster: name,
  root: z.string().startsWith('/').default(DEFAULT_ROOT),
  /** Deadline of each etcd read the library makes. */
  etcdTimeoutMs: ms.default(2_000),
});
export type WatchOptions = z.input<typeof WatchOptionsSchema>;
/** The etcd option once compiled: files read and checked. */
export type CompiledEtcd = Etcd3 | EtcdConnection;
export type CompiledWatchOptions = Readonly<Omit<z.output<typeof WatchOptionsSchema>, 'etcd'> & { etcd: CompiledEtcd }>;

const RegisterSchema = z.strictObject({
  id: name,
  /** TTL of the registration's own lease: a client that dies disappears from `clients/` after it. */
  ttlSeconds: z.number().int().min(2).default(5),
});

export const RegistrationOptionsSchema = z.strictObject({
  etcd: etcd.optional(),
  cluster: name.optional(),
  root: z.string().startsWith('/').default(DEFAULT_ROOT),
  etcdTimeoutMs: ms.default(2_000),
  /** Follow this watch instead of making one (its etcd client is used for the lease too). */
  watch: watchInstance.optional(),
  ...RegisterSchema.shape,
});
export type RegistrationOptions = z.input<typeof RegistrationOptionsSchema>;
export type CompiledRegistrationOptions = Readonly<Omit<z.output<typeof RegistrationOptionsSchema>, 'etcd'> & { etcd?: CompiledEtcd }>;

export const PoolOptionsSchema = z.strictObject({
  etcd: etcd.optional(),
  cluster: name.optional(),
  root: z.string().startsWith('/').default(DEFAULT_ROOT),
  etcdTimeoutMs: ms.default(2_000),
  /** Share one watch between pools; the pool then never closes it. */
  watch: watchInstance.optional(),
  /** mysql2 connection options (user, password, database, ssl, …); host and port come from etcd. */
  connection: z.record(z.string(), z.unknown()).refine((c) => !('host' in c) && !('port' in c) && !('socketPath' in c), {
    error: 'host, port and socketPath come from etcd; leave them out',
  }),
  /** Connections per node. */
  connectionLimit: z.number().int().positive().default(10),
  /** How long a statement waits for a `ready` primary (during `switching`, `promoting`, or a failover) before it fails. */
  holdWritesMs: ms.default(5_000),
  /** Replicas further behind than this take no reads from `reader()`. */
  maxReplicaLagMs: ms.default(1_000),
  /** Right after a promotion the heartbeat row may lag the primary key: how long a new connection waits for it. */
  heartbeatWaitMs: ms.default(2_000),
  /** Check `primacy.heartbeat`'s epoch on every new connection to the primary (needs SELECT on it). */
  verifyHeartbeat: z.boolean().default(true),
  connectTimeoutMs: ms.default(2_000),
  /** Register this pool under `clients/<id>` so a switchover can wait until it holds its writes. */
  register: RegisterSchema.extend({
    /** How long, on `switching`, the pool waits for its statements in flight on the old primary before it confirms the pause. */
    drainMs: z.number().int().nonnegative().default(1_000),
  }).optional(),
});
export type PoolOptions = Omit<z.input<typeof PoolOptionsSchema>, 'connection'> & {
  readonly connection: Omit<ConnectionOptions, 'host' | 'port' | 'socketPath'>;
};
export type CompiledPoolOptions = Readonly<Omit<z.output<typeof PoolOptionsSchema>, 'connection' | 'etcd'>> & {
  readonly etcd?: CompiledEtcd;
  readonly connection: Readonly<Omit<ConnectionOptions, 'host' | 'port' | 'socketPath'>>;
};

function compile<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new ClientError(ClientErrorCodes.OPTIONS_INVALID, `invalid ${what} options: ${describeIssues(parsed.error.issues)}`);
  const o = parsed.data as { etcd?: unknown };
  // Read the TLS files once the shape is right, so that an unreadable one keeps its cause.
  if (o.etcd !== undefined && !(o.etcd instanceof Etcd3)) o.etcd = compileEtcdConnection(o.etcd as z.output<typeof EtcdConnectionSchema>, what);
  return Object.freeze(o) as z.output<S>;
}

export function compileWatchOptions(input: WatchOptions): CompiledWatchOptions {
  return compile(WatchOptionsSchema, input, 'watchPrimary') as CompiledWatchOptions;
}

/** Either a watch to follow, or etcd and cluster to make one. */
function needsWatchOrEtcd(o: { watch?: unknown; etcd?: unknown; cluster?: unknown }, what: string): void {
  if (o.watch === undefined && (o.etcd === undefined || o.cluster === undefined)) {
    throw new ClientError(ClientErrorCodes.OPTIONS_INVALID, `invalid ${what} options: give "etcd" and "cluster", or a "watch"`);
  }
}

export function compileRegistrationOptions(input: RegistrationOptions): CompiledRegistrationOptions {
  const o = compile(RegistrationOptionsSchema, input, 'registerClient') as CompiledRegistrationOptions;
  needsWatchOrEtcd(o, 'registerClient');
  return o;
}

export function compilePoolOptions(input: PoolOptions): CompiledPoolOptions {
  const o = compile(PoolOptionsSchema, input, 'createPool') as CompiledPoolOptions;
  needsWatchOrEtcd(o, 'createPool');
  if ((o.connection as { multipleStatements?: unknown }).multipleStatements === true) {
    throw new ClientError(ClientErrorCodes.OPTIONS_INVALID, 'invalid createPool options: connection.multipleStatements must stay off (a batch cut by a failover has no single outcome)');
  }
  return o;
}
