/**
 * MySQL GTID sets: `uuid:1-5:7,uuid2:tag:1-3` as printed by `gtid_executed`, `gtid_purged` and
 * `SHOW REPLICA STATUS` (Retrieved_Gtid_Set, Executed_Gtid_Set), including MySQL 8.3+ tagged GTIDs.
 *
 * Sets are immutable values in one canonical form (sorted, merged intervals; lowercase uuids and tags;
 * no empty entries), so structural equality is set equality. Arithmetic is exact, in bigint.
 */
import { GtidParseError } from '../errors.js';

/** An inclusive range of transaction numbers, start ≤ end. */
export interface GtidInterval {
  readonly start: bigint;
  readonly end: bigint;
}

/** The transactions of one source: a server uuid plus an optional tag ('' when untagged). */
export interface MysqlTsidIntervals {
  readonly uuid: string;
  readonly tag: string;
  /** Sorted, non-empty, and never overlapping or adjacent. */
  readonly intervals: readonly GtidInterval[];
}

export interface MysqlGtidSet {
  /** Sorted by uuid, then tag (untagged first), as MySQL sorts them; never an entry without intervals. */
  readonly entries: readonly MysqlTsidIntervals[];
}

export interface FormatMysqlOptions {
  /** Separate uuids with `,\n`, exactly as the server prints them. */
  readonly lineBreaks?: boolean;
}

/** Smallest transaction number. */
export const MIN_GNO = 1n;
/** Largest transaction number: MySQL's GNO_END is INT64_MAX and exclusive, so it parses up to 2^63-2. */
export const MAX_GNO = 2n ** 63n - 2n;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TAG_CHARS = /^[a-z_][a-z0-9_]*$/i;
const TAG_MAX_LENGTH = 32;
const INTERVAL = /^(\d+)(?:\s*-\s*(\d+))?$/;

export const EMPTY_GTID_SET: MysqlGtidSet = Object.freeze({ entries: Object.freeze([]) });

type IntervalsByTsid = Map<string, { uuid: string; tag: string; intervals: GtidInterval[] }>;

// ---------------------------------------------------------------------------------------------
// Parsing and formatting

/** Parses a GTID set; throws GtidParseError naming the bad uuid, tag or interval. */
export function parseMysqlGtidSet(text: string): MysqlGtidSet {
  if (typeof text !== 'string') throw new GtidParseError(String(text), String(text), 'not a string');
  const acc: IntervalsByTsid = new Map();
  for (const raw of text.split(',')) {
    const segment = raw.trim();
    // The server skips empty elements too (",," or a trailing comma), and prints '' for the empty set.
    if (segment !== '') parseSegment(segment, text, acc);
  }
  return buildSet(acc.values());
}

/** One `uuid(:tag|:interval)*` element; a tag applies to the intervals after it, as in MySQL 8.4. */
function parseSegment(segment: string, input: string, acc: IntervalsByTsid): void {
  const [first = '', ...items] = segment.split(':');
  const uuidText = first.trim();
  if (!UUID.test(uuidText)) {
    throw new GtidParseError(uuidText || segment, input, 'expected a server uuid like 3e11fa47-71ca-11e1-9e33-c80aa9429562');
  }
  const uuid = uuidText.toLowerCase();
  let tag = '';
  let prefix = uuidText;
  for (const rawItem of items) {
    const item = rawItem.trim();
    const part = `${prefix}:${item}`;
    if (TAG_CHARS.test(item)) {
      tag = parseTag(item, part, input);
      prefix = `${uuidText}:${item}`;
    } else {
      addTo(acc, uuid, tag, [parseInterval(item, part, input)]);
    }
  }
  // A uuid or tag with no intervals adds nothing; the server accepts it the same way.
}

function parseTag(item: string, part: string, input: string): string {
  if (item.length > TAG_MAX_LENGTH) {
    throw new GtidParseError(part, input, `tag is longer than ${TAG_MAX_LENGTH} characters`);
  }
  return item.toLowerCase();
}

function parseInterval(item: string, part: string, input: string): GtidInterval {
  const m = INTERVAL.exec(item);
  if (!m) throw new GtidParseError(part, input, 'expected a tag or an interval like 7 or 1-5');
  const start = BigInt(m[1] ?? '');
  const end = m[2] === undefined ? start : BigInt(m[2]);
  if (start < MIN_GNO) throw new GtidParseError(part, input, 'transaction numbers start at 1');
  if (start > MAX_GNO || end > MAX_GNO) throw new GtidParseError(part, input, `transaction number above ${MAX_GNO}`);
  // The server silently ignores a reversed interval; we refuse it, as it can only be a mistake.
  if (end < start) throw new GtidParseError(part, input, 'interval end is before its start');
  return { start, end };
}

/**
 * Canonical text: uuids ascending and lowercase, each uuid once with its untagged intervals first and
 * then each tag (ascending) with its intervals, `uuid:1-4:tag1:1-3:tag2:5`, as MySQL 8.4 prints them.
 */
export function formatMysqlGtidSet(set: MysqlGtidSet, options: FormatMysqlOptions = {}): string {
  const groups: string[] = [];
  let previousUuid: string | undefined;
  for (const entry of set.entries) {
    const body = `${entry.tag === '' ? '' : `:${entry.tag}`}:${entry.intervals.map(formatInterval).join(':')}`;
    if (entry.uuid === previousUuid) groups[groups.length - 1] += body;
    else groups.push(entry.uuid + body);
    previousUuid = entry.uuid;
  }
  return groups.join(options.lineBreaks ? ',\n' : ',');
}

function formatInterval({ start, end }: GtidInterval): string {
  return start === end ? `${start}` : `${start}-${end}`;
}

// ---------------------------------------------------------------------------------------------
// Set arithmetic

export function unionGtidSets(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const acc: IntervalsByTsid = new Map();
  for (const e of [...a.entries, ...b.entries]) addTo(acc, e.uuid, e.tag, e.intervals);
  return buildSet(acc.values());
}

/** The transactions in a that are not in b. */
export function subtractGtidSets(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const other = byTsid(b);
  return buildSet(
    a.entries.map((e) => ({ ...e, intervals: subtractIntervals(e.intervals, other.get(tsidKey(e)) ?? []) })),
  );
}

/** The transactions in both a and b. */
export function intersectGtidSets(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const other = byTsid(b);
  return buildSet(
    a.entries.map((e) => ({ ...e, intervals: intersectIntervals(e.intervals, other.get(tsidKey(e)) ?? []) })),
  );
}

/** a ⊆ b: every transaction in a is also in b. */
export function isGtidSubset(a: MysqlGtidSet, b: MysqlGtidSet): boolean {
  return isEmptyGtidSet(subtractGtidSets(a, b));
}

export function gtidSetsEqual(a: MysqlGtidSet, b: MysqlGtidSet): boolean {
  // Both are canonical, so equal sets have identical entries.
  return (
    a.entries.length === b.entries.length &&
    a.entries.every((e, i) => {
      const f = b.entries[i];
      return f !== undefined && tsidKey(e) === tsidKey(f) && intervalsEqual(e.intervals, f.intervals);
    })
  );
}

export function isEmptyGtidSet(set: MysqlGtidSet): boolean {
  return set.entries.length === 0;
}

/** The number of transactions in the set. */
export function countGtids(set: MysqlGtidSet): bigint {
  let count = 0n;
  for (const e of set.entries) for (const iv of e.intervals) count += iv.end - iv.start + 1n;
  return count;
}

// ---------------------------------------------------------------------------------------------
// Canonical form

function tsidKey(e: { uuid: string; tag: string }): string {
  return e.tag === '' ? e.uuid : `${e.uuid}:${e.tag}`;
}

/** MySQL's Tsid order: uuid bytes (= lowercase hex text), then tag, the empty tag first. */
function compareTsid(a: MysqlTsidIntervals, b: MysqlTsidIntervals): number {
  if (a.uuid !== b.uuid) return a.uuid < b.uuid ? -1 : 1;
  if (a.tag !== b.tag) return a.tag < b.tag ? -1 : 1;
  return 0;
}

function byTsid(set: MysqlGtidSet): Map<string, readonly GtidInterval[]> {
  return new Map(set.entries.map((e) => [tsidKey(e), e.intervals]));
}

function addTo(acc: IntervalsByTsid, uuid: string, tag: string, intervals: readonly GtidInterval[]): void {
  const key = tsidKey({ uuid, tag });
  const entry = acc.get(key) ?? { uuid, tag, intervals: [] };
  // A loop, not push(...intervals): a long-lived server's set can hold more intervals than call arguments.
  for (const iv of intervals) entry.intervals.push(iv);
  acc.set(key, entry);
}

/** Freezes entries into canonical form: normalised intervals, empty entries dropped, sorted. */
function buildSet(entries: Iterable<{ uuid: string; tag: string; intervals: readonly GtidInterval[] }>): MysqlGtidSet {
  const canonical: MysqlTsidIntervals[] = [];
  for (const e of entries) {
    const intervals = normaliseIntervals(e.intervals);
    if (intervals.length > 0) canonical.push(Object.freeze({ uuid: e.uuid, tag: e.tag, intervals }));
  }
  return Object.freeze({ entries: Object.freeze(canonical.sort(compareTsid)) });
}

/** Sorts, then merges overlapping and adjacent intervals (5-7 and 8-9 are 5-9). */
function normaliseIntervals(intervals: readonly GtidInterval[]): readonly GtidInterval[] {
  const sorted = [...intervals].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  const merged: GtidInterval[] = [];
  for (const iv of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && iv.start <= last.end + 1n) {
      if (iv.end > last.end) merged[merged.length - 1] = { start: last.start, end: iv.end };
    } else {
      merged.push(iv);
    }
  }
  return Object.freeze(merged.map((iv) => Object.freeze({ start: iv.start, end: iv.end })));
}

/** a − b for normalised interval lists, by one sweep over both. */
function subtractIntervals(a: readonly GtidInterval[], b: readonly GtidInterval[]): GtidInterval[] {
  const out: GtidInterval[] = [];
  let j = 0;
  for (const iv of a) {
    let start = iv.start;
    // Skip b's intervals that end before this one starts.
    while (j < b.length && (b[j]?.end ?? 0n) < start) j++;
    let k = j;
    for (let cut = b[k]; cut !== undefined && cut.start <= iv.end; cut = b[++k]) {
      if (cut.start > start) out.push({ start, end: cut.start - 1n });
      start = cut.end + 1n;
    }
    if (start <= iv.end) out.push({ start, end: iv.end });
  }
  return out;
}

/** a ∩ b for normalised interval lists, by one sweep over both. */
function intersectIntervals(a: readonly GtidInterval[], b: readonly GtidInterval[]): GtidInterval[] {
  const out: GtidInterval[] = [];
  let i = 0;
  let j = 0;
  for (let x = a[i], y = b[j]; x !== undefined && y !== undefined; x = a[i], y = b[j]) {
    const start = x.start > y.start ? x.start : y.start;
    const end = x.end < y.end ? x.end : y.end;
    if (start <= end) out.push({ start, end });
    // Advance whichever ends first; the other may still overlap the next one.
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

function intervalsEqual(a: readonly GtidInterval[], b: readonly GtidInterval[]): boolean {
  return a.length === b.length && a.every((iv, i) => iv.start === b[i]?.start && iv.end === b[i]?.end);
}
