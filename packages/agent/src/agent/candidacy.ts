/**
 * The agent's place in its cluster: its claim to the node name, its lease (the LeaseKeeper), and its
 * campaign in the election, which makes it the coordinator while it wins. Also its leaving: a primary's
 * agent that stops first asks for a switchover away from its node.
 */
import type { Etcd3 } from 'etcd3';
import type { AgentConfig, OperatorRequest } from '@primacy/common';
import { sleep, type Clock } from '../clock.js';
import { campaign } from '../etcd/election.js';
import type { LeaseKeeper } from '../etcd/lease.js';
import type { Campaigner, ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import type { Counters } from '../view.js';
import type { ClusterWatch } from './cluster-watch.js';
import type { EtcdHealth } from './etcd-health.js';

/** How long a start-up watches another lease on this node's member key at least, to tell a live agent from a dead one. */
const CLAIM_WATCH_MS = 1800;
/** How often it reads the lease's time to live meanwhile. */
const CLAIM_SAMPLE_MS = 200;

/**
 * Whether someone renews lease `id`: its time to live (whole seconds) is read every CLAIM_SAMPLE_MS
 * for two of the slowest renewal intervals (a steady replica's agent renews every TTL/4), at least
 * CLAIM_WATCH_MS. A renewal shows as a rise between two reads; an agent that renews often (TTL/10)
 * keeps it from falling at all. A lease nobody renews only falls. False too once the lease is gone.
 */
async function renewedByAnother(etcd: Etcd3, id: string, stopping: AbortSignal): Promise<boolean> {
  const read = async (): Promise<{ ttl: number; granted: number }> => {
    const res = await etcd.leaseClient.leaseTimeToLive({ ID: id });
    return { ttl: Number(res.TTL), granted: Number(res.grantedTTL) };
  };
  const first = await read();
  if (first.ttl <= 0) return false;
  const windowMs = Math.max(CLAIM_WATCH_MS, (2 * first.granted * 1000) / 4 + 2 * CLAIM_SAMPLE_MS);
  let prev = first.ttl;
  for (let waited = 0; waited < windowMs && !stopping.aborted; waited += CLAIM_SAMPLE_MS) {
    await sleep(CLAIM_SAMPLE_MS, stopping);
    const { ttl } = await read();
    if (ttl <= 0) return false;
    if (ttl > prev) return true;
    prev = ttl;
  }
  return prev >= first.ttl;
}

/** How long a stopping primary's agent waits for its switchover (systemd gives it 15 s in deploy/). */
const HANDOVER_MS = 10_000;

export interface CandidacyDeps {
  readonly etcd: Etcd3;
  readonly store: ClusterStore;
  readonly keeper: LeaseKeeper;
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly counters: Counters;
  readonly etcdHealth: EtcdHealth;
  readonly cluster: ClusterWatch;
  readonly stopping: AbortSignal;
  /** The agent cannot run at all (another live agent already runs as this node): one line for the operator. */
  readonly onFatal: (line: string) => void;
  /** A new lease, or the old one restored: the member key must be written again. */
  readonly onLease: () => void;
  /** The lease lapsed (its own deadline passed): stop coordinating, fence a node that may be writable. */
  readonly onLapsed: (reason: string) => void;
}

export class Candidacy {
  private campaigner: Campaigner | null = null;
  private claim: Promise<void> = Promise.resolve();
  private isClaimed = false;

  constructor(private readonly d: CandidacyDeps) {}

  /** No other live agent runs as this node; nothing is published, campaigned or done before. */
  get claimed(): boolean {
    return this.isClaimed;
  }
  /** Resolves once the node is claimed. */
  get whenClaimed(): Promise<void> {
    return this.claim;
  }
  /** This agent's election key, while its lease is live: a lapsed lease coordinates nothing, though its key may still stand. */
  get coordinating(): Campaigner | null {
    return this.d.keeper.isLive() ? this.campaigner : null;
  }

  /** Claims the node and wires the lease's events; the keeper's loop is run by the caller. */
  start(): void {
    const { keeper, log, counters } = this.d;
    this.claim = this.claimNode();
    keeper.on('granted', (lease, id) => {
      log.info({ lease: id }, 'lease granted');
      this.d.onLease();
      void this.claim.then(() => this.joinElection(lease, id));
    });
    keeper.on('lapsed', (reason) => {
      counters.leaseLosses += 1;
      this.d.onLapsed(reason);
    });
    keeper.on('restored', () => {
      this.d.onLease();
      log.info('lease restored: etcd kept it and its keys; resuming');
    });
    keeper.on('lost', (reason) => {
      this.campaigner = null;
      log.warn({ reason }, 'lease lost with its keys; a new one follows');
    });
    keeper.on('etcdError', (err) => this.d.etcdHealth.failed(err));
    keeper.on('etcdOk', () => this.d.etcdHealth.recovered());
    void this.claim.then(() => {
      this.isClaimed = true;
    });
  }

  private async joinElection(lease: Parameters<typeof campaign>[1], id: string): Promise<void> {
    try {
      this.campaigner = await campaign(this.d.store, lease, id, this.d.config.node);
      await this.d.cluster.refresh();
    } catch (err) {
      this.d.etcdHealth.failed(err);
    }
  }

  /**
   * Refuses to run beside another live agent of the same node name: two agents publishing one
   * member key, each for its own server, would let the coordinator promote or fence the wrong one.
   * A key under another lease that etcd keeps renewing belongs to a live agent; one whose lease
   * runs down is this agent's own earlier run (killed), and is taken over. Retries while etcd is away.
   */
  private async claimNode(): Promise<void> {
    const { etcd, config, stopping } = this.d;
    const key = this.d.store.keys.member(config.node);
    while (!stopping.aborted) {
      try {
        const kv = (await etcd.get(key).exec()).kvs[0];
        const other = kv && String(kv.lease) !== '0' ? String(kv.lease) : null;
        if (other === null) return;
        if (!(await renewedByAnother(etcd, other, stopping))) return;
        let holder = 'unknown';
        try {
          holder = (JSON.parse(kv!.value.toString()) as { apiUrl?: string }).apiUrl ?? holder;
        } catch {
          // the key's value is checked elsewhere; the refusal stands
        }
        const line = `another live agent already runs as node ${config.node} in cluster ${config.cluster} (its API: ${holder}, lease ${other}); give each agent its own node name`;
        this.d.log.error(line);
        this.d.onFatal(line);
        await new Promise<never>(() => undefined); // nothing runs after a refusal
      } catch (err) {
        this.d.etcdHealth.failed(err);
        await sleep(1000, stopping);
      }
    }
  }

  /** Asks for a switchover away from this node and waits, bounded, for another node to be named primary. */
  async handOver(): Promise<boolean> {
    const { etcd, store, clock, config, log } = this.d;
    const id = `${clock.now()}-stop-${config.node}`;
    const key = store.keys.request(id);
    const deadline = clock.now() + HANDOVER_MS;
    log.warn({ request: id }, 'stopping: handing over through a planned switchover');
    try {
      const request: OperatorRequest = { kind: 'switchover', to: null, force: false, unfenced: false, requestedAt: clock.now(), by: `agent ${config.node} (stopping)` };
      await etcd.put(key).value(JSON.stringify(request));
      while (clock.now() < deadline) {
        await sleep(100);
        const { primary } = await store.readPrimary();
        if (primary && primary.node !== config.node) {
          log.info({ to: primary.node, epoch: primary.epoch }, 'handed over');
          return true;
        }
        const op = this.d.cluster.snapshot?.pendingOp;
        if (op?.request?.id === id && (op.outcome === 'refused' || op.outcome === 'aborted')) break;
      }
    } catch (err) {
      this.d.etcdHealth.failed(err);
    }
    await etcd.delete().key(key).catch(() => undefined);
    log.warn('no handover: fencing the node and leaving; the cluster fails over');
    return false;
  }
}
