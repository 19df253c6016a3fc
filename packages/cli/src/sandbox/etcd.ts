/**
 * The sandbox's etcd: one member on loopback, data in the sandbox folder. The CLI reads it through
 * etcd's JSON gateway (`/v3/kv/range`), which needs no client that keeps the process alive.
 */
import { LOOPBACK } from './ports.js';
import type { SandboxState } from './state.js';

export function etcdArgs(state: SandboxState): string[] {
  const { etcd } = state;
  const peerUrl = `http://${LOOPBACK}:${etcd.peerPort}`;
  return [
    '--name=sandbox',
    `--data-dir=${etcd.dataDir}`,
    `--listen-client-urls=${etcd.endpoint}`,
    `--advertise-client-urls=${etcd.endpoint}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=sandbox=${peerUrl}`,
    '--initial-cluster-state=new',
    '--initial-cluster-token=primacy-sandbox',
    // The agents rewrite their member keys every few seconds; old revisions go after an hour.
    '--auto-compaction-mode=periodic',
    '--auto-compaction-retention=1h',
    '--logger=zap',
    '--log-outputs=stderr',
  ];
}

const REQUEST_TIMEOUT_MS = 2_000;

async function post(endpoint: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${endpoint}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`etcd ${path}: HTTP ${response.status}`);
  return response.json();
}

export async function etcdHealthy(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const body = (await response.json()) as { health?: unknown };
    return response.ok && body.health === 'true';
  } catch {
    return false;
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The prefix's range end: the prefix with its last byte incremented. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) + 1;
  return bytes.toString('base64');
}

export interface RangeKv {
  readonly key: string;
  readonly value: string;
  readonly createRevision: string;
  readonly modRevision: string;
}

/** Every key under `prefix`, read at one revision. */
export async function etcdRange(endpoint: string, prefix: string): Promise<{ revision: string; kvs: RangeKv[] }> {
  const body = (await post(endpoint, '/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) })) as {
    header?: { revision?: unknown };
    kvs?: Array<{ key?: unknown; value?: unknown; create_revision?: unknown; mod_revision?: unknown }>;
  };
  return {
    revision: String(body.header?.revision ?? '0'),
    kvs: (body.kvs ?? []).map((kv) => ({
      key: unb64(kv.key),
      value: unb64(kv.value),
      createRevision: String(kv.create_revision ?? '0'),
      modRevision: String(kv.mod_revision ?? '0'),
    })),
  };
}
