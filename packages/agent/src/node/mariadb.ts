/**
 * The MariaDB (10.6+) driver. A probe is two round trips: one SELECT for variables, status and the
 * heartbeat, and SHOW SLAVE STATUS. Parsing what they return is pure (`parseMariaDbState`).
 *
 * MariaDB specifics that shape this file (FACTS.md): `read_only` does not bind SUPER users, so the
 * heartbeat write checks read_only inside its own statement; MASTER_GTID_WAIT waits on gtid_slave_pos
 * only, never on the node's own binlog; a former primary's gtid_slave_pos lags its binlog.
 */
import type { NodeState, ReplicationState, SemiSyncState } from '@primacy/common';
import { formatGtid, gtidContains, gtidCountMissing, mergeGtid, parseGtid } from '@primacy/common';
import type { FenceState, Heartbeat, NodeDriver, Observation, ReplicationSource, ReseedMark, SemiSyncWait } from './driver.js';
import { killClientSessions } from './fence.js';
import { readMarkOn } from './reseed-mark.js';
import { CREATE_HEARTBEAT_TABLE, DEFAULT_HEARTBEAT_INTERVAL_MS, HEARTBEAT_TABLE_EXISTS, HeartbeatColumns, observeWith, parseHeartbeatColumns, readHeartbeatRow, replicaLagMs } from './probe.js';
import type { Row } from './session.js';
import { closeSessions, OperationQueue, ownThreadIds, StatementRunner, type DriverOptions, type DriverSessions } from './statement.js';
import { readBool, readInt, readNullableBool, readNullableInt, readText, RowShapeError } from './values.js';

export const SHOW_SLAVE_STATUS = 'SHOW SLAVE STATUS';

const STATUS_VARIABLES: Readonly<Record<string, string>> = {
  threads_connected: 'THREADS_CONNECTED',
  semi_sync_master_status: 'RPL_SEMI_SYNC_MASTER_STATUS',
  semi_sync_master_clients: 'RPL_SEMI_SYNC_MASTER_CLIENTS',
  semi_sync_slave_status: 'RPL_SEMI_SYNC_SLAVE_STATUS',
};

/** The probe's SELECT; `heartbeatColumns` reads the heartbeat row or asks whether its table exists. */
export function mariaDbProbeSql(heartbeatColumns: string): string {
  const status = Object.entries(STATUS_VARIABLES)
    .map(([alias, name]) => `MAX(IF(VARIABLE_NAME = '${name}', VARIABLE_VALUE, NULL)) AS ${alias}`)
    .join(', ');
  const names = Object.values(STATUS_VARIABLES)
    .map((n) => `'${n}'`)
    .join(', ');
  return (
    'SELECT @@GLOBAL.version AS version, @@GLOBAL.server_id AS server_id, @@GLOBAL.read_only AS read_only, ' +
    '@@GLOBAL.log_bin AS log_bin, @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos, @@GLOBAL.gtid_binlog_state AS gtid_binlog_state, ' +
    '@@GLOBAL.gtid_slave_pos AS gtid_slave_pos, ' +
    '@@GLOBAL.gtid_current_pos AS gtid_current_pos, @@GLOBAL.rpl_semi_sync_master_enabled AS semi_sync_master_enabled, ' +
    '@@GLOBAL.rpl_semi_sync_slave_enabled AS semi_sync_slave_enabled, @@GLOBAL.max_connections AS max_connections, ' +
    '@@GLOBAL.rpl_semi_sync_master_timeout AS semi_sync_master_timeout, @@GLOBAL.rpl_semi_sync_master_wait_no_slave AS semi_sync_master_wait_no_slave, ' +
    `status.*, ${heartbeatColumns} ` +
    `FROM (SELECT ${status} FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN (${names})) AS status`
  );
}

/**
 * One statement, so the read_only check and the write cannot be split by a fence: on a read-only node
 * nothing inside the IF runs, and nothing reaches the binlog. (The agent user has SUPER, which would
 * otherwise write through read_only and leave an errant GTID on a fenced node.) The table is created
 * only when missing, because CREATE … IF NOT EXISTS is binlogged even when it does nothing.
 */
export const MARIADB_WRITE_HEARTBEAT =
  'IF @@GLOBAL.read_only = 0 THEN ' +
  `IF ${HEARTBEAT_TABLE_EXISTS} = 0 THEN ` +
  'CREATE DATABASE IF NOT EXISTS primacy; ' +
  `${CREATE_HEARTBEAT_TABLE}; ` +
  'END IF; ' +
  'INSERT INTO primacy.heartbeat (id, epoch, node, ts) VALUES (1, ?, ?, NOW(6)) ' +
  'ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), node = VALUES(node), ts = VALUES(ts); ' +
  'END IF';

export const MARIADB_CHANGE_MASTER =
  'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
  'MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1';

export function parseMariaDbReplication(row: Row): ReplicationState {
  const io = readText(row, 'Slave_IO_Running');
  return {
    sourceHost: readText(row, 'Master_Host'),
    sourcePort: readInt(row, 'Master_Port'),
    // 'Connecting' (and 'Preparing' on some releases): the thread runs but has no link to its source.
    ioState: io === 'Yes' ? 'running' : io === 'No' ? 'stopped' : 'connecting',
    sqlRunning: readText(row, 'Slave_SQL_Running') === 'Yes',
    lastIoError: readText(row, 'Last_IO_Error'),
    lastSqlError: readText(row, 'Last_SQL_Error'),
    autoPosition: readText(row, 'Using_Gtid') !== 'No',
    secondsBehind: readNullableInt(row, 'Seconds_Behind_Master'),
  };
}

/** NodeState from the probe row and SHOW SLAVE STATUS's row (null when the node replicates from no one). */
export function parseMariaDbState(probe: Row, replica: Row | null, heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS): NodeState {
  const binlogPos = readText(probe, 'gtid_binlog_pos');
  const slavePos = readText(probe, 'gtid_slave_pos');
  const currentPos = readText(probe, 'gtid_current_pos');
  const executed = parseGtid('mariadb', currentPos);
  const ioPos = replica === null ? null : readText(replica, 'Gtid_IO_Pos');
  // Received = applied plus what the IO thread wrote to the relay log and the SQL thread has not applied.
  const received = ioPos ? mergeGtid(executed, parseGtid('mariadb', ioPos)) : executed;
  const replication = replica === null ? null : parseMariaDbReplication(replica);
  const heartbeat = parseHeartbeatColumns(probe);
  const semiSync: SemiSyncState = {
    sourceEnabled: readBool(probe, 'semi_sync_master_enabled'),
    sourceActive: readBool(probe, 'semi_sync_master_status'),
    sourceClients: readNullableInt(probe, 'semi_sync_master_clients') ?? 0,
    replicaEnabled: readBool(probe, 'semi_sync_slave_enabled'),
    replicaActive: readBool(probe, 'semi_sync_slave_status'),
    sourceTimeoutMs: readNullableInt(probe, 'semi_sync_master_timeout'),
    sourceWaitNoReplica: readNullableBool(probe, 'semi_sync_master_wait_no_slave'),
  };
  return {
    flavor: 'mariadb',
    version: readText(probe, 'version'),
    serverId: readInt(probe, 'server_id'),
    serverUuid: null,
    readOnly: readBool(probe, 'read_only'),
    superReadOnly: null,
    logBin: readBool(probe, 'log_bin'),
    gtid: {
      executed: formatGtid(executed),
      received: formatGtid(received),
      binlogPos,
      binlogState: readText(probe, 'gtid_binlog_state'),
      slavePos,
      currentPos,
      ...(ioPos === null ? {} : { ioPos }),
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

/**
 * The gtid_slave_pos a node must have before it replicates with MASTER_USE_GTID=slave_pos: its own
 * binlog merged in, so a former primary resumes after its own last transaction instead of asking for
 * them again. Null when gtid_slave_pos already holds everything (an ordinary replica).
 */
export function resumePosition(binlogPos: string, slavePos: string): string | null {
  const slave = parseGtid('mariadb', slavePos);
  const merged = mergeGtid(slave, parseGtid('mariadb', binlogPos));
  const text = formatGtid(merged);
  return text === formatGtid(slave) ? null : text;
}

export class MariaDbDriver implements NodeDriver {
  readonly flavor = 'mariadb' as const;
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
        return parseMariaDbState(row, replicas[0] ?? null, this.#heartbeatIntervalMs);
      },
    );
  }

  async #fetchProbe(): Promise<[readonly Row[], readonly Row[]]> {
    const session = this.#sessions.probe;
    let probe: readonly Row[];
    try {
      probe = await session.query(mariaDbProbeSql(this.#heartbeat.sql()));
    } catch (err) {
      if (!this.#heartbeat.missing(err)) throw err;
      probe = await session.query(mariaDbProbeSql(this.#heartbeat.sql()));
    }
    if (probe[0] !== undefined) this.#heartbeat.learn(probe[0]);
    const replicas = await session.query(SHOW_SLAVE_STATUS);
    return [probe, replicas];
  }

  setReadOnly(on: boolean, timeoutMs?: number): Promise<void> {
    return this.#admin([`SET GLOBAL read_only = ${on ? 'ON' : 'OFF'}`], timeoutMs);
  }

  readSemiSyncWait(): Promise<SemiSyncWait> {
    return this.#ops.run(async () => {
      const row = await this.#sql.one(
        this.#sessions.admin,
        "SELECT @@GLOBAL.rpl_semi_sync_master_timeout AS timeout_ms, " +
          "MAX(IF(VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_WAIT_SESSIONS', VARIABLE_VALUE, NULL)) AS waiting, " +
          "MAX(IF(VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS', VARIABLE_VALUE, NULL)) AS clients " +
          "FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('RPL_SEMI_SYNC_MASTER_WAIT_SESSIONS', 'RPL_SEMI_SYNC_MASTER_CLIENTS')",
      );
      return { waiting: readNullableInt(row, 'waiting') ?? 0, clients: readNullableInt(row, 'clients') ?? 0, timeoutMs: readNullableInt(row, 'timeout_ms') };
    });
  }

  readFenceState(): Promise<FenceState> {
    return this.#ops.run(async () => {
      const row = await this.#sql.one(this.#sessions.admin, 'SELECT @@GLOBAL.read_only AS read_only, @@GLOBAL.gtid_current_pos AS gtid_current_pos');
      return { readOnly: readBool(row, 'read_only'), gtidExecuted: formatGtid(parseGtid('mariadb', readText(row, 'gtid_current_pos'))) };
    });
  }

  killClientSessions(): Promise<number> {
    return this.#ops.run(() => killClientSessions(this.#sessions.admin, this.#sql, () => ownThreadIds(this.#sessions)));
  }

  stopReplicaIo(timeoutMs?: number): Promise<void> {
    return this.#admin(['STOP SLAVE IO_THREAD'], timeoutMs);
  }

  stopReplication(): Promise<void> {
    return this.#admin(['STOP SLAVE']);
  }

  startReplication(): Promise<void> {
    return this.#admin(['START SLAVE']);
  }

  resetReplication(): Promise<void> {
    return this.#admin(['STOP SLAVE', 'RESET SLAVE ALL']);
  }

  replicateFrom(source: ReplicationSource): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      await this.#sql.run(admin, 'STOP SLAVE');
      const pos = await this.#sql.one(admin, 'SELECT @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos, @@GLOBAL.gtid_slave_pos AS gtid_slave_pos');
      const resume = resumePosition(readText(pos, 'gtid_binlog_pos'), readText(pos, 'gtid_slave_pos'));
      if (resume !== null) await this.#sql.run(admin, 'SET GLOBAL gtid_slave_pos = ?', [resume]);
      await this.#sql.run(admin, MARIADB_CHANGE_MASTER, [source.host, source.port, source.user, source.password]);
      await this.#sql.run(admin, 'START SLAVE');
    });
  }

  async waitForGtid(gtid: string, timeoutMs: number): Promise<boolean> {
    const target = parseGtid('mariadb', gtid);
    const wait = this.#sessions.wait;
    const current = await this.#sql.one(wait, 'SELECT @@GLOBAL.gtid_current_pos AS gtid_current_pos');
    // MASTER_GTID_WAIT only ever looks at gtid_slave_pos: a node that wrote `gtid` itself would wait forever.
    if (gtidContains(parseGtid('mariadb', readText(current, 'gtid_current_pos')), target)) return true;
    if (timeoutMs <= 0) return false;
    return this.#masterGtidWait(formatGtid(target), timeoutMs);
  }

  async waitForRelayApplied(timeoutMs: number): Promise<boolean> {
    const wait = this.#sessions.wait;
    const replica = (await this.#sql.run(wait, SHOW_SLAVE_STATUS))[0];
    const ioPos = replica === undefined ? '' : readText(replica, 'Gtid_IO_Pos');
    if (ioPos === '') return true;
    return this.#masterGtidWait(ioPos, Math.max(0, timeoutMs));
  }

  async #masterGtidWait(position: string, timeoutMs: number): Promise<boolean> {
    const row = await this.#sql.one(this.#sessions.wait, 'SELECT MASTER_GTID_WAIT(?, ?) AS result', [position, timeoutMs / 1000], {
      timeoutMs: timeoutMs + this.#queryTimeoutMs,
    });
    // 0: reached; -1: timed out.
    return readNullableInt(row, 'result') === 0;
  }

  setSemiSyncSource(on: boolean, timeoutMs: number): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      if (on) await this.#sql.run(admin, 'SET GLOBAL rpl_semi_sync_master_timeout = ?', [Math.round(timeoutMs)]);
      // Strict semi-sync also waits with no replica connected; it is the default, set so that nobody's change survives.
      if (on) await this.#sql.run(admin, 'SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON');
      await this.#sql.run(admin, `SET GLOBAL rpl_semi_sync_master_enabled = ${on ? 'ON' : 'OFF'}`);
    });
  }

  setSemiSyncReplica(on: boolean): Promise<void> {
    return this.#ops.run(async () => {
      const admin = this.#sessions.admin;
      await this.#sql.run(admin, `SET GLOBAL rpl_semi_sync_slave_enabled = ${on ? 'ON' : 'OFF'}`);
      // The IO thread reads the setting when it connects. Restart it only if it runs: a revoked
      // (stopped) IO thread must stay stopped.
      const replica = (await this.#sql.run(admin, SHOW_SLAVE_STATUS))[0];
      if (replica !== undefined && readText(replica, 'Slave_IO_Running') !== 'No') {
        await this.#sql.run(admin, 'STOP SLAVE IO_THREAD');
        await this.#sql.run(admin, 'START SLAVE IO_THREAD');
      }
    });
  }

  writeHeartbeat(epoch: number, node: string): Promise<void> {
    return this.#ops.run(async () => {
      await this.#sql.run(this.#sessions.admin, MARIADB_WRITE_HEARTBEAT, [epoch, node]);
      this.#heartbeat.written();
    });
  }

  readHeartbeat(): Promise<Heartbeat | null> {
    return readHeartbeatRow(this.#sessions.probe, this.#sql);
  }

  readReseedMark(): Promise<ReseedMark | null> {
    return readMarkOn(this.#sessions.admin, this.#sql);
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
}
