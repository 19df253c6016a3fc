/**
 * The agent's HTTP API: health endpoints that load balancers poll (HAProxy `httpchk` reads only the
 * status code), a status document for operators, and Prometheus metrics. A thin shell: every answer
 * is decided in health.ts or rendered in metrics.ts from one AgentView read per request.
 */
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyReply } from 'fastify';
import { describeError } from '@primacy/common';
import { healthCheck, hostPort, leaseIsLive, leaseRemainingMs, primaryCheck, replicaCheck, type Verdict } from './health.js';
import type { Logger } from './log.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { AGENT_VERSION } from './version.js';
import type { AgentView, Counters } from './view.js';

export interface HttpApiOptions {
  readonly host: string;
  /** 0 picks a free port; the chosen one is in the returned url. */
  readonly port: number;
  readonly view: () => AgentView;
  readonly counters: Counters;
  /** Receives handler failures only; requests are not logged. */
  readonly logger: Logger;
  /** The clock the checks are judged against; Date.now when absent. */
  readonly now?: () => number;
}

export interface HttpApi {
  /** Where the API listens, e.g. `http://127.0.0.1:8008`. */
  readonly url: string;
  close(): Promise<void>;
}

interface ReplicaQuery {
  Querystring: { max_lag?: string | string[] };
}

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const { view, counters, logger } = options;
  const now = options.now ?? Date.now;
  // Our logger reports failures; fastify's own would log every health poll.
  const app = fastify({ logger: false, forceCloseConnections: 'idle', return503OnClosing: true });

  app.addHook('onRequest', async (_request, reply) => {
    // A cached health answer is a wrong answer.
    reply.header('cache-control', 'no-store');
  });

  app.get('/primary', async (_request, reply) => {
    const v = view();
    return verdictReply(reply, primaryCheck(v, now()), { node: v.config.node, epoch: v.primary?.epoch ?? null });
  });

  app.get<ReplicaQuery>('/replica', async (request, reply) => {
    const maxLag = parseMaxLag(request.query.max_lag);
    if (!maxLag.ok) return reply.code(400).send({ error: maxLag.error });
    const v = view();
    const lagMs = v.observation?.state?.lagMs ?? null;
    return verdictReply(reply, replicaCheck(v, now(), maxLag.value), { node: v.config.node, epoch: v.primary?.epoch ?? null, lagMs });
  });

  app.get('/health', async (_request, reply) => {
    const v = view();
    const t = now();
    return verdictReply(reply, healthCheck(v, t), {
      node: v.config.node,
      etcd: { reachable: v.etcd.reachable, lastError: v.etcd.lastError },
      lease: { live: leaseIsLive(v, t), remainingMs: leaseRemainingMs(v, t) },
    });
  });

  app.get('/status', async () => statusDocument(view(), now()));

  app.get('/metrics', async (_request, reply) => {
    return reply.type(METRICS_CONTENT_TYPE).send(await renderMetrics(view(), counters, now()));
  });

  app.setNotFoundHandler(async (request, reply) => {
    return reply.code(404).send({ error: `no such endpoint: ${request.method} ${request.url.split('?')[0] ?? ''}` });
  });

  app.setErrorHandler(async (error, request, reply) => {
    const status = statusOf(error);
    if (status < 500) return reply.code(status).send({ error: describeError(error) });
    logger.error({ err: error, method: request.method, url: request.url }, 'HTTP API handler failed');
    return reply.code(500).send({ error: 'internal error; the agent log has the details' });
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (cause) {
    await app.close().catch(() => undefined);
    throw new Error(`HTTP API cannot listen on ${hostPort(options.host, options.port)}: ${bindFailure(cause)}`, { cause });
  }
  const address = app.server.address() as AddressInfo;
  return {
    url: `http://${hostPort(address.address, address.port)}`,
    close: () => app.close(),
  };
}

/** The operator's view of this agent: everything in AgentView except the config and its secrets. */
export function statusDocument(view: AgentView, now: number): Record<string, unknown> {
  return {
    node: view.config.node,
    cluster: view.config.cluster,
    agentVersion: AGENT_VERSION,
    startedAt: view.startedAt,
    uptimeMs: Math.max(0, now - view.startedAt),
    role: view.member?.role ?? 'unknown',
    coordinator: { self: view.coordinator.self, node: view.coordinator.node },
    primary: view.primary,
    lease: { id: view.lease.id, live: leaseIsLive(view, now), remainingMs: leaseRemainingMs(view, now) },
    etcd: { reachable: view.etcd.reachable, lastError: view.etcd.lastError },
    downProbes: view.downProbes,
    member: view.member,
    observation: view.observation,
  };
}

export type MaxLag = { ok: true; value: number | undefined } | { ok: false; error: string };

/** `max_lag` is milliseconds: digits with an optional fraction, so "", "-1", "1e3" and "0x10" are refused. */
export function parseMaxLag(raw: string | string[] | undefined): MaxLag {
  if (raw === undefined) return { ok: true, value: undefined };
  if (Array.isArray(raw)) return { ok: false, error: 'max_lag given more than once' };
  if (!/^\d+(\.\d+)?$/.test(raw)) return { ok: false, error: `max_lag must be a non-negative number of milliseconds, got ${JSON.stringify(raw)}` };
  return { ok: true, value: Number(raw) };
}

function verdictReply(reply: FastifyReply, verdict: Verdict, extra: Record<string, unknown>): FastifyReply {
  return reply.code(verdict.ok ? 200 : 503).send({ ok: verdict.ok, reason: verdict.reason, ...extra });
}

function statusOf(error: unknown): number {
  if (typeof error === 'object' && error !== null && 'statusCode' in error && typeof error.statusCode === 'number') {
    return error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  }
  return 500;
}

const BIND_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use',
  EADDRNOTAVAIL: 'the address is not available on this host',
  EACCES: 'permission denied',
  ENOTFOUND: 'the host name does not resolve',
};

function bindFailure(cause: unknown): string {
  const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : '';
  return BIND_ERRORS[code] ?? describeError(cause);
}
