/**
 * Crash recovery building blocks (issue 11): each works on one node and is safe to call on its own.
 * The order of a rejoin is always salvage first, then one method, then replication from the new primary.
 */

/** Copies a diverged node's extra transactions (whole binlog files, checksummed) into the crash folder; reads the node only. */
export { salvage, listBinlogs, SALVAGE_READER_SERVER_ID, MYSQL_SALVAGE_READER_SERVER_ID, MANIFEST_FILE, type SalvageOptions } from './salvage.js';

/** Undoes the extra transactions from the salvage with `mariadb-binlog --flashback`, then resets the node's GTID state to the shared history. */
export { flashback, flashbackProblem, MYSQL_HAS_NO_FLASHBACK, type FlashbackOptions, type FlashbackResult } from './flashback.js';

/** Rebuilds the node from a healthy replica with a dump (MySQL: the CLONE plugin); a failed copy leaves the node marked (`readReseedMark`). */
export { reseed, readReseedMark, MARK_DATABASE, DumpScanner, type ReseedOptions, type ReseedProgress, type ReseedResult, type ReseedMark } from './reseed.js';
export { cloneVersionProblem, summarizeCloneProgress, CLONE_MIN_VERSION, type CloneProgress } from './clone.js';

/** Runs the operator's rejoin script, bounded in time, with the node and new primary as arguments and environment. */
export { runRejoinScript, type RejoinScript, type ScriptMember } from './script.js';
export type { CommandRun } from '../operator-command.js';

/** Points the node at the new primary (GTID auto-positioning) and waits until both replication threads run. */
export { replicateFromPrimary, type ReplicationStarted } from './replicate.js';

/** The pure GTID arithmetic: the extra ranges, the shared history, and which binlogs hold the difference. */
export { binlogsHolding, describeRanges, divergence, parseGtidListInfo, purgedRanges, salvageState, type BinlogFile, type Divergence } from './positions.js';
export { mysqlBinlogsHolding, mysqlDivergence, mysqlUnreachable, parsePreviousGtidsInfo, type MysqlDivergence } from './mysql-positions.js';

/** The client programs each flavor uses; override paths through each step's `programs`. */
export { defaultPrograms, type ClientPrograms } from './tools.js';
export { connectNodeSql, type ConnectNodeSql, type NodeSql } from './session.js';
