/**
 * A client's registration at `<root>/<cluster>/clients/<id>`, under its own lease: a
 * `ClientRegistration` `{ id, writesPaused, epoch, updatedAt }`. While the primary is `switching`
 * (or `promoting`, or absent) the client sends no new writes and says so with `writesPaused: true`
 * and the primary's epoch; once a `ready` primary appears it writes `writesPaused: false` with that
 * primary's epoch. A switchover's coordinator can thus wait until every registered client holds its
 * writes before it demotes the old primary. A client that dies leaves `clients/` when its lease ends.
 */
import { EventEmitter } from 'node:events';
import type { Lease } from 'etcd3';
import { ClientRegistrationSchema, encodeValue, type ClientRegistration, type Primary } from '@primacy/common';
import { ClientError, ClientErrorCodes, oneLine } from './errors.js';
import { compileRegistrationOptions, type RegistrationOptions } from './options.js';
import { PrimaryWatch, sleep } from './watch.js';

const RETRY_MS = 200;
const REVOKE_WAIT_MS = 2_000;

/** Whether a client following this primary holds its writes, and the epoch it reports. */
export function registrationFor(id: string, primary: Primary | null, lastEpoch: number, now: number): ClientRegistration {
  return ClientRegistrationSchema.parse({
    id,
    writesPaused: primary === null || primary.state !== 'ready',
    epoch: primary?.epoch ?? lastEpoch,
    updatedAt: now,
  });
}

export interface ClientRegistrationEvents {
  /** A value was written to etcd. */
  written: [registration: ClientRegistration];
  warning: [error: ClientError];
}

export interface RegistrationHooks {
  /** Awaited before `writesPaused: true` is written: the pool lets its writes in flight finish here. */
  readonly beforePause?: () => Promise<void>;
}

export class ClientRegistrationHandle extends EventEmitter<ClientRegistrationEvents> {
  readonly id: string;
  readonly key: string;
  readonly #watch: PrimaryWatch;
  readonly #ownsWatch: boolean;
  readonly #ttlSeconds: number;
  readonly #hooks: RegistrationHooks;
  #lease: Lease | null = null;
  #written: ClientRegistration | null = null;
  #lastEpoch = 0;
  #closed = false;
  readonly #closing = new AbortController();
  #dirty = true;
  #wake: (() => void) | null = null;
  readonly #writtenWaiters = new Set<() => void>();
  readonly #loop: Promise<void>;
  readonly #onPrimary = (): void => this.#kick();

  constructor(watch: PrimaryWatch, ownsWatch: boolean, options: { id: string; ttlSeconds: number }, hooks: RegistrationHooks = {}) {
    super();
    this.id = options.id;
    this.key = watch.keys.client(options.id);
    this.#watch = watch;
    this.#ownsWatch = ownsWatch;
    this.#ttlSeconds = options.ttlSeconds;
    this.#hooks = hooks;
    watch.on('primary', this.#onPrimary);
    this.#loop = this.#run();
  }

  /** The value last written to etcd, or null before the first write. */
  current(): ClientRegistration | null {
    return this.#written;
  }

  /** Resolves once the first value is in etcd. */
  async ready(timeoutMs = 10_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    while (this.#written === null) {
      if (this.#closed) throw new ClientError(ClientErrorCodes.REGISTRATION_FAILED, 'the registration is closed');
      if (Date.now() >= deadline) throw new ClientError(ClientErrorCodes.REGISTRATION_FAILED, `could not register ${this.key} within ${timeoutMs} ms (it keeps trying)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#writtenWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this;
  }

  /** Revokes the lease, which deletes the key. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#watch.off('primary', this.#onPrimary);
    this.#wake?.();
    for (const w of this.#writtenWaiters) w();
    await this.#loop;
    const lease = this.#lease;
    if (lease) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([lease.revoke().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, REVOKE_WAIT_MS)))]);
      clearTimeout(timer);
      lease.release();
    }
    if (this.#ownsWatch) await this.#watch.close();
  }

  #kick(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  /** Writes the state the primary calls for, one write at a time, the latest state winning. */
  async #run(): Promise<void> {
    while (!this.#closed && !this.#watch.isReady) await this.#watch.ready(1_000).catch(() => sleep(RETRY_MS, this.#closing.signal));
    while (!this.#closed) {
      if (!this.#dirty) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
        continue;
      }
      this.#dirty = false;
      const primary = this.#watch.current();
      let next = registrationFor(this.id, primary, this.#lastEpoch, Date.now());
      if (next.writesPaused && this.#written?.writesPaused !== true && this.#hooks.beforePause) {
        await this.#hooks.beforePause();
        if (this.#closed) return;
        // What the primary says may have moved on while the writes drained.
        next = registrationFor(this.id, this.#watch.current(), this.#lastEpoch, Date.now());
      }
      if (this.#written && this.#written.writesPaused === next.writesPaused && this.#written.epoch === next.epoch && !this.#dirty) continue;
      try {
        await this.#put(next);
        this.#lastEpoch = next.epoch;
      } catch (err) {
        if (this.#closed) return;
        this.#warn(`writing ${this.key} failed, retrying: ${oneLine(err)}`, err);
        this.#dirty = true;
        await sleep(RETRY_MS, this.#closing.signal);
      }
    }
  }

  async #put(value: ClientRegistration): Promise<void> {
    const lease = this.#liveLease();
    await lease.put(this.key).value(encodeValue(value)).exec();
    this.#written = value;
    for (const w of this.#writtenWaiters) w();
    this.#writtenWaiters.clear();
    this.emit('written', value);
  }

  /** The current lease, or a new one when etcd said the last one is gone (the key went with it). */
  #liveLease(): Lease {
    if (this.#lease && !this.#lease.revoked()) return this.#lease;
    this.#lease?.release();
    const lease = this.#watch.etcd.lease(this.#ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.#lease !== lease) return;
      this.#warn(`the registration's lease was lost (${oneLine(err)}); registering again`, err);
      this.#lease = null;
      // The key went with the lease: whatever was written is gone.
      this.#written = null;
      this.#kick();
    });
    this.#lease = lease;
    return lease;
  }

  #warn(message: string, cause: unknown): void {
    if (this.#closed || this.listenerCount('warning') === 0) return;
    this.emit('warning', new ClientError(ClientErrorCodes.REGISTRATION_FAILED, message, { cause }));
  }
}

/**
 * Registers a client under `clients/<id>` and keeps `writesPaused` in step with the primary's state.
 * Give `watch` to follow an existing watch (and share its etcd client), or `etcd` and `cluster`.
 */
export function registerClient(options: RegistrationOptions): ClientRegistrationHandle {
  const o = compileRegistrationOptions(options);
  const owns = o.watch === undefined;
  const watch = o.watch ?? new PrimaryWatch({ etcd: o.etcd!, cluster: o.cluster!, root: o.root, etcdTimeoutMs: o.etcdTimeoutMs });
  return new ClientRegistrationHandle(watch, owns, { id: o.id, ttlSeconds: o.ttlSeconds });
}
