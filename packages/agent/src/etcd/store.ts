/**
 * Typed reads and fenced writes of one cluster's keys. Reads are linearizable (etcd's default), so a
 * decision is always taken on current state (invariant 6); values that fail their schema are
 * reported through `invalid` and otherwise ignored.
 */
import type { Etcd3 } from 'etcd3';
import {
  ClientRegistrationSchema,
  ClusterConfigSchema,
  EpochSchema,
  EtcdValueError,
  MemberStateSchema,
  OpRecordSchema,
  PrimarySchema,
  RequestSchema,
  clusterKeys,
  decodeValue,
  encodeValue,
  keyName,
  type ClientRegistration,
  type ClusterConfig,
  type ClusterKeys,
  type MemberState,
  type OpRecord,
  type OperatorRequest,
  type Primary,
} from '@primacy/common';
import type { z } from 'zod';

export interface Campaigner {
  readonly key: string;
  readonly node: string;
  /** The create revision of the election key: with the key itself, the coordinator's fencing token. */
  readonly createRevision: string;
  readonly lease: string;
}

export interface ClusterSnapshot {
  readonly members: ReadonlyMap<string, MemberState>;
  readonly primary: Primary | null;
  /** The revision at which the primary key was last modified, for compare-and-swap; '0' when absent. */
  readonly primaryModRevision: string;
  readonly epoch: number;
  readonly config: ClusterConfig;
  /** The record of the operation that made the current epoch, if any. */
  readonly currentOp: OpRecord | null;
  /** The record for the next epoch: a failover or switchover under way, or the last refused one. */
  readonly pendingOp: OpRecord | null;
  readonly requests: ReadonlyMap<string, OperatorRequest>;
  /** Clients registered under `clients/`, each under its own lease. */
  readonly clients: ReadonlyMap<string, ClientRegistration>;
  /** Election keys, oldest first: the first one is the coordinator. */
  readonly campaigners: readonly Campaigner[];
  readonly invalid: readonly EtcdValueError[];
}

export class ClusterStore {
  readonly keys: ClusterKeys;

  constructor(
    readonly client: Etcd3,
    readonly cluster: string,
    root: string,
  ) {
    this.keys = clusterKeys(cluster, root);
  }

  async snapshot(): Promise<ClusterSnapshot> {
    const k = this.keys;
    const invalid: EtcdValueError[] = [];
    const decode = <T>(schema: z.ZodType<T>, key: string, raw: string | null): T | null => {
      const r = decodeValue(schema, key, raw);
      if (r === null) return null;
      if (!r.ok) {
        invalid.push(r.error);
        return null;
      }
      return r.value;
    };
    const [memberKvs, electionKvs, primaryKvs, epochRaw, configRaw, requestKvs, clientKvs] = await Promise.all([
      this.client.getAll().prefix(k.membersPrefix).strings(),
      this.client.getAll().prefix(`${k.election}/`).sort('Create', 'Ascend').exec(),
      this.client.get(k.primary).exec(),
      this.client.get(k.epoch).string(),
      this.client.get(k.config).string(),
      this.client.getAll().prefix(k.requestsPrefix).strings(),
      this.client.getAll().prefix(k.clientsPrefix).strings(),
    ]);
    const members = new Map<string, MemberState>();
    for (const [key, raw] of Object.entries(memberKvs)) {
      const m = decode(MemberStateSchema, key, raw);
      if (m) members.set(keyName(k.membersPrefix, key), m);
    }
    const primaryKv = primaryKvs.kvs[0];
    const requests = new Map<string, OperatorRequest>();
    for (const [key, raw] of Object.entries(requestKvs)) {
      const r = decode(RequestSchema, key, raw);
      if (r) requests.set(keyName(k.requestsPrefix, key), r);
    }
    const clients = new Map<string, ClientRegistration>();
    for (const [key, raw] of Object.entries(clientKvs)) {
      const r = decode(ClientRegistrationSchema, key, raw);
      if (r) clients.set(keyName(k.clientsPrefix, key), r);
    }
    const primary = primaryKv ? decode(PrimarySchema, k.primary, primaryKv.value.toString()) : null;
    const epoch = decode(EpochSchema, k.epoch, epochRaw) ?? 0;
    const opEpoch = primary?.epoch ?? epoch;
    const [currentRaw, pendingRaw] = await Promise.all([this.client.get(k.op(opEpoch)).string(), this.client.get(k.op(opEpoch + 1)).string()]);
    return {
      members,
      primary,
      primaryModRevision: primaryKv ? String(primaryKv.mod_revision) : '0',
      epoch,
      config: decode(ClusterConfigSchema, k.config, configRaw) ?? ClusterConfigSchema.parse({}),
      currentOp: opEpoch > 0 ? decode(OpRecordSchema, k.op(opEpoch), currentRaw) : null,
      pendingOp: decode(OpRecordSchema, k.op(opEpoch + 1), pendingRaw),
      requests,
      clients,
      campaigners: electionKvs.kvs.map((kv) => ({
        key: kv.key.toString(),
        node: kv.value.toString(),
        createRevision: String(kv.create_revision),
        lease: String(kv.lease),
      })),
      invalid,
    };
  }

  /** ops/<epoch>; null when absent or unreadable. */
  async readOp(epoch: number): Promise<OpRecord | null> {
    const r = decodeValue(OpRecordSchema, this.keys.op(epoch), await this.client.get(this.keys.op(epoch)).string());
    return r?.ok ? r.value : null;
  }

  async readPrimary(): Promise<{ primary: Primary | null; invalid: EtcdValueError | null }> {
    const raw = await this.client.get(this.keys.primary).string();
    const r = decodeValue(PrimarySchema, this.keys.primary, raw);
    if (r === null) return { primary: null, invalid: null };
    return r.ok ? { primary: r.value, invalid: null } : { primary: null, invalid: r.error };
  }

  /**
   * Writes decision keys in one transaction that holds only while `token` still wins the election
   * and the primary key is still at `primaryModRevision` (invariant 2). False when it did not apply:
   * the caller has been deposed or raced, and must re-read before anything else.
   */
  async commitDecision(
    token: Campaigner,
    primaryModRevision: string,
    puts: ReadonlyArray<{ key: string; value: unknown }>,
    deletes: readonly string[] = [],
  ): Promise<boolean> {
    let guard = this.client.if(token.key, 'Create', '==', token.createRevision).and(this.keys.primary, 'Mod', '==', primaryModRevision);
    // A request consumed here must still exist: an operator who withdrew it must not see it run anyway.
    for (const key of deletes) if (key.startsWith(this.keys.requestsPrefix)) guard = guard.and(key, 'Version', '>', 0);
    const txn = guard
      .then(
        ...puts.map((p) => this.client.put(p.key).value(encodeValue(p.value))),
        ...deletes.map((key) => this.client.delete().key(key)),
      );
    const res = await txn.commit();
    return res.succeeded;
  }

  /** Writes an op record or history entry, still fenced by the election key but not by the primary key. */
  async recordFenced(token: Campaigner, key: string, value: unknown): Promise<boolean> {
    const res = await this.client
      .if(token.key, 'Create', '==', token.createRevision)
      .then(this.client.put(key).value(encodeValue(value)))
      .commit();
    return res.succeeded;
  }
}
