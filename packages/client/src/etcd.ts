/**
 * The etcd client the library makes when given endpoints. The client must not depend on the agent,
 * so this re-implements the agent's `resilientEtcdOptions` (packages/agent/src/etcd/connect.ts, keep
 * the two in step), plus a capped watch backoff, which only a watcher needs.
 */
import { Etcd3, type IOptions, type Watcher } from 'etcd3';
import type { EtcdConnection } from './etcd-access.js';

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Every unary call gets a deadline so that a blackholed member cannot hang a read; streams get none. */
function callDeadline(timeoutMs: number): IOptions['defaultCallOptions'] {
  return (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs });
}

/**
 * etcd3's default per-host policy is a circuit breaker that refuses a host for 5 s after 3 failed
 * calls, even once it is back. Calls go straight through instead; the deadline and the global retry
 * (which picks another host) remain.
 */
function passThroughPolicy(): HostPolicy {
  const noListeners = () => ({ dispose: () => undefined });
  return {
    _altReturn: undefined as never,
    onSuccess: noListeners,
    onFailure: noListeners,
    execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
  };
}

/**
 * cockatiel's default watch backoff grows to 30 s, so a watch that lost its member could stay blind
 * that long. etcd3 only reads `duration` and calls `next()`, so a plain object does.
 */
function cappedBackoff(firstMs: number, maxMs: number): WatchBackoff {
  const step = (ms: number): WatchBackoff => ({ duration: ms, next: () => step(Math.min(ms * 2, maxMs)) });
  return { duration: 0, next: () => step(firstMs) };
}

export function resilientEtcdOptions(hosts: readonly string[], callTimeoutMs: number): IOptions {
  return {
    hosts: [...hosts],
    dialTimeout: callTimeoutMs,
    defaultCallOptions: callDeadline(callTimeoutMs),
    faultHandling: { host: () => passThroughPolicy(), watchBackoff: cappedBackoff(100, 1_000) },
    grpcOptions: {
      // grpc-js otherwise shares subchannels between clients and backs reconnects off up to 120 s.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      // A watch stream on a member that hangs (rather than dies) is noticed by pings; etcd refuses
      // pings more often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 3_000,
    },
  };
}

/** An etcd client given by the caller is used as is and never closed here. */
export interface EtcdHandle {
  readonly client: Etcd3;
  readonly owned: boolean;
}

/** The one place the library makes an etcd client: the resilient options, plus the connection's TLS and user. */
export function etcdHandle(etcd: EtcdConnection | Etcd3, callTimeoutMs: number): EtcdHandle {
  if (etcd instanceof Etcd3) return { client: etcd, owned: false };
  const options: IOptions = {
    ...resilientEtcdOptions(etcd.endpoints, callTimeoutMs),
    ...(etcd.credentials ? { credentials: etcd.credentials } : {}),
    ...(etcd.auth ? { auth: { username: etcd.auth.username, password: etcd.auth.password } } : {}),
  };
  return { client: requireLeader(new Etcd3(options)), owned: true };
}

/**
 * Every call, the watch stream included, asks etcd for a leader (the `hasleader` metadata etcd's
 * own clients send with WithRequireLeader): a member cut off from its quorum then fails the watch
 * with "no leader", and the watcher reads again through another member, instead of watching a
 * frozen view in silence. etcd3 1.1.2 has no option for it; its call metadata come from
 * `pool.authenticator.getMetadata()` (internal; checked before use, and left alone if different).
 */
export function requireLeader(client: Etcd3): Etcd3 {
  const pool: unknown = Reflect.get(client, 'pool');
  const authenticator: unknown = typeof pool === 'object' && pool !== null ? Reflect.get(pool, 'authenticator') : null;
  if (typeof authenticator !== 'object' || authenticator === null) return client;
  const original: unknown = Reflect.get(authenticator, 'getMetadata');
  if (typeof original !== 'function') return client;
  const get = original as () => Promise<{ set(key: string, value: string): void }>;
  Reflect.set(authenticator, 'getMetadata', async () => {
    const md = await get.call(authenticator);
    md.set('hasleader', 'true');
    return md;
  });
  return client;
}

/**
 * Cancels a watcher, waiting at most `timeoutMs` for etcd to confirm. A watcher whose cancel is not
 * confirmed (its member hangs) is taken off etcd3's list, or etcd3 would re-create it for ever.
 */
export async function cancelWatcher(client: Etcd3, watcher: Watcher, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const confirmed = await Promise.race([
    watcher.cancel().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!confirmed) forgetWatcher(client, watcher);
}

/** etcd3 1.1.2 keeps its watchers in `watchManager.watchers` (internal; checked before use). */
function forgetWatcher(client: Etcd3, watcher: Watcher): void {
  const manager: unknown = Reflect.get(client, 'watchManager');
  if (typeof manager !== 'object' || manager === null) return;
  const list: unknown = Reflect.get(manager, 'watchers');
  if (Array.isArray(list)) Reflect.set(manager, 'watchers', list.filter((w) => w !== watcher));
}
