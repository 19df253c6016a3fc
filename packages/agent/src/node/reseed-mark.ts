/**
 * The mark a reseed leaves on a node until its copy is complete (rejoin/reseed.ts writes it, outside
 * the binlog): a node that carries it holds partial data and must never replicate or serve as if
 * whole. Read here, below the flavor drivers, so that the agent asks its own driver.
 */
import type { ReseedMark } from './driver.js';
import type { SqlSession } from './session.js';
import type { StatementRunner } from './statement.js';
import { readText } from './values.js';

export const MARK_DATABASE = 'primacy_rejoin';
export const MARK_TABLE = `${MARK_DATABASE}.reseed`;

export async function readMarkOn(session: SqlSession, sql: StatementRunner): Promise<ReseedMark | null> {
  const exists = await sql.run(session, 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [MARK_DATABASE, 'reseed']);
  if (exists.length === 0) return null;
  const rows = await sql.run(session, `SELECT source, started_at FROM ${MARK_TABLE} WHERE id = 1`);
  const row = rows[0];
  if (row === undefined) return null;
  const at = row['started_at'];
  return { source: readText(row, 'source'), startedAt: at instanceof Date ? at : new Date(readText(row, 'started_at')) };
}

/**
 * MySQL's mark is its clone status. A clone replaces the whole data directory, the mark table with it:
 * its DROP DATA stage removes the recipient's user data first, and a clone that fails after that
 * leaves none (MySQL manual, "Remote Cloning Operation Failure Handling"). What survives, across the
 * restart too, is performance_schema.clone_status, so a node whose last clone failed, never finished
 * (In Progress) or completed with an error counts as marked until a clone completes cleanly. A clone
 * refused before DROP DATA (a wrong password, say) marks it too: it is diverged either way, and only
 * a reseed may touch it. Without the clone plugin there are no clone tables, and no clone can have run.
 */
export async function readCloneMarkOn(session: SqlSession, sql: StatementRunner): Promise<ReseedMark | null> {
  const plugin = await sql.run(session, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'");
  if (plugin[0] === undefined || readText(plugin[0], 'PLUGIN_STATUS') !== 'ACTIVE') return null;
  const rows = await sql.run(session, 'SELECT STATE, ERROR_NO, SOURCE, BEGIN_TIME FROM performance_schema.clone_status');
  const row = rows[0];
  if (row === undefined) return null;
  const state = readText(row, 'STATE');
  // A clone can also end Completed with an error; only a clean Completed (or none begun) is whole.
  if (state === 'Not Started' || (state === 'Completed' && Number(row['ERROR_NO'] ?? 0) === 0)) return null;
  const at = row['BEGIN_TIME'];
  return { source: readText(row, 'SOURCE'), startedAt: at instanceof Date ? at : new Date(readText(row, 'BEGIN_TIME')) };
}
