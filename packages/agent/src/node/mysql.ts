/**
 * The MySQL (8.0.22+, 8.4) driver. Same shape as the MariaDB one: a probe is one SELECT plus SHOW
 * REPLICA STATUS, parsed by the pure `parseMySqlState`.
 *
 * MySQL specifics: `super_read_only` binds SUPER users too, so fencing is one variable; 8.4 removed the
 * SLAVE and MASTER statements, so only REPLICA/SOURCE forms are sent (CHANGE REPLICATION SOURCE
 * arrived in 8.0.23, so 8.0.22 alone gets CHANGE MASTER); semi-sync is a plugin that may be absent,
 * and may be the old `rpl_semi_sync_master` one even on 8.0.26+, so its variable names are read, not
 * assumed.
 */
import type { NodeState, ReplicationState, SemiSyncState } from '@primacy/common';
import { ErrorCodes, formatGtid, gtidCountMissing, mergeGtid, parseGtid, PrimacyError } from '@primacy/common';
import type { FenceState, Heartbeat, NodeDriver, Observation, ReplicationSource, ReseedMark, SemiSyncWait } from './driver.js';
import { killClientSessions } from './fence.js';
import { readCloneMarkOn } from './reseed-mark.js';
import { CREATE_HEARTBEAT_TABLE, DEFAULT_HEARTBEAT_INTERVAL_MS, HEARTBEAT_TABLE_EXISTS, HeartbeatColumns, observeWith, parseHeartbeatColumns, readHeartbeatRow, replicaLagMs } from './probe.js';
import type { Row } from './session.js';
import { closeSessions, OperationQueue, ownThreadIds, StatementRunner, type DriverOptions, type DriverSessions } from './statement.js';
import { readBool, readInt, readNullableBool, readNullableInt, readText, RowShapeError } from './values.js';

export const SHOW_REPLICA_STATUS = 'SHOW REPLICA STATUS';

/** Status and system variables, each under its 8.0.26+ name and the older plugin's name. */
const STATUS_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  threads_connected: ['Threads_connected'],
  semi_sync_source_status: ['Rpl_semi_sync_source_status', 'Rpl_semi_sync_master_status'],
  semi_sync_source_clients: ['Rpl_semi_sync_source_clients', 'Rpl_semi_sync_master_clients'],
  semi_sync_replica_status: ['Rpl_semi_sync_replica_status', 'Rpl_semi_sync_slave_status'],
};
const SEMI_SYNC_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  semi_sync_source_enabled: ['rpl_semi_sync_source_enabled', 'rpl_semi_sync_master_enabled'],
  semi_sync_replica_enabled: ['rpl_semi_sync_replica_enabled', 'rpl_semi_sync_slave_enabled'],
  semi_sync_source_timeout: ['rpl_semi_sync_source_timeout', 'rpl_semi_sync_master_timeout'],
  semi_sync_source_wait_no_replica: ['rpl_semi_sync_source_wait_no_replica', 'rpl_semi_sync_master_wait_no_slave'],
};

/** `MAX(IF(...)) AS alias` over performance_schema, one row whatever is installed; NULL when absent. */
function pivot(table: string, columns: Readonly<Record<string, readonly string[]>>): string {
  const quoted = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ');
  const items = Object.entries(columns)
    .map(([alias, names]) => `MAX(IF(VARIABLE_NAME IN (${quoted(names)}), VARIABLE_VALUE, NULL)) AS ${alias}`)
    .join(', ');
  return `(SELECT ${items} FROM performance_schema.${table} WHERE VARIABLE_NAME IN (${quoted(Object.values(columns).flat())}))`;
}

export function mySqlProbeSql(heartbeatColumns: string): string {
  return (
    'SELECT @@GLOBAL.version AS version, @@GLOBAL.server_id AS server_id, @@GLOBAL.server_uuid AS server_uuid, ' +
    '@@GLOBAL.read_only AS read_only, @@GLOBAL.super_read_only AS super_read_only, @@GLOBAL.log_bin AS log_bin, ' +
    '@@GLOBAL.gtid_executed AS gtid_executed, @@GLOBAL.max_connections AS max_connections, ' +
    `status.*, semi_sync.*, ${heartbeatColumns} ` +
    `FROM ${pivot('global_status', STATUS_VARIABLES)} AS status, ${pivot('global_variables', SEMI_SYNC_VARIABLES)} AS semi_sync`
  );
}

/** What the admin statements depend on: the version and which semi-sync plugin is installed. */
export const MYSQL_DIALECT =
  'SELECT @@GLOBAL.version AS version, (SELECT GROUP_CONCAT(VARIABLE_NAME ORDER BY VARIABLE_NAME) ' +
  'FROM performance_schema.global_variables WHERE VARIABLE_NAME IN (' +
  "'rpl_semi_sync_source_enabled', 'rpl_semi_sync_master_enabled', 'rpl_semi_sync_replica_enabled', 'rpl_semi_sync_slave_enabled'" +
  ')) AS semi_sync_variables';

export interface MySqlDialect {
  /** CHANGE REPLICATION SOURCE TO (8.0.23+) or CHANGE MASTER TO (8.0.22). */
  readonly changeSource: 'source' | 'master';
  /** Variable prefix of the installed source plugin, e.g. `rpl_semi_sync_source`; null when not installed. */
  readonly semiSyncSource: string | null;
  readonly semiSyncReplica: string | null;
}

export function parseMySqlDialect(row: Row): MySqlDialect {
  const [major = 0, minor = 0, patch = 0] = (/^(\d+)\.(\d+)\.(\d+)/.exec(readText(row, 'version')) ?? [])
    .slice(1)
    .map(Number);
  const installed = new Set(readText(row, 'semi_sync_variables').split(',').filter(Boolean));
  const prefix = (modern: string, old: string): string | null =>
    installed.has(`${modern}_enabled`) ? modern : installed.has(`${old}_enabled`) ? old : null;
  const atLeast8023 = major > 8 || (major === 8 && (minor > 0 || patch >= 23));
  return {
    changeSource: atLeast8023 ? 'source' : 'master',
    semiSyncSource: prefix('rpl_semi_sync_source', 'rpl_semi_sync_master'),
    semiSyncReplica: prefix('rpl_semi_sync_replica', 'rpl_semi_sync_slave'),
  };
}

/**
 * Auto-position resumes a former primary from its own gtid_executed, so no position is set first.
 * SOURCE_RETRY_COUNT: MySQL's default (10) would let the IO thread give up after ten 1 s retries.
 * GET_SOURCE_PUBLIC_KEY: a replication user on caching_sha2_password (the 8.x default) cannot log in
 * over plain TCP without the source's RSA key.
 */
export function changeSourceSql(dialect: MySqlDialect): string {
  return dialect.changeSource === 'source'
    ? 'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, ' +
        'SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, SOURCE_RETRY_COUNT = 86400, GET_SOURCE_PUBLIC_KEY = 1'
    : 'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
        'MASTER_AUTO_POSITION = 1, MASTER_CONNECT_RETRY = 1, MASTER_RETRY_COUNT = 86400, GET_MASTER_PUBLIC_KEY = 1';
}

/** No compound statements outside stored programs in MySQL: the read_only guard is the INSERT's WHERE. */
export const MYSQL_HEARTBEAT_GUARD = `SELECT @@GLOBAL.read_only AS read_only, ${HEARTBEAT_TABLE_EXISTS} AS heartbeat_table`;
export const MYSQL_WRITE_HEARTBEAT =
  'INSERT INTO primacy.heartbeat (id, epoch, node, ts) SELECT 1, ?, ?, NOW(6) FROM DUAL WHERE @@GLOBAL.read_only = 0 ' +
  'ON DUPLICATE KEY UPDATE epoch = ?, node = ?, ts = NOW(6)';

/** A server prints GTID sets with `,\n` between uuids; the canonical form has none. */
function normalizeGtidSet(text: string): string {
  return formatGtid(parseGtid('mysql', text));
}

/** The default channel's row (MySQL can have several channels; Primacy uses only the default). */
export function defaultChannel(rows: readonly Row[]): Row | null {
  return rows.find((r) => readText(r, 'Channel_Name') === '') ?? rows[0] ?? null;
}

export function parseMySqlReplication(row: Row): ReplicationState {
  const io = readText(row, 'Replica_IO_Running');
  return {
    sourceHost: readText(row, 'Source_Host'),
    sourcePort: readInt(row, 'Source_Port'),
    ioState: io === 'Yes' ? 'running' : io === 'No' ? 'stopped' : 'connecting',
    sqlRunning: readText(row, 'Replica_SQL_Running') === 'Yes',
    lastIoError: readText(row, 'Last_IO_Error'),
    lastSqlError: readText(row, 'Last_SQL_Error'),
    autoPosition: readBool(row, 'Auto_Position'),
    secondsBehind: readNullableInt(row, 'Seconds_Behind_Source'),
  };
}

export function parseMySqlState(probe: Row, replica: Row | null, heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS): NodeState {
  const executed = parseGtid('mysql', readText(probe, 'gtid_executed'));
  const retrieved = replica === null ? null : normalizeGtidSet(readText(replica, 'Retrieved_Gtid_Set'));
  const received = retrieved ? mergeGtid(executed, parseGtid('mysql', retrieved)) : executed;
  const replication = replica === null ? null : parseMySqlReplication(replica);
  const heartbeat = parseHeartbeatColumns(probe);
  const semiSync: SemiSyncState = {
    sourceEnabled: readBool(probe, 'semi_sync_source_enabled'),
    sourceActive: readBool(probe, 'semi_sync_source_status'),
    sourceClients: readNullableInt(probe, 'semi_sync_source_clients') ?? 0,
    replicaEnabled: readBool(probe, 'semi_sync_replica_enabled'),
    replicaActive: readBool(probe, 'semi_sync_replica_status'),
    // Not in the recorded outputs (fixtures/), which predate these columns: there they read null.
    sourceTimeoutMs: readNullableInt(probe, 'semi_sync_source_timeout'),
    sourceWaitNoReplica: readNullableBool(probe, 'semi_sync_source_wait_no_replica'),
  };
  return {
    flavor: 'mysql',
    version: readText(probe, 'version'),
    serverId: readInt(probe, 'server_id'),
    serverUuid: readText(probe, 'server_uuid') || null,
    readOnly: readBool(probe, 'read_only'),
    superReadOnly: readBool(probe, 'super_read_only'),
    logBin: readBool(probe, 'log_bin'),
    gtid: {
      executed: formatGtid(executed),
      received: formatGtid(received),
      ...(retrieved === null ? {} : { retrieved }),
    },
    replication,
    // On a node that replicates (on the primary the row is its own).
    lagMs: replicaLagMs(heartbeat.ageMs, replication, gtidCountMissing(received, executed), heartbeatIntervalMs),
    heartbeatEpoch: heartbeat.epoch,
    semiSync,
    connections: readNullableInt(probe, 'threads_connected') ?? 0,
    maxConnections: readInt(probe, 'max_connections'),
  };
}

export class MySqlDriver implements NodeDriver {
  readonly flavor = 'mysql' as const;
  readonly #sessions: DriverSessions;
  readonly #sql: StatementRunner;
  readonly #ops = new OperationQueue();
  readonly #heartbeat = new HeartbeatColumns();
  readonly #queryTimeoutMs: number;
  readonly #heartbeatIntervalMs: number;

  constructor(sessions: DriverSessions, options: DriverOptions) {
    this.#sessions = sessions;
    this.#sql = new StatementRunner(options.where);
    this.#queryTimeoutMs = options.queryTimeoutMs;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  }

  observe(): Promise<Observation> {
    return observeWith(
      () => this.#fetchProbe(),
      ([probe, replicas]) => {
        const row = probe[0];
        if (row === undefined) throw new RowShapeError('version', undefined, 'one probe row');
        return parseMySqlState(row, defaultChannel(replicas), this.#heartbeatIntervalMs);
      },
    );
  }

  async #fetchProbe(): Promise<[readonly Row[], readonly Row[]]> {
    const session = this.#sessions.probe;
    let probe: readonly Row[];
    try {
      probe = await session.query(mySqlProbeSql(this.#heartbeat.sql()));
    } catch (err) {
      if (!this.#heartbeat.missing(err)) throw err;
      probe = await session.query(mySqlProbeSql(this.#heartbeat.sql()));
    }
    if (probe[0] !== undefined) this.#heartbeat.learn(probe[0]);
    const replicas = await session.query(SHOW_REPLICA_STATUS);
    return [probe, replicas];
  }

  /** On: super_read_only, which implies read_only. Off: read_only=OFF, which clears super_read_only too. */
  setReadOnly(on: boolean, timeoutMs?: number): Promise<void> {
    return this.#admin([on ? 'SET GLOBAL super_read_only = ON' : 'SET GLOBAL read_only = OFF'], timeoutMs);
  }

  /** Not in the recorded outputs (fixtures/): untested against a server. */
  readSemiSyncWait(): Promise<SemiSyncWait> {
    return this.#ops.run(async () => {
      const row = await this.#sql.one(
        this.#sessions.admin,
        "SELECT (SELECT MAX(VARIABLE_VALUE) FROM performance_schema.global_variables WHERE VARIABLE_NAME IN ('rpl_semi_sync_source_timeout', 'rpl_semi_sync_master_timeout')) AS timeout_ms, " +
          "MAX(IF(VARIABLE_NAME IN ('Rpl_semi_sync_source_wait_sessions', 'Rpl_semi_sync_master_wait_sessions'), VARIABLE_VALUE, NULL)) AS waiting, " +
          "MAX(IF(VARIABLE_NAME IN ('Rpl_semi_sync_source_clients', 'Rpl_semi_sync_master_clients'), VARIABLE_VALUE, NULL)) AS clients " +
          "FROM performance_schema.global_status WHERE VARIABLE_NAME IN ('Rpl_semi_sync_source_wait_sessions', 'Rpl_semi_sync_master_wait_sessions', 'Rpl_semi_sync_source_clients', 'Rpl_semi_sync_master_clients')",
      );
      return { waiting: readNullableInt(row, 'waiting') ?? 0, clients: readNullableInt(row, 'clients') ?? 0, timeoutMs: readNullableInt(row, 'timeout_ms') };
    });
  }

  /** super_read_only: read_only alone does not stop SUPER (CONNECTION_ADMIN) sessions. */
  readFenceState(): Promise<FenceState> {
    return this.#ops.run(async () => {
      const row = await this.#sql.one(this.#sessions.admin, 'SELECT @@GLOBAL.super_read_only AS super_read_only, @@GLOBAL.gtid_executed AS gtid_executed');
      return { readOnly: readBool(row, 'super_read_only'), gtidExecuted: normalizeGtidSet(readText(row, 'gtid_executed')) };
    });
  }

  killClientSessions(): Promise<number> {
    return this.#ops.run(() => killClientSessions(this.#sessions.admin, this.#sql, () => ownThreadIds(this.#sessions)));
  }

  stopReplicaIo(timeoutMs?: number): Promise<void> {
    return this.#admin(['STOP REPLICA IO_THREAD'], timeoutMs);
  }

  stopReplication(): Promise<void> {
    return this.#admin(['STOP REPLICA']);
  }

  startReplication(): Promise<void> {
    return this.#admin(['START REPLICA']);
  }

  resetReplication(): Promise<void> {
    return this.#admin(['STOP REPLICA', 'RESET REPLICA ALL']);
  }

  replicateFrom(source: ReplicationSource): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      const dialect = parseMySqlDialect(await this.#sql.one(admin, MYSQL_DIALECT));
      await this.#sql.run(admin, 'STOP REPLICA');
      await this.#sql.run(admin, changeSourceSql(dialect), [source.host, source.port, source.user, source.password]);
      await this.#sql.run(admin, 'START REPLICA');
    });
  }

  async waitForGtid(gtid: string, timeoutMs: number): Promise<boolean> {
    const target = normalizeGtidSet(gtid);
    const wait = this.#sessions.wait;
    // A check that must not wait asks GTID_SUBSET, whatever a server makes of a 0 s wait.
    if (timeoutMs <= 0) {
      const row = await this.#sql.one(wait, 'SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed) AS done', [target]);
      return readBool(row, 'done');
    }
    const row = await this.#sql.one(wait, 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS result', [target, timeoutMs / 1000], {
      timeoutMs: timeoutMs + this.#queryTimeoutMs,
    });
    // 0: executed; 1: timed out.
    return readNullableInt(row, 'result') === 0;
  }

  async waitForRelayApplied(timeoutMs: number): Promise<boolean> {
    const replica = defaultChannel(await this.#sql.run(this.#sessions.wait, SHOW_REPLICA_STATUS));
    // The retrieved set can name a transaction the IO thread received only in part; such a wait times out.
    const retrieved = replica === null ? '' : readText(replica, 'Retrieved_Gtid_Set');
    if (normalizeGtidSet(retrieved) === '') return true;
    return this.waitForGtid(retrieved, timeoutMs);
  }

  setSemiSyncSource(on: boolean, timeoutMs: number): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      const prefix = parseMySqlDialect(await this.#sql.one(admin, MYSQL_DIALECT)).semiSyncSource;
      if (prefix === null) {
        if (on) throw this.#pluginMissing('source', 'rpl_semi_sync_source', 'semisync_source.so');
        return;
      }
      if (on) await this.#sql.run(admin, `SET GLOBAL ${prefix}_timeout = ?`, [Math.round(timeoutMs)]);
      if (on) await this.#sql.run(admin, `SET GLOBAL ${prefix}_wait_no_${prefix.endsWith('source') ? 'replica' : 'slave'} = ON`);
      await this.#sql.run(admin, `SET GLOBAL ${prefix}_enabled = ${on ? 'ON' : 'OFF'}`);
    });
  }

  setSemiSyncReplica(on: boolean): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      const prefix = parseMySqlDialect(await this.#sql.one(admin, MYSQL_DIALECT)).semiSyncReplica;
      if (prefix === null) {
        if (on) throw this.#pluginMissing('replica', 'rpl_semi_sync_replica', 'semisync_replica.so');
        return;
      }
      await this.#sql.run(admin, `SET GLOBAL ${prefix}_enabled = ${on ? 'ON' : 'OFF'}`);
      // The receiver reads the setting when it connects; a stopped (revoked) one must stay stopped.
      const replica = defaultChannel(await this.#sql.run(admin, SHOW_REPLICA_STATUS));
      if (replica !== null && readText(replica, 'Replica_IO_Running') !== 'No') {
        await this.#sql.run(admin, 'STOP REPLICA IO_THREAD');
        await this.#sql.run(admin, 'START REPLICA IO_THREAD');
      }
    });
  }

  writeHeartbeat(epoch: number, node: string): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      const guard = await this.#sql.one(admin, MYSQL_HEARTBEAT_GUARD);
      if (readBool(guard, 'read_only')) return;
      if (!readBool(guard, 'heartbeat_table')) {
        await this.#sql.run(admin, 'CREATE DATABASE IF NOT EXISTS primacy');
        await this.#sql.run(admin, CREATE_HEARTBEAT_TABLE);
      }
      await this.#sql.run(admin, MYSQL_WRITE_HEARTBEAT, [epoch, node, epoch, node]);
      this.#heartbeat.written();
    });
  }

  readHeartbeat(): Promise<Heartbeat | null> {
    return readHeartbeatRow(this.#sessions.probe, this.#sql);
  }

  /** A clone replaces the whole data directory, a mark table with it: MySQL's mark is its clone status. */
  readReseedMark(): Promise<ReseedMark | null> {
    return readCloneMarkOn(this.#sessions.admin, this.#sql);
  }

  close(): Promise<void> {
    return closeSessions(this.#sessions);
  }

  #admin(statements: readonly string[], timeoutMs?: number): Promise<void> {
    const options = timeoutMs === undefined ? {} : { timeoutMs };
    return this.#ops.run(async () => {
      for (const sql of statements) await this.#sql.run(this.#sessions.admin, sql, [], options);
    });
  }

  #pluginMissing(side: string, plugin: string, library: string): PrimacyError {
    return new PrimacyError(
      ErrorCodes.NODE_STATEMENT,
      `semi-sync ${side} plugin is not installed on ${this.#sql.where}; install it with INSTALL PLUGIN ${plugin} SONAME '${library}'`,
    );
  }
}
