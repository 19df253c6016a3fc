/**
 * Flavor-agnostic GTID positions, so the failover code never cares whether it runs MariaDB or MySQL.
 * Every comparison is exact set arithmetic (see mariadb.ts and mysql.ts), never a sum of numbers.
 */
import { ErrorCodes, PrimacyError } from '../errors.js';
import {
  compareMariaGtidLists,
  formatMariaGtidList,
  mariaContains,
  mariaMissing,
  mergeMariaGtidLists,
  parseMariaGtidList,
  type MariaGtidList,
} from './mariadb.js';
import {
  formatMysqlGtidSet,
  gtidSetsEqual,
  isEmptyGtidSet,
  isGtidSubset,
  parseMysqlGtidSet,
  subtractGtidSets,
  unionGtidSets,
  countGtids,
  type MysqlGtidSet,
} from './mysql.js';

export * from './mariadb.js';
export * from './mysql.js';

export type Flavor = 'mariadb' | 'mysql';
export type GtidRelation = 'equal' | 'behind' | 'ahead' | 'diverged';

export interface MariaGtidPosition {
  readonly flavor: 'mariadb';
  readonly list: MariaGtidList;
}

export interface MysqlGtidPosition {
  readonly flavor: 'mysql';
  readonly set: MysqlGtidSet;
}

export type GtidPosition = MariaGtidPosition | MysqlGtidPosition;

export type MostAdvanced = { readonly index: number } | { readonly diverged: true };

/** How many transactions a has that b lacks (a replica's received against its executed: its backlog). */
export function gtidCountMissing(a: GtidPosition, b: GtidPosition): bigint {
  const p = samePair(a, b);
  if (p.flavor === 'mariadb') return mariaMissing(p.a, p.b).reduce((n, r) => n + (r.toSeq - r.fromSeqExclusive), 0n);
  return countGtids(subtractGtidSets(p.a, p.b));
}

/** Parses a server's GTID text in its flavor; throws GtidParseError on malformed input. */
export function parseGtid(flavor: Flavor, text: string): GtidPosition {
  if (flavor === 'mariadb') return { flavor, list: parseMariaGtidList(text) };
  if (flavor === 'mysql') return { flavor, set: parseMysqlGtidSet(text) };
  throw flavorError(`unknown GTID flavor "${String(flavor)}"; expected mariadb or mysql`);
}

/** Canonical text in the position's own flavor. */
export function formatGtid(p: GtidPosition): string {
  return p.flavor === 'mariadb' ? formatMariaGtidList(p.list) : formatMysqlGtidSet(p.set);
}

/** How a relates to b. MySQL: equal, a⊂b behind, a⊃b ahead, otherwise diverged. */
export function compareGtid(a: GtidPosition, b: GtidPosition): GtidRelation {
  const p = samePair(a, b);
  if (p.flavor === 'mariadb') return compareMariaGtidLists(p.a, p.b).relation;
  if (gtidSetsEqual(p.a, p.b)) return 'equal';
  if (isGtidSubset(p.a, p.b)) return 'behind';
  if (isGtidSubset(p.b, p.a)) return 'ahead';
  return 'diverged';
}

/** True when a has everything b has. */
export function gtidContains(a: GtidPosition, b: GtidPosition): boolean {
  const p = samePair(a, b);
  return p.flavor === 'mariadb' ? mariaContains(p.a, p.b) : isGtidSubset(p.b, p.a);
}

/**
 * What a has that b lacks (a's errant transactions when b is the primary), in a's flavor, '' when none.
 * MariaDB cannot name a range in its own syntax, so each domain where a has more is written as a's
 * last GTID there, `d-s-n`: the range ends at n. `mariaMissing` gives the exact ranges.
 */
export function gtidMissing(a: GtidPosition, b: GtidPosition): string {
  const p = samePair(a, b);
  if (p.flavor === 'mysql') return formatMysqlGtidSet(subtractGtidSets(p.a, p.b));
  return mariaMissing(p.a, p.b)
    .map((r) => `${r.domain}-${r.server}-${r.toSeq}`)
    .join(',');
}

/** Everything either side has. MariaDB keeps a's GTID where the two diverge at the same seq. */
export function mergeGtid(a: GtidPosition, b: GtidPosition): GtidPosition {
  const p = samePair(a, b);
  return p.flavor === 'mariadb'
    ? { flavor: 'mariadb', list: mergeMariaGtidLists(p.a, p.b) }
    : { flavor: 'mysql', set: unionGtidSets(p.a, p.b) };
}

/** True when the position holds no transactions at all. */
export function isEmptyGtid(p: GtidPosition): boolean {
  return p.flavor === 'mariadb' ? [...p.list.values()].every((g) => g.seq === 0n) : isEmptyGtidSet(p.set);
}

/**
 * The position that contains all the others (the first one, when several are equal), or diverged when
 * none does. Refuses an empty list: with no positions there is no candidate to promote.
 */
export function mostAdvanced(ps: readonly GtidPosition[]): MostAdvanced {
  const first = ps[0];
  if (first === undefined) throw new PrimacyError(ErrorCodes.OPERATION_REFUSED, 'no GTID positions to choose from');
  // Refuse mixed flavors up front, even where containment would be decided without comparing them.
  for (const p of ps) samePair(first, p);
  const index = ps.findIndex((candidate) => ps.every((other) => gtidContains(candidate, other)));
  return index >= 0 ? { index } : { diverged: true };
}

type SamePair =
  | { readonly flavor: 'mariadb'; readonly a: MariaGtidList; readonly b: MariaGtidList }
  | { readonly flavor: 'mysql'; readonly a: MysqlGtidSet; readonly b: MysqlGtidSet };

/** Both positions' values, narrowed to one flavor; mixing flavors is a programming or topology error. */
function samePair(a: GtidPosition, b: GtidPosition): SamePair {
  if (a.flavor === 'mariadb' && b.flavor === 'mariadb') return { flavor: 'mariadb', a: a.list, b: b.list };
  if (a.flavor === 'mysql' && b.flavor === 'mysql') return { flavor: 'mysql', a: a.set, b: b.set };
  throw flavorError(`cannot compare a ${a.flavor} GTID position with a ${b.flavor} one`);
}

function flavorError(message: string): PrimacyError {
  return new PrimacyError(ErrorCodes.GTID_FLAVOR, message);
}

export * from './errant.js';
