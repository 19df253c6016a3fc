/**
 * The agent's one lease. It carries the member key and the election key, so both vanish together
 * when the agent dies. The keeper renews it on its own schedule and keeps its own deadline: the send
 * time of the last acknowledged keepalive, plus the TTL, minus the fencing margin (invariant 3). The
 * etcd3 client's `lost` event can come up to 2×TTL late, so it is not relied on.
 *
 * When the deadline passes the lease has *lapsed*: the agent must fence, but the lease may still be
 * alive in etcd (a new etcd leader extends every lease it takes over). The keeper keeps renewing the
 * same lease. If etcd acknowledges a keepalive, the lease is *restored* with its keys, and nobody can
 * have acted on its loss. Only when etcd says it is gone is it *lost*, and a new one is granted.
 */
import { EventEmitter } from 'node:events';
import { EtcdLeaseInvalidError, type Etcd3, type IDuplexStream, type ILeaseKeepAliveRequest, type ILeaseKeepAliveResponse, type Lease } from 'etcd3';
import { monotonicClock, type Clock } from '../clock.js';
import { LeaderRoute, type LeaderRouteOptions } from './leader-route.js';


export interface LeaseKeeperOptions {
  readonly ttlS: number;
  readonly marginMs: number;
  /** How long one keepalive may take before it counts as failed. */
  readonly callTimeoutMs: number;
  /**
   * Whether the agent holds nothing the cluster waits on (a steady replica's agent that does not
   * coordinate): it renews at TTL/4 then, not TTL/10 (see `renewIntervalMs`). Asked before each renewal.
   */
  readonly steady?: () => boolean;
  /**
   * Where the routine keepalive stream may go: the configured endpoints, one at a time, to find the
   * raft leader's (see LeaderRoute). Without it, or with one endpoint, the stream uses the normal client.
   */
  readonly leaderRoute?: LeaderRouteOptions;
}

export interface LeaseKeeperEvents {
  granted: [lease: Lease, id: string];
  /** The deadline passed (or etcd said the lease is gone): fence now. */
  lapsed: [reason: string];
  /** etcd acknowledged a keepalive for the lapsed lease: it and its keys are still there. */
  restored: [];
  /** etcd says the lease is gone, with its keys; a new one is granted next. */
  lost: [reason: string];
  etcdError: [error: unknown];
  etcdOk: [];
}

/** After a failed keepalive, try again soon (another member may answer) rather than a whole interval later. */
const RETRY_MS = 150;
/** While a keepalive is unanswered, another goes out this often (see `renew`). */
const HEDGE_MS = 250;

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  private deadlineMs = 0;
  private lapsed = false;
  private stopped = false;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  /** The one long-lived keepalive stream of routine renewals (see `keepalive`); null until needed or after it failed. */
  private stream: KeepaliveStream | null = null;
  /** Sends the routine stream to the etcd leader; hedges and everything else stay on `client`. */
  private readonly route: LeaderRoute | null;

  constructor(
    private readonly client: Etcd3,
    private readonly options: LeaseKeeperOptions,
    /** Deadlines are kept on this clock; monotonic, so a wall-clock step cannot extend a lease. */
    private readonly clock: Clock = monotonicClock,
  ) {
    super();
    const route = options.leaderRoute;
    this.route = route !== undefined && route.endpoints.length > 1 ? new LeaderRoute(client, route, options.callTimeoutMs) : null;
  }

  /** The configured endpoint the routine keepalives go to when it is the known etcd leader; null otherwise. */
  get streamEndpoint(): string | null {
    return this.route?.endpoint ?? null;
  }

  get id(): string | null {
    return this.leaseId;
  }

  get current(): Lease | null {
    return this.lease;
  }

  /** The deadline as wall-clock milliseconds (0 without a lease), for status and health answers. */
  get deadline(): number {
    return this.lease === null ? 0 : Date.now() + (this.deadlineMs - this.clock.now());
  }

  isLive(): boolean {
    return this.lease !== null && this.clock.now() < this.deadlineMs;
  }

  /** Runs until stop(): grants, renews, and re-grants after a loss, with backoff while etcd is away. */
  async run(): Promise<void> {
    let backoffMs = 100;
    let renewed = true;
    this.route?.start();
    while (!this.stopped) {
      if (this.lease === null) {
        if (await this.grant()) backoffMs = 100;
        else {
          await this.pause(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 2000);
        }
        continue;
      }
      await this.pause(renewed ? this.renewIntervalMs() : RETRY_MS);
      if (this.lease !== null && !this.stopped) renewed = await this.renew(this.lease);
    }
  }

  /**
   * Renewal every TTL/10 (500 ms at the default TTL). When the etcd leader dies, no keepalive is
   * acknowledged until a new one is elected (1–2 s); the deadline then counts from the last one
   * acknowledged before, so the shorter the interval, the more of the lease is left to wait with.
   *
   * A steady replica's agent renews every TTL/4 (1.25 s): its lapse fences nothing (its node is
   * read-only, and replica health answers do not depend on the lease), so the rarer renewal costs at
   * most a moment out of the election when an etcd leader dies, and saves etcd 60 % of its keepalives.
   * The deadline rule is the same for both: acknowledged send time + TTL − margin.
   */
  private renewIntervalMs(): number {
    const share = this.options.steady?.() === true ? 4 : 10;
    return Math.max(200, Math.floor((this.options.ttlS * 1000) / share));
  }

  private async grant(): Promise<boolean> {
    const sentAt = this.clock.now();
    const lease = this.client.lease(this.options.ttlS, { autoKeepAlive: false });
    lease.on('lost', () => undefined); // loss is detected by our own deadline and keepalive answers
    try {
      const id = await withTimeout(lease.grant(), this.options.callTimeoutMs);
      if (this.stopped) {
        await lease.revoke().catch(() => undefined);
        return false;
      }
      this.lease = lease;
      this.leaseId = id;
      this.extendDeadline(sentAt, this.options.ttlS);
      this.emit('etcdOk');
      this.emit('granted', lease, id);
      return true;
    } catch (err) {
      lease.release();
      this.emit('etcdError', err);
      return false;
    }
  }

  /**
   * One renewal, hedged: a keepalive, then another every HEDGE_MS while none has been acknowledged,
   * up to the call timeout. A follower holds a keepalive until a new leader is elected, and a dead
   * member refuses it at once; the deadline moves from the send time of whichever is acknowledged,
   * so one sent just before the new leader answers keeps the most of the lease. True once one is
   * acknowledged (or this lease is no longer ours); false when every attempt failed.
   */
  private renew(lease: Lease): Promise<boolean> {
    const maxAttempts = Math.max(1, Math.floor(this.options.callTimeoutMs / HEDGE_MS));
    return new Promise<boolean>((resolve) => {
      let started = 0;
      let failed = 0;
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearInterval(hedge);
        resolve(ok);
      };
      const attempt = (): void => {
        // The first goes over the long-lived stream; a hedge, on a stream of its own, which may reach another member.
        const hedged = started > 0;
        started += 1;
        // The routine one went unanswered: the member its stream is on may be gone or cut off.
        if (hedged) this.dropStream(true);
        void this.keepalive(lease, hedged).then((ok) => {
          if (ok) settle(true);
          else if (++failed === maxAttempts || this.lease !== lease) settle(this.lease !== lease);
        });
      };
      const hedge = setInterval(() => {
        if (started < maxAttempts && this.lease === lease && !this.stopped) attempt();
      }, HEDGE_MS);
      attempt();
    });
  }

  /**
   * One keepalive; true when etcd acknowledged it (or the lease is no longer ours). Routine ones share
   * one long-lived LeaseKeepAlive stream: etcd3's `keepaliveOnce` opens a gRPC stream for each, which
   * costs the client and every etcd member more than the keepalive itself, twice a second per agent.
   * A `fresh` one (a hedge) still gets a stream of its own.
   */
  private async keepalive(lease: Lease, fresh = false): Promise<boolean> {
    const sentAt = this.clock.now();
    try {
      const res = fresh
        ? // gRPC's deadline is a wall-clock time; our own deadline below is not.
          await withTimeout(lease.keepaliveOnce({ deadline: Date.now() + this.options.callTimeoutMs }), this.options.callTimeoutMs)
        : await withTimeout(this.keepaliveOnStream(lease), this.options.callTimeoutMs);
      if (lease !== this.lease) return true;
      this.extendDeadline(sentAt, Number(res.TTL));
      this.emit('etcdOk');
      return true;
    } catch (err) {
      if (lease !== this.lease) return true;
      if (err instanceof EtcdLeaseInvalidError) this.lose('etcd says the lease is gone');
      // A stream this keeper dropped (for a hedge, or at stop) says nothing about etcd.
      else if (!(err instanceof StreamDropped)) this.emit('etcdError', err);
      return false;
    }
  }

  /** A keepalive over the long-lived stream, opened first if there is none. etcd answers each in order. */
  private async keepaliveOnStream(lease: Lease): Promise<ILeaseKeepAliveResponse> {
    const id = this.leaseId;
    if (id === null) throw new Error('no lease to keep alive');
    const via = this.route?.client() ?? this.client;
    // The leader moved (or became known, or unknown): the stream follows at this renewal.
    if (this.stream !== null && this.stream.via !== via) this.dropStream();
    this.stream ??= new KeepaliveStream(via, via.leaseClient.leaseKeepAlive());
    const stream = this.stream;
    try {
      const res = await stream.send(id);
      if (Number(res.TTL) <= 0 && lease === this.lease) throw new EtcdLeaseInvalidError(id);
      return res;
    } catch (err) {
      // A stream that failed once is not trusted again: the next keepalive opens another.
      if (!(err instanceof StreamDropped) && !(err instanceof EtcdLeaseInvalidError)) this.route?.failed(stream.via);
      if (this.stream === stream) this.dropStream();
      throw err;
    }
  }

  /** With `failed`, the member the stream was on is reported to the route, which stops using it until checked. */
  private dropStream(failed = false): void {
    if (failed && this.stream !== null) this.route?.failed(this.stream.via);
    this.stream?.close();
    this.stream = null;
  }

  private extendDeadline(sentAtMs: number, ttlS: number): void {
    if (ttlS <= 0) {
      this.lose('etcd says the lease is gone');
      return;
    }
    // Hedged keepalives can be acknowledged out of order: an older one never shortens the deadline.
    const deadline = sentAtMs + ttlS * 1000 - this.options.marginMs;
    if (deadline <= this.deadlineMs) return;
    this.deadlineMs = deadline;
    this.armDeadline();
    if (this.lapsed) {
      this.lapsed = false;
      this.emit('restored');
    }
  }

  /** Lapses the lease at its deadline. A timer can fire a millisecond early by this clock: it is armed again then. */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const lease = this.lease;
    this.deadlineTimer = setTimeout(() => {
      if (lease !== this.lease) return;
      if (this.isLive()) this.armDeadline();
      else this.lapse('lease deadline passed without an acknowledged keepalive');
    }, Math.max(1, Math.ceil(this.deadlineMs - this.clock.now())));
  }

  private lapse(reason: string): void {
    if (this.lapsed || this.lease === null) return;
    this.lapsed = true;
    this.emit('lapsed', reason);
  }

  private lose(reason: string): void {
    const lease = this.lease;
    if (lease === null) return;
    this.lapse(reason);
    this.lease = null;
    this.leaseId = null;
    this.deadlineMs = 0;
    this.lapsed = false;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    lease.release();
    this.emit('lost', reason);
    this.wake?.();
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
  }

  /** Stops renewing; with `revoke`, deletes the lease so others see this agent leave at once. */
  async stop({ revoke }: { revoke: boolean }): Promise<void> {
    this.stopped = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.wake?.();
    const lease = this.lease;
    this.lease = null;
    this.leaseId = null;
    this.deadlineMs = 0;
    this.lapsed = false;
    this.dropStream();
    this.route?.close();
    if (lease && revoke) await withTimeout(lease.revoke(), this.options.callTimeoutMs).catch(() => undefined);
    lease?.release();
  }
}

class StreamDropped extends Error {
  constructor() {
    super('the keepalive stream was dropped by the keeper');
  }
}

/**
 * A LeaseKeepAlive stream used for many keepalives. etcd answers the requests of one stream in the
 * order they came, so each answer settles the oldest unanswered send; an unanswered keepalive whose
 * caller gave up still holds its place. An error or the end of the stream fails every send waiting.
 */
class KeepaliveStream {
  private readonly waiting: Array<{ resolve: (res: ILeaseKeepAliveResponse) => void; reject: (err: unknown) => void }> = [];
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | null = null;
  private failure: unknown = null;
  private readonly opened: Promise<void>;

  constructor(
    /** The client the stream was opened on. */
    readonly via: Etcd3,
    opening: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>>,
  ) {
    this.opened = opening.then(
      (stream) => {
        this.stream = stream;
        if (this.failure !== null) return stream.cancel();
        stream.on('data', (res) => this.waiting.shift()?.resolve(res));
        stream.on('error', (err) => this.fail(err));
        stream.on('end', () => this.fail(new Error('etcd ended the keepalive stream')));
      },
      (err: unknown) => this.fail(err),
    );
  }

  async send(id: string): Promise<ILeaseKeepAliveResponse> {
    await this.opened;
    if (this.failure !== null || this.stream === null) throw this.failure ?? new Error('the keepalive stream is closed');
    const stream = this.stream;
    return new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      stream.write({ ID: id });
    });
  }

  close(): void {
    this.fail(new StreamDropped());
    try {
      this.stream?.cancel();
    } catch {
      // already ended
    }
  }

  private fail(err: unknown): void {
    if (this.failure === null) this.failure = err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`etcd did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

