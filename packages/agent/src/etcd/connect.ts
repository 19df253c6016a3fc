import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { AgentConfig } from '@primacy/common';

/** Every unary call gets a deadline so that a blackholed etcd cannot hang a loop; streams get none. */
export function callDeadline(timeoutMs: number): IOptions['defaultCallOptions'] {
  return (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs });
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * etcd3's default per-host policy is a circuit breaker that refuses a host for 5 s after 3 failed
 * attempts, even once it is back: an agent would stay blind to a recovered etcd for that long. Calls
 * go straight through instead; the deadline and the global retry (which picks another host) remain.
 */
export function passThroughPolicy(): HostPolicy {
  const noListeners = () => ({ dispose: () => undefined });
  return {
    _altReturn: undefined as never,
    onSuccess: noListeners,
    onFailure: noListeners,
    execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
  };
}

/**
 * The etcd3 options that let a client follow members going away and coming back: grpc-js otherwise
 * shares subchannels between clients and backs reconnects off up to 120 s.
 */
export function resilientEtcdOptions(hosts: readonly string[], callTimeoutMs: number): IOptions {
  return {
    hosts: [...hosts],
    dialTimeout: callTimeoutMs,
    defaultCallOptions: callDeadline(callTimeoutMs),
    faultHandling: { host: () => passThroughPolicy() },
    grpcOptions: {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
    },
  };
}

/** A client for the configured endpoints, or for some of them (the lease keeper's leader route dials one). */
export function connectEtcd(config: AgentConfig, endpoints: readonly string[] = config.etcd.endpoints): Etcd3 {
  const { etcd } = config;
  const options = resilientEtcdOptions(endpoints, etcd.dialTimeoutMs);
  if (etcd.tls) {
    options.credentials = {
      rootCertificate: readFileSync(etcd.tls.ca),
      ...(etcd.tls.key ? { privateKey: readFileSync(etcd.tls.key) } : {}),
      ...(etcd.tls.cert ? { certChain: readFileSync(etcd.tls.cert) } : {}),
    };
  }
  if (etcd.user !== undefined && config.secrets.etcdPassword !== undefined) {
    options.auth = { username: etcd.user, password: config.secrets.etcdPassword };
  }
  return new Etcd3(options);
}
