import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';
import { freePort, freePorts, isAddressInUse, LOOPBACK } from './ports.js';
import {
  findExecutable,
  harnessDir,
  harnessRoot,
  logTail,
  onCleanup,
  removeDir,
  SBIN_DIRS,
  spawnManaged,
  type ManagedProcess,
} from './processes.js';
import { errorMessage, WaitAborted, waitFor, withTimeout } from './wait.js';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** The agent's admin user: ALL PRIVILEGES WITH GRANT OPTION, so SUPER, so `read_only` does not bind it. */
export const ADMIN: Credentials = { user: 'primacy', password: 'primacy-pw' };
/** The replication user: REPLICATION SLAVE, REPLICATION CLIENT. */
export const REPL: Credentials = { user: 'repl', password: 'repl-pw' };
/** An application user with table grants on `app`.* only: `read_only` binds it (error 1290). */
export const APP: Credentials = { user: 'app', password: 'app-pw' };

/** Error 1290 (ER_OPTION_PREVENTS_STATEMENT): a write refused because the server runs with read_only. */
export const ER_READ_ONLY = 1290;

export interface MariaDbServer {
  /** `db1`, `db2`, … */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly serverId: number;
  readonly dataDir: string;
  readonly socket: string;
  readonly logFile: string;
  /** Pid of the latest start; stays set after the process exits. */
  readonly pid: number;
  /** The pid file mariadbd writes (--pid-file). */
  readonly pidFile: string;
  isRunning(): boolean;
  /** Clean shutdown (SIGTERM), waits for the exit. */
  stop(): Promise<void>;
  /** Starts again with the same data dir and port; waits until it accepts connections. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILL (kill -9), waits for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open and every query hangs. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** A new connection (default: ADMIN), destroyed on cleanup. */
  connect(creds?: Credentials, options?: Partial<ConnectionOptions>): Promise<Connection>;
  /** One statement on a short-lived connection (default: ADMIN); returns the rows, or [] for statements without rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], options?: QueryOptions): Promise<T[]>;
}

export interface QueryOptions {
  creds?: Credentials;
  timeoutMs?: number;
}

export interface MariaDbCluster {
  readonly servers: MariaDbServer[];
  /** Index of the server last made primary by `wireReplication`, or null. */
  readonly primaryIndex: number | null;
  /** Waits until every running replica has applied everything in its source's binlog. */
  waitForReplication(timeoutMs?: number): Promise<void>;
  /** Destroys the connections, kills the servers and removes their data. */
  stop(): Promise<void>;
}

export interface MariaDbOptions {
  count: number;
  /** The server to make primary and replicate from (default 0); null leaves every server read-only and unwired. */
  primary?: number | null;
  /** Enables master and slave semi-sync on every server, timeout 10 s, wait point AFTER_SYNC. */
  semiSync?: boolean;
  /** Default 100. MariaDB lets one more connection in for a user with SUPER (or CONNECTION ADMIN). */
  maxConnections?: number;
  /** Extra server options, e.g. `{ slave_net_timeout: 4 }`; given as `--key=value` after the harness's own. */
  serverOptions?: Record<string, string | number | boolean>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 60_000;
const ADMIN_QUERY_TIMEOUT_MS = 10_000;
const INNODB_SIZING = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=8M'];

function runAsRootArgs(): string[] {
  // mariadbd refuses to run as root unless told so explicitly.
  return process.getuid?.() === 0 ? ['--user=root'] : [];
}

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function initSql(): string {
  const user = (c: Credentials) => `${sqlString(c.user)}@'${LOOPBACK}'`;
  return [
    // Bootstrap runs with grants disabled; CREATE USER needs them loaded.
    'FLUSH PRIVILEGES;',
    // A proxy grant for root@<hostname> only produces a warning under skip_name_resolve.
    "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
    'CREATE DATABASE app;',
    'CREATE DATABASE primacy;',
    `CREATE USER ${user(ADMIN)} IDENTIFIED BY ${sqlString(ADMIN.password)};`,
    `GRANT ALL PRIVILEGES ON *.* TO ${user(ADMIN)} WITH GRANT OPTION;`,
    `CREATE USER ${user(REPL)} IDENTIFIED BY ${sqlString(REPL.password)};`,
    `GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ${user(REPL)};`,
    `CREATE USER ${user(APP)} IDENTIFIED BY ${sqlString(APP.password)};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON app.* TO ${user(APP)};`,
    'FLUSH PRIVILEGES;',
    '',
  ].join('\n');
}

let template: { root: string; dataDir: Promise<string> } | undefined;

/** One `mariadb-install-db` per process (per temp root); every server starts from a copy. */
function templateDataDir(): Promise<string> {
  const root = harnessRoot();
  if (template?.root === root) return template.dataDir;
  const dataDir = createTemplate(root);
  template = { root, dataDir };
  dataDir.catch(() => {
    if (template?.dataDir === dataDir) template = undefined;
  });
  return dataDir;
}

async function createTemplate(root: string): Promise<string> {
  const dir = join(root, 'mariadb-template');
  await mkdir(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const initFile = join(dir, 'init.sql');
  const logFile = join(dir, 'install-db.log');
  await writeFile(initFile, initSql());
  const proc = await spawnManaged({
    name: 'mariadb-install-db',
    command: findExecutable('mariadb-install-db', SBIN_DIRS),
    args: [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=socket',
      '--skip-test-db',
      '--skip-name-resolve',
      `--extra-file=${initFile}`,
      ...runAsRootArgs(),
      ...INNODB_SIZING,
    ],
    logFile,
    cwd: dir,
  });
  const status = await proc.waitExit(60_000).catch(async (error: unknown) => {
    await proc.kill();
    throw error;
  });
  if (status.code !== 0) {
    throw new Error(
      `mariadb-install-db failed (${status.code ?? status.signal}); last lines of ${logFile}:\n${logTail(logFile)}`,
    );
  }
  return dataDir;
}

class ServerStartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

interface ServerSettings {
  semiSync: boolean;
  maxConnections: number;
  serverOptions: Record<string, string | number | boolean>;
}

class Server implements MariaDbServer {
  readonly host = LOOPBACK;
  readonly dataDir: string;
  readonly socket: string;
  readonly logFile: string;
  readonly pidFile: string;
  private process: ManagedProcess | undefined;
  private readonly connections = new Set<Connection>();

  constructor(
    readonly name: string,
    readonly serverId: number,
    private currentPort: number,
    readonly dir: string,
    private readonly settings: ServerSettings,
  ) {
    this.dataDir = join(dir, 'data');
    this.socket = join(dir, 'mariadbd.sock');
    this.pidFile = join(dir, 'mariadbd.pid');
    this.logFile = join(dir, 'mariadbd.log');
  }

  get port(): number {
    return this.currentPort;
  }

  get pid(): number {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    return this.process.pid;
  }

  private args(): string[] {
    const onOff = (on: boolean) => (on ? 'ON' : 'OFF');
    const extra = Object.entries(this.settings.serverOptions).map(
      ([key, value]) => `--${key}=${typeof value === 'boolean' ? onOff(value) : String(value)}`,
    );
    return [
      '--no-defaults',
      ...runAsRootArgs(),
      `--datadir=${this.dataDir}`,
      `--tmpdir=${this.dir}`,
      `--socket=${this.socket}`,
      `--pid-file=${this.pidFile}`,
      `--port=${this.port}`,
      `--bind-address=${LOOPBACK}`,
      `--server-id=${this.serverId}`,
      `--report-host=${LOOPBACK}`,
      `--report-port=${this.port}`,
      '--log-bin=mariadb-bin',
      '--relay-log=relay-bin',
      '--log-slave-updates=ON',
      '--binlog-format=ROW',
      '--gtid-strict-mode=ON',
      '--gtid-domain-id=0',
      '--read-only=ON',
      '--skip-name-resolve',
      `--max-connections=${this.settings.maxConnections}`,
      '--innodb-flush-log-at-trx-commit=1',
      '--sync-binlog=1',
      ...INNODB_SIZING,
      '--innodb-buffer-pool-dump-at-shutdown=OFF',
      '--innodb-buffer-pool-load-at-startup=OFF',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_general_ci',
      `--rpl-semi-sync-master-enabled=${onOff(this.settings.semiSync)}`,
      `--rpl-semi-sync-slave-enabled=${onOff(this.settings.semiSync)}`,
      '--rpl-semi-sync-master-timeout=10000',
      // 10.11's default is AFTER_COMMIT (despite the docs of later versions); AFTER_SYNC is the lossless one.
      '--rpl-semi-sync-master-wait-point=AFTER_SYNC',
      ...extra,
    ];
  }

  isRunning(): boolean {
    return this.process?.isRunning() ?? false;
  }

  async copyTemplate(templateDir: string): Promise<void> {
    await cp(templateDir, this.dataDir, { recursive: true, preserveTimestamps: true });
  }

  /** First start: on a port taken since we asked the OS, retries with another port. */
  async firstStart(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (error) {
        if (!(error instanceof ServerStartError) || !error.addressInUse || attempt >= 3) throw error;
        this.currentPort = await freePort();
      }
    }
  }

  async start(): Promise<void> {
    if (this.isRunning()) throw new Error(`${this.name} is already running`);
    // A kill -9 leaves the socket file behind.
    await rm(this.socket, { force: true });
    const proc = await spawnManaged({
      name: this.name,
      command: findExecutable('mariadbd', SBIN_DIRS),
      args: this.args(),
      logFile: this.logFile,
      cwd: this.dir,
    });
    this.process = proc;
    try {
      await waitFor(
        `${this.name} on port ${this.port} to accept connections`,
        async () => {
          if (!proc.isRunning()) throw new WaitAborted(`${this.name} exited`);
          await this.query('SELECT 1', [], { timeoutMs: 1_000 });
          return true;
        },
        { timeoutMs: START_TIMEOUT_MS, intervalMs: 50 },
      );
    } catch (error) {
      const log = logTail(this.logFile, 20);
      await proc.kill().catch(() => undefined);
      throw new ServerStartError(
        `${this.name} (port ${this.port}) did not start: ${errorMessage(error)}\n--- last lines of ${this.logFile}:\n${log}`,
        isAddressInUse(log),
      );
    }
  }

  async stop(): Promise<void> {
    await this.process?.terminate(STOP_TIMEOUT_MS);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async kill(): Promise<void> {
    await this.process?.kill();
  }

  pause(): void {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    this.process.pause();
  }

  resume(): void {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    this.process.resume();
  }

  async connect(creds: Credentials = ADMIN, options: Partial<ConnectionOptions> = {}): Promise<Connection> {
    const connection = await createConnection({
      host: this.host,
      port: this.port,
      user: creds.user,
      password: creds.password,
      connectTimeout: 5_000,
      ...options,
    });
    // Without a listener, an idle connection whose server dies throws from an 'error' event and
    // ends the test process; the next query on it reports the failure instead.
    connection.on('error', () => undefined);
    this.connections.add(connection);
    return connection;
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = [], options: QueryOptions = {}): Promise<T[]> {
    const creds = options.creds ?? ADMIN;
    const timeoutMs = options.timeoutMs ?? ADMIN_QUERY_TIMEOUT_MS;
    const connection = await createConnection({
      host: this.host,
      port: this.port,
      user: creds.user,
      password: creds.password,
      connectTimeout: timeoutMs,
    });
    connection.on('error', () => undefined);
    let ok = false;
    try {
      const [rows] = await connection.query({ sql, timeout: timeoutMs }, params);
      ok = true;
      return Array.isArray(rows) ? (rows as T[]) : [];
    } finally {
      if (ok) await connection.end().catch(() => connection.destroy());
      else connection.destroy();
    }
  }

  destroyConnections(): void {
    for (const connection of this.connections) connection.destroy();
    this.connections.clear();
  }
}

class Cluster implements MariaDbCluster {
  primaryIndex: number | null = null;
  private readonly unregister: () => void;
  private stopped: Promise<void> | undefined;

  constructor(
    readonly servers: Server[],
    private readonly dir: string,
  ) {
    this.unregister = onCleanup(() => this.destroyConnections());
  }

  private destroyConnections(): void {
    for (const server of this.servers) server.destroyConnections();
  }

  async waitForReplication(timeoutMs = 10_000): Promise<void> {
    // A paused server would hold each query for its own timeout; this bounds the whole wait.
    await withTimeout(this.replicasCaughtUp(timeoutMs), timeoutMs + 3_000, 'replicas to catch up');
  }

  private async replicasCaughtUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.servers
        .filter((s) => s.isRunning())
        .map(async (replica) => {
          const [status] = await replica.query('SHOW SLAVE STATUS');
          if (status === undefined) return;
          const sourcePort = Number(status['Master_Port']);
          const source = this.servers.find((s) => s.port === sourcePort);
          if (source === undefined) throw new Error(`${replica.name} replicates from port ${sourcePort}, not a server of this cluster`);
          const [binlog] = await source.query<{ pos: string }>('SELECT @@GLOBAL.gtid_binlog_pos AS pos');
          const pos = binlog?.pos ?? '';
          const waitSeconds = Math.max((deadline - Date.now()) / 1000, 0.1);
          const [result] = await replica.query<{ reached: number | null }>(
            'SELECT MASTER_GTID_WAIT(?, ?) AS reached',
            [pos, waitSeconds],
            { timeoutMs: waitSeconds * 1000 + 2_000 },
          );
          if (result?.reached !== 0) {
            const [now] = await replica.query('SHOW SLAVE STATUS');
            throw new Error(
              `${replica.name} did not reach ${source.name}'s gtid_binlog_pos ${pos} within ${timeoutMs} ms: ` +
                `gtid_slave_pos ${String(now?.['Gtid_Slave_Pos'])}, IO ${String(now?.['Slave_IO_Running'])}, ` +
                `SQL ${String(now?.['Slave_SQL_Running'])}, last error ${String(now?.['Last_IO_Error'])} ${String(now?.['Last_SQL_Error'])}`,
            );
          }
        }),
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.unregister();
      this.destroyConnections();
      // The data is thrown away, so there is nothing a clean shutdown would save.
      await Promise.all(this.servers.map((s) => s.kill().catch(() => undefined)));
      await removeDir(this.dir);
    })();
    return this.stopped;
  }
}

async function slaveStatus(server: MariaDbServer): Promise<Record<string, unknown> | undefined> {
  const [status] = await server.query('SHOW SLAVE STATUS');
  return status;
}

/**
 * Makes `primaryIndex` the writable primary and points every other running server at it with GTID
 * (slave_pos), then waits until all replication threads run, and with semi-sync until the primary
 * counts every replica as a semi-sync client.
 */
export async function wireReplication(cluster: MariaDbCluster, primaryIndex: number, timeoutMs = 10_000): Promise<void> {
  const primary = cluster.servers[primaryIndex];
  if (primary === undefined) throw new Error(`no server ${primaryIndex} in a cluster of ${cluster.servers.length}`);
  const replicas = cluster.servers.filter((s) => s !== primary && s.isRunning());

  await primary.query('STOP SLAVE');
  await primary.query('RESET SLAVE ALL');
  await primary.query('SET GLOBAL read_only = OFF');

  await Promise.all(
    replicas.map(async (replica) => {
      await replica.query('SET GLOBAL read_only = ON');
      await replica.query('STOP SLAVE');
      // A former primary has transactions of its own beyond gtid_slave_pos; continue from all it has.
      const [pos] = await replica.query<{ slave: string; current: string }>(
        'SELECT @@GLOBAL.gtid_slave_pos AS slave, @@GLOBAL.gtid_current_pos AS current',
      );
      if (pos !== undefined && pos.slave !== pos.current) {
        await replica.query('SET GLOBAL gtid_slave_pos = ?', [pos.current]);
      }
      await replica.query(
        'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
          'MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1',
        [primary.host, primary.port, REPL.user, REPL.password],
      );
      await replica.query('START SLAVE');
    }),
  );

  await Promise.all(
    replicas.map((replica) =>
      waitFor(
        `${replica.name} replicating from ${primary.name}`,
        async () => {
          const status = await slaveStatus(replica);
          if (status?.['Slave_IO_Running'] === 'Yes' && status['Slave_SQL_Running'] === 'Yes') return true;
          const error = `${String(status?.['Last_IO_Error'] ?? '')} ${String(status?.['Last_SQL_Error'] ?? '')}`.trim();
          throw new Error(`IO ${String(status?.['Slave_IO_Running'])}, SQL ${String(status?.['Slave_SQL_Running'])} ${error}`);
        },
        { timeoutMs },
      ),
    ),
  );

  const [semiSync] = await primary.query<{ enabled: number }>('SELECT @@GLOBAL.rpl_semi_sync_master_enabled AS enabled');
  if (semiSync?.enabled === 1) {
    const semiSyncReplicas = (
      await Promise.all(
        replicas.map(async (r) => (await r.query<{ on: number }>('SELECT @@GLOBAL.rpl_semi_sync_slave_enabled AS `on`'))[0]?.on === 1),
      )
    ).filter(Boolean).length;
    await waitFor(
      `${primary.name} to count ${semiSyncReplicas} semi-sync replicas`,
      async () => {
        const [row] = await primary.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'");
        return Number(row?.Value) >= semiSyncReplicas ? true : undefined;
      },
      { timeoutMs },
    );
  }
  if (cluster instanceof Cluster) cluster.primaryIndex = primaryIndex;
}

/**
 * Starts `count` real mariadbd servers on free loopback ports, each from a copy of one template data
 * dir, all read-only, and unless `primary` is null wires GTID replication from `primary` (default 0).
 */
export async function startMariaDb(options: MariaDbOptions): Promise<MariaDbCluster> {
  if (!Number.isInteger(options.count) || options.count < 1) throw new Error(`bad server count ${options.count}`);
  const primary = options.primary === undefined ? 0 : options.primary;
  if (primary !== null && (primary < 0 || primary >= options.count)) throw new Error(`no server ${primary} to make primary`);
  const settings: ServerSettings = {
    semiSync: options.semiSync ?? false,
    maxConnections: options.maxConnections ?? 100,
    serverOptions: options.serverOptions ?? {},
  };
  const [templateDir, dir, ports] = await Promise.all([
    templateDataDir(),
    harnessDir('mariadb'),
    freePorts(options.count),
  ]);
  const servers = ports.map((port, i) => new Server(`db${i + 1}`, i + 1, port, join(dir, `db${i + 1}`), settings));
  const cluster = new Cluster(servers, dir);
  try {
    await Promise.all(
      servers.map(async (server) => {
        await mkdir(server.dir);
        await server.copyTemplate(templateDir);
        await server.firstStart();
      }),
    );
    if (primary !== null) await wireReplication(cluster, primary);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
