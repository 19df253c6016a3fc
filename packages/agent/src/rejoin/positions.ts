/**
 * The GTID arithmetic of a rejoin, pure: what a diverged MariaDB node has that the new primary lacks,
 * where its history and the new primary's part, and which of its binary logs hold the difference.
 */
import { formatMariaGtidList, mariaStateExtra, mariaStatePairs, parseMariaGtidList, type MariaGtid, type MariaMissingRange, type NodeState } from '@primacy/common';

/**
 * The GTID text a salvage describes a node by, and compares it with: MariaDB's gtid_binlog_state (it
 * shows a divergence that positions hide), MySQL's gtid_executed (its binlog and executed set are one).
 */
export function salvageState(s: Pick<NodeState, 'flavor' | 'gtid'>): string | undefined {
  return s.flavor === 'mysql' ? s.gtid.executed : s.gtid.binlogState;
}

export interface Divergence {
  /** Per (domain, server) pair, the sequence numbers (from, to] the new primary lacks. */
  readonly extra: readonly MariaMissingRange[];
  /** The node's `gtid_binlog_state` without the extra transactions: what it shares with the new primary. */
  readonly commonState: string;
  /** The last GTID per domain of that shared history: where a replay, a flashback or replication starts. */
  readonly commonPosition: string;
}

/** How a node's `gtid_binlog_state` relates to the new primary's. */
export function divergence(nodeState: string, primaryState: string): Divergence {
  const extra = mariaStateExtra(nodeState, primaryState);
  const cut = new Map(extra.map((r) => [`${r.domain}-${r.server}`, r.fromSeqExclusive]));
  const common = [...mariaStatePairs(nodeState).values()]
    .map((g) => ({ ...g, seq: cut.get(`${g.domain}-${g.server}`) ?? g.seq }))
    .filter((g) => g.seq > 0n)
    .sort((a, b) => a.domain - b.domain || a.server - b.server);
  const lastPerDomain = new Map<number, MariaGtid>();
  for (const g of common) {
    const seen = lastPerDomain.get(g.domain);
    if (seen === undefined || g.seq > seen.seq) lastPerDomain.set(g.domain, { server: g.server, seq: g.seq });
  }
  return {
    extra,
    commonState: common.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(','),
    commonPosition: formatMariaGtidList(lastPerDomain),
  };
}

/** `0-1-101..105` per range (one GTID: `0-1-101`), for messages and dry runs. */
export function describeRanges(ranges: readonly MariaMissingRange[]): string {
  return ranges
    .map((r) => {
      const first = r.fromSeqExclusive + 1n;
      const head = `${r.domain}-${r.server}-${first}`;
      return first === r.toSeq ? head : `${head}..${r.toSeq}`;
    })
    .join(', ');
}

export interface BinlogFile {
  readonly name: string;
  readonly size: number;
  /** The binlog state when the file began: its Gtid_list event. */
  readonly startState: string;
}

/**
 * The binary logs that hold any of the ranges: file i holds the GTIDs after its start state up to the
 * next file's start state (the last file: up to `endState`, the server's current state). Files are in
 * server order, oldest first.
 */
export function binlogsHolding(files: readonly BinlogFile[], endState: string, ranges: readonly MariaMissingRange[]): BinlogFile[] {
  return files.filter((file, i) => {
    const from = mariaStatePairs(file.startState);
    const to = mariaStatePairs(files[i + 1]?.startState ?? endState);
    return ranges.some((r) => {
      const key = `${r.domain}-${r.server}`;
      const a = from.get(key)?.seq ?? 0n;
      const b = to.get(key)?.seq ?? 0n;
      return a < r.toSeq && b > r.fromSeqExclusive;
    });
  });
}

/**
 * Ranges whose start the oldest binlog no longer reaches: purged (or never logged) transactions that
 * no salvage can copy. Empty when the binlogs hold all of them.
 */
export function purgedRanges(files: readonly BinlogFile[], ranges: readonly MariaMissingRange[]): MariaMissingRange[] {
  const first = files[0];
  if (first === undefined) return [...ranges];
  const start = mariaStatePairs(first.startState);
  return ranges.filter((r) => (start.get(`${r.domain}-${r.server}`)?.seq ?? 0n) > r.fromSeqExclusive);
}

/** `[0-1-9,0-2-3]` as SHOW BINLOG EVENTS prints a Gtid_list event → `0-1-9,0-2-3`; throws on anything else. */
export function parseGtidListInfo(info: string): string {
  const m = /^\[(.*)\]$/.exec(info.trim());
  if (m === null) throw new Error(`not a Gtid_list event: "${info}"`);
  const text = (m[1] ?? '').trim();
  // Validates every element (a state may repeat a domain, one element at a time).
  for (const part of text.split(',').filter((p) => p.trim() !== '')) parseMariaGtidList(part);
  return text;
}
