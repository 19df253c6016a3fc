/**
 * What the coordinator's decisions speak of: the cluster as etcd shows it, and the decisions the
 * shell carries out. Types only, so that every decision module can import them one way.
 */
import type { CandidateVerdict, ClientRegistration, ClusterConfig, Durability, DurabilityRecord, FenceProof, LastSeenRecord, MemberState, OpRecord, OperatorRequest, Primary, RejoinMethod, SalvageManifest } from '@primacy/common';

export interface ClusterView {
  readonly now: number;
  readonly members: ReadonlyMap<string, MemberState>;
  readonly primary: Primary | null;
  readonly epoch: number;
  readonly config: ClusterConfig;
  /**
   * Why the etcd `config` key, which exists, cannot be read; null when it can (or is absent). Its
   * defaults would silently unpause the cluster and forget no-promote marks, so nothing is started
   * automatically, and no request is taken, until it is fixed.
   */
  readonly configProblem?: string | null;
  /** Why the `primary` key, which exists, cannot be read; null when it can (or is absent). */
  readonly primaryProblem?: string | null;
  /** Request keys that cannot be read, by id, with why. */
  readonly malformedRequests?: ReadonlyArray<{ readonly id: string; readonly why: string }>;
  /** The cluster's durability: the etcd config's, else the coordinator's own replication.semiSync. */
  readonly durabilityMode?: Durability;
  /** The coordinator's record of the primary's semi-sync state. */
  readonly durabilityRecord?: DurabilityRecord | null;
  /** Whether the coordinator has a fencing command (STONITH) to run. */
  readonly fencingCommand?: boolean;
  /** The node named by the coordinator's own config for bootstrap, if any. */
  readonly bootstrapPrimary: string | null;
  /** ops/<epoch of the primary>, and ops/<that + 1>: an operation under way or the last refused one. */
  readonly currentOp: OpRecord | null;
  readonly pendingOp: OpRecord | null;
  /** Operator requests waiting to be taken, by id (ids sort by time). */
  readonly requests: ReadonlyMap<string, OperatorRequest>;
  /** Registered clients (proxies, application instances) that report when they hold their writes. */
  readonly clients: ReadonlyMap<string, ClientRegistration>;
  /** Salvage manifests of diverged nodes, by node (salvage/<node>). */
  readonly salvages?: ReadonlyMap<string, SalvageManifest>;
  /** The last rejoin record of each node (rejoin/<node>). */
  readonly rejoins?: ReadonlyMap<string, OpRecord>;
  /** Each member key's create revision, and the coordinator's last-seen record with its revision (whole-cluster restarts). */
  readonly memberCreated?: ReadonlyMap<string, string>;
  readonly lastSeen?: { readonly record: LastSeenRecord; readonly modRevision: string } | null;
  readonly timings: {
    readonly antiFlapMs: number;
    readonly maxLagMs: number;
    readonly revokeWaitMs: number;
    readonly switchoverCatchUpMs: number;
    readonly clientPauseWaitMs: number;
    /** One promotion attempt's wait for the relay log; a candidate not ready within it plus a grace is stalled. */
    readonly relayApplyTimeoutMs: number;
    /** After an automatic failover aborted, the next attempt for the same primary waits this long. */
    readonly failoverRetryMs: number;
  };
}

/** Beyond the relay-log wait, what the other steps of a promotion may take before it counts as stalled. */
export const PROMOTION_GRACE_MS = 3_000;

export interface RequestRef {
  readonly id: string;
  readonly to: string | null;
  readonly force: boolean;
}

export type Decision =
  | { readonly kind: 'none' }
  | { readonly kind: 'bootstrap'; readonly node: string; readonly reason: string }
  | { readonly kind: 'bootstrap-refused'; readonly reason: string }
  /** The `primary` key cannot be read: rebuilt from the newest finished operation and the members' state. */
  | { readonly kind: 'repair-primary'; readonly node: string; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'repair-refused'; readonly reason: string }
  | { readonly kind: 'request-dropped'; readonly id: string; readonly reason: string }
  | { readonly kind: 'mark-ready'; readonly node: string; readonly epoch: number; readonly reason: string }
  /** `proof`, `carriedRequest`: a proof whose evidence outlives an aborted attempt (an operator's word, a fencing command), kept for the next. */
  | { readonly kind: 'failover-start'; readonly from: string; readonly reason: string; readonly request: RequestRef | null; readonly mustContain: string | null; readonly proof?: FenceProof; readonly carriedRequest?: RequestRef }
  | { readonly kind: 'request-refused'; readonly id: string; readonly request: OperatorRequest; readonly reason: string }
  | { readonly kind: 'switchover-start'; readonly from: string; readonly to: string; readonly request: RequestRef; readonly reason: string; readonly verdicts: CandidateVerdict[] }
  | { readonly kind: 'record-demoted'; readonly node: string; readonly gtid: string; readonly reason: string }
  | { readonly kind: 'record-clients-paused'; readonly paused: readonly string[]; readonly silent: readonly string[]; readonly reason: string }
  | { readonly kind: 'switchover-promote'; readonly node: string; readonly gtid: string; readonly reason: string }
  | { readonly kind: 'switchover-abort'; readonly restore: boolean; readonly reason: string }
  | { readonly kind: 'failover-refused'; readonly from: string; readonly reason: string }
  | { readonly kind: 'await'; readonly reason: string }
  /** No proof yet: the shell fences over SQL and runs the fencing command; `waiting` says what else was seen, `advice` what an operator can do. */
  | { readonly kind: 'fence-old'; readonly from: string; readonly reason: string; readonly waiting: string; readonly advice: string }
  /** `request`: an operator's --unfenced failover request, consumed with this record. `revoke`: the revoke starts in the same write. */
  | { readonly kind: 'record-fenced'; readonly from: string; readonly proof: FenceProof; readonly reason: string; readonly request?: { readonly id: string; readonly to: string | null }; /** Set when the revoke can start in the same write: its reason. */ readonly revoke?: string }
  /** The replicas stop receiving from the old primary: after the proof, or first of all under strict semi-sync. */
  | { readonly kind: 'revoke'; readonly from: string; readonly reason: string }
  | { readonly kind: 'record-durability'; readonly record: DurabilityRecord; readonly reason: string }
  | { readonly kind: 'note-diverged'; readonly node: string; readonly reason: string }
  /** A diverged node rejoins by `method` (recorded under rejoin/<node>); its agent carries it out. */
  | {
      readonly kind: 'rejoin-start';
      readonly node: string;
      readonly method: Exclude<RejoinMethod, 'none'>;
      readonly allowed: string;
      readonly source: { readonly node: string; readonly host: string; readonly port: number } | null;
      readonly request: RequestRef | null;
    }
  /** The policy cannot apply to this salvage: recorded (refused) once, so that it is not tried again. */
  | { readonly kind: 'rejoin-held'; readonly node: string; readonly salvageAt: number; readonly reason: string }
  | { readonly kind: 'record-last-seen'; readonly record: LastSeenRecord }
  | { readonly kind: 'rejoin-progress'; readonly node: string; readonly step: string; readonly detail: string }
  | { readonly kind: 'rejoin-end'; readonly node: string; readonly outcome: 'done' | 'aborted'; readonly reason: string }
  /** The candidate being promoted applied more of its relay log: recorded, so that it is not taken for stalled. */
  | { readonly kind: 'note-applied'; readonly node: string; readonly gtid: string; readonly reason: string }
  | {
      readonly kind: 'promote';
      readonly node: string;
      readonly catchUpFrom: string | null;
      /** Where to catch up from when it is not a member's received position: the fenced old primary's final one. */
      readonly catchUpPosition?: { readonly node: string; readonly host: string; readonly port: number; readonly gtid: string } | null;
      readonly fencedBy: string;
      readonly reason: string;
      readonly verdicts: CandidateVerdict[];
    }
  | { readonly kind: 'failover-abort'; readonly reason: string; readonly verdicts: CandidateVerdict[] };
