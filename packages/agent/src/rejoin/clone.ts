/**
 * Reseed on MySQL: the CLONE plugin (8.0.17+) copies a healthy replica's whole InnoDB data directory
 * into the node, from the node itself (`CLONE INSTANCE FROM …`), then restarts it.
 *
 * What MySQL does, from its manual (Cloning Remote Data, Remote Cloning Operation Failure Handling,
 * Monitoring Cloning Operations, Clone Plugin Limitations):
 * - both servers need the plugin ACTIVE; the node's clone_valid_donor_list must name the donor; the
 *   donor account needs BACKUP_ADMIN, the node's CLONE_ADMIN;
 * - donor and node must be one release series, and before 8.0.37 the same point release;
 * - the node's user data and binary logs go first (stage DROP DATA); a failure after that leaves it
 *   with none, so its salvage must be taken before;
 * - then the server restarts under its supervisor (systemd, mysqld_safe): the statement's connection
 *   drops, and that is how success looks. Without one the statement fails with 3707 and the server
 *   stays down: the data is copied, and a manual start completes it;
 * - clone_status (one row: STATE, ERROR_NO, ERROR_MESSAGE, GTID_EXECUTED…) and clone_progress (a row
 *   per stage: STAGE, STATE, ESTIMATE, DATA) outlive the restart, and are read after it.
 * The node's gtid_executed afterwards is the donor's at the copy (GTID_EXECUTED), so replication
 * auto-positions from there. The mark of an unfinished reseed is clone_status itself (node/reseed-mark.ts).
 */
import { ErrorCodes, PrimacyError, formatMysqlGtidSet, parseMysqlGtidSet } from '@primacy/common';
import { SESSION_TIMEOUT, serverErrno } from '../node/classify.js';
import type { Endpoint, ReseedMark } from '../node/driver.js';
import { readCloneMarkOn } from '../node/reseed-mark.js';
import type { Row } from '../node/session.js';
import { readNullableInt, readText } from '../node/values.js';
import type { ReseedOptions, ReseedProgress, ReseedResult } from './reseed.js';
import { connectNodeSql, readMysqlBinlogSettings, withNodeSql, type ConnectNodeSql, type NodeSql } from './session.js';

/** The first release with the CLONE plugin. */
export const CLONE_MIN_VERSION = '8.0.17';

/** Restarting after the copy: the node answers again within this long, or the reseed is reported as failed. */
const RESTART_WAIT_MS = 5 * 60_000;
const RECONNECT_EVERY_MS = 500;

/** ER_RESTART_SERVER_FAILED: the copy is done, but no supervisor restarts the server. */
const ER_RESTART_SERVER_FAILED = 3707;

interface Version {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

function parseVersion(text: string): Version | null {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m === null ? null : { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

function below(v: Version, min: Version): boolean {
  return v.major !== min.major ? v.major < min.major : v.minor !== min.minor ? v.minor < min.minor : v.patch < min.patch;
}

/** Why the node (`recipient`) cannot clone from `donor` by their versions, or null. Pure. */
export function cloneVersionProblem(recipient: string, donor: string): string | null {
  const r = parseVersion(recipient);
  const d = parseVersion(donor);
  if (r === null) return `its version "${recipient}" is not a MySQL version`;
  if (d === null) return `the donor's version "${donor}" is not a MySQL version`;
  const min = parseVersion(CLONE_MIN_VERSION)!;
  if (below(r, min)) return `it runs MySQL ${recipient}, and the CLONE plugin needs ${CLONE_MIN_VERSION} or later`;
  if (r.major !== d.major || r.minor !== d.minor) return `it runs MySQL ${recipient} and the donor ${donor}: CLONE copies only within one release series`;
  const sameRelease = r.patch === d.patch;
  if (!sameRelease && r.major === 8 && r.minor === 0 && Math.min(r.patch, d.patch) < 37) {
    return `it runs MySQL ${recipient} and the donor ${donor}: before 8.0.37 CLONE needs the same point release on both`;
  }
  return null;
}

export interface CloneStatus {
  readonly state: string;
  readonly errorNo: number;
  readonly errorMessage: string;
  readonly gtidExecuted: string;
  readonly source: string;
}

export function parseCloneStatus(row: Row): CloneStatus {
  return {
    state: readText(row, 'STATE'),
    errorNo: readNullableInt(row, 'ERROR_NO') ?? 0,
    errorMessage: readText(row, 'ERROR_MESSAGE'),
    gtidExecuted: readText(row, 'GTID_EXECUTED'),
    source: readText(row, 'SOURCE'),
  };
}

export interface CloneProgress {
  /** The stage in progress (the last one started), null before the first. */
  readonly stage: string | null;
  readonly bytes: number;
  readonly estimate: number;
}

/** clone_progress's rows (one per stage) summed: the copy so far. Pure. */
export function summarizeCloneProgress(rows: readonly Row[]): CloneProgress {
  let bytes = 0;
  let estimate = 0;
  let stage: string | null = null;
  for (const row of rows) {
    bytes += readNullableInt(row, 'DATA') ?? 0;
    estimate += readNullableInt(row, 'ESTIMATE') ?? 0;
    if (readText(row, 'STATE') !== 'Not Started') stage = readText(row, 'STAGE');
  }
  return { stage, bytes, estimate };
}

const STATUS_SQL = 'SELECT STATE, ERROR_NO, ERROR_MESSAGE, GTID_EXECUTED, SOURCE FROM performance_schema.clone_status';
const PROGRESS_SQL = 'SELECT STAGE, STATE, ESTIMATE, DATA FROM performance_schema.clone_progress';

async function clonePlugin(node: NodeSql): Promise<string> {
  const rows = await node.sql.run(node.session, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'");
  return rows[0] === undefined ? 'not installed' : readText(rows[0], 'PLUGIN_STATUS');
}

function pluginProblem(status: string, who: string): string | null {
  if (status === 'ACTIVE') return null;
  return `the CLONE plugin is ${status === 'not installed' ? 'not installed' : status} on ${who}; install it there (INSTALL PLUGIN clone SONAME 'mysql_clone.so', or plugin-load-add=mysql_clone.so)`;
}

export async function reseedByClone(options: ReseedOptions, refused: (why: string) => PrimacyError): Promise<ReseedResult> {
  const started = Date.now();
  const name = options.node;
  const connect = options.connect ?? connectNodeSql;
  const timeoutMs = options.timeoutMs ?? 60 * 60_000;
  const src = options.source;
  if (!Number.isInteger(src.endpoint.port) || src.endpoint.port <= 0) throw refused(`the donor ${src.name}'s port ${src.endpoint.port} is not a TCP port`);

  const donor = await withNodeSql(
    src.endpoint,
    async (source) => {
      const version = readText(await source.sql.one(source.session, 'SELECT @@GLOBAL.version AS version'), 'version');
      const plugin = pluginProblem(await clonePlugin(source), `the donor ${src.name}`);
      if (plugin !== null) throw refused(plugin);
      const mark = await readCloneMarkOn(source.session, source.sql);
      if (mark !== null) throw refused(`the donor ${src.name} is itself marked as needing a reseed (its own last clone, from ${mark.source}, did not complete)`);
      const databases = (await source.sql.run(source.session, 'SHOW DATABASES')).map((r) => readText(r, 'Database')).filter((db) => !SYSTEM_DATABASES.has(db));
      return { version, databases };
    },
    undefined,
    connect,
  );

  return withNodeSql(
    options.endpoint,
    async (node) => {
      const settings = await readMysqlBinlogSettings(node);
      const versions = cloneVersionProblem(settings.version, donor.version);
      if (versions !== null) throw refused(versions);
      const plugin = pluginProblem(await clonePlugin(node), name);
      if (plugin !== null) throw refused(plugin);
      if (!settings.readOnly) throw refused('it is writable (super_read_only=OFF); fence it first');
      // A node whose last clone failed has the donor's data or none: its salvage is the one of before.
      const marked = (await readCloneMarkOn(node.session, node.sql)) !== null;
      if (!marked && settings.binlogState !== options.manifest.nodeState) {
        throw refused(`its gtid_executed is ${settings.binlogState}, the salvage's is ${options.manifest.nodeState}; salvage again first`);
      }
      // From here on the node changes: CLONE drops its data and binary logs before it copies.
      await node.sql.run(node.session, below(parseVersion(settings.version)!, { major: 8, minor: 0, patch: 22 }) ? 'STOP SLAVE' : 'STOP REPLICA');
      const donorAddress = `${src.endpoint.host}:${src.endpoint.port}`;
      await node.sql.run(node.session, 'SET GLOBAL clone_valid_donor_list = ?', [donorAddress]);

      const watch = watchProgress(connect, options.endpoint, options.progressEveryMs ?? 500, options.onProgress);
      let outcome: { kind: 'restarted' } | { kind: 'no-supervisor' } | { kind: 'failed'; error: unknown } | { kind: 'returned' };
      try {
        // Parameters are bound client-side: the password goes in the statement, never in a log or an error.
        await node.sql.run(node.session, `CLONE INSTANCE FROM ?@?:${src.endpoint.port} IDENTIFIED BY ?`, [src.endpoint.user, src.endpoint.host, src.endpoint.password], { timeoutMs });
        outcome = { kind: 'returned' };
      } catch (err) {
        const errno = serverErrno(rootOf(err));
        if (errno === ER_RESTART_SERVER_FAILED) outcome = { kind: 'no-supervisor' };
        else if (unreachable(err)) outcome = { kind: 'restarted' };
        else outcome = { kind: 'failed', error: err };
      } finally {
        await watch.stop();
      }
      const kept = `its extra transactions are in ${options.manifest.folder}`;
      if (outcome.kind === 'no-supervisor') {
        throw new PrimacyError(
          ErrorCodes.REJOIN_ABORTED,
          `reseed of ${name} from ${src.name}: the clone copied the data, but ${name}'s mysqld runs under no supervisor (systemd, mysqld_safe), so it shut down instead of restarting; start it, and its clone_status then reads Completed; ${kept}`,
        );
      }
      // After a restart the old connection is gone: the outcome is read on a new one, once the server is back.
      const { answered, status, progress, executed } = await readAfterClone(connect, options.endpoint, Math.min(RESTART_WAIT_MS, timeoutMs));
      const last = progress ?? watch.last;
      if (last !== null) options.onProgress?.(toReseedProgress(last));
      if (status === null || status.state !== 'Completed' || status.errorNo !== 0) {
        const statement = outcome.kind === 'failed' ? ` (CLONE INSTANCE: ${describe(outcome.error)})` : '';
        const why = !answered
          ? `${name} did not answer within ${Math.min(RESTART_WAIT_MS, timeoutMs) / 1000} s after the clone${statement}`
          : status === null
            ? `clone_status is empty${statement}`
            : status.errorNo !== 0
              ? `clone_status is ${status.state}: error ${status.errorNo}: ${status.errorMessage}`
              : `clone_status is ${status.state}${statement}`;
        throw new PrimacyError(
          ErrorCodes.REJOIN_ABORTED,
          `reseed of ${name} from ${src.name} failed: ${why}; ${name} is marked as needing a reseed by its clone_status until a clone completes; ${kept}`,
          outcome.kind === 'failed' ? { cause: outcome.error } : undefined,
        );
      }
      return {
        bytes: last?.bytes ?? 0,
        tables: 0,
        databases: donor.databases,
        position: formatMysqlGtidSet(parseMysqlGtidSet(executed)),
        ms: Date.now() - started,
      };
    },
    undefined,
    connect,
  );
}

/** Schemas that are the server's own, not the application's. */
const SYSTEM_DATABASES = new Set(['mysql', 'information_schema', 'performance_schema', 'sys']);

/** A connect or a connection that failed on the way (the server is restarting), not an answer from the server. */
function unreachable(err: unknown): boolean {
  const root = rootOf(err);
  const code = (root as { code?: unknown } | null)?.code;
  return serverErrno(root) === null && typeof code === 'string' && (/^E[A-Z]+$/.test(code) || code.startsWith('PROTOCOL_') || code === SESSION_TIMEOUT);
}

function rootOf(err: unknown): unknown {
  return err instanceof PrimacyError && err.cause !== undefined ? err.cause : err;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toReseedProgress(p: CloneProgress): ReseedProgress {
  return { bytes: p.bytes, tables: 0, table: null, stage: p.stage, estimate: p.estimate };
}

interface ProgressWatch {
  readonly last: CloneProgress | null;
  stop(): Promise<void>;
}

/** Polls clone_progress on a connection of its own while CLONE INSTANCE blocks the node's; a failed poll (the restart) is skipped. */
function watchProgress(connect: ConnectNodeSql, endpoint: Endpoint, everyMs: number, onProgress: ReseedOptions['onProgress']): ProgressWatch {
  const watcher = connect(endpoint, 10_000);
  let last: CloneProgress | null = null;
  let stopped = false;
  let wake: () => void = () => undefined;
  const stopping = new Promise<void>((resolve) => (wake = resolve));
  const loop = (async () => {
    while (!stopped) {
      await Promise.race([stopping, new Promise((resolve) => setTimeout(resolve, everyMs).unref())]);
      if (stopped) break;
      try {
        last = summarizeCloneProgress(await watcher.sql.run(watcher.session, PROGRESS_SQL));
        onProgress?.(toReseedProgress(last));
      } catch {
        // The server restarts at the end of a clone; progress is advisory.
      }
    }
  })();
  return {
    get last() {
      return last;
    },
    async stop() {
      stopped = true;
      wake();
      await loop;
      await watcher.session.close();
    },
  };
}

/** Reconnects until the node answers (it restarts after a clone), then reads clone_status and clone_progress. */
async function readAfterClone(connect: ConnectNodeSql, endpoint: Endpoint, waitMs: number): Promise<{ answered: boolean; status: CloneStatus | null; progress: CloneProgress | null; executed: string }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const node = connect(endpoint, 10_000);
    try {
      const rows = await node.sql.run(node.session, STATUS_SQL);
      const status = rows[0] === undefined ? null : parseCloneStatus(rows[0]);
      // Still finishing (its RECOVERY stage runs as the server starts): ask again.
      if (status?.state !== 'In Progress') {
        const progress = summarizeCloneProgress(await node.sql.run(node.session, PROGRESS_SQL));
        // The donor's gtid_executed came with the copy: where replication auto-positions from.
        const executed =
          status?.state === 'Completed' ? readText(await node.sql.one(node.session, 'SELECT @@GLOBAL.gtid_executed AS gtid_executed'), 'gtid_executed') : '';
        return { answered: true, status, progress, executed };
      }
    } catch (err) {
      if (!unreachable(err)) throw err;
    } finally {
      await node.session.close();
    }
    if (Date.now() >= deadline) return { answered: false, status: null, progress: null, executed: '' };
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_EVERY_MS));
  }
}

/** The MySQL reseed mark of a node, read on its own connection. */
export function readCloneMark(endpoint: Endpoint, connect: ConnectNodeSql = connectNodeSql): Promise<ReseedMark | null> {
  return withNodeSql(endpoint, (n) => readCloneMarkOn(n.session, n.sql), undefined, connect);
}
