/**
 * Errant transactions: ones a node wrote itself that no other node has. Such a node must never be
 * promoted (invariant 8): its extra writes would replicate everywhere, or break replication.
 * Transactions it merely received first from the old primary are not errant; they are why the most
 * advanced replica is chosen.
 */
import { mariaMissing, parseMariaGtidList, type MariaMissingRange } from './mariadb.js';
import { formatMysqlGtidSet, parseMysqlGtidSet, subtractGtidSets } from './mysql.js';
import { mergeGtid, type GtidPosition } from './index.js';

export interface ServerIdentity {
  readonly serverId: number;
  /** MySQL's server_uuid; null on MariaDB. */
  readonly serverUuid: string | null;
}

/** What `node` wrote itself (its own server id / uuid) that none of `others` has; '' when nothing. */
export function errantGtids(node: GtidPosition, self: ServerIdentity, others: readonly GtidPosition[]): string {
  const union = others.reduce<GtidPosition | null>((acc, p) => (acc === null ? p : mergeGtid(acc, p)), null);
  if (node.flavor === 'mariadb') {
    const rest = union?.flavor === 'mariadb' ? union.list : new Map();
    return mariaMissing(node.list, rest)
      .filter((r) => r.server === self.serverId)
      .map((r) => `${r.domain}-${r.server}-${r.toSeq}`)
      .join(',');
  }
  const uuid = self.serverUuid?.toLowerCase();
  const missing = union?.flavor === 'mysql' ? subtractGtidSets(node.set, union.set) : node.set;
  return formatMysqlGtidSet({ entries: missing.entries.filter((e) => e.uuid === uuid) });
}

/**
 * What a MariaDB `gtid_binlog_state` has that another lacks: for each (domain, server) pair, a last
 * GTID the other does not reach. Positions keep only the last GTID per domain, so a demoted primary's
 * own late writes (0-1-101) look "behind" a new primary at 0-2-150; the state shows them.
 */
export function mariaStateMissing(mine: string, theirs: string): string {
  return mariaStateExtra(mine, theirs)
    .map((r) => `${r.domain}-${r.server}-${r.toSeq}`)
    .join(',');
}

/**
 * The same as ranges: per (domain, server) pair of `mine`, the sequence numbers (from, to] beyond
 * what `theirs` has of that pair. The GTIDs a node's binlog holds in these ranges are exactly the
 * transactions the other side lacks, ascending by domain, then server.
 */
export function mariaStateExtra(mine: string, theirs: string): MariaMissingRange[] {
  const have = mariaStatePairs(theirs);
  return [...mariaStatePairs(mine).values()]
    .map((g) => ({ domain: g.domain, server: g.server, fromSeqExclusive: have.get(`${g.domain}-${g.server}`)?.seq ?? 0n, toSeq: g.seq }))
    .filter((r) => r.fromSeqExclusive < r.toSeq)
    .sort((a, b) => a.domain - b.domain || a.server - b.server);
}

/** A `gtid_binlog_state` (one GTID per domain and server, several per domain) keyed by `domain-server`. */
export function mariaStatePairs(text: string): Map<string, { domain: number; server: number; seq: bigint }> {
  const out = new Map<string, { domain: number; server: number; seq: bigint }>();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    for (const [domain, g] of parseMariaGtidList(part)) out.set(`${domain}-${g.server}`, { domain, server: g.server, seq: g.seq });
  }
  return out;
}

/**
 * `gtids` (what a node has that a primary's published state lacks) without the primary's own
 * transactions: a primary cannot lack what it wrote itself, so those only mean its published state
 * is older than the node's. What is left came from elsewhere: the node diverged.
 */
export function withoutOrigin(flavor: 'mariadb' | 'mysql', gtids: string, origin: ServerIdentity): string {
  if (gtids.trim() === '') return '';
  if (flavor === 'mariadb') {
    return gtids
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '' && Number(part.split('-')[1]) !== origin.serverId)
      .join(',');
  }
  const uuid = origin.serverUuid?.toLowerCase();
  const set = parseMysqlGtidSet(gtids);
  return formatMysqlGtidSet({ entries: set.entries.filter((e) => e.uuid !== uuid) });
}

/**
 * The GTIDs of `gtids` (a MariaDB list, as `mariaStateMissing` returns) that `received` does not
 * cover. A GTID d-s-n is covered when `received` has, in domain d, a GTID of the same server s with a
 * sequence number of at least n: a candidate that received it will have it once its relay log is
 * applied. Another server's higher number in the domain covers nothing (a late write of a demoted
 * primary looks "behind" the new one's).
 */
export function mariaNotReceived(gtids: string, received: string): string {
  const have = received.trim() === '' ? new Map() : parseMariaGtidList(received);
  return gtids
    .split(',')
    .map((part) => part.trim())
    .filter((part) => {
      if (part === '') return false;
      const [g] = [...parseMariaGtidList(part).entries()];
      if (!g) return false;
      const [domain, gtid] = g;
      const r = have.get(domain);
      return !(r && r.server === gtid.server && r.seq >= gtid.seq);
    })
    .join(',');
}
