/**
 * `connectNode`: the one way the agent gets a NodeDriver for its server. With `flavor: 'auto'` the
 * flavor is read from `SELECT VERSION()` on first contact; until the server has answered once, probes
 * report it down and other operations first try that contact.
 */
import { ErrorCodes, PrimacyError } from '@primacy/common';
import type { Endpoint, FenceState, Flavor, Heartbeat, NodeDriver, ReseedMark, SemiSyncWait, Observation, ReplicationSource } from './driver.js';
import { MariaDbDriver } from './mariadb.js';
import { MySqlDriver } from './mysql.js';
import { failedObservation } from './probe.js';
import { DEFAULT_SESSION_OPTIONS, describeEndpoint, MysqlSession } from './session.js';
import { closeSessions, StatementRunner, type DriverOptions, type DriverSessions } from './statement.js';
import { readText, RowShapeError } from './values.js';

export type { Endpoint, FenceState, Flavor, Heartbeat, SemiSyncWait, NodeDriver, Observation, ReplicationSource } from './driver.js';
export { classifyError } from './classify.js';
export type { Row, SqlParam, SqlSession } from './session.js';
export { MysqlSession } from './session.js';
export type { DriverSessions } from './statement.js';

export interface ConnectOptions {
  readonly flavor: Flavor | 'auto';
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /** How often the primary writes its heartbeat: a caught-up replica whose heartbeat is fresh has lag 0. */
  readonly heartbeatIntervalMs?: number | undefined;
  /** The server closed or reset a connection of the driver's (see SessionOptions.onDrop). */
  readonly onConnectionLost?: (() => void) | undefined;
}

export const DEFAULT_CONNECT_OPTIONS: ConnectOptions = Object.freeze({ flavor: 'auto', ...DEFAULT_SESSION_OPTIONS });

export function connectNode(endpoint: Endpoint, options: Partial<ConnectOptions> = {}): NodeDriver {
  const o: ConnectOptions = { ...DEFAULT_CONNECT_OPTIONS, ...options };
  const session = (): MysqlSession => new MysqlSession(endpoint, { connectTimeoutMs: o.connectTimeoutMs, queryTimeoutMs: o.queryTimeoutMs, onDrop: o.onConnectionLost });
  const sessions: DriverSessions = { probe: session(), admin: session(), wait: session() };
  return driverOnSessions(sessions, o.flavor, { where: describeEndpoint(endpoint), queryTimeoutMs: o.queryTimeoutMs, heartbeatIntervalMs: o.heartbeatIntervalMs });
}

/** A driver over given sessions; tests pass recorded ones. */
export function driverOnSessions(sessions: DriverSessions, flavor: Flavor | 'auto', options: DriverOptions): NodeDriver {
  if (flavor === 'mariadb') return new MariaDbDriver(sessions, options);
  if (flavor === 'mysql') return new MySqlDriver(sessions, options);
  return new FlavorDetectingDriver(sessions, options);
}

export const SELECT_VERSION = 'SELECT VERSION() AS version';

export function flavorOfVersion(version: string): Flavor {
  return /mariadb/i.test(version) ? 'mariadb' : 'mysql';
}

class FlavorDetectingDriver implements NodeDriver {
  readonly #sessions: DriverSessions;
  readonly #options: DriverOptions;
  readonly #sql: StatementRunner;
  #driver: NodeDriver | null = null;
  #detecting: Promise<NodeDriver> | null = null;

  constructor(sessions: DriverSessions, options: DriverOptions) {
    this.#sessions = sessions;
    this.#options = options;
    this.#sql = new StatementRunner(options.where);
  }

  /** Throws until the server has answered once: before that nobody knows what it runs. */
  get flavor(): Flavor {
    if (this.#driver === null) {
      throw new PrimacyError(ErrorCodes.NODE_UNREACHABLE, `the flavor of ${this.#options.where} is not known yet: the server has not answered`);
    }
    return this.#driver.flavor;
  }

  async observe(): Promise<Observation> {
    const started = performance.now();
    let driver: NodeDriver;
    try {
      driver = await this.#resolve();
    } catch (err) {
      return failedObservation(err, started);
    }
    return driver.observe();
  }

  setReadOnly(on: boolean, timeoutMs?: number): Promise<void> {
    return this.#forOperation().then((d) => d.setReadOnly(on, timeoutMs));
  }
  readFenceState(): Promise<FenceState> {
    return this.#forOperation().then((d) => d.readFenceState());
  }
  readSemiSyncWait(): Promise<SemiSyncWait> {
    return this.#forOperation().then((d) => d.readSemiSyncWait());
  }
  killClientSessions(): Promise<number> {
    return this.#forOperation().then((d) => d.killClientSessions());
  }
  stopReplicaIo(timeoutMs?: number): Promise<void> {
    return this.#forOperation().then((d) => d.stopReplicaIo(timeoutMs));
  }
  stopReplication(): Promise<void> {
    return this.#forOperation().then((d) => d.stopReplication());
  }
  startReplication(): Promise<void> {
    return this.#forOperation().then((d) => d.startReplication());
  }
  resetReplication(): Promise<void> {
    return this.#forOperation().then((d) => d.resetReplication());
  }
  replicateFrom(source: ReplicationSource): Promise<void> {
    return this.#forOperation().then((d) => d.replicateFrom(source));
  }
  waitForGtid(gtid: string, timeoutMs: number): Promise<boolean> {
    return this.#forOperation().then((d) => d.waitForGtid(gtid, timeoutMs));
  }
  waitForRelayApplied(timeoutMs: number): Promise<boolean> {
    return this.#forOperation().then((d) => d.waitForRelayApplied(timeoutMs));
  }
  setSemiSyncSource(on: boolean, timeoutMs: number): Promise<void> {
    return this.#forOperation().then((d) => d.setSemiSyncSource(on, timeoutMs));
  }
  setSemiSyncReplica(on: boolean): Promise<void> {
    return this.#forOperation().then((d) => d.setSemiSyncReplica(on));
  }
  writeHeartbeat(epoch: number, node: string): Promise<void> {
    return this.#forOperation().then((d) => d.writeHeartbeat(epoch, node));
  }
  readHeartbeat(): Promise<Heartbeat | null> {
    return this.#forOperation().then((d) => d.readHeartbeat());
  }
  readReseedMark(): Promise<ReseedMark | null> {
    return this.#forOperation().then((d) => d.readReseedMark());
  }

  close(): Promise<void> {
    return this.#driver !== null ? this.#driver.close() : closeSessions(this.#sessions);
  }

  #resolve(): Promise<NodeDriver> {
    if (this.#driver !== null) return Promise.resolve(this.#driver);
    this.#detecting ??= this.#detect().finally(() => {
      this.#detecting = null;
    });
    return this.#detecting;
  }

  /** Operations report a failed first contact like any failed statement. */
  #forOperation(): Promise<NodeDriver> {
    return this.#resolve().catch((err: unknown) => {
      throw this.#sql.failure(SELECT_VERSION, err);
    });
  }

  async #detect(): Promise<NodeDriver> {
    const [row] = await this.#sessions.probe.query(SELECT_VERSION);
    if (row === undefined) throw new RowShapeError('version', undefined, 'one row');
    this.#driver = driverOnSessions(this.#sessions, flavorOfVersion(readText(row, 'version')), this.#options);
    return this.#driver;
  }
}
