/**
 * The one admin connection a rejoin step uses on a node: dedicated, closed when the step ends, its
 * statements named in errors with the node.
 */
import { describeEndpoint, MysqlSession, type SqlSession } from '../node/session.js';
import { StatementRunner } from '../node/statement.js';
import type { Endpoint } from '../node/driver.js';
import { readText } from '../node/values.js';

export interface NodeSql {
  readonly session: SqlSession;
  readonly sql: StatementRunner;
}

/** Statements here wait on purpose (RESET MASTER on a big binlog, a flashback's commits), so they get a generous bound. */
export const REJOIN_QUERY_TIMEOUT_MS = 60_000;

export async function withNodeSql<T>(endpoint: Endpoint, use: (node: NodeSql) => Promise<T>, queryTimeoutMs = REJOIN_QUERY_TIMEOUT_MS): Promise<T> {
  const session = new MysqlSession(endpoint, { connectTimeoutMs: 5_000, queryTimeoutMs });
  const sql = new StatementRunner(describeEndpoint(endpoint));
  const node: NodeSql = { session, sql };
  try {
    return await use(node);
  } finally {
    await session.close();
  }
}

/** The binlog settings every rejoin step checks first. */
export interface BinlogSettings {
  readonly logBin: boolean;
  readonly format: string;
  readonly rowImage: string;
  readonly readOnly: boolean;
  readonly serverId: number;
  readonly binlogState: string;
}

export async function readBinlogSettings(node: NodeSql): Promise<BinlogSettings> {
  const row = await node.sql.one(
    node.session,
    'SELECT @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, @@GLOBAL.binlog_row_image AS binlog_row_image, ' +
      '@@GLOBAL.read_only AS read_only, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_binlog_state AS gtid_binlog_state',
  );
  return {
    logBin: Number(row['log_bin']) === 1,
    format: readText(row, 'binlog_format').toUpperCase(),
    rowImage: readText(row, 'binlog_row_image').toUpperCase(),
    readOnly: Number(row['read_only']) === 1,
    serverId: Number(row['server_id']),
    binlogState: readText(row, 'gtid_binlog_state'),
  };
}
