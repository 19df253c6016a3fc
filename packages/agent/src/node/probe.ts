/**
 * What both flavors' probes share: timing and classifying an observation, and the heartbeat row.
 * The heartbeat lives in `primacy.heartbeat`, one row the primary's agent upserts every
 * heartbeatIntervalMs; its age by the replica's own clock bounds the replica's lag (the pt-heartbeat
 * method), and `replicaLagMs` makes it exact for a replica that is current.
 */
import type { Heartbeat, Observation } from './driver.js';
import type { NodeState, ReplicationState } from '@primacy/common';
import { describeError } from '@primacy/common';
import { classifyError, serverErrno } from './classify.js';
import type { Row, SqlSession } from './session.js';
import type { StatementRunner } from './statement.js';
import { readNullableInt, readText } from './values.js';

export const CREATE_HEARTBEAT_TABLE =
  'CREATE TABLE IF NOT EXISTS primacy.heartbeat (id TINYINT NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL, ' +
  'node VARCHAR(64) NOT NULL, ts TIMESTAMP(6) NOT NULL)';

export const READ_HEARTBEAT =
  'SELECT epoch, node, TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) AS age_us FROM primacy.heartbeat WHERE id = 1';

/** Whether the table exists, as the probe's own SQL can ask it without failing. */
export const HEARTBEAT_TABLE_EXISTS =
  "(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'primacy' AND TABLE_NAME = 'heartbeat')";

const ER_NO_SUCH_TABLE = 1146;

/**
 * The probe reads the heartbeat in its one SELECT. That SELECT fails if the table is missing, so once
 * it is found missing the probe asks information_schema instead until the table appears.
 */
export class HeartbeatColumns {
  #tableExists = true;

  /** Select-list items for the probe's SELECT. */
  sql(): string {
    return this.#tableExists
      ? '(SELECT epoch FROM primacy.heartbeat WHERE id = 1) AS heartbeat_epoch, ' +
          '(SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM primacy.heartbeat WHERE id = 1) AS heartbeat_age_us'
      : `${HEARTBEAT_TABLE_EXISTS} AS heartbeat_table`;
  }

  /** After a probe row: a table that has appeared is read from the next probe on. */
  learn(row: Row): void {
    if ('heartbeat_table' in row) this.#tableExists = (readNullableInt(row, 'heartbeat_table') ?? 0) > 0;
  }

  /** After a heartbeat write: the table exists now (or the next probe finds out that it does not). */
  written(): void {
    this.#tableExists = true;
  }

  /** True when the probe failed because the table is gone: the caller retries once without it. */
  missing(err: unknown): boolean {
    if (!this.#tableExists || serverErrno(err) !== ER_NO_SUCH_TABLE) return false;
    this.#tableExists = false;
    return true;
  }
}

export interface HeartbeatSeen {
  readonly epoch: number | null;
  readonly ageMs: number | null;
}

export function parseHeartbeatColumns(row: Row): HeartbeatSeen {
  const ageUs = readNullableInt(row, 'heartbeat_age_us');
  // A primary clock ahead of the replica's would give a negative age; lag is never below zero.
  return { epoch: readNullableInt(row, 'heartbeat_epoch'), ageMs: ageUs === null ? null : Math.max(0, ageUs) / 1000 };
}

/** Null when the table or its row does not exist (yet). */
export async function readHeartbeatRow(session: SqlSession, runner: StatementRunner): Promise<Heartbeat | null> {
  let rows: readonly Row[];
  try {
    rows = await session.query(READ_HEARTBEAT);
  } catch (err) {
    if (serverErrno(err) === ER_NO_SUCH_TABLE) return null;
    throw runner.failure(READ_HEARTBEAT, err);
  }
  const row = rows[0];
  if (row === undefined) return null;
  const ageUs = readNullableInt(row, 'age_us') ?? 0;
  return { epoch: readNullableInt(row, 'epoch') ?? 0, node: readText(row, 'node'), ageMs: Math.max(0, ageUs) / 1000 };
}

/**
 * Runs one probe: `fetch` does the I/O, `parse` turns what it read into a NodeState. I/O failures are
 * classified (down, refusing, auth_error); a parse failure means the server answered with something we
 * did not expect, so it is alive: `refusing`, with the reason.
 */
export async function observeWith<T>(fetch: () => Promise<T>, parse: (raw: T) => NodeState): Promise<Observation> {
  const started = performance.now();
  let raw: T;
  try {
    raw = await fetch();
  } catch (err) {
    return failedObservation(err, started);
  }
  try {
    return { health: 'up', error: null, probeMs: msSince(started), state: parse(raw) };
  } catch (err) {
    return { health: 'refusing', error: `unexpected server output: ${describeError(err)}`, probeMs: msSince(started), state: null };
  }
}

/** The observation of a probe that failed with `err`, classified. */
export function failedObservation(err: unknown, started: number): Observation {
  const { health, message } = classifyError(err);
  return { health, error: message, probeMs: msSince(started), state: null };
}

function msSince(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

/** The primary's heartbeat interval when the driver is not told (the agent's default). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;

/**
 * How much later than its interval a heartbeat may arrive and still show the replica receiving: the
 * primary's agent writes it from its node loop, up to a probe interval late, and the replica's probe
 * reads it up to a probe interval after it arrived.
 */
export const HEARTBEAT_GRACE_MS = 600;

/**
 * A replica's lag in ms. The heartbeat's age alone is a sawtooth between the true delay and the delay
 * plus one interval (160 to 1,234 ms on an idle cluster). A replica whose threads both run, whose
 * heartbeat is no older than an interval and a grace (so it is still receiving, and applied a
 * heartbeat that recently), and that has at most one transaction left to apply (`backlog`: the one
 * it is applying, most often the newest heartbeat itself) is current: lag 0. A transaction that
 * takes long to apply holds the heartbeats behind it, so the heartbeat grows old and the rule no
 * longer holds. Any other replica (a longer relay log, a stopped thread, heartbeats that stopped
 * coming) reports the heartbeat's age: an upper bound. Null on a node that does not replicate or
 * has no heartbeat row.
 */
export function replicaLagMs(ageMs: number | null, replication: ReplicationState | null, backlog: bigint, intervalMs: number): number | null {
  if (replication === null || ageMs === null) return null;
  const receiving = replication.ioState === 'running' && replication.sqlRunning && ageMs <= intervalMs + HEARTBEAT_GRACE_MS;
  return receiving && backlog <= 1n ? 0 : ageMs;
}
