/**
 * MariaDB GTID positions: `domain-server-seq` lists as printed by `gtid_binlog_pos`, `gtid_slave_pos`,
 * `gtid_current_pos` and `Gtid_IO_Pos`. A list holds the last GTID of each replication domain.
 *
 * Comparison is exact and per domain, never a sum of sequence numbers. A missing domain counts as
 * seq 0, and seq 0 means "nothing applied in this domain", whatever its server id.
 */
import { GtidParseError } from '../errors.js';

export type MariaRelation = 'equal' | 'behind' | 'ahead' | 'diverged';

export interface MariaGtid {
  readonly server: number;
  readonly seq: bigint;
}

/** Domain → the last GTID applied in that domain. Iterates in ascending domain order when parsed. */
export type MariaGtidList = ReadonlyMap<number, MariaGtid>;

export interface MariaDomainRelation {
  readonly domain: number;
  readonly relation: MariaRelation;
}

export interface MariaComparison {
  readonly relation: MariaRelation;
  /** One entry per domain present on either side, ascending by domain. */
  readonly domains: readonly MariaDomainRelation[];
}

/** A run of sequence numbers that one side has and the other lacks, in one domain. */
export interface MariaMissingRange {
  readonly domain: number;
  /** The server id of the side that has the range (its last GTID in the domain). */
  readonly server: number;
  readonly fromSeqExclusive: bigint;
  readonly toSeq: bigint;
}

const MAX_U32 = 2n ** 32n - 1n;
const MAX_U64 = 2n ** 64n - 1n;
const ELEMENT = /^(\d+)-(\d+)-(\d+)$/;

/** Parses a GTID list; throws GtidParseError naming the bad element. */
export function parseMariaGtidList(text: string): MariaGtidList {
  if (typeof text !== 'string') throw new GtidParseError(String(text), String(text), 'not a string');
  const list = new Map<number, MariaGtid>();
  // The server prints '' for "no GTIDs yet"; surrounding whitespace comes from copy/paste or CLI output.
  if (text.trim() === '') return list;
  for (const raw of text.split(',')) {
    const element = raw.trim();
    const [domain, gtid] = parseElement(element, text);
    if (list.has(domain)) throw new GtidParseError(element, text, `domain ${domain} appears twice`);
    list.set(domain, gtid);
  }
  return sortedByDomain(list);
}

function parseElement(element: string, input: string): [number, MariaGtid] {
  // An empty element (",," or a trailing comma) is rejected by the server too.
  if (element === '') throw new GtidParseError(',', input, 'empty element between commas');
  const m = ELEMENT.exec(element);
  if (!m) throw new GtidParseError(element, input, 'expected domain-server-seq, three unsigned integers');
  const [, d = '', s = '', n = ''] = m;
  const domain = boundedInteger(d, MAX_U32, element, input, 'domain id');
  const server = boundedInteger(s, MAX_U32, element, input, 'server id');
  const seq = boundedInteger(n, MAX_U64, element, input, 'sequence number');
  return [Number(domain), { server: Number(server), seq }];
}

function boundedInteger(digits: string, max: bigint, element: string, input: string, what: string): bigint {
  const value = BigInt(digits);
  if (value > max) throw new GtidParseError(element, input, `${what} ${digits} is larger than ${max}`);
  return value;
}

/** Canonical text: ascending by domain, `d-s-n` joined by `,` ('' when empty). */
export function formatMariaGtidList(list: MariaGtidList): string {
  return [...sortedByDomain(list)].map(([d, g]) => `${d}-${g.server}-${g.seq}`).join(',');
}

function sortedByDomain(list: MariaGtidList): Map<number, MariaGtid> {
  return new Map([...list].sort(([a], [b]) => a - b));
}

/** Relation of one domain's last GTID on side a to side b; `undefined` is a missing domain. */
export function compareMariaDomain(a: MariaGtid | undefined, b: MariaGtid | undefined): MariaRelation {
  const sa = a?.seq ?? 0n;
  const sb = b?.seq ?? 0n;
  if (sa > sb) return 'ahead';
  if (sa < sb) return 'behind';
  // Seq 0 on both sides means neither applied anything here, so server ids are meaningless.
  if (sa === 0n || a?.server === b?.server) return 'equal';
  return 'diverged';
}

/** Whole-list relation of a to b, with the per-domain breakdown it was derived from. */
export function compareMariaGtidLists(a: MariaGtidList, b: MariaGtidList): MariaComparison {
  const domains = allDomains(a, b).map((domain) => ({
    domain,
    relation: compareMariaDomain(a.get(domain), b.get(domain)),
  }));
  return { relation: combineRelations(domains.map((d) => d.relation)), domains };
}

function combineRelations(relations: readonly MariaRelation[]): MariaRelation {
  const ahead = relations.includes('ahead');
  const behind = relations.includes('behind');
  // Ahead in one domain and behind in another means neither side holds the other's history.
  if (relations.includes('diverged') || (ahead && behind)) return 'diverged';
  if (ahead) return 'ahead';
  if (behind) return 'behind';
  return 'equal';
}

function allDomains(a: MariaGtidList, b: MariaGtidList): number[] {
  return [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y);
}

/**
 * Per domain, the GTID with the higher seq. On the same seq with different server ids (a divergence)
 * a's GTID is kept: merging cannot repair a divergence, and the caller's own side is the one it knows.
 */
export function mergeMariaGtidLists(a: MariaGtidList, b: MariaGtidList): MariaGtidList {
  const merged = new Map<number, MariaGtid>();
  for (const domain of allDomains(a, b)) {
    const ga = a.get(domain);
    const gb = b.get(domain);
    const pick = ga === undefined || (gb !== undefined && gb.seq > ga.seq) ? gb : ga;
    if (pick !== undefined) merged.set(domain, pick);
  }
  return merged;
}

/**
 * What a has that b lacks, per domain, ascending; empty exactly when b contains a.
 * Where a is ahead the range is (b's seq, a's seq]. Where both stop at the same seq on different
 * servers only a's last GTID is known to differ, so the range is that one GTID: (seq-1, seq].
 */
export function mariaMissing(a: MariaGtidList, b: MariaGtidList): MariaMissingRange[] {
  const missing: MariaMissingRange[] = [];
  for (const domain of allDomains(a, b)) {
    const ga = a.get(domain);
    const relation = compareMariaDomain(ga, b.get(domain));
    if (ga === undefined || (relation !== 'ahead' && relation !== 'diverged')) continue;
    const from = relation === 'ahead' ? (b.get(domain)?.seq ?? 0n) : ga.seq - 1n;
    missing.push({ domain, server: ga.server, fromSeqExclusive: from, toSeq: ga.seq });
  }
  return missing;
}

/** True when a has everything b has: in every domain a is equal or ahead. */
export function mariaContains(a: MariaGtidList, b: MariaGtidList): boolean {
  return compareMariaGtidLists(a, b).domains.every((d) => d.relation === 'equal' || d.relation === 'ahead');
}
