/**
 * One small driver per server flavor behind this interface (DESIGN.md, "Node flavors"). A driver owns
 * one dedicated connection to its own node (never a pool), destroys it on any error and reconnects
 * on the next call. Observing never throws: it classifies what went wrong.
 */
import type { Health, NodeState } from '@primacy/common';

export type Flavor = 'mariadb' | 'mysql';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly socket?: string | undefined;
  readonly user: string;
  readonly password: string;
}

export interface Observation {
  readonly health: Health;
  /** One line saying what failed, with the server's error code when there is one. */
  readonly error: string | null;
  /** Round trip of the whole probe. */
  readonly probeMs: number;
  /** Null unless health is `up`. */
  readonly state: NodeState | null;
}

export interface FenceState {
  readonly readOnly: boolean;
  /** Everything the server has executed, in the flavor's GTID form. */
  readonly gtidExecuted: string;
}

/** Commits waiting for a semi-sync acknowledgement, the replicas connected that could send one, and the source's timeout. */
export interface SemiSyncWait {
  readonly waiting: number;
  readonly clients: number;
  /** Null when the server has no semi-sync source plugin. */
  readonly timeoutMs: number | null;
}

export interface Heartbeat {
  readonly epoch: number;
  readonly node: string;
  /** Age of the row by the server's own clock, in ms. */
  readonly ageMs: number;
}

/** A reseed that has not finished: its source and when it began (node/reseed-mark.ts). */
export interface ReseedMark {
  readonly source: string;
  readonly startedAt: Date;
}

export interface ReplicationSource {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface NodeDriver {
  readonly flavor: Flavor;
  /** Reads everything a member key carries. Never throws. */
  observe(): Promise<Observation>;
  /** `timeoutMs` bounds the statement (SET GLOBAL read_only waits for commits in flight); default: the probe timeout. */
  setReadOnly(on: boolean, timeoutMs?: number): Promise<void>;
  /** What a fence must know first: killing any session would acknowledge commits that wait under strict semi-sync with no replica. */
  readSemiSyncWait(): Promise<SemiSyncWait>;
  /** Reads back what a fence set: read_only (MySQL: super_read_only) and the executed GTID position. */
  readFenceState(): Promise<FenceState>;
  /**
   * Kills every client session except this driver's own, replication threads and system threads.
   * Returns how many were killed. Part of fencing: on MariaDB read_only does not bind SUPER users.
   */
  killClientSessions(): Promise<number>;
  /**
   * "Revoke": stop receiving from the current source, keep applying what was received. An IO thread
   * reconnecting to a source that does not answer holds the statement up to slave_net_timeout, so
   * the revoke takes its own `timeoutMs`.
   */
  stopReplicaIo(timeoutMs?: number): Promise<void>;
  stopReplication(): Promise<void>;
  startReplication(): Promise<void>;
  /** Stops and forgets replication entirely (the node becomes a source). */
  resetReplication(): Promise<void>;
  /**
   * Points the node at a source with GTID auto-positioning (MariaDB `MASTER_USE_GTID=slave_pos`,
   * MySQL `SOURCE_AUTO_POSITION=1`) and starts replication. A node that was a primary first has its
   * replica position set from its own binlog so it resumes where it stopped.
   */
  replicateFrom(source: ReplicationSource): Promise<void>;
  /** Waits until the node has executed everything in `gtid`. False on timeout. */
  waitForGtid(gtid: string, timeoutMs: number): Promise<boolean>;
  /** Waits until the SQL thread has applied everything the IO thread received. False on timeout. */
  waitForRelayApplied(timeoutMs: number): Promise<boolean>;
  setSemiSyncSource(on: boolean, timeoutMs: number): Promise<void>;
  setSemiSyncReplica(on: boolean): Promise<void>;
  /** Creates the `primacy.heartbeat` table if needed (on the primary only) and upserts this epoch's row. */
  writeHeartbeat(epoch: number, node: string): Promise<void>;
  readHeartbeat(): Promise<Heartbeat | null>;
  /** The mark of a reseed that did not finish, or null: a marked node holds partial data. */
  readReseedMark(): Promise<ReseedMark | null>;
  close(): Promise<void>;
}
