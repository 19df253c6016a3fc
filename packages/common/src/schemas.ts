/**
 * zod schemas for every value Primacy keeps in etcd. Values are JSON; a value that fails its schema
 * is reported as an EtcdValueError and ignored, never thrown past the caller.
 */
import { z } from 'zod';
import { EtcdValueError } from './errors.js';

export const FlavorSchema = z.enum(['mariadb', 'mysql']);

/** How the agent sees its server. `refusing` (1040 and the like) means alive: never a reason to fail over. */
export const HealthSchema = z.enum(['up', 'down', 'refusing', 'auth_error']);
export type Health = z.infer<typeof HealthSchema>;

export const ReplicationStateSchema = z.object({
  sourceHost: z.string(),
  sourcePort: z.number().int(),
  /** `connecting` means the IO thread runs but has no link to its source. */
  ioState: z.enum(['running', 'connecting', 'stopped']),
  sqlRunning: z.boolean(),
  lastIoError: z.string(),
  lastSqlError: z.string(),
  autoPosition: z.boolean(),
  secondsBehind: z.number().nullable(),
});
export type ReplicationState = z.infer<typeof ReplicationStateSchema>;

export const SemiSyncStateSchema = z.object({
  sourceEnabled: z.boolean(),
  /** The source is currently waiting for replica acknowledgements (not fallen back to async). */
  sourceActive: z.boolean(),
  sourceClients: z.number().int(),
  replicaEnabled: z.boolean(),
  replicaActive: z.boolean(),
  /**
   * The source's wait for an acknowledgement before it falls back to asynchronous replication, and
   * whether it waits with no replica connected; null when the driver cannot read them. Together they
   * show strict semi-sync: a timeout of STRICT_SEMI_SYNC_TIMEOUT_MS or more, and waiting with none.
   */
  sourceTimeoutMs: z.number().nullable().default(null),
  sourceWaitNoReplica: z.boolean().nullable().default(null),
});
export type SemiSyncState = z.infer<typeof SemiSyncStateSchema>;

export const GtidStateSchema = z.object({
  /** Everything this server has executed: MariaDB `gtid_current_pos`'s binlog part, MySQL `gtid_executed`. */
  executed: z.string(),
  /** Everything it has received, applied or not: executed plus the relay log (MariaDB `Gtid_IO_Pos`, MySQL retrieved set). */
  received: z.string(),
  /** MariaDB's own positions, kept as the server prints them. */
  binlogPos: z.string().optional(),
  /** MariaDB's `gtid_binlog_state`: the last GTID of every (domain, server) pair in the binlog, which shows a divergence that positions hide. */
  binlogState: z.string().optional(),
  slavePos: z.string().optional(),
  currentPos: z.string().optional(),
  ioPos: z.string().optional(),
  /** MySQL's retrieved set. */
  retrieved: z.string().optional(),
});
export type GtidState = z.infer<typeof GtidStateSchema>;

export const NodeStateSchema = z.object({
  flavor: FlavorSchema,
  version: z.string(),
  serverId: z.number().int(),
  serverUuid: z.string().nullable(),
  readOnly: z.boolean(),
  superReadOnly: z.boolean().nullable(),
  logBin: z.boolean(),
  gtid: GtidStateSchema,
  replication: ReplicationStateSchema.nullable(),
  /** Age of the primary's heartbeat row, in ms; null when there is none to read. */
  lagMs: z.number().nullable(),
  heartbeatEpoch: z.number().int().nullable(),
  semiSync: SemiSyncStateSchema,
  connections: z.number().int(),
  maxConnections: z.number().int(),
});
export type NodeState = z.infer<typeof NodeStateSchema>;

export const LastAnswerSchema = z.object({ executed: z.string(), received: z.string(), seenRevision: z.string() });
export type LastAnswer = z.infer<typeof LastAnswerSchema>;

/** The operator's commands run around a failover or switchover (the agent config's `hooks`). */
export const HookNameSchema = z.enum(['pre-failover', 'post-failover', 'pre-switchover', 'post-switchover', 'post-unsuccessful-failover']);
export type HookName = z.infer<typeof HookNameSchema>;

/**
 * One run of a hook: by which agent (`node`), as what (`role`: the coordinator, or the new primary's
 * own agent), for which operation (`epoch` and the record's `startedAt`), and how it ended.
 */
export const HookRunSchema = z.object({
  name: HookNameSchema,
  node: z.string(),
  role: z.enum(['coordinator', 'new-primary']),
  epoch: z.number().int(),
  opStartedAt: z.number(),
  startedAt: z.number(),
  ms: z.number(),
  /** Null when it was killed at its bound or could not start. */
  exitCode: z.number().int().nullable(),
  timedOut: z.boolean(),
  /** `exit 0`, `exit 3`, `killed after 10000 ms`, `could not start: …` */
  outcome: z.string(),
  /** The last lines of its stdout and stderr together. */
  outputTail: z.string(),
});
export type HookRun = z.infer<typeof HookRunSchema>;

export const MemberStateSchema = z.object({
  node: z.string(),
  cluster: z.string(),
  agentVersion: z.string(),
  /** Where replicas and clients reach this node's server. */
  host: z.string(),
  port: z.number().int(),
  /** The agent's HTTP API. */
  apiUrl: z.string(),
  updatedAt: z.number(),
  health: HealthSchema,
  error: z.string().nullable(),
  /** Consecutive probes that found the server down. */
  downProbes: z.number().int(),
  probeMs: z.number().nullable(),
  /** The agent's own view of its role in the current epoch. */
  role: z.enum(['primary', 'replica', 'diverged', 'unknown']),
  /**
   * The agent made its node read-only, read read_only back, and killed client sessions (invariant
   * 3/4). Never set because the server does not answer: a hung server is not a fenced one.
   */
  fenced: z.boolean(),
  /** The failover (by epoch) for which the agent fenced its node as above: the proof a failover takes from a live agent. */
  fencedFor: z.number().int().nullable().default(null),
  /**
   * Why the agent knows its server is gone, not merely silent: a refused connection on its own host
   * (loopback or a unix socket), or the process it watches has exited. Null otherwise.
   */
  serverGone: z.string().nullable().default(null),
  /** Transactions this node has that the primary lacks; set when it is kept out of rotation. */
  errant: z.string().nullable(),
  /** The failover (by epoch) for which this node stopped receiving from the old primary ("revoke"). */
  revokedEpoch: z.number().int().nullable(),
  /** Which attempt of that failover (its record's `startedAt`): a retried attempt of the same epoch revokes again. */
  revokedAttempt: z.number().nullable().default(null),
  priority: z.number(),
  noPromote: z.boolean(),
  /** What the last probe read; null when the server has not answered yet. */
  server: NodeStateSchema.nullable(),
  /**
   * What the server had the last time it answered, kept while it does not, and the etcd revision of
   * the cluster snapshot the agent had read before that probe: the probe ran after that revision.
   */
  lastAnswer: LastAnswerSchema.nullable().default(null),
  /**
   * The etcd revision of this key's first write in the current period of `health: down`: the server
   * was already down then, and has answered no probe since.
   */
  downSinceRevision: z.string().nullable().default(null),
  /** Why the agent could not salvage its diverged node (one line); null when it did or had no need to. */
  salvageProblem: z.string().nullable().optional(),
  /** The agent's progress through the rejoin the coordinator started for its node (the record's `startedAt`). */
  rejoin: z
    .object({ startedAt: z.number(), step: z.string(), outcome: z.enum(['running', 'done', 'failed']), detail: z.string() })
    .nullable()
    .optional(),
  /** This agent's last hook runs, until the coordinator copies them into their op records. */
  hooks: z.array(HookRunSchema).optional(),
});
export type MemberState = z.infer<typeof MemberStateSchema>;

export const PrimaryStateSchema = z.enum(['promoting', 'ready', 'switching']);
export type PrimaryState = z.infer<typeof PrimaryStateSchema>;

export const PrimarySchema = z.object({
  node: z.string(),
  host: z.string(),
  port: z.number().int(),
  epoch: z.number().int().positive(),
  state: PrimaryStateSchema,
  since: z.number(),
  /** The primary's GTID position when this epoch began. */
  gtid: z.string(),
  serverId: z.number().int().nullable(),
  serverUuid: z.string().nullable(),
});
export type Primary = z.infer<typeof PrimarySchema>;

export const EpochSchema = z.number().int().nonnegative();

/** `rejoin`: a refused rejoin request; `request`: a malformed request, removed (kept in history/ with why). */
export const OpKindSchema = z.enum(['bootstrap', 'failover', 'switchover', 'rejoin', 'request']);
export type OpKind = z.infer<typeof OpKindSchema>;

export const OpStepSchema = z.object({
  name: z.string(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  outcome: z.enum(['running', 'ok', 'failed', 'skipped']),
  detail: z.string(),
});
export type OpStep = z.infer<typeof OpStepSchema>;

export const CandidateVerdictSchema = z.object({
  node: z.string(),
  gtid: z.string().nullable(),
  eligible: z.boolean(),
  reason: z.string(),
});
export type CandidateVerdict = z.infer<typeof CandidateVerdictSchema>;

/** How a failover proved that the old primary can no longer acknowledge a write (DESIGN.md invariant 4). */
export const FenceProofKindSchema = z.enum(['agent-fenced', 'server-gone', 'sql-fenced', 'strict-semi-sync', 'fencing-command', 'operator']);
export type FenceProofKind = z.infer<typeof FenceProofKindSchema>;

export const FenceProofSchema = z.object({
  kind: FenceProofKindSchema,
  /** The evidence, in words: what was read back, what exited, who overrode. */
  detail: z.string(),
  at: z.number(),
  /** The old primary's executed GTID position once fenced, when it could be read: the replicas receive it before they revoke. */
  finalGtid: z.string().nullable().default(null),
});
export type FenceProof = z.infer<typeof FenceProofSchema>;

/** What the cluster promises about acknowledged writes: none (async), semi-sync that may fall back, or semi-sync that never does. */
export const DurabilitySchema = z.enum(['async', 'semi-sync', 'strict']);
export type Durability = z.infer<typeof DurabilitySchema>;

/**
 * `durability`, written by the coordinator whenever the primary's semi-sync state changes: what the
 * primary of `epoch` was last seen doing. `state`: `active` (commits wait for a replica),
 * `fallback` (semi-sync on but fallen back to asynchronous), `off`. `strict`: the server itself was
 * seen with no fallback (the timeout effectively infinite, waiting even with no replica).
 */
export const DurabilityRecordSchema = z.object({
  epoch: z.number().int(),
  node: z.string(),
  mode: DurabilitySchema,
  state: z.enum(['active', 'fallback', 'off', 'unknown']),
  strict: z.boolean(),
  /** When the primary entered `state`, as first seen by a coordinator; it is rewritten only when something here changes. */
  since: z.number(),
  /** The semi-sync replicas the primary reported connected. */
  clients: z.number().int(),
});
export type DurabilityRecord = z.infer<typeof DurabilityRecordSchema>;

/**
 * A source timeout at or above this (ms) is strict semi-sync: effectively never falls back. It is
 * what a strict cluster's primary sets (MariaDB and MySQL both take up to 2^32 - 1 ms, about 49 days).
 */
export const STRICT_SEMI_SYNC_TIMEOUT_MS = 4_294_967_295;

export const OpRecordSchema = z.object({
  epoch: z.number().int(),
  kind: OpKindSchema,
  from: z.string().nullable(),
  to: z.string().nullable(),
  /** Automatic, or the operator request that asked for it. */
  trigger: z.string(),
  /** The operator's request, when one started this operation: its target and whether the rules may be overridden. */
  request: z.object({ id: z.string(), to: z.string().nullable(), force: z.boolean() }).nullable().default(null),
  coordinator: z.object({ node: z.string(), revision: z.string() }),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  /** `refused`: the operation was never started; `reason` says why. */
  outcome: z.enum(['running', 'done', 'aborted', 'refused']),
  reason: z.string(),
  /** When the candidate is not the most advanced node, it first replicates from this one until it has its position. */
  catchUpFrom: z.object({ node: z.string(), host: z.string(), port: z.number().int(), gtid: z.string() }).nullable().default(null),
  /**
   * A GTID position the new primary must contain. Set when a candidate did not finish its promotion
   * in time: what it received may be the only copy of acknowledged writes, so whoever replaces it
   * must have all of it.
   */
  mustContain: z.string().nullable().default(null),
  /**
   * While the candidate applies its relay log before it is made writable: its executed position as the
   * coordinator last saw it advance, and when (the coordinator's clock). A candidate that applies
   * steadily is waited for; one whose position stands still past the limit is replaced.
   */
  applied: z.object({ node: z.string(), gtid: z.string(), at: z.number() }).nullable().default(null),
  /** What proved that the old primary can no longer acknowledge a write (invariant 4); null until proven. */
  proof: FenceProofSchema.nullable().default(null),
  /** The old primary's semi-sync state as last recorded before this operation, and what it means for lost writes. */
  durability: DurabilityRecordSchema.nullable().default(null),
  /** Where the old primary's server was (the primary key's address when the operation began): its hooks get it. */
  fromAddress: z.object({ host: z.string(), port: z.number().int() }).nullable().optional(),
  /** Every hook run for this operation, on the coordinator and on the new primary's agent (absent: none). */
  hooks: z.array(HookRunSchema).optional(),
  /** A rejoin's plan (kind `rejoin`): the node, the method, why it is allowed, the salvage it relies on. */
  rejoin: z
    .object({
      node: z.string(),
      method: z.enum(['flashback', 'reseed', 'script']),
      allowed: z.string(),
      /** The salvage manifest's `at`: one automatic rejoin per salvage. */
      salvageAt: z.number(),
      salvageFolder: z.string(),
      gtids: z.string(),
      /** A reseed's source. */
      source: z.object({ node: z.string(), host: z.string(), port: z.number().int() }).nullable(),
      /** The cluster's rejoin policy when this was decided: a changed policy decides again for the same salvage. */
      policy: z
        .object({ method: z.enum(['flashback', 'reseed', 'script', 'none']), allowUnacknowledgedFlashback: z.boolean(), reseedFrom: z.string().optional() })
        .nullable()
        .optional(),
    })
    .nullable()
    .optional(),
  /** The members as the coordinator saw them when it decided. */
  members: z.record(
    z.string(),
    z.object({
      health: HealthSchema,
      gtid: z.string().nullable(),
      received: z.string().nullable(),
      semiSync: z.string(),
      // Absent in records written before they existed.
      lastAnswer: LastAnswerSchema.nullable().optional(),
      downSinceRevision: z.string().nullable().optional(),
    }),
  ),
  candidates: z.array(CandidateVerdictSchema),
  steps: z.array(OpStepSchema),
});
export type OpRecord = z.infer<typeof OpRecordSchema>;

// history/<time>-<epoch>-<kind>-<outcome> holds, as an OpRecord, every operation that ended refused
// or aborted: ops/<epoch> keeps only the last one of its epoch.

const NodeSettingsShape = {
  priority: z.number().optional(),
  noPromote: z.boolean().optional(),
  /** In maintenance: never a candidate, and its absence blocks no failover (not counted among the nodes that must answer). */
  maintenance: z.boolean().optional(),
};

export const RejoinMethodSchema = z.enum(['flashback', 'reseed', 'script', 'none']);
export type RejoinMethod = z.infer<typeof RejoinMethodSchema>;

/**
 * How a diverged node (transactions the primary lacks) rejoins, after its agent salvaged them:
 * `none` keeps it out of rotation. Flashback undoes only writes never acknowledged (semi-sync in sync
 * at the failover) unless `allowUnacknowledgedFlashback`; a script runs the agent's `rejoin.script`.
 */
const RejoinPolicyShape = {
  method: RejoinMethodSchema.default('none'),
  allowUnacknowledgedFlashback: z.boolean().default(false),
  /** A reseed's source; by default a healthy replica, else the primary. */
  reseedFrom: z.string().optional(),
};
export const RejoinPolicySchema = z.object(RejoinPolicyShape);
export type RejoinPolicy = z.infer<typeof RejoinPolicySchema>;

const ClusterConfigShape = {
  paused: z.boolean().default(false),
  maxLagMs: z.number().int().positive().optional(),
  antiFlapMs: z.number().int().nonnegative().optional(),
  /** Overrides the agents' own `replication.semiSync` for the whole cluster. */
  durability: DurabilitySchema.optional(),
};

/** Dynamic settings that operators change through the CLI. Every field has a default. */
export const ClusterConfigSchema = z.object({
  ...ClusterConfigShape,
  nodes: z.record(z.string(), z.object(NodeSettingsShape)).default({}),
  rejoin: RejoinPolicySchema.optional(),
  /**
   * After the whole cluster was down, promote the first node back even without proof that it holds
   * everything (the last primary, or a node containing everyone's last published position); the
   * failover record then says writes may have been lost.
   */
  restartUnsafe: z.boolean().optional(),
});
export type ClusterConfig = z.infer<typeof ClusterConfigSchema>;

/**
 * The same, refusing fields it does not know (zod's unrecognized_keys), for what an operator types
 * in `primacy edit-config`: a misspelt `noPromote` would otherwise be dropped without a word.
 */
export const ClusterConfigStrictSchema = z.strictObject({
  ...ClusterConfigShape,
  nodes: z.record(z.string(), z.strictObject(NodeSettingsShape)).default({}),
  rejoin: z.strictObject(RejoinPolicyShape).optional(),
  restartUnsafe: z.boolean().optional(),
});

/** A node the config puts in maintenance: never a candidate, and its absence blocks no failover. */
export function isInMaintenance(config: ClusterConfig, node: string): boolean {
  return config.nodes[node]?.maintenance === true;
}

export const RequestSchema = z.object({
  kind: z.enum(['switchover', 'failover', 'rejoin']),
  to: z.string().nullable(),
  force: z.boolean().default(false),
  /**
   * An operator's word that the old primary cannot take writes, for a failover that waits for a
   * fencing proof it cannot get. Recorded as the proof `operator`.
   */
  unfenced: z.boolean().default(false),
  /** A rejoin's method, overriding the cluster's policy (`to` names the node to rejoin). */
  method: z.enum(['flashback', 'reseed', 'script']).optional(),
  requestedAt: z.number(),
  by: z.string(),
});
export type OperatorRequest = z.infer<typeof RequestSchema>;

export const ClientRegistrationSchema = z.object({
  id: z.string(),
  writesPaused: z.boolean(),
  epoch: z.number().int(),
  updatedAt: z.number(),
});
export type ClientRegistration = z.infer<typeof ClientRegistrationSchema>;

/**
 * What a salvage copied off a diverged node before anything changed it (issue 11): the transactions
 * the new primary lacks, the binary logs that hold them (raw copies, byte for byte), and where they
 * are. Kept in etcd with the node's record so that nothing a DBA might want is lost silently.
 */
export const SalvageManifestSchema = z.object({
  node: z.string(),
  flavor: FlavorSchema,
  serverId: z.number().int(),
  /** When the copy finished (ms since the epoch). */
  at: z.number(),
  /** The node's `gtid_binlog_state` and the new primary's, as compared (MySQL: each one's `gtid_executed`, canonical). */
  nodeState: z.string(),
  primaryState: z.string(),
  /**
   * The extra transactions: per (domain, server) pair, the GTIDs of the node's binlog with a sequence
   * number in (fromSeqExclusive, toSeq]. Sequence numbers are decimal strings (they are 64-bit).
   * Empty on MySQL, whose GTID sets name the exact ranges in `gtids`.
   */
  extra: z.array(z.object({ domain: z.number().int(), server: z.number().int(), fromSeqExclusive: z.string(), toSeq: z.string() })),
  /**
   * The extra transactions' last GTID per pair, `d-s-n,…` (as `mariaStateMissing` prints them). MySQL:
   * exactly the extra set, `GTID_SUBTRACT(node, primary)`, such as `uuid:1043-1045` ('' when none).
   */
  gtids: z.string(),
  /**
   * The GTID position just before the extra transactions: `mariadb-binlog --start-position` for a replay or
   * flashback of exactly them. MySQL: the set both executed (`mysqlbinlog --exclude-gtids` for a replay).
   */
  replayFrom: z.string(),
  /** The server id the binlog reader identified itself with (0: a non-blocking dump that registers as no replica). */
  readerServerId: z.number().int(),
  /** Where the files are, on the host that ran the salvage. */
  folder: z.string(),
  files: z.array(z.object({ name: z.string(), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  /** The salvages of this divergence this one replaced (its binlog moved since), oldest first: their folders are kept. */
  earlier: z.array(z.object({ at: z.number(), folder: z.string(), gtids: z.string(), nodeState: z.string() })).optional(),
  /** Taken after a failed rejoin (its record's `startedAt`, its method) had changed the node: a flashback no longer restores the shared history. */
  afterRejoin: z.object({ startedAt: z.number(), method: z.enum(['flashback', 'reseed', 'script']) }).optional(),
});
export type SalvageManifest = z.infer<typeof SalvageManifestSchema>;

/**
 * `last-seen`, written by the coordinator: each node's last published positions as it saw them. It
 * outlives the member keys (which go with their agents' leases), so that after the whole cluster was
 * down the coordinator knows what everyone had.
 */
export const LastSeenRecordSchema = z.object({
  at: z.number(),
  nodes: z.record(z.string(), z.object({ flavor: FlavorSchema, executed: z.string(), received: z.string(), at: z.number() })),
});
export type LastSeenRecord = z.infer<typeof LastSeenRecordSchema>;

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: EtcdValueError };

/** Parses one etcd value; a malformed or foreign value comes back as an error, never as a throw. */
export function decodeValue<T>(schema: z.ZodType<T>, key: string, raw: string | Buffer | null): Decoded<T> | null {
  if (raw === null) return null;
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    return { ok: false, error: new EtcdValueError(key, 'not JSON', { cause }) };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: new EtcdValueError(key, describeIssues(parsed.error.issues)) };
}

export function encodeValue(value: unknown): string {
  return JSON.stringify(value);
}

/** One line from zod's issues: the first issue's path and what was expected. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const first = issues[0];
  if (!first) return 'invalid value';
  const path = first.path.length > 0 ? first.path.map(String).join('.') : '(root)';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${path}: ${first.message}${more}`;
}
