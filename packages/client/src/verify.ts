/**
 * Checks a new connection before any statement goes through it: the server at the address etcd
 * names must be the server etcd names, it must be writable, and for a primary its heartbeat row
 * must carry the primary's epoch or a newer one (the agent writes it once it has taken over).
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { Primary } from '@primacy/common';
import { ClientError, ClientErrorCodes } from './errors.js';
import type { Replica } from './topology.js';

export const READ_SERVER_IDENTITY = 'SELECT @@version AS version, @@server_id AS server_id, @@global.read_only AS read_only';
/** Only MySQL has server_uuid: asking MariaDB for it is an error (1193). */
export const READ_SERVER_UUID = 'SELECT @@server_uuid AS server_uuid';
export const READ_HEARTBEAT_EPOCH = 'SELECT epoch FROM primacy.heartbeat WHERE id = 1';

const ER_NO_SUCH_TABLE = 1146;
const DENIED = new Set([1044, 1142, 1143]);
const HEARTBEAT_POLL_MS = 50;

export interface ServerIdentity {
  readonly flavor: 'mariadb' | 'mysql';
  readonly serverId: number;
  readonly serverUuid: string | null;
  readonly readOnly: boolean;
}

export interface VerifyOptions {
  readonly timeoutMs: number;
  readonly verifyHeartbeat: boolean;
  readonly heartbeatWaitMs: number;
  /** Aborted when the connection's target is retired: waiting for the heartbeat stops. */
  readonly signal: AbortSignal;
}

async function rows(conn: Connection, sql: string, timeoutMs: number): Promise<RowDataPacket[]> {
  const [result] = await conn.query<RowDataPacket[]>({ sql, timeout: timeoutMs });
  return result;
}

export async function readServerIdentity(conn: Connection, timeoutMs: number): Promise<ServerIdentity> {
  const [row] = await rows(conn, READ_SERVER_IDENTITY, timeoutMs);
  const version = String(row?.['version'] ?? '');
  const flavor = /mariadb/i.test(version) ? 'mariadb' : 'mysql';
  const serverUuid = flavor === 'mysql' ? String((await rows(conn, READ_SERVER_UUID, timeoutMs))[0]?.['server_uuid'] ?? '') || null : null;
  return { flavor, serverId: Number(row?.['server_id']), serverUuid, readOnly: Number(row?.['read_only']) === 1 };
}

/** The mismatch between what etcd says and what the server says, or null when they agree. */
export function identityMismatch(expected: { serverId: number | null; serverUuid: string | null }, seen: ServerIdentity): string | null {
  if (expected.serverId !== null && expected.serverId !== seen.serverId) return `etcd names server_id ${expected.serverId} but the server has ${seen.serverId}`;
  if (expected.serverUuid !== null && seen.serverUuid !== null && expected.serverUuid !== seen.serverUuid) {
    return `etcd names server_uuid ${expected.serverUuid} but the server has ${seen.serverUuid}`;
  }
  return null;
}

/** Null when the table or its row is missing (no primary has written one yet). */
export async function readHeartbeatEpoch(conn: Connection, timeoutMs: number, user: string): Promise<number | null> {
  try {
    const [row] = await rows(conn, READ_HEARTBEAT_EPOCH, timeoutMs);
    return row === undefined ? null : Number(row['epoch']);
  } catch (err) {
    const errno = (err as { errno?: unknown }).errno;
    if (errno === ER_NO_SUCH_TABLE) return null;
    if (typeof errno === 'number' && DENIED.has(errno)) {
      throw new ClientError(
        ClientErrorCodes.HEARTBEAT_UNREADABLE,
        `the user ${user} cannot read primacy.heartbeat, which tells a primary of this epoch from an older one: GRANT SELECT ON primacy.heartbeat TO the application user, or set verifyHeartbeat: false`,
        { cause: err },
      );
    }
    throw err;
  }
}

export async function verifyPrimary(conn: Connection, p: Primary, user: string, o: VerifyOptions): Promise<void> {
  const seen = await readServerIdentity(conn, o.timeoutMs);
  const mismatch = identityMismatch(p, seen);
  if (mismatch) throw new ClientError(ClientErrorCodes.STALE_PRIMARY, `${p.node} at ${p.host}:${p.port} is not the primary of epoch ${p.epoch}: ${mismatch}`);
  if (seen.readOnly) throw new ClientError(ClientErrorCodes.NOT_PRIMARY, `${p.node} (epoch ${p.epoch}) is read-only: it is not the primary any more`);
  if (!o.verifyHeartbeat) return;
  // Right after a promotion the heartbeat can lag the key: wait for it, briefly.
  const deadline = Date.now() + o.heartbeatWaitMs;
  let epoch: number | null = null;
  for (;;) {
    epoch = await readHeartbeatEpoch(conn, o.timeoutMs, user);
    if (epoch !== null && epoch >= p.epoch) return;
    if (Date.now() + HEARTBEAT_POLL_MS > deadline || o.signal.aborted) break;
    await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_POLL_MS));
  }
  throw new ClientError(
    ClientErrorCodes.STALE_PRIMARY,
    `${p.node}'s heartbeat says epoch ${epoch ?? 'none'} but etcd names it primary of epoch ${p.epoch}: it has not taken over (waited ${o.heartbeatWaitMs} ms)`,
  );
}

export async function verifyReplica(conn: Connection, r: Replica, timeoutMs: number): Promise<void> {
  const seen = await readServerIdentity(conn, timeoutMs);
  const mismatch = identityMismatch({ serverId: r.serverId, serverUuid: null }, seen);
  if (mismatch) throw new ClientError(ClientErrorCodes.STALE_PRIMARY, `replica ${r.node} at ${r.host}:${r.port}: ${mismatch}`);
}
