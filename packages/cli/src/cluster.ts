/**
 * A cluster as read from etcd in one revision, decoded with the common schemas. Decoding is pure:
 * raw key-values in, typed values out, and a malformed value becomes a warning, never a throw.
 */
import {
  ClusterConfigSchema,
  DurabilityRecordSchema,
  EpochSchema,
  MemberStateSchema,
  OpRecordSchema,
  PrimarySchema,
  RequestSchema,
  SalvageManifestSchema,
  decodeValue,
  keyName,
  type ClusterConfig,
  type ClusterKeys,
  type DurabilityRecord,
  type MemberState,
  type OpRecord,
  type OperatorRequest,
  type Primary,
  type SalvageManifest,
} from '@primacy/common';

export interface RawKv {
  readonly key: string;
  readonly value: string;
  readonly createRevision: string;
  readonly modRevision: string;
}

/** What one read of the cluster's keys returned, before decoding. */
export interface RawCluster {
  readonly revision: string;
  /** Keys under the cluster prefix, of any kind: none means there is no such cluster. */
  readonly keyCount: number;
  readonly members: readonly RawKv[];
  /** Oldest first. */
  readonly election: readonly RawKv[];
  readonly primary: RawKv | null;
  readonly epoch: RawKv | null;
  readonly config: RawKv | null;
  readonly durability: RawKv | null;
  /** The newest `ops/` key. */
  readonly lastOp: RawKv | null;
  readonly requests: readonly RawKv[];
  /** salvage/ and rejoin/: absent in reads made before they existed. */
  readonly salvages?: readonly RawKv[];
  readonly rejoins?: readonly RawKv[];
}

export interface ClusterView {
  readonly cluster: string;
  readonly keys: ClusterKeys;
  readonly revision: string;
  readonly exists: boolean;
  /** By node name. */
  readonly members: ReadonlyMap<string, MemberState>;
  readonly primary: Primary | null;
  readonly epoch: number | null;
  readonly config: ClusterConfig;
  /**
   * Why the config key, which exists, cannot be read; null when it can. The coordinator then starts
   * no automatic failover and takes no request, so `config`'s defaults (not paused) are not the truth.
   */
  readonly configProblem: string | null;
  /** The coordinator's record of a primary's semi-sync state: the current primary's, unless it is stale. */
  readonly durability: DurabilityRecord | null;
  /** The value of the oldest election key: the agent that coordinates. */
  readonly coordinator: string | null;
  readonly lastOp: OpRecord | null;
  readonly requests: ReadonlyMap<string, OperatorRequest>;
  /** Diverged nodes' salvage manifests, and the last rejoin record of each node, by node. */
  readonly salvages: ReadonlyMap<string, SalvageManifest>;
  readonly rejoins: ReadonlyMap<string, OpRecord>;
  /** One line per malformed value that was skipped. */
  readonly warnings: readonly string[];
}

type Schema<T> = Parameters<typeof decodeValue<T>>[0];

/** Decodes values, collecting a warning line for each one that fails its schema. */
export class Decoder {
  readonly warnings: string[] = [];

  decode<T>(schema: Schema<T>, kv: RawKv | null): T | null {
    if (kv === null) return null;
    const r = decodeValue(schema, kv.key, kv.value);
    if (r === null) return null;
    if (r.ok) return r.value;
    this.warnings.push(r.error.message);
    return null;
  }

  /** Decoded values by the key's last segment, sorted by it. */
  decodeAll<T>(schema: Schema<T>, prefix: string, kvs: readonly RawKv[]): Map<string, T> {
    const out: Array<[string, T]> = [];
    for (const kv of kvs) {
      const v = this.decode(schema, kv);
      if (v !== null) out.push([keyName(prefix, kv.key), v]);
    }
    return new Map(out.sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })));
  }
}

export function decodeCluster(cluster: string, keys: ClusterKeys, raw: RawCluster): ClusterView {
  const d = new Decoder();
  const members = d.decodeAll(MemberStateSchema, keys.membersPrefix, raw.members);
  const configRead = raw.config ? decodeValue(ClusterConfigSchema, raw.config.key, raw.config.value) : null;
  return {
    cluster,
    keys,
    revision: raw.revision,
    exists: raw.keyCount > 0,
    members,
    primary: d.decode(PrimarySchema, raw.primary),
    epoch: d.decode(EpochSchema, raw.epoch),
    config: d.decode(ClusterConfigSchema, raw.config) ?? ClusterConfigSchema.parse({}),
    configProblem: configRead && !configRead.ok ? configRead.error.why : null,
    durability: d.decode(DurabilityRecordSchema, raw.durability),
    coordinator: raw.election[0]?.value ?? null,
    lastOp: d.decode(OpRecordSchema, raw.lastOp),
    requests: d.decodeAll(RequestSchema, keys.requestsPrefix, raw.requests),
    salvages: d.decodeAll(SalvageManifestSchema, keys.salvagePrefix, raw.salvages ?? []),
    rejoins: d.decodeAll(OpRecordSchema, keys.rejoinPrefix, raw.rejoins ?? []),
    warnings: d.warnings,
  };
}

/** Op records in epoch order; malformed ones become warnings. */
/**
 * The op records of ops/, and the refused and aborted ones kept under history/ (the next operation
 * of an epoch overwrites ops/<epoch>), each once, by epoch and then by start time.
 */
export function decodeOps(kvs: readonly RawKv[], historyKvs: readonly RawKv[] = []): { ops: OpRecord[]; warnings: string[] } {
  const d = new Decoder();
  const seen = new Set<string>();
  const ops = [...kvs, ...historyKvs]
    .map((kv) => d.decode(OpRecordSchema, kv))
    .filter((op): op is OpRecord => {
      if (op === null) return false;
      const id = `${op.epoch} ${op.kind} ${op.startedAt} ${op.outcome}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  return { ops: ops.sort((a, b) => a.epoch - b.epoch || a.startedAt - b.startedAt), warnings: d.warnings };
}

/**
 * Every node the cluster knows of: the members, and the nodes the primary key and the last op name.
 * A node with no member key has no live agent: it is `gone`.
 */
export function knownNodes(view: Pick<ClusterView, 'members' | 'primary' | 'lastOp'>): string[] {
  const names = new Set(view.members.keys());
  if (view.primary) names.add(view.primary.node);
  const op = view.lastOp;
  if (op) {
    for (const n of Object.keys(op.members)) names.add(n);
    if (op.from) names.add(op.from);
    if (op.to) names.add(op.to);
  }
  return [...names].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}
