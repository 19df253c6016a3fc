/**
 * Salvage: before a diverged node is changed in any way, copy off it, byte for byte, the binary logs
 * that hold the transactions the new primary lacks, and describe them in a manifest. It only reads
 * the node; a refusal or failure leaves the node exactly as it was.
 *
 * The reader is `mariadb-binlog --read-from-remote-server --raw FILE…` without `--stop-never`: it asks
 * for each named file with a non-blocking binlog dump under server id 0, which no server in a
 * replication topology can have (a replica with server_id 0 refuses to start), and which the source
 * neither registers as a replica nor confuses with one (mariadb-binlog's dump_remote_log_entries
 * sends slave_id 0 unless --stop-never). MySQL's mysqlbinlog reads the same way under an explicit
 * --connection-server-id=0 (planMysql).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCodes, PrimacyError, SalvageManifestSchema, mariaStateMissing, type Flavor, type SalvageManifest } from '@primacy/common';
import type { Endpoint } from '../node/driver.js';
import { readInt, readText } from '../node/values.js';
import { binlogsHolding, describeRanges, divergence, parseGtidListInfo, purgedRanges, type BinlogFile } from './positions.js';
import { mysqlBinlogsHolding, mysqlDivergence, mysqlUnreachable, parsePreviousGtidsInfo } from './mysql-positions.js';
import { readBinlogSettings, readMysqlBinlogSettings, withNodeSql, type ConnectNodeSql, type NodeSql } from './session.js';
import { defaultPrograms, describeRun, runTool, succeeded, withClientOptions, type ClientPrograms } from './tools.js';

/** The server id the binlog reader presents (see the top of this file). */
export const SALVAGE_READER_SERVER_ID = 0;

export const MANIFEST_FILE = 'manifest.json';

export interface SalvageOptions {
  readonly node: string;
  readonly endpoint: Endpoint;
  readonly flavor: Flavor;
  /** The new primary's `gtid_binlog_state` (MySQL: its `gtid_executed`): what the node is compared with. */
  readonly primaryState: string;
  /** The agent's crash folder; each salvage gets a folder of its own inside it. */
  readonly crashDir: string;
  readonly programs?: Partial<ClientPrograms>;
  /** Bounds the copy; default 10 minutes. */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** How the node is reached over SQL; the real connection unless a test runs on recorded output. */
  readonly connect?: ConnectNodeSql;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** What a flavor found on the node: the manifest's fields, the files to copy, and how to read them. */
interface SalvagePlan {
  readonly base: Omit<SalvageManifest, 'at' | 'folder' | 'files'>;
  readonly files: readonly BinlogFile[];
  /** The reader's own arguments, after the option file and before the file names. */
  readonly readerArgs: readonly string[];
  /** The node's binlog state again, to prove it did not move during the copy. */
  readonly reread: () => Promise<string>;
}

/** Copies the node's extra transactions into the crash folder and returns their manifest (also written there as manifest.json). */
export async function salvage(options: SalvageOptions): Promise<SalvageManifest> {
  const now = options.now ?? Date.now;
  const crashDir = resolve(options.crashDir);
  await requireWritable(crashDir, options.node);
  const programs = { ...defaultPrograms(options.flavor), ...options.programs };
  return withNodeSql(
    options.endpoint,
    async (node) => {
      const plan = options.flavor === 'mysql' ? await planMysql(node, options) : await planMariadb(node, options);
      if (plan.base.gtids === '') return SalvageManifestSchema.parse({ ...plan.base, at: now(), folder: crashDir, files: [] });
      const folder = join(crashDir, `${options.node}-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`);
      await mkdir(folder, { recursive: true }).catch((cause: unknown) => {
        throw notWritable(folder, options.node, cause);
      });
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const run = await withClientOptions(options.endpoint, (defaults) =>
        runTool(programs.binlog, [defaults, '--read-from-remote-server', '--raw', ...plan.readerArgs, `--result-file=${folder}/`, ...plan.files.map((f) => f.name)], timeoutMs),
      );
      if (!succeeded(run)) {
        throw new PrimacyError(ErrorCodes.REJOIN_ABORTED, `salvage of ${options.node} failed: ${describeRun(run, timeoutMs)}; the node was not touched, the partial copy is in ${folder}`);
      }
      const copied = await Promise.all(plan.files.map((f) => describeCopy(folder, f)));
      // A node that wrote during the copy has more extra transactions than the ones copied.
      const after = await plan.reread();
      if (after !== plan.base.nodeState) {
        throw new PrimacyError(
          ErrorCodes.REJOIN_ABORTED,
          `salvage of ${options.node}: its binlog moved from ${plan.base.nodeState} to ${after} during the copy; fence it (read_only, no client sessions) and salvage again`,
        );
      }
      const manifest = SalvageManifestSchema.parse({ ...plan.base, at: now(), folder, files: copied });
      await writeFile(join(folder, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
      return manifest;
    },
    undefined,
    options.connect,
  );
}

async function planMariadb(node: NodeSql, options: SalvageOptions): Promise<SalvagePlan> {
  const settings = await readBinlogSettings(node);
  if (!settings.logBin) throw refused(options.node, 'its binary log is off (log_bin=OFF), so there is nothing to copy its transactions from');
  const d = divergence(settings.binlogState, options.primaryState);
  const base = {
    node: options.node,
    flavor: options.flavor,
    serverId: settings.serverId,
    nodeState: settings.binlogState,
    primaryState: options.primaryState,
    extra: d.extra.map((r) => ({ domain: r.domain, server: r.server, fromSeqExclusive: String(r.fromSeqExclusive), toSeq: String(r.toSeq) })),
    gtids: mariaStateMissing(settings.binlogState, options.primaryState),
    replayFrom: d.commonPosition,
    readerServerId: SALVAGE_READER_SERVER_ID,
  };
  const reread = async (): Promise<string> => (await readBinlogSettings(node)).binlogState;
  if (d.extra.length === 0) return { base, files: [], readerArgs: [], reread };
  const binlogs = await listBinlogs(node);
  const purged = purgedRanges(binlogs, d.extra);
  if (purged.length > 0) {
    throw refused(options.node, `the binary logs that held ${describeRanges(purged)} are purged; copy what is left by hand (the node was not touched)`);
  }
  return { base, files: binlogsHolding(binlogs, settings.binlogState, d.extra), readerArgs: [], reread };
}

/**
 * MySQL: the extra set is GTID_SUBTRACT(node's gtid_executed, the primary's), computed here and
 * checked against the server's own GTID_SUBTRACT, so a parsing difference cannot copy too little.
 * mysqlbinlog reads under --connection-server-id=0, the manual's default without --stop-never, named
 * so that no [mysqlbinlog] option group can change it: id 0 is a non-blocking dump that registers as
 * no replica (MySQL refuses to start replication with server_id 0, so no node has it) and cannot
 * take over a real replica's dump thread, which a shared non-zero id would.
 */
async function planMysql(node: NodeSql, options: SalvageOptions): Promise<SalvagePlan> {
  const settings = await readMysqlBinlogSettings(node);
  if (!settings.logBin) throw refused(options.node, 'its binary log is off (log_bin=OFF), so there is nothing to copy its transactions from');
  let d: ReturnType<typeof mysqlDivergence>;
  try {
    d = mysqlDivergence(settings.binlogState, options.primaryState);
  } catch (cause) {
    throw refused(options.node, `the primary's gtid_executed "${options.primaryState}" is not a MySQL GTID set (${cause instanceof Error ? cause.message : String(cause)})`);
  }
  const server = readText(await node.sql.one(node.session, 'SELECT GTID_SUBTRACT(?, ?) AS extra', [settings.binlogState, options.primaryState]), 'extra');
  if (parsePreviousGtidsInfo(server) !== d.extra) {
    throw new PrimacyError(ErrorCodes.NODE_STATEMENT, `salvage of ${options.node}: the server's GTID_SUBTRACT says ${server}, Primacy's ${d.extra || '(empty)'}; nothing was copied`);
  }
  const base = {
    node: options.node,
    flavor: options.flavor,
    serverId: settings.serverId,
    nodeState: settings.binlogState,
    primaryState: options.primaryState,
    // MariaDB's per-domain ranges; a MySQL set names its ranges exactly in `gtids`.
    extra: [],
    gtids: d.extra,
    replayFrom: d.common,
    readerServerId: MYSQL_SALVAGE_READER_SERVER_ID,
  };
  const reread = async (): Promise<string> => (await readMysqlBinlogSettings(node)).binlogState;
  const readerArgs = [`--connection-server-id=${MYSQL_SALVAGE_READER_SERVER_ID}`];
  if (d.extra === '') return { base, files: [], readerArgs, reread };
  const binlogs = await listBinlogs(node, 'mysql');
  const gone = mysqlUnreachable(binlogs, settings.binlogState, settings.purged, d.extra);
  if (gone.purged !== '') {
    throw refused(options.node, `the binary logs that held ${gone.purged} are purged (gtid_purged ${settings.purged || 'is empty'}); copy what is left by hand (the node was not touched)`);
  }
  if (gone.unlogged !== '') throw refused(options.node, `${gone.unlogged} are in gtid_executed but in none of its binary logs; copy what is left by hand (the node was not touched)`);
  return { base, files: mysqlBinlogsHolding(binlogs, settings.binlogState, d.extra), readerArgs, reread };
}

/** The server id MySQL's mysqlbinlog presents while it copies (see planMysql). */
export const MYSQL_SALVAGE_READER_SERVER_ID = 0;

/**
 * The event near the start of every binlog that says what came before it: MariaDB's Gtid_list
 * (after Format_desc) holds the binlog state, MySQL's Previous_gtids the GTID set.
 */
const START_EVENT: Record<Flavor, { readonly type: string; readonly parse: (info: string) => string }> = {
  mariadb: { type: 'Gtid_list', parse: parseGtidListInfo },
  mysql: { type: 'Previous_gtids', parse: parsePreviousGtidsInfo },
};

/** SHOW BINARY LOGS with each file's starting state (its Gtid_list or Previous_gtids event), oldest first. */
export async function listBinlogs(node: NodeSql, flavor: Flavor = 'mariadb'): Promise<BinlogFile[]> {
  const start = START_EVENT[flavor];
  const logs = await node.sql.run(node.session, 'SHOW BINARY LOGS');
  const out: BinlogFile[] = [];
  for (const row of logs) {
    const name = readText(row, 'Log_name');
    const events = await node.sql.run(node.session, 'SHOW BINLOG EVENTS IN ? LIMIT 3', [name]);
    const first = events.find((e) => readText(e, 'Event_type') === start.type);
    if (first === undefined) throw new PrimacyError(ErrorCodes.NODE_STATEMENT, `binary log ${name} has no ${start.type} event in its first events; cannot tell which transactions it holds`);
    out.push({ name, size: readInt(row, 'File_size'), startState: start.parse(readText(first, 'Info')) });
  }
  return out;
}

async function describeCopy(folder: string, file: BinlogFile): Promise<{ name: string; size: number; sha256: string }> {
  const path = join(folder, file.name);
  const size = (await stat(path).catch(() => null))?.size ?? -1;
  // The copy reads each file to its end, so it is at least as long as the server listed it.
  if (size < file.size) {
    throw new PrimacyError(ErrorCodes.REJOIN_ABORTED, `salvage copy ${path} has ${size < 0 ? 'no file' : `${size} bytes`}, the server listed ${file.size}; the node was not touched`);
  }
  return { name: file.name, size, sha256: await sha256(path) };
}

export function sha256(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

/** Creates the crash folder when missing and proves it writable with a probe file. */
async function requireWritable(dir: string, node: string): Promise<void> {
  const probe = join(dir, `.primacy-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (cause) {
    throw notWritable(dir, node, cause);
  }
}

function notWritable(dir: string, node: string, cause: unknown): PrimacyError {
  const code = (cause as NodeJS.ErrnoException).code ?? (cause instanceof Error ? cause.message : String(cause));
  return new PrimacyError(ErrorCodes.OPERATION_REFUSED, `salvage of ${node} refused: the crash folder ${dir} is not writable (${code}); nothing was copied and the node was not touched`, { cause });
}

function refused(node: string, why: string): PrimacyError {
  return new PrimacyError(ErrorCodes.OPERATION_REFUSED, `salvage of ${node} refused: ${why}`);
}
