/**
 * Killing client sessions, the half of fencing that read_only cannot do on MariaDB (SUPER and READ ONLY
 * ADMIN users ignore read_only). Same SQL on both flavors; which threads to spare is a pure choice.
 */
import { ErrorCodes, PrimacyError } from '@primacy/common';
import { describeSqlError, serverErrno } from './classify.js';
import type { Row, SqlSession } from './session.js';
import type { StatementRunner } from './statement.js';
import { readInt, readText } from './values.js';

export const LIST_SESSIONS =
  'SELECT ID AS id, USER AS user, COMMAND AS command FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()';

export const KILL_CONNECTION = 'KILL CONNECTION ?';

/** Server threads and the replication threads (both sides): killing them breaks the cluster, not a client. */
const SYSTEM_USERS = new Set(['system user', 'event_scheduler']);
const SPARED_COMMANDS = new Set([
  'Binlog Dump', // a replica's connection, on its source (MariaDB, MySQL without GTID)
  'Binlog Dump GTID', // the same on MySQL with auto-position
  'Slave_IO',
  'Slave_SQL',
  'Slave_worker',
  'Daemon',
]);

const ER_NO_SUCH_THREAD = 1094;

/** Ids to kill, ascending: every session that is not ours, a system thread or a replication thread. */
export function sessionsToKill(rows: readonly Row[], spare: ReadonlySet<number>): number[] {
  return rows
    .filter((row) => {
      const id = readInt(row, 'id');
      return !spare.has(id) && !SYSTEM_USERS.has(readText(row, 'user')) && !SPARED_COMMANDS.has(readText(row, 'command'));
    })
    .map((row) => readInt(row, 'id'))
    .sort((a, b) => a - b);
}

/**
 * Kills every client session but ours. Keeps going past a failed kill, so one stubborn thread does not
 * leave the others writing, and reports the failures after. A session that ended by itself meanwhile
 * (1094) is not a failure. `spare` is read after listing, so a connection of ours opened meanwhile is spared.
 */
export async function killClientSessions(session: SqlSession, runner: StatementRunner, spare: () => ReadonlySet<number>): Promise<number> {
  const rows = await runner.run(session, LIST_SESSIONS);
  const victims = sessionsToKill(rows, spare());
  let killed = 0;
  const failures: string[] = [];
  let firstCause: unknown;
  for (const id of victims) {
    try {
      await session.query(KILL_CONNECTION, [id]);
      killed++;
    } catch (err) {
      if (serverErrno(err) === ER_NO_SUCH_THREAD) continue;
      failures.push(`${id}: ${describeSqlError(err)}`);
      firstCause ??= err;
    }
  }
  if (failures.length > 0) {
    throw new PrimacyError(
      ErrorCodes.NODE_STATEMENT,
      `killed ${killed} of ${victims.length} client sessions on ${runner.where}; failed ${failures.join('; ')}`,
      { cause: firstCause },
    );
  }
  return killed;
}
