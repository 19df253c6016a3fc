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
