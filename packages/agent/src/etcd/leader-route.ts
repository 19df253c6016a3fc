/**
 * Which configured etcd endpoint is the raft leader, for the lease keeper's routine keepalive stream
 * (issue 13). A member that is not the leader cannot renew a lease itself: etcd 3.4's
 * `EtcdServer.LeaseRenew` gets `ErrNotPrimary` from its lessor and forwards each renewal to the
 * leader's peer URL over HTTP (`leasehttp.RenewHTTP`, "renewals don't go through raft"), so a stream
 * held on a follower costs the cluster about twice what one on the leader does.
 *
 * Only the configured endpoints are used, never the members' advertised client URLs: a proxy or a
 * firewall in front of etcd must cut the agent off exactly as it cuts the agent's normal client.
 * While the leader is not known, `client()` is null and the keeper uses its normal client.
 *
 * Discovery is kept cheap for thousands of agents on one etcd: a re-check first asks the pinned
 * member (one unary call on an open connection); when it is no longer the leader, the leader's ID
 * comes from that answer or from the normal client, and only the leader's endpoint is dialled (its
 * member ID is remembered from an earlier probe). All endpoints are probed only when that fails.
 * Every check is jittered, so the agents of a fleet do not probe together after a leader change.
 */
import type { Etcd3 } from 'etcd3';
import { withTimeout } from './lease.js';

export interface LeaderRouteOptions {
  /** The configured endpoints; with fewer than two there is nothing to choose. */
  readonly endpoints: readonly string[];
  /** A client for one configured endpoint, with the same TLS and auth as the agent's normal client. */
  readonly connect: (endpoint: string) => Etcd3;
  /** Re-check the leader every `recheckMs` to 2×`recheckMs` (jittered); default 30 s. */
  readonly recheckMs?: number;
  /** After the pinned stream failed, check again after 1×–5× this (jittered); default 1 s. */
  readonly failureDelayMs?: number;
  /** The first check comes within this (jittered); default 3 s. */
  readonly startJitterMs?: number;
}

/** One member's answer to Maintenance.Status, asked at a configured endpoint. */
export interface EndpointStatus {
  readonly endpoint: string;
  readonly memberId: string;
  /** The member the answering one believes is the leader; '0' when it knows none. */
  readonly leader: string;
}

/**
 * The endpoint of the leader: the leader ID named by the most answers (a tie means no answer), whose
 * own member says it is the leader. A member cut off from the others may still name itself for a
 * moment (until raft's check-quorum steps it down); the others outvote it.
 */
export function chooseLeader(statuses: readonly EndpointStatus[]): string | null {
  const votes = new Map<string, number>();
  for (const s of statuses) if (s.leader !== '0' && s.leader !== '') votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
  let best: string | null = null;
  let most = 0;
  let tied = false;
  for (const [id, n] of votes) {
    if (n > most) [best, most, tied] = [id, n, false];
    else if (n === most) tied = true;
  }
  if (best === null || tied) return null;
  return statuses.find((s) => s.memberId === best && s.leader === best)?.endpoint ?? null;
}

interface Pin {
  readonly endpoint: string;
  readonly client: Etcd3;
  /** False after the stream on it failed: not used until a check finds it is still the leader. */
  trusted: boolean;
}

export class LeaderRoute {
  private pin: Pin | null = null;
  /** Member ID → configured endpoint, learned from probes; IDs last as long as the member. */
  private readonly members = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private closed = false;
  private misses = 0;
  private readonly recheckMs: number;
  private readonly failureDelayMs: number;

  constructor(
    /** The agent's normal client: asked which member leads when the pinned one does not say. */
    private readonly fallback: Etcd3,
    private readonly options: LeaderRouteOptions,
    private readonly callTimeoutMs: number,
  ) {
    this.recheckMs = options.recheckMs ?? 30_000;
    this.failureDelayMs = options.failureDelayMs ?? 1_000;
  }

  /** The client whose member leads, or null while that is not known (use the normal client). */
  client(): Etcd3 | null {
    return this.pin?.trusted === true ? this.pin.client : null;
  }

  /** The configured endpoint of the pinned leader, or null. */
  get endpoint(): string | null {
    return this.pin?.trusted === true ? this.pin.endpoint : null;
  }

  start(): void {
    if (this.closed || this.timer !== null || this.checking) return;
    this.schedule(Math.random() * (this.options.startJitterMs ?? 3_000));
  }

  /** The keepalive stream on `client` failed or did not answer in time: stop using it, check again soon. */
  failed(client: Etcd3): void {
    const pin = this.pin;
    if (pin === null || pin.client !== client || !pin.trusted) return;
    pin.trusted = false;
    if (!this.checking) this.schedule(this.failureDelayMs * (1 + 4 * Math.random()));
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pin?.client.close();
    this.pin = null;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.check();
    }, ms);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    let found = false;
    try {
      found = await this.locate();
    } finally {
      this.checking = false;
    }
    if (found) this.misses = 0;
    else this.misses = Math.min(this.misses + 1, 5);
    // While no leader is known the normal client carries the stream, so later checks can back off.
    const base = found ? this.recheckMs : Math.min(this.recheckMs, this.failureDelayMs * 2 ** this.misses);
    this.schedule(base * (1 + Math.random()));
  }

  /** Pins the leader's endpoint; true when one is pinned. */
  private async locate(): Promise<boolean> {
    let leader: string | null = null;
    const pin = this.pin;
    if (pin !== null) {
      const status = await this.status(pin.client, pin.endpoint);
      if (status !== null && status.leader === status.memberId) {
        pin.trusted = true;
        return true;
      }
      leader = status?.leader ?? null;
      this.unpin();
    }
    // Any member names the leader; the normal client asks one over connections it already has.
    leader ??= (await this.status(this.fallback, null))?.leader ?? null;
    const known = leader === null || leader === '0' ? undefined : this.members.get(leader);
    if (known !== undefined && (await this.tryPin(known))) return true;
    return this.probeAll();
  }

  /** Dials one endpoint and keeps the client if its member is the leader. */
  private async tryPin(endpoint: string): Promise<boolean> {
    const client = this.options.connect(endpoint);
    const status = await this.status(client, endpoint);
    if (this.closed || status === null || status.leader !== status.memberId) {
      client.close();
      return false;
    }
    this.pin = { endpoint, client, trusted: true };
    return true;
  }

  /** Asks every configured endpoint, keeps the leader's client and closes the others. */
  private async probeAll(): Promise<boolean> {
    const probes = this.options.endpoints.map((endpoint) => ({ endpoint, client: this.options.connect(endpoint) }));
    const answers = await Promise.all(probes.map((p) => this.status(p.client, p.endpoint)));
    const chosen = this.closed ? null : chooseLeader(answers.filter((a): a is EndpointStatus => a !== null));
    for (const p of probes) {
      if (p.endpoint === chosen && this.pin === null) this.pin = { endpoint: p.endpoint, client: p.client, trusted: true };
      else p.client.close();
    }
    return this.pin !== null;
  }

  private unpin(): void {
    const old = this.pin;
    this.pin = null;
    // A keepalive may still be in flight on it; the keeper moves its stream at its next renewal.
    if (old !== null) setTimeout(() => old.client.close(), this.callTimeoutMs).unref();
  }

  private async status(client: Etcd3, endpoint: string | null): Promise<EndpointStatus | null> {
    try {
      const res = await withTimeout(client.maintenance.status(), this.callTimeoutMs);
      const status = { endpoint: endpoint ?? '', memberId: String(res.header.member_id), leader: String(res.leader) };
      if (endpoint !== null) this.members.set(status.memberId, endpoint);
      return status;
    } catch {
      // Not answering is an answer here: that member is not where the stream should go.
      return null;
    }
  }
}
