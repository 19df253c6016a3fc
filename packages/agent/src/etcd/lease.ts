/**
 * The agent's one lease. It carries the member key and the election key, so both vanish together
 * when the agent dies. The keeper renews it on its own schedule and keeps its own deadline: the send
 * time of the last acknowledged keepalive, plus the TTL, minus the fencing margin (invariant 3). The
 * etcd3 client's `lost` event can come up to 2×TTL late, so it is not relied on.
 */
import { EventEmitter } from 'node:events';
import { EtcdLeaseInvalidError, type Etcd3, type Lease } from 'etcd3';
import { monotonicClock, type Clock } from '../clock.js';


export interface LeaseKeeperOptions {
  readonly ttlS: number;
  readonly marginMs: number;
  /** How long one keepalive may take before it counts as failed. */
  readonly callTimeoutMs: number;
}

export interface LeaseKeeperEvents {
  granted: [lease: Lease, id: string];
  /** The deadline passed or etcd said the lease is gone: fence now, then a new lease is granted. */
  expired: [reason: string];
  etcdError: [error: unknown];
  etcdOk: [];
}

/** After a failed keepalive, try again soon (another member may answer) rather than a whole interval later. */
const RETRY_MS = 150;

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  private deadlineMs = 0;
  private stopped = false;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly options: LeaseKeeperOptions,
    /** Deadlines are kept on this clock; monotonic, so a wall-clock step cannot extend a lease. */
    private readonly clock: Clock = monotonicClock,
  ) {
    super();
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

  /** Renewal every TTL/5: two keepalives can fail and the lease still renews before the deadline. */
  private renewIntervalMs(): number {
    return Math.max(200, Math.floor((this.options.ttlS * 1000) / 5));
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

  /** True when etcd acknowledged the keepalive. */
  private async renew(lease: Lease): Promise<boolean> {
    const sentAt = this.clock.now();
    try {
      // gRPC's deadline is a wall-clock time; our own deadline below is not.
      const res = await withTimeout(lease.keepaliveOnce({ deadline: Date.now() + this.options.callTimeoutMs }), this.options.callTimeoutMs);
      if (lease !== this.lease) return true;
      this.extendDeadline(sentAt, Number(res.TTL));
      this.emit('etcdOk');
      return true;
    } catch (err) {
      if (lease !== this.lease) return true;
      if (err instanceof EtcdLeaseInvalidError) this.expire('etcd says the lease is gone');
      else this.emit('etcdError', err);
      return false;
    }
  }

  private extendDeadline(sentAtMs: number, ttlS: number): void {
    if (ttlS <= 0) {
      this.expire('etcd says the lease is gone');
      return;
    }
    this.deadlineMs = sentAtMs + ttlS * 1000 - this.options.marginMs;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const lease = this.lease;
    this.deadlineTimer = setTimeout(() => {
      if (lease === this.lease && !this.isLive()) this.expire('lease deadline passed without an acknowledged keepalive');
    }, Math.max(0, this.deadlineMs - this.clock.now()));
  }

  private expire(reason: string): void {
    const lease = this.lease;
    if (lease === null) return;
    this.lease = null;
    this.leaseId = null;
    this.deadlineMs = 0;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    // Best effort: once etcd answers again, the stale member and election keys go at once, not a TTL later.
    void withTimeout(lease.revoke(), this.options.callTimeoutMs * 5).catch(() => undefined);
    lease.release();
    this.emit('expired', reason);
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
    if (lease && revoke) await withTimeout(lease.revoke(), this.options.callTimeoutMs).catch(() => undefined);
    lease?.release();
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

