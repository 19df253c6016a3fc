/**
 * The one admin connection a rejoin step uses on a node: dedicated, closed when the step ends, its
 * statements named in errors with the node.
 */
import { describeEndpoint, MysqlSession, type SqlSession } from '../node/session.js';
import { StatementRunner } from '../node/statement.js';
import type { Endpoint } from '../node/driver.js';
import { formatMysqlGtidSet, parseMysqlGtidSet, type Flavor } from '@primacy/common';
import { readBool, readText } from '../node/values.js';

export interface NodeSql {
  readonly session: SqlSession;
  readonly sql: StatementRunner;
}

/** Statements here wait on purpose (RESET MASTER on a big binlog, a flashback's commits), so they get a generous bound. */
export const REJOIN_QUERY_TIMEOUT_MS = 60_000;

/** Opens a step's connection to a node. Steps take one in their options, so tests can run them on recorded server output. */
export type ConnectNodeSql = (endpoint: Endpoint, queryTimeoutMs: number) => NodeSql;

export const connectNodeSql: ConnectNodeSql = (endpoint, queryTimeoutMs) => ({
  session: new MysqlSession(endpoint, { connectTimeoutMs: 5_000, queryTimeoutMs }),
  sql: new StatementRunner(describeEndpoint(endpoint)),
});

export async function withNodeSql<T>(
  endpoint: Endpoint,
  use: (node: NodeSql) => Promise<T>,
  queryTimeoutMs = REJOIN_QUERY_TIMEOUT_MS,
  connect: ConnectNodeSql = connectNodeSql,
): Promise<T> {
  const node = connect(endpoint, queryTimeoutMs);
  try {
    return await use(node);
  } finally {
    await node.session.close();
  }
}

/** The binlog settings every rejoin step checks first. */
export interface BinlogSettings {
  readonly flavor: Flavor;
  readonly logBin: boolean;
  readonly format: string;
  readonly rowImage: string;
  readonly readOnly: boolean;
  readonly serverId: number;
  /** MariaDB: gtid_binlog_state. MySQL: gtid_executed, canonical (its binlog and its executed set are one). */
  readonly binlogState: string;
}

export async function readBinlogSettings(node: NodeSql): Promise<BinlogSettings> {
  const row = await node.sql.one(
    node.session,
    'SELECT @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, @@GLOBAL.binlog_row_image AS binlog_row_image, ' +
      '@@GLOBAL.read_only AS read_only, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_binlog_state AS gtid_binlog_state',
  );
  return {
    flavor: 'mariadb',
    logBin: Number(row['log_bin']) === 1,
    format: readText(row, 'binlog_format').toUpperCase(),
    rowImage: readText(row, 'binlog_row_image').toUpperCase(),
    readOnly: Number(row['read_only']) === 1,
    serverId: Number(row['server_id']),
    binlogState: readText(row, 'gtid_binlog_state'),
  };
}

export interface MysqlBinlogSettings extends BinlogSettings {
  readonly version: string;
  /** gtid_purged, canonical: transactions whose binlog files are gone. */
  readonly purged: string;
}

/** The same settings on MySQL; read-only means super_read_only, how a MySQL node is fenced. */
export async function readMysqlBinlogSettings(node: NodeSql): Promise<MysqlBinlogSettings> {
  const row = await node.sql.one(
    node.session,
    'SELECT @@GLOBAL.version AS version, @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, @@GLOBAL.binlog_row_image AS binlog_row_image, ' +
      '@@GLOBAL.super_read_only AS super_read_only, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_executed AS gtid_executed, @@GLOBAL.gtid_purged AS gtid_purged',
  );
  return {
    flavor: 'mysql',
    version: readText(row, 'version'),
    logBin: readBool(row, 'log_bin'),
    format: readText(row, 'binlog_format').toUpperCase(),
    rowImage: readText(row, 'binlog_row_image').toUpperCase(),
    readOnly: readBool(row, 'super_read_only'),
    serverId: Number(row['server_id']),
    binlogState: formatMysqlGtidSet(parseMysqlGtidSet(readText(row, 'gtid_executed'))),
    purged: formatMysqlGtidSet(parseMysqlGtidSet(readText(row, 'gtid_purged'))),
  };
}
