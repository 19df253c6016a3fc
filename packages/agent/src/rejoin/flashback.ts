/**
 * Flashback (MariaDB): undo a diverged node's extra transactions from its salvage, then make its GTID
 * bookkeeping say it stopped where its history and the new primary's part, so it can replicate.
 *
 * What MariaDB 10.11 does, as seen here (test/rejoin.test.ts):
 * - `mariadb-binlog --flashback` turns INSERT into DELETE, DELETE into INSERT and swaps UPDATE images,
 *   last transaction first, across several files; its output carries no GTID events.
 * - `--start-position=GTIDS` is exclusive: it prints what comes after those GTIDs, so it takes the last
 *   common position, not the first extra GTID.
 * - Applied with sql_log_bin=0 nothing reaches the binlog, so the undone GTIDs stay in gtid_binlog_state,
 *   and `SET GLOBAL gtid_slave_pos` to the common position then fails with 1947 (conflicts with the
 *   binary log). With gtid_strict_mode, replicating on would fail with 1950 (out of order). So the
 *   binlog is reset (the salvage holds its copy) and gtid_binlog_state set to the common history.
 */
import { join } from 'node:path';
import { ErrorCodes, PrimacyError, type SalvageManifest } from '@primacy/common';
import type { Endpoint } from '../node/driver.js';
import { divergence } from './positions.js';
import { sha256 } from './salvage.js';
import { readBinlogSettings, withNodeSql, type BinlogSettings, type ConnectNodeSql } from './session.js';
import { defaultPrograms, describeRun, LineSplitter, runPipe, runTool, succeeded, withClientOptions, type ClientPrograms } from './tools.js';

export interface FlashbackOptions {
  readonly node: string;
  readonly endpoint: Endpoint;
  /** The node's salvage, taken since its last write: flashback reads the copies, never the live binlog. */
  readonly manifest: SalvageManifest;
  readonly programs?: Partial<ClientPrograms>;
  /** Bounds the undo; default 10 minutes. */
  readonly timeoutMs?: number;
  /** How the node is reached over SQL; the real connection unless a test runs on recorded output. */
  readonly connect?: ConnectNodeSql;
}

export interface FlashbackResult {
  /** The undone transactions, as the manifest names them. */
  readonly undone: string;
  /** Where the node now stands: its gtid_binlog_state and gtid_slave_pos. */
  readonly state: string;
  readonly position: string;
  readonly bytes: number;
}

/**
 * Reads `mariadb-binlog`'s text for the extra transactions and keeps the events flashback cannot
 * invert: every Query event but BEGIN, COMMIT and ROLLBACK, which is DDL (CREATE, ALTER, DROP…) or
 * a statement logged as such. `--flashback` skips those silently, and the node would keep them.
 */
export class NonInvertibleScanner {
  readonly found: Array<{ readonly gtid: string; readonly statement: string }> = [];
  #gtid = '?';
  #statement: string[] | null = null;

  line(line: string): void {
    const header = /^#\d{6}\s[^\t]*\t(\S+)/.exec(line);
    if (header !== null || line.startsWith('# at ')) this.#flush();
    if (header === null) {
      this.#statement?.push(line);
      return;
    }
    const gtid = /\tGTID (\d+-\d+-\d+)/.exec(line);
    if (gtid) this.#gtid = gtid[1] ?? '?';
    else if (header[1] === 'Query') this.#statement = [];
  }

  end(): void {
    this.#flush();
  }

  #flush(): void {
    if (this.#statement === null) return;
    const text = this.#statement
      .map((l) => l.trim())
      .filter((l) => l !== '' && !/^(#|SET |use |\/\*!|DELIMITER )/i.test(l))
      .join(' ')
      .replace(/\/\*!\*\/;$/, '')
      .trim();
    this.#statement = null;
    if (!/^(BEGIN|COMMIT|ROLLBACK)?$/i.test(text)) this.found.push({ gtid: this.#gtid, statement: text.slice(0, 80) });
  }
}

/** Why there is no flashback on MySQL, in one line: the policy then falls through to reseed or script. */
export const MYSQL_HAS_NO_FLASHBACK = "MySQL's mysqlbinlog has no --flashback (only MariaDB's mariadb-binlog can invert row events); rejoin it by reseed or script";

/** Why flashback cannot undo this node's transactions, or null when it can. */
export function flashbackProblem(s: BinlogSettings): string | null {
  if (s.flavor !== 'mariadb') return MYSQL_HAS_NO_FLASHBACK;
  if (!s.logBin) return 'its binary log is off (log_bin=OFF)';
  if (s.format !== 'ROW') return `binlog_format is ${s.format}; flashback needs ROW (statements cannot be inverted)`;
  if (s.rowImage !== 'FULL') return `binlog_row_image is ${s.rowImage}; flashback needs FULL (the before images of its rows are missing)`;
  if (!s.readOnly) return 'it is writable (read_only=OFF); fence it first, or writes would mix with the undo';
  return null;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export async function flashback(options: FlashbackOptions): Promise<FlashbackResult> {
  const { manifest, node: name } = options;
  if (manifest.flavor !== 'mariadb') throw refused(name, MYSQL_HAS_NO_FLASHBACK);
  const d = divergence(manifest.nodeState, manifest.primaryState);
  const programs = { ...defaultPrograms('mariadb'), ...options.programs };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return withNodeSql(options.endpoint, async (node) => {
    const settings = await readBinlogSettings(node);
    const problem = flashbackProblem(settings);
    if (problem !== null) throw refused(name, problem);
    if (settings.binlogState !== manifest.nodeState) {
      throw refused(name, `its binlog state is ${settings.binlogState}, the salvage's is ${manifest.nodeState}; salvage again first`);
    }
    for (const f of manifest.files) {
      const path = join(manifest.folder, f.name);
      const sum = await sha256(path).catch(() => 'unreadable');
      if (sum !== f.sha256) throw refused(name, `salvage file ${path} is ${sum === 'unreadable' ? 'unreadable' : 'not the one salvaged (sha256 differs)'}`);
    }
    // Nothing extra: nothing to undo, and the binlog stays as it is.
    if (manifest.files.length === 0) return { undone: '', state: settings.binlogState, position: d.commonPosition, bytes: 0 };
    const start = d.commonPosition === '' ? [] : [`--start-position=${d.commonPosition}`];
    const files = manifest.files.map((f) => join(manifest.folder, f.name));
    const scanner = new NonInvertibleScanner();
    const lines = new LineSplitter((line) => scanner.line(line));
    const decoded = await runTool(programs.binlog, [...start, ...files], timeoutMs, (chunk) => lines.push(chunk));
    lines.end();
    scanner.end();
    if (!succeeded(decoded)) throw refused(name, `its salvage cannot be read: ${describeRun(decoded, timeoutMs)}`);
    const first = scanner.found[0];
    if (first !== undefined) {
      const more = scanner.found.length > 1 ? ` and ${scanner.found.length - 1} more` : '';
      throw refused(name, `${first.gtid} is not a row change (${first.statement})${more}, which flashback cannot undo; reseed it instead`);
    }
    await node.sql.run(node.session, 'STOP SLAVE');
    const run = await withClientOptions(options.endpoint, (defaults) =>
      runPipe(
        { program: programs.binlog, args: ['--flashback', ...start, ...files] },
        // Not binlogged: the undo must not become transactions of the node's own.
        { program: programs.client, args: [defaults, '--init-command=SET SESSION sql_log_bin=0'] },
        timeoutMs,
      ),
    );
    if (!succeeded(run.producer) || !succeeded(run.consumer)) {
      const failed = succeeded(run.producer) ? run.consumer : run.producer;
      throw new PrimacyError(
        ErrorCodes.REJOIN_ABORTED,
        `flashback of ${name} failed: ${describeRun(failed, timeoutMs)}; some of ${manifest.gtids} may be undone already, so reseed it (its salvage is in ${manifest.folder})`,
      );
    }
    // The salvage holds the binlog's extra transactions; the node forgets them and starts from the common history.
    await node.sql.run(node.session, 'RESET MASTER');
    if (d.commonState !== '') await node.sql.run(node.session, 'SET GLOBAL gtid_binlog_state = ?', [d.commonState]);
    await node.sql.run(node.session, 'SET GLOBAL gtid_slave_pos = ?', [d.commonPosition]);
    return { undone: manifest.gtids, state: d.commonState, position: d.commonPosition, bytes: run.bytes };
  }, undefined, options.connect);
}

function refused(node: string, why: string): PrimacyError {
  return new PrimacyError(ErrorCodes.OPERATION_REFUSED, `flashback of ${node} refused: ${why}; the node was not changed`);
}
