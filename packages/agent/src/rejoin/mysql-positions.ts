/**
 * The GTID arithmetic of a rejoin on MySQL, pure: what a diverged node executed that the new primary
 * lacks, what the two share, and which binary logs hold the difference.
 *
 * Every MySQL binary log begins with a Previous_gtids event: the GTID set the server had executed when
 * it opened the file (gtid_executed then, purged transactions included). So file i holds at most the
 * GTIDs in (the next file's previous set, or gtid_executed for the last file) minus its own previous
 * set. A GTID added without a transaction (SET GLOBAL gtid_purged) can fall in that window too; it only
 * makes a file look like it holds more, so the salvage copies a file too many, never one too few.
 */
import {
  formatMysqlGtidSet,
  intersectGtidSets,
  isEmptyGtidSet,
  parseMysqlGtidSet,
  subtractGtidSets,
  unionGtidSets,
  EMPTY_GTID_SET,
  type MysqlGtidSet,
} from '@primacy/common';
import type { BinlogFile } from './positions.js';

export interface MysqlDivergence {
  /** GTID_SUBTRACT(node, primary): the node's transactions the new primary lacks, canonical text. */
  readonly extra: string;
  /** What both executed: the node's history without the extra transactions. */
  readonly common: string;
}

/** How a node's gtid_executed relates to the new primary's (both as the servers print them). */
export function mysqlDivergence(nodeExecuted: string, primaryExecuted: string): MysqlDivergence {
  const node = parseMysqlGtidSet(nodeExecuted);
  const primary = parseMysqlGtidSet(primaryExecuted);
  return { extra: formatMysqlGtidSet(subtractGtidSets(node, primary)), common: formatMysqlGtidSet(intersectGtidSets(node, primary)) };
}

/** The GTIDs file i can hold: the next file's previous set (the last file: gtid_executed) minus its own. */
function heldBy(files: readonly BinlogFile[], i: number, executed: MysqlGtidSet): MysqlGtidSet {
  const own = parseMysqlGtidSet(files[i]?.startState ?? '');
  const next = files[i + 1];
  return subtractGtidSets(next === undefined ? executed : parseMysqlGtidSet(next.startState), own);
}

/** The binary logs (server order, oldest first) that hold any of `extra`. */
export function mysqlBinlogsHolding(files: readonly BinlogFile[], executed: string, extra: string): BinlogFile[] {
  const all = parseMysqlGtidSet(executed);
  const wanted = parseMysqlGtidSet(extra);
  return files.filter((_, i) => !isEmptyGtidSet(intersectGtidSets(heldBy(files, i, all), wanted)));
}

export interface UnreachableGtids {
  /** Extra GTIDs in gtid_purged or before the oldest binlog: their files are gone. */
  readonly purged: string;
  /** Extra GTIDs that no listed file can hold (never logged, such as log_replica_updates=OFF). */
  readonly unlogged: string;
}

/** The extra GTIDs no salvage can copy; both empty when the binlogs hold all of them. */
export function mysqlUnreachable(files: readonly BinlogFile[], executed: string, gtidPurged: string, extra: string): UnreachableGtids {
  const all = parseMysqlGtidSet(executed);
  const wanted = parseMysqlGtidSet(extra);
  const beforeFirst = files[0] === undefined ? all : parseMysqlGtidSet(files[0].startState);
  const purged = intersectGtidSets(wanted, unionGtidSets(parseMysqlGtidSet(gtidPurged), beforeFirst));
  let held = EMPTY_GTID_SET;
  for (let i = 0; i < files.length; i++) held = unionGtidSets(held, heldBy(files, i, all));
  const unlogged = subtractGtidSets(subtractGtidSets(wanted, held), purged);
  return { purged: formatMysqlGtidSet(purged), unlogged: formatMysqlGtidSet(unlogged) };
}

/** A Previous_gtids event's Info as SHOW BINLOG EVENTS prints it → the canonical set; throws GtidParseError on anything else. */
export function parsePreviousGtidsInfo(info: string): string {
  return formatMysqlGtidSet(parseMysqlGtidSet(info));
}
