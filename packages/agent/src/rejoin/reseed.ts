/**
 * Reseed: rebuild a diverged node from a healthy replica with `mariadb-dump --single-transaction
 * --gtid --master-data=2` piped into it, then set its GTID position to the dump's. It needs the
 * node's salvage first (the reset binlog is gone afterwards).
 *
 * The import cannot be undone once it has begun, so before it starts the node is marked, in its own
 * `primacy_rejoin.reseed` table and outside the binlog, as needing a reseed. Only a complete import
 * removes the mark; a source that dies mid-copy leaves the node marked, its salvage untouched.
 */
import { ErrorCodes, PrimacyError, type Flavor, type SalvageManifest } from '@primacy/common';
import type { Endpoint } from '../node/driver.js';
import { readText } from '../node/values.js';
import type { ReseedMark } from '../node/driver.js';
import { MARK_DATABASE, MARK_TABLE, readMarkOn } from '../node/reseed-mark.js';
import { reseedByClone, readCloneMark } from './clone.js';
import { readBinlogSettings, withNodeSql, type ConnectNodeSql, type NodeSql } from './session.js';
import { defaultPrograms, describeRun, LineSplitter, runPipe, succeeded, withClientOptions, type ClientPrograms } from './tools.js';

/** The marker's database: never dumped, never dropped by a reseed, absent from healthy nodes. */
export { MARK_DATABASE };

/** Schemas a reseed neither copies nor drops: the server's own, and the mark. */
const SYSTEM_DATABASES = new Set(['mysql', 'information_schema', 'performance_schema', 'sys', MARK_DATABASE]);

export interface ReseedProgress {
  readonly bytes: number;
  readonly tables: number;
  /** The table being copied, `db`.`table`, once known. */
  readonly table: string | null;
  /** MySQL's clone: the stage in progress (FILE COPY, PAGE COPY…) and the bytes it expects in all. */
  readonly stage?: string | null;
  readonly estimate?: number;
}

export interface ReseedOptions {
  readonly node: string;
  readonly endpoint: Endpoint;
  readonly flavor: Flavor;
  /** The healthy replica to copy from. */
  readonly source: { readonly name: string; readonly endpoint: Endpoint };
  /** The node's salvage, taken since its last write. */
  readonly manifest: SalvageManifest;
  readonly programs?: Partial<ClientPrograms>;
  /** Bounds the copy; default one hour. */
  readonly timeoutMs?: number;
  /** Called as the dump streams, at most every `progressEveryMs` (default 500) and once at the end. */
  readonly onProgress?: (p: ReseedProgress) => void;
  readonly progressEveryMs?: number;
  /** How the nodes are reached over SQL; the real connections unless a test runs on recorded output. */
  readonly connect?: ConnectNodeSql;
}

export interface ReseedResult {
  readonly bytes: number;
  readonly tables: number;
  readonly databases: readonly string[];
  /** The GTID position of the copy, now the node's gtid_slave_pos. */
  readonly position: string;
  readonly ms: number;
}

export type { ReseedMark };

const DEFAULT_TIMEOUT_MS = 60 * 60_000;

/** Reads a --gtid --master-data=2 dump as it streams: its tables, and its `-- SET GLOBAL gtid_slave_pos='…'` line. */
export class DumpScanner {
  readonly #lines = new LineSplitter((line) => this.#line(line));
  tables = 0;
  table: string | null = null;
  position: string | null = null;

  push(chunk: Buffer): void {
    this.#lines.push(chunk);
  }

  end(): void {
    this.#lines.end();
  }

  #line(line: string): void {
    if (line.length > 512) return;
    const table = /^CREATE TABLE `((?:[^`]|``)+)`/.exec(line);
    if (table) {
      this.tables += 1;
      this.table = table[1] ?? null;
      return;
    }
    const pos = /^-- SET GLOBAL gtid_slave_pos='([^']*)';/.exec(line);
    if (pos) this.position = pos[1] ?? '';
  }
}

export async function reseed(options: ReseedOptions): Promise<ReseedResult> {
  const started = Date.now();
  const name = options.node;
  if (options.flavor === 'mysql') return reseedByClone(options, (why) => refused(name, why));
  const programs = { ...defaultPrograms(options.flavor), ...options.programs };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const every = options.progressEveryMs ?? 500;

  const databases = await withNodeSql(options.source.endpoint, async (source) => {
    const mark = await readMark(source);
    if (mark !== null) throw refused(name, `the source ${options.source.name} is itself marked as needing a reseed (since ${mark.startedAt.toISOString()})`);
    return userDatabases(source);
  }, undefined, options.connect);

  return withNodeSql(options.endpoint, async (node) => {
    const settings = await readBinlogSettings(node);
    if (!settings.readOnly) throw refused(name, 'it is writable (read_only=OFF); fence it first');
    // A node marked by an earlier reseed had its binlog reset then: its salvage is the one of that time.
    const marked = (await readMark(node)) !== null;
    if (!marked && settings.binlogState !== options.manifest.nodeState) {
      throw refused(name, `its binlog state is ${settings.binlogState}, the salvage's is ${options.manifest.nodeState}; salvage again first`);
    }
    // From here on the node changes: mark it first, outside the binlog.
    await node.sql.run(node.session, 'STOP SLAVE');
    await unlogged(node, `CREATE DATABASE IF NOT EXISTS ${MARK_DATABASE}`);
    await unlogged(node, `CREATE TABLE IF NOT EXISTS ${MARK_TABLE} (id TINYINT PRIMARY KEY, source VARCHAR(255) NOT NULL, started_at DATETIME(3) NOT NULL)`);
    await unlogged(node, `REPLACE INTO ${MARK_TABLE} (id, source, started_at) VALUES (1, ?, NOW(3))`, [options.source.name]);
    // Schemas only the node has came from its extra transactions, which the salvage holds.
    for (const db of await userDatabases(node)) {
      if (!databases.includes(db)) await unlogged(node, `DROP DATABASE \`${db.replace(/`/g, '``')}\``);
    }
    // The dump's GTID position must not conflict with the node's diverged binlog (error 1947).
    await node.sql.run(node.session, 'RESET MASTER');

    const scanner = new DumpScanner();
    let lastReport = 0;
    const report = (bytes: number): void => options.onProgress?.({ bytes, tables: scanner.tables, table: scanner.table });
    const run =
      databases.length === 0
        ? null
        : await withClientOptions(options.source.endpoint, (sourceDefaults) =>
            withClientOptions(options.endpoint, (nodeDefaults) =>
              runPipe(
                {
                  program: programs.dump,
                  args: [sourceDefaults, '--single-transaction', '--gtid', '--master-data=2', '--routines', '--events', '--triggers', '--add-drop-database', '--databases', ...databases],
                },
                { program: programs.client, args: [nodeDefaults, '--init-command=SET SESSION sql_log_bin=0'] },
                timeoutMs,
                (chunk, bytes) => {
                  scanner.push(chunk);
                  const now = Date.now();
                  if (now - lastReport >= every) {
                    lastReport = now;
                    report(bytes);
                  }
                },
              ),
            ),
          );
    scanner.end();
    const bytes = run?.bytes ?? 0;
    report(bytes);
    if (run !== null && (!succeeded(run.producer) || !succeeded(run.consumer))) {
      const failed = succeeded(run.producer) ? run.consumer : run.producer;
      throw new PrimacyError(
        ErrorCodes.REJOIN_ABORTED,
        `reseed of ${name} from ${options.source.name} aborted after ${bytes} bytes and ${scanner.tables} tables: ${describeRun(failed, timeoutMs)}; ` +
          `${name} is marked as needing a reseed (${MARK_TABLE}); its extra transactions are in ${options.manifest.folder}`,
      );
    }
    const position = run === null ? await sourcePosition(options.source.endpoint) : scanner.position;
    if (position === null) {
      throw new PrimacyError(ErrorCodes.REJOIN_ABORTED, `reseed of ${name}: the dump of ${options.source.name} named no GTID position; ${name} is marked as needing a reseed`);
    }
    await node.sql.run(node.session, 'SET GLOBAL gtid_slave_pos = ?', [position]);
    await unlogged(node, `DROP DATABASE ${MARK_DATABASE}`);
    return { bytes, tables: scanner.tables, databases, position, ms: Date.now() - started };
  }, undefined, options.connect);
}

/** The node's reseed mark, or null: a node with one has partial data and must not serve or be promoted. MySQL's is its clone status. */
export async function readReseedMark(endpoint: Endpoint, flavor: Flavor = 'mariadb'): Promise<ReseedMark | null> {
  return flavor === 'mysql' ? readCloneMark(endpoint) : withNodeSql(endpoint, readMark);
}

function readMark(node: NodeSql): Promise<ReseedMark | null> {
  return readMarkOn(node.session, node.sql);
}

async function userDatabases(node: NodeSql): Promise<string[]> {
  const rows = await node.sql.run(node.session, 'SHOW DATABASES');
  return rows.map((r) => readText(r, 'Database')).filter((db) => !SYSTEM_DATABASES.has(db));
}

/**
 * A statement kept out of the binlog (it would be a transaction of the node's own, errant everywhere).
 * The SET goes with each statement: a session that reconnected in between would have lost it.
 */
async function unlogged(node: NodeSql, sql: string, params: readonly (string | number)[] = []): Promise<void> {
  await node.sql.run(node.session, 'SET SESSION sql_log_bin = 0');
  await node.sql.run(node.session, sql, params);
}

/** With nothing to copy, the copy's position is the source's own. */
async function sourcePosition(endpoint: Endpoint): Promise<string> {
  return withNodeSql(endpoint, async (s) => readText(await s.sql.one(s.session, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos'), 'pos'));
}

function refused(node: string, why: string): PrimacyError {
  return new PrimacyError(ErrorCodes.OPERATION_REFUSED, `reseed of ${node} refused: ${why}; the node was not changed`);
}
