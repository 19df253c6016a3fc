/**
 * A MariaDB server played in memory from recorded behaviour, so that thousands of real agents fit on
 * one machine (bench/scale.ts). Its sessions answer the statements of the real MariaDbDriver with
 * rows shaped exactly as recorded from a live 10.11 (node/fixtures/mariadb-10.11.json), their values
 * taken from the server's state: read_only, its replication source, its GTID position, semi-sync and
 * the heartbeat row. A replica follows its source's position while both its threads run. Servers
 * reach each other by host:port through the `SimulatedNetwork` they were made in.
 *
 * It plays a healthy server only (no crashes, no lag): the scale benchmark's faults happen on real
 * servers. A statement it does not know fails with error 1064, so a driver change shows up at once.
 */
import type { NodeDriver } from '../node/driver.js';
import { driverOnSessions } from '../node/index.js';
import { SHOW_SLAVE_STATUS } from '../node/mariadb.js';
import { loadFixture } from '../node/recorded-fixtures.js';
import type { Row, SqlParam, SqlSession } from '../node/session.js';

const fixture = loadFixture('mariadb-10.11.json');

function recordedRow(scenario: string, match: string): Row {
  const row = fixture.scenarios[scenario]?.responses.find((r) => r.match.startsWith(match))?.rows?.[0];
  if (row === undefined) throw new Error(`mariadb-10.11.json has no ${scenario} row for ${match}`);
  return row;
}

const PROBE_ROW = recordedRow('primary', 'SELECT @@GLOBAL.version');
const REPLICA_ROW = recordedRow('replica', SHOW_SLAVE_STATUS);

/** Thread ids of a simulated server's three driver sessions. */
const THREAD_IDS = { probe: 11, admin: 12, wait: 13 } as const;

export class SimulatedNetwork {
  readonly #servers = new Map<string, SimulatedMariaDb>();

  /** A new server, read-only with an empty binlog (as `mariadb-install-db` leaves it), reachable at host:port. */
  server(host: string, port: number, serverId: number): SimulatedMariaDb {
    const s = new SimulatedMariaDb(this, host, port, serverId);
    this.#servers.set(`${host}:${port}`, s);
    return s;
  }

  at(host: string, port: number): SimulatedMariaDb | null {
    return this.#servers.get(`${host}:${port}`) ?? null;
  }

  /** The servers whose IO thread receives from `source`. */
  replicasOf(source: SimulatedMariaDb): SimulatedMariaDb[] {
    return [...this.#servers.values()].filter((s) => s.ioRunning && s.source?.host === source.host && s.source.port === source.port);
  }
}

interface Transaction {
  readonly serverId: number;
  readonly seq: number;
}

function gtidOf(t: Transaction | null): string {
  return t === null ? '' : `0-${t.serverId}-${t.seq}`;
}

interface Source {
  host: string;
  port: number;
  user: string;
}

export class SimulatedMariaDb {
  readOnly = true;
  source: Source | null = null;
  ioRunning = false;
  sqlRunning = false;
  executed: Transaction | null = null;
  /** What it executed from its sources, in MariaDB's `domain-server-seq` list form. */
  slavePos = '';
  semiSyncMaster = false;
  semiSyncSlave = false;
  masterTimeoutMs = 10_000;
  heartbeat: { epoch: number; node: string; at: number } | null = null;
  /** Statements it did not know: a driver change the simulation has not caught up with. */
  unknownStatements = 0;

  constructor(
    private readonly network: SimulatedNetwork,
    readonly host: string,
    readonly port: number,
    readonly serverId: number,
  ) {}

  /** A driver over this server's sessions, as `connectNode` builds one over a real server's. */
  driver(queryTimeoutMs = 1000, heartbeatIntervalMs = 1000): NodeDriver {
    const session = (threadId: number): SqlSession => ({ threadId, query: async (sql, params = []) => this.query(sql, params), close: async () => undefined });
    const sessions = { probe: session(THREAD_IDS.probe), admin: session(THREAD_IDS.admin), wait: session(THREAD_IDS.wait) };
    return driverOnSessions(sessions, 'mariadb', { where: `${this.host}:${this.port}`, queryTimeoutMs, heartbeatIntervalMs });
  }

  /** The source it replicates from, while its IO thread runs. */
  private upstream(): SimulatedMariaDb | null {
    return this.source && this.ioRunning ? this.network.at(this.source.host, this.source.port) : null;
  }

  /** The last transaction executed (one domain, 0, with log_slave_updates: binlog and current position agree). */
  private last(): Transaction | null {
    const up = this.upstream();
    if (up && this.sqlRunning && up !== this) {
      const theirs = up.last();
      if (theirs && theirs.seq > (this.executed?.seq ?? 0)) {
        this.executed = theirs;
        this.slavePos = gtidOf(theirs);
      }
    }
    return this.executed;
  }

  /** Everything executed, as gtid_current_pos shows it. */
  currentPos(): string {
    return gtidOf(this.last());
  }

  private heartbeatSeen(): { epoch: number; node: string; at: number } | null {
    const up = this.upstream();
    return up && this.sqlRunning && up !== this ? up.heartbeatSeen() : this.heartbeat;
  }

  query(sql: string, params: readonly SqlParam[]): readonly Row[] {
    // The probe's two statements come four times a second: answered before any other work.
    if (sql.startsWith('SELECT @@GLOBAL.version AS version')) return [this.probeRow()];
    if (sql === SHOW_SLAVE_STATUS) return this.source ? [this.replicaRow()] : [];
    const flat = sql.replace(/\s+/g, ' ').trim();
    const set = /^SET GLOBAL (\w+) = (ON|OFF|\?)$/.exec(flat);
    if (set) return this.setGlobal(set[1]!, set[2] === '?' ? params[0] ?? null : set[2] === 'ON');
    switch (flat) {
      case 'STOP SLAVE IO_THREAD':
        this.ioRunning = false;
        return [];
      case 'START SLAVE IO_THREAD':
        this.ioRunning = this.source !== null;
        return [];
      case 'STOP SLAVE':
        this.ioRunning = this.sqlRunning = false;
        return [];
      case 'START SLAVE':
        this.ioRunning = this.sqlRunning = this.source !== null;
        return [];
      case 'RESET SLAVE ALL':
        this.source = null;
        return [];
      case 'SELECT @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos, @@GLOBAL.gtid_slave_pos AS gtid_slave_pos':
        return [{ gtid_binlog_pos: this.currentPos(), gtid_slave_pos: this.slavePos }];
      case 'SELECT @@GLOBAL.read_only AS read_only, @@GLOBAL.gtid_current_pos AS gtid_current_pos':
        return [{ read_only: this.readOnly ? 1 : 0, gtid_current_pos: this.currentPos() }];
      case 'SELECT @@GLOBAL.gtid_current_pos AS gtid_current_pos':
        return [{ gtid_current_pos: this.currentPos() }];
    }
    if (flat.startsWith('CHANGE MASTER TO')) {
      this.source = { host: String(params[0]), port: Number(params[1]), user: String(params[2]) };
      return [];
    }
    if (flat.startsWith('SELECT MASTER_GTID_WAIT(')) return [{ result: 0 }];
    if (flat.startsWith('SELECT ID AS id, USER AS user, COMMAND AS command FROM information_schema.PROCESSLIST')) return [];
    // No reseed ever marks a simulated server (node/reseed-mark.ts).
    if (flat.startsWith('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?')) return [];
    if (flat.startsWith('SELECT @@GLOBAL.rpl_semi_sync_master_timeout AS timeout_ms')) {
      return [{ timeout_ms: this.masterTimeoutMs, waiting: '0', clients: String(this.semiSyncClients()) }];
    }
    if (flat.startsWith('IF @@GLOBAL.read_only = 0 THEN')) {
      if (!this.readOnly) {
        this.executed = { serverId: this.serverId, seq: (this.last()?.seq ?? 0) + 1 };
        this.heartbeat = { epoch: Number(params[0]), node: String(params[1]), at: Date.now() };
      }
      return [];
    }
    if (flat.startsWith('SELECT epoch, node, TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) AS age_us FROM primacy.heartbeat')) {
      const hb = this.heartbeatSeen();
      return hb ? [{ epoch: hb.epoch, node: hb.node, age_us: (Date.now() - hb.at) * 1000 }] : [];
    }
    this.unknownStatements += 1;
    throw Object.assign(new Error(`simulated MariaDB does not know: ${flat.slice(0, 120)}`), { errno: 1064, code: 'ER_PARSE_ERROR', sqlMessage: 'unknown statement' });
  }

  private setGlobal(name: string, value: SqlParam): readonly Row[] {
    if (name === 'read_only') this.readOnly = value === true;
    else if (name === 'rpl_semi_sync_master_enabled') this.semiSyncMaster = value === true;
    else if (name === 'rpl_semi_sync_slave_enabled') this.semiSyncSlave = value === true;
    else if (name === 'rpl_semi_sync_master_timeout') this.masterTimeoutMs = Number(value);
    else if (name === 'gtid_slave_pos') this.slavePos = String(value);
    else if (name !== 'rpl_semi_sync_master_wait_no_slave') throw Object.assign(new Error(`simulated MariaDB has no variable ${name}`), { errno: 1193, code: 'ER_UNKNOWN_SYSTEM_VARIABLE' });
    return [];
  }

  /** Semi-sync replicas connected to this server. */
  private semiSyncClients(): number {
    return this.semiSyncMaster ? this.replicas().filter((r) => r.semiSyncSlave).length : 0;
  }

  private replicas(): SimulatedMariaDb[] {
    return this.network.replicasOf(this);
  }

  private probeRow(): Row {
    const pos = this.currentPos();
    const hb = this.heartbeatSeen();
    const clients = this.semiSyncClients();
    const replicaActive = this.semiSyncSlave && this.upstream()?.semiSyncMaster === true;
    return {
      ...PROBE_ROW,
      server_id: this.serverId,
      read_only: this.readOnly ? 1 : 0,
      gtid_binlog_pos: pos,
      gtid_binlog_state: pos,
      gtid_slave_pos: this.slavePos,
      gtid_current_pos: pos,
      semi_sync_master_enabled: this.semiSyncMaster ? 1 : 0,
      semi_sync_slave_enabled: this.semiSyncSlave ? 1 : 0,
      semi_sync_master_timeout: this.masterTimeoutMs,
      semi_sync_master_wait_no_slave: 1,
      threads_connected: String(3 + this.replicas().length),
      semi_sync_master_status: this.semiSyncMaster && clients > 0 ? 'ON' : 'OFF',
      semi_sync_master_clients: String(clients),
      semi_sync_slave_status: replicaActive ? 'ON' : 'OFF',
      heartbeat_epoch: hb?.epoch ?? null,
      heartbeat_age_us: hb ? (Date.now() - hb.at) * 1000 : null,
    };
  }

  private replicaRow(): Row {
    const s = this.source!;
    const reachable = this.network.at(s.host, s.port) !== null;
    const io = !this.ioRunning ? 'No' : reachable ? 'Yes' : 'Connecting';
    const pos = this.currentPos();
    return {
      ...REPLICA_ROW,
      Slave_IO_State: io === 'Yes' ? 'Waiting for master to send event' : io === 'No' ? '' : 'Connecting to master',
      Master_Host: s.host,
      Master_Port: s.port,
      Master_User: s.user,
      Slave_IO_Running: io,
      Slave_SQL_Running: this.sqlRunning ? 'Yes' : 'No',
      Seconds_Behind_Master: this.sqlRunning ? 0 : null,
      Gtid_IO_Pos: pos,
      Using_Gtid: 'Slave_Pos',
    };
  }
}
