/**
 * Typed reads and fenced writes of one cluster's keys. Reads are linearizable (etcd's default), so a
 * decision is always taken on current state (invariant 6); values that fail their schema are
 * reported through `invalid` and otherwise ignored.
 */
import type { Etcd3, IKeyValue, IRequestOp } from 'etcd3';
import {
  ClientRegistrationSchema,
  ClusterConfigSchema,
  DurabilityRecordSchema,
  EpochSchema,
  EtcdValueError,
  MemberStateSchema,
  OpRecordSchema,
  PrimarySchema,
  RequestSchema,
  SalvageManifestSchema,
  LastSeenRecordSchema,
  clusterKeys,
  decodeValue,
  encodeValue,
  keyName,
  type ClientRegistration,
  type ClusterConfig,
  type ClusterKeys,
  type DurabilityRecord,
  type MemberState,
  type OpRecord,
  type OperatorRequest,
  type Primary,
  type SalvageManifest,
  type LastSeenRecord,
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
  /** The coordinator's record of the primary's semi-sync state; null when none was written yet. */
  readonly durability: DurabilityRecord | null;
  /** The record of the operation that made the current epoch, if any. */
  readonly currentOp: OpRecord | null;
  /** The record for the next epoch: a failover or switchover under way, or the last refused one. */
  readonly pendingOp: OpRecord | null;
  readonly requests: ReadonlyMap<string, OperatorRequest>;
  /** Clients registered under `clients/`, each under its own lease. */
  readonly clients: ReadonlyMap<string, ClientRegistration>;
  /** Salvage manifests under `salvage/`, by node. */
  readonly salvages: ReadonlyMap<string, SalvageManifest>;
  /** The last rejoin record of each node under `rejoin/`, by node. */
  readonly rejoins: ReadonlyMap<string, OpRecord>;
  /** Each member key's create revision: a key created after `lastSeen` was written belongs to an agent no coordinator saw before. */
  readonly memberCreated: ReadonlyMap<string, string>;
  /** The coordinator's last-seen record and the revision it was last written at. */
  readonly lastSeen: { readonly record: LastSeenRecord; readonly modRevision: string } | null;
  /** Election keys, oldest first: the first one is the coordinator. */
  readonly campaigners: readonly Campaigner[];
  readonly invalid: readonly EtcdValueError[];
  /** The etcd revision this snapshot was read at. */
  readonly revision: string;
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

  /** The epoch whose op records the last snapshot read: the next snapshot reads them in its one transaction. */
  #opEpoch = 0;

  /** Range reads in one read-only transaction: linearizable (etcd's default) and all at one revision. */
  /** The revision of the last read-only transaction. */
  #lastRevision = '0';

  async #readAll<const T extends readonly Ranged[]>(ranges: T): Promise<{ -readonly [K in keyof T]: IKeyValue[] }> {
    const res = await this.client.kv.txn({ compare: [], success: await Promise.all(ranges.map((r) => r.op())), failure: [] });
    this.#lastRevision = String(res.header.revision);
    return ranges.map((_, i) => {
      const range = res.responses[i]?.response_range;
      if (!range) throw new Error(`etcd answered a read-only transaction without range ${i}`);
      return range.kvs;
    }) as { -readonly [K in keyof T]: IKeyValue[] };
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
    // One read-only transaction, one round trip, and every key at the same revision. The op records
    // hang on the epoch it reads: the last snapshot's epoch is the guess, and a wrong one (an epoch
    // changed in between) costs a second transaction.
    const c = this.client;
    const guess = this.#opEpoch;
    const [memberKvs, electionKvs, primaryKvs, epochKvs, configKvs, requestKvs, clientKvs, durabilityKvs, currentGuess, pendingGuess, salvageKvs, rejoinKvs, lastSeenKvs] = await this.#readAll([
      c.getAll().prefix(k.membersPrefix),
      c.getAll().prefix(`${k.election}/`).sort('Create', 'Ascend'),
      c.get(k.primary),
      c.get(k.epoch),
      c.get(k.config),
      c.getAll().prefix(k.requestsPrefix),
      c.getAll().prefix(k.clientsPrefix),
      c.get(k.durability),
      c.get(k.op(guess)),
      c.get(k.op(guess + 1)),
      c.getAll().prefix(k.salvagePrefix),
      c.getAll().prefix(k.rejoinPrefix),
      c.get(k.lastSeen),
    ]);
    const members = new Map<string, MemberState>();
    for (const kv of memberKvs) {
      const key = kv.key.toString();
      const m = decode(MemberStateSchema, key, kv.value.toString());
      if (m) members.set(keyName(k.membersPrefix, key), m);
    }
    const primaryKv = primaryKvs[0];
    const requests = new Map<string, OperatorRequest>();
    for (const kv of requestKvs) {
      const key = kv.key.toString();
      const r = decode(RequestSchema, key, kv.value.toString());
      if (r) requests.set(keyName(k.requestsPrefix, key), r);
    }
    const clients = new Map<string, ClientRegistration>();
    for (const kv of clientKvs) {
      const key = kv.key.toString();
      const r = decode(ClientRegistrationSchema, key, kv.value.toString());
      if (r) clients.set(keyName(k.clientsPrefix, key), r);
    }
    const salvages = decodeAll(salvageKvs, k.salvagePrefix, SalvageManifestSchema, decode);
    const rejoins = decodeAll(rejoinKvs, k.rejoinPrefix, OpRecordSchema, decode);
    const memberCreated = new Map(memberKvs.map((kv) => [keyName(k.membersPrefix, kv.key.toString()), String(kv.create_revision)]));
    const lastSeenKv = lastSeenKvs[0];
    const lastSeenRecord = lastSeenKv ? decode(LastSeenRecordSchema, k.lastSeen, lastSeenKv.value.toString()) : null;
    const primary = primaryKv ? decode(PrimarySchema, k.primary, primaryKv.value.toString()) : null;
    const epoch = decode(EpochSchema, k.epoch, valueOf(epochKvs)) ?? 0;
    const configRaw = valueOf(configKvs);
    const opEpoch = primary?.epoch ?? epoch;
    let currentRaw = valueOf(currentGuess);
    let pendingRaw = valueOf(pendingGuess);
    if (opEpoch !== guess) {
      const [current, pending] = await this.#readAll([c.get(k.op(opEpoch)), c.get(k.op(opEpoch + 1))]);
      currentRaw = valueOf(current);
      pendingRaw = valueOf(pending);
    }
    this.#opEpoch = opEpoch;
    return {
      members,
      primary,
      primaryModRevision: primaryKv ? String(primaryKv.mod_revision) : '0',
      epoch,
      config: decode(ClusterConfigSchema, k.config, configRaw) ?? ClusterConfigSchema.parse({}),
      durability: decode(DurabilityRecordSchema, k.durability, valueOf(durabilityKvs)),
      currentOp: opEpoch > 0 ? decode(OpRecordSchema, k.op(opEpoch), currentRaw) : null,
      pendingOp: decode(OpRecordSchema, k.op(opEpoch + 1), pendingRaw),
      requests,
      clients,
      salvages,
      rejoins,
      memberCreated,
      lastSeen: lastSeenKv && lastSeenRecord ? { record: lastSeenRecord, modRevision: String(lastSeenKv.mod_revision) } : null,
      campaigners: electionKvs.map((kv) => ({
        key: kv.key.toString(),
        node: kv.value.toString(),
        createRevision: String(kv.create_revision),
        lease: String(kv.lease),
      })),
      invalid,
      revision: this.#lastRevision,
    };
  }

  /**
   * What a candidate checks before it turns writable: the primary key and ops/<epoch + 1>, in one
   * read at one revision. An unreadable value reads as absent.
   */
  async readPromotion(epoch: number): Promise<{ primary: Primary | null; next: OpRecord | null }> {
    const [primaryKvs, nextKvs] = await this.#readAll([this.client.get(this.keys.primary), this.client.get(this.keys.op(epoch + 1))]);
    const primary = decodeValue(PrimarySchema, this.keys.primary, valueOf(primaryKvs));
    const next = decodeValue(OpRecordSchema, this.keys.op(epoch + 1), valueOf(nextKvs));
    return { primary: primary?.ok ? primary.value : null, next: next?.ok ? next.value : null };
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
  async recordFenced(token: Campaigner, puts: ReadonlyArray<{ key: string; value: unknown }>): Promise<boolean> {
    const res = await this.client
      .if(token.key, 'Create', '==', token.createRevision)
      .then(...puts.map((p) => this.client.put(p.key).value(encodeValue(p.value))))
      .commit();
    return res.succeeded;
  }

  /**
   * The agent's salvage manifest of its node, with no lease: the copies it describes outlive the
   * agent, and so must the word of where they are.
   */
  async putSalvage(manifest: SalvageManifest): Promise<void> {
    await this.client.put(this.keys.salvage(manifest.node)).value(encodeValue(manifest));
  }

  /**
   * Keeps the newest `keep` entries of history/ and deletes the rest. Best effort: a failure leaves
   * a few more entries until the next try.
   */
  async pruneHistory(keep: number): Promise<number> {
    const keys = await this.client.getAll().prefix(this.keys.historyPrefix).sort('Key', 'Ascend').keys();
    const old = keys.slice(0, Math.max(0, keys.length - keep));
    for (const key of old) await this.client.delete().key(key);
    return old.length;
  }
}

/** A range builder (`get`, `getAll`), as a transaction takes it. */
interface Ranged {
  op(): Promise<IRequestOp>;
}

function decodeAll<T>(kvs: readonly IKeyValue[], prefix: string, schema: z.ZodType<T>, decode: <U>(schema: z.ZodType<U>, key: string, raw: string | null) => U | null): Map<string, T> {
  const out = new Map<string, T>();
  for (const kv of kvs) {
    const key = kv.key.toString();
    const value = decode(schema, key, kv.value.toString());
    if (value) out.set(keyName(prefix, key), value);
  }
  return out;
}

function valueOf(kvs: readonly IKeyValue[]): string | null {
  return kvs[0]?.value.toString() ?? null;
}
