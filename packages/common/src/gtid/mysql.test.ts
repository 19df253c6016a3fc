import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GtidParseError } from '../errors.js';
import {
  EMPTY_GTID_SET,
  MAX_GNO,
  countGtids,
  formatMysqlGtidSet,
  gtidSetsEqual,
  intersectGtidSets,
  isEmptyGtidSet,
  isGtidSubset,
  parseMysqlGtidSet,
  subtractGtidSets,
  unionGtidSets,
  type MysqlGtidSet,
} from './mysql.js';

const RUNS = { numRuns: 200 };
const U1 = '1f8a2b3c-0d4e-11ef-9a5b-0242ac120002';
const U2 = '5c0d8e7a-0d4f-11ef-8c21-0242ac120003';
const U3 = '9a1b2c3d-0d50-11ef-b6f4-0242ac120004';
const parse = parseMysqlGtidSet;
const canon = (text: string) => formatMysqlGtidSet(parse(text));

function assertParseError(text: string, part: string): void {
  assert.throws(
    () => parse(text),
    (err: unknown) => {
      assert.ok(err instanceof GtidParseError, `expected GtidParseError for ${JSON.stringify(text)}, got ${String(err)}`);
      assert.equal(err.code, 'PRIMACY_E_GTID_PARSE');
      assert.equal(err.part, part);
      return true;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: server-style text with unsorted, overlapping, repeated and tagged pieces.

interface Piece {
  readonly uuid: string;
  readonly tag: string;
  readonly intervals: ReadonlyArray<readonly [bigint, bigint]>;
}

const smallInterval = fc
  .tuple(fc.bigInt({ min: 1n, max: 30n }), fc.bigInt({ min: 0n, max: 4n }))
  .map(([s, len]) => [s, s + len] as const);
const hugeInterval = fc
  .tuple(fc.bigInt({ min: MAX_GNO - 30n, max: MAX_GNO }), fc.bigInt({ min: 0n, max: 4n }))
  .map(([s, len]) => [s, s + len > MAX_GNO ? MAX_GNO : s + len] as const);

function pieceArb(interval: fc.Arbitrary<readonly [bigint, bigint]>): fc.Arbitrary<Piece> {
  return fc
    .tuple(
      fc.constantFrom(U1, U2, U3),
      fc.constantFrom('', 'a', 'domain1', 'z_9'),
      fc.array(interval, { maxLength: 4 }),
    )
    .map(([uuid, tag, intervals]) => ({ uuid, tag, intervals }));
}

/** Text a server or an operator could produce, in random case, order and line breaking. */
function textArb(interval: fc.Arbitrary<readonly [bigint, bigint]>): fc.Arbitrary<string> {
  return fc
    .tuple(fc.array(fc.tuple(pieceArb(interval), fc.boolean()), { maxLength: 5 }), fc.constantFrom(',', ',\n', ', '))
    .map(([pieces, sep]) => pieces.map(([p, upper]) => pieceText(p, upper)).join(sep));
}

function pieceText(p: Piece, upper: boolean): string {
  const head = (p.tag === '' ? p.uuid : `${p.uuid}:${p.tag}`);
  const body = p.intervals.map(([s, e]) => (s === e ? `:${s}` : `:${s}-${e}`)).join('');
  return (upper ? head.toUpperCase() : head) + body;
}

const smallSetArb: fc.Arbitrary<MysqlGtidSet> = textArb(smallInterval).map(parse);
const setArb: fc.Arbitrary<MysqlGtidSet> = textArb(fc.oneof(smallInterval, hugeInterval)).map(parse);

/** Every transaction of a small set, as `uuid|tag|n`: the model the arithmetic is checked against. */
function expand(set: MysqlGtidSet): Set<string> {
  const out = new Set<string>();
  for (const e of set.entries) {
    for (const iv of e.intervals) for (let n = iv.start; n <= iv.end; n++) out.add(`${e.uuid}|${e.tag}|${n}`);
  }
  return out;
}

const sorted = (s: Set<string>) => [...s].sort();

// ---------------------------------------------------------------------------------------------

describe('parseMysqlGtidSet on values as servers print them', () => {
  it('reads SELECT @@gtid_executed with ,\\n between three uuids, and prints it back the same', () => {
    const text = `${U1}:1-1042,\n${U2}:1-17:19-23,\n${U3}:1-3`;
    const set = parse(text);
    assert.equal(formatMysqlGtidSet(set, { lineBreaks: true }), text);
    assert.equal(formatMysqlGtidSet(set), `${U1}:1-1042,${U2}:1-17:19-23,${U3}:1-3`);
    assert.equal(countGtids(set), 1042n + 17n + 5n + 3n);
  });

  it('reads SHOW REPLICA STATUS Retrieved_Gtid_Set and Executed_Gtid_Set values', () => {
    const retrieved = '3e11fa47-71ca-11e1-9e33-c80aa9429562:23-42';
    const executed = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-40,\n4f1c9d3e-0a2b-11ef-8f7c-0242ac120005:1-7';
    assert.equal(canon(retrieved), retrieved);
    assert.equal(formatMysqlGtidSet(parse(executed), { lineBreaks: true }), executed);
    assert.equal(isGtidSubset(parse(retrieved), parse(executed)), false);
    assert.equal(formatMysqlGtidSet(subtractGtidSets(parse(retrieved), parse(executed))), '3e11fa47-71ca-11e1-9e33-c80aa9429562:41-42');
  });

  it('reads an empty set, as the server prints it', () => {
    assert.ok(isEmptyGtidSet(parse('')));
    assert.ok(isEmptyGtidSet(parse(' \n ')));
    assert.equal(formatMysqlGtidSet(parse('')), '');
    assert.equal(countGtids(EMPTY_GTID_SET), 0n);
  });

  it('lowercases upper-case uuids (as in the manual) and reads single transactions', () => {
    assert.equal(canon('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5'), '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5');
    assert.equal(canon(`${U1}:7`), `${U1}:7`);
  });

  it('normalises unsorted, overlapping, adjacent and repeated pieces', () => {
    assert.equal(canon(`${U1}:7-9:1-5:3-6`), `${U1}:1-9`);
    assert.equal(canon(`${U1}:1-5:6-8`), `${U1}:1-8`);
    assert.equal(canon(`${U1}:1-3:5`), `${U1}:1-3:5`);
    assert.equal(canon(`${U2}:4,${U1}:1-3,${U2}:1-3,${U1.toUpperCase()}:4-5`), `${U1}:1-5,${U2}:1-4`);
  });

  it('tolerates what the server tolerates: spaces around tokens, empty elements, a uuid without intervals', () => {
    assert.equal(canon(` ${U1} : 1 - 5 : 7 ,\n ${U2}:2 `), `${U1}:1-5:7,${U2}:2`);
    assert.equal(canon(`${U1}:1,,${U2}:2,`), `${U1}:1,${U2}:2`);
    assert.equal(canon(`${U1},${U2}:2`), `${U2}:2`);
    assert.equal(canon(`${U1}:domain1`), '');
  });

  it('reads MySQL 8.4 tagged sets, grouped the way 8.4 prints them', () => {
    const tagged = '896e7882-18fe-11ef-ab88-22222d34d411:1-4:domain1:1-3';
    assert.equal(canon(tagged), tagged);
    assert.equal(countGtids(parse(tagged)), 7n);
    const mixed = `${U1}:1-4:tag1:1-3:tag2:5`;
    assert.equal(canon(mixed), mixed);
    assert.equal(canon(`${U1}:TAG2:5,${U1}:1-4,${U1}:Tag1:1-3`), mixed);
    assert.equal(canon(`${U1}:domain1:1-3`), `${U1}:domain1:1-3`);
    assert.equal(
      formatMysqlGtidSet(parse(`${U2}:bb:7,${U1}:aa:1-3,${U1}:1-4`), { lineBreaks: true }),
      `${U1}:1-4:aa:1-3,\n${U2}:bb:7`,
    );
  });

  it('keeps tagged and untagged transactions apart', () => {
    const plain = parse(`${U1}:1-3`);
    const tagged = parse(`${U1}:t:1-3`);
    assert.equal(gtidSetsEqual(plain, tagged), false);
    assert.equal(formatMysqlGtidSet(subtractGtidSets(unionGtidSets(plain, tagged), tagged)), `${U1}:1-3`);
  });

  it('accepts a 32-character tag and the largest transaction number exactly', () => {
    const tag = `_${'a'.repeat(30)}9`;
    assert.equal(canon(`${U1}:${tag}:1`), `${U1}:${tag}:1`);
    const full = parse(`${U1}:1-9223372036854775806`);
    assert.equal(countGtids(full), 9223372036854775806n);
    assert.equal(formatMysqlGtidSet(subtractGtidSets(full, parse(`${U1}:2-9223372036854775805`))), `${U1}:1:9223372036854775806`);
  });
});

describe('parseMysqlGtidSet on malformed input', () => {
  const cases: Array<[string, string]> = [
    [`${U1}:5-3`, `${U1}:5-3`],
    [`${U1.toUpperCase()}:1-2:5-3`, `${U1.toUpperCase()}:5-3`],
    [`${U1}:tag1:5-3`, `${U1}:tag1:5-3`],
    [`${U1}:0`, `${U1}:0`],
    [`${U1}:0-5`, `${U1}:0-5`],
    [`${U1}:1-9223372036854775807`, `${U1}:1-9223372036854775807`],
    [`${U1}:9223372036854775807`, `${U1}:9223372036854775807`],
    [`${U1}:1-99999999999999999999999`, `${U1}:1-99999999999999999999999`],
    [`${U1}:`, `${U1}:`],
    [`${U1}::1`, `${U1}:`],
    [`${U1}:1-`, `${U1}:1-`],
    [`${U1}:-5`, `${U1}:-5`],
    [`${U1}:1-5x`, `${U1}:1-5x`],
    [`${U1}:1 5`, `${U1}:1 5`],
    [`${U1}:abc-1`, `${U1}:abc-1`],
    [`${U1}:0x10`, `${U1}:0x10`],
    [`${U1}:1abc:1`, `${U1}:1abc`],
    [`${U1}:t-a-g:1`, `${U1}:t-a-g`],
    [`${U1}:${'a'.repeat(33)}:1`, `${U1}:${'a'.repeat(33)}`],
    ['not-a-uuid:1-5', 'not-a-uuid'],
    ['3e11fa47-71ca-11e1-9e33-c80aa942956:1', '3e11fa47-71ca-11e1-9e33-c80aa942956'],
    ['3e11fa4771ca11e19e33c80aa9429562:1', '3e11fa4771ca11e19e33c80aa9429562'],
    ['{3e11fa47-71ca-11e1-9e33-c80aa9429562}:1', '{3e11fa47-71ca-11e1-9e33-c80aa9429562}'],
    [`${U1}:1,:5`, ':5'],
    ['0-1-5', '0-1-5'],
    [`${U1}:1-3,0-1-5`, '0-1-5'],
  ];
  for (const [text, part] of cases) {
    it(`rejects ${JSON.stringify(text)} naming ${JSON.stringify(part)}`, () => assertParseError(text, part));
  }

  it('rejects a non-string with GtidParseError, not a TypeError', () => {
    assert.throws(() => parseMysqlGtidSet(null as unknown as string), GtidParseError);
  });
});

describe('MySQL set arithmetic on examples', () => {
  const a = parse(`${U1}:1-10,${U2}:1-5`);
  const b = parse(`${U1}:3-4:8-12,${U3}:1`);

  it('unions, subtracts and intersects', () => {
    assert.equal(formatMysqlGtidSet(unionGtidSets(a, b)), `${U1}:1-12,${U2}:1-5,${U3}:1`);
    assert.equal(formatMysqlGtidSet(subtractGtidSets(a, b)), `${U1}:1-2:5-7,${U2}:1-5`);
    assert.equal(formatMysqlGtidSet(subtractGtidSets(b, a)), `${U1}:11-12,${U3}:1`);
    assert.equal(formatMysqlGtidSet(intersectGtidSets(a, b)), `${U1}:3-4:8-10`);
  });

  it('tests subsets and equality', () => {
    assert.equal(isGtidSubset(parse(`${U1}:2-3`), a), true);
    assert.equal(isGtidSubset(a, a), true);
    assert.equal(isGtidSubset(a, b), false);
    assert.equal(isGtidSubset(EMPTY_GTID_SET, a), true);
    assert.equal(gtidSetsEqual(parse(`${U1}:1-3:4-5`), parse(`${U1.toUpperCase()}:1-5`)), true);
    assert.equal(gtidSetsEqual(a, b), false);
  });

  it('counts exactly', () => {
    assert.equal(countGtids(a), 15n);
    assert.equal(countGtids(parse(`${U1}:1-9223372036854775806,${U2}:1-9223372036854775806`)), 2n * MAX_GNO);
  });

  it('returns frozen values', () => {
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.entries) && Object.isFrozen(a.entries[0]));
    assert.ok(Object.isFrozen(a.entries[0]?.intervals));
  });
});

describe('MySQL set properties', () => {
  it('round-trips: parse(format(s)) = s, with and without line breaks, and format is canonical', () => {
    fc.assert(
      fc.property(setArb, fc.boolean(), (set, lineBreaks) => {
        const text = formatMysqlGtidSet(set, { lineBreaks });
        const again = parse(text);
        assert.ok(gtidSetsEqual(again, set));
        assert.deepEqual(again, set);
        assert.equal(formatMysqlGtidSet(again, { lineBreaks }), text);
      }),
      RUNS,
    );
  });

  it('matches a transaction-by-transaction model for union, difference, intersection and count', () => {
    fc.assert(
      fc.property(smallSetArb, smallSetArb, (a, b) => {
        const ea = expand(a);
        const eb = expand(b);
        assert.deepEqual(sorted(expand(unionGtidSets(a, b))), sorted(new Set([...ea, ...eb])));
        assert.deepEqual(sorted(expand(subtractGtidSets(a, b))), sorted(new Set([...ea].filter((g) => !eb.has(g)))));
        assert.deepEqual(sorted(expand(intersectGtidSets(a, b))), sorted(new Set([...ea].filter((g) => eb.has(g)))));
        assert.equal(countGtids(a), BigInt(ea.size));
        assert.equal(isGtidSubset(a, b), [...ea].every((g) => eb.has(g)));
      }),
      RUNS,
    );
  });

  it('union is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(setArb, setArb, setArb, (a, b, c) => {
        assert.ok(gtidSetsEqual(unionGtidSets(a, b), unionGtidSets(b, a)));
        assert.ok(gtidSetsEqual(unionGtidSets(unionGtidSets(a, b), c), unionGtidSets(a, unionGtidSets(b, c))));
        assert.ok(gtidSetsEqual(unionGtidSets(a, a), a));
      }),
      RUNS,
    );
  });

  it('a−b ⊆ a, (a−b)∩b = ∅, a ⊆ a∪b, and a ⊆ b iff a−b is empty', () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        const diff = subtractGtidSets(a, b);
        assert.ok(isGtidSubset(diff, a));
        assert.ok(isEmptyGtidSet(intersectGtidSets(diff, b)));
        assert.ok(isGtidSubset(a, unionGtidSets(a, b)));
        assert.equal(isGtidSubset(a, b), isEmptyGtidSet(diff));
        assert.ok(gtidSetsEqual(unionGtidSets(diff, intersectGtidSets(a, b)), a));
        assert.equal(countGtids(unionGtidSets(a, b)), countGtids(a) + countGtids(b) - countGtids(intersectGtidSets(a, b)));
      }),
      RUNS,
    );
  });

  it('equality is mutual inclusion', () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        assert.equal(gtidSetsEqual(a, b), isGtidSubset(a, b) && isGtidSubset(b, a));
      }),
      RUNS,
    );
  });
});
