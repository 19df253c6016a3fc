/** What a server holds, for comparing servers: its data's checksums and its binlog position. */
import { ADMIN, type MariaDbServer } from '../harness/index.js';

export async function binlogPos(s: MariaDbServer): Promise<string> {
  const [row] = await s.query<{ pos: string }>('SELECT @@GLOBAL.gtid_binlog_pos AS pos', [], { creds: ADMIN });
  return row?.pos ?? '';
}

/** Equal data on two servers: CHECKSUM TABLE of every user table, by name. */
const SYSTEM = "('mysql','information_schema','performance_schema','sys','primacy_rejoin')";

export async function checksums(s: MariaDbServer): Promise<Record<string, string>> {
  const tables = await s.query<{ t: string }>(
    `SELECT CONCAT('\`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`') AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ${SYSTEM} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { t } of tables) {
    const [row] = await s.query<{ Checksum: unknown }>(`CHECKSUM TABLE ${t}`);
    out[t] = String(row?.Checksum);
  }
  return out;
}
