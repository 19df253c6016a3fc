import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GtidParseError } from '../errors.js';
import {
  compareMariaDomain,
  compareMariaGtidLists,
  formatMariaGtidList,
  mariaContains,
  mariaMissing,
  mergeMariaGtidLists,
  parseMariaGtidList,
  type MariaGtid,
  type MariaGtidList,
} from './mariadb.js';

const RUNS = { numRuns: 300 };
const parse = parseMariaGtidList;
const relation = (a: string, b: string) => compareMariaGtidLists(parse(a), parse(b)).relation;

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

/** Lists over a few domains and servers, with small and huge sequence numbers, so domains collide. */
const seqArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 12n }),
  fc.bigInt({ min: 2n ** 64n - 4n, max: 2n ** 64n - 1n }),
);
const gtidArb: fc.Arbitrary<MariaGtid> = fc
  .tuple(fc.integer({ min: 1, max: 3 }), seqArb)
  .map(([server, seq]) => ({ server, seq }));
const listArb: fc.Arbitrary<MariaGtidList> = fc
  .uniqueArray(fc.tuple(fc.integer({ min: 0, max: 3 }), gtidArb), { selector: ([d]) => d, maxLength: 4 })
  .map((entries) => new Map(entries.sort(([a], [b]) => a - b)));

describe('parseMariaGtidList on values as the server prints them', () => {
  it('reads SELECT @@gtid_binlog_pos values', () => {
    assert.deepEqual(parse('0-1-42'), new Map([[0, { server: 1, seq: 42n }]]));
    assert.deepEqual(
      parse('0-1-42,1-3-7'),
      new Map([
        [0, { server: 1, seq: 42n }],
        [1, { server: 3, seq: 7n }],
      ]),
    );
  });

  it('reads an empty position, as a fresh server prints it', () => {
    assert.equal(parse('').size, 0);
    assert.equal(parse('  \n').size, 0);
  });

  it('accepts spaces and newlines after commas (Gtid_IO_Pos, copy-pasted output)', () => {
    assert.equal(formatMariaGtidList(parse('0-1-42, 1-3-7')), '0-1-42,1-3-7');
    assert.equal(formatMariaGtidList(parse('0-1-42,\n1-3-7\n')), '0-1-42,1-3-7');
  });

  it('formats canonically: sorted by domain, leading zeros dropped', () => {
    assert.equal(formatMariaGtidList(parse('2-1-5,0-1-42,1-3-7')), '0-1-42,1-3-7,2-1-5');
    assert.equal(formatMariaGtidList(parse('007-01-0042')), '7-1-42');
    assert.equal(formatMariaGtidList(new Map()), '');
  });

  it('keeps 64-bit sequence numbers and 32-bit ids exact', () => {
    const list = parse('4294967295-4294967295-18446744073709551615');
    assert.deepEqual(list.get(4294967295), { server: 4294967295, seq: 18446744073709551615n });
    assert.equal(formatMariaGtidList(list), '4294967295-4294967295-18446744073709551615');
  });
});

describe('parseMariaGtidList on malformed input', () => {
  const cases: Array<[string, string]> = [
    ['0-1-x', '0-1-x'],
    ['0-1-42,0-1-x', '0-1-x'],
    ['0-1', '0-1'],
    ['0-1-2-3', '0-1-2-3'],
    ['-1-1-1', '-1-1-1'],
    ['0--1-1', '0--1-1'],
    ['0-1-1.5', '0-1-1.5'],
    ['0-1-4 2', '0-1-4 2'],
    ['0-1-+2', '0-1-+2'],
    ['a', 'a'],
    ['0-1-18446744073709551616', '0-1-18446744073709551616'],
    ['4294967296-1-1', '4294967296-1-1'],
    ['0-4294967296-1', '0-4294967296-1'],
    ['0-1-42,0-2-43', '0-2-43'],
    ['0-1-42,1-1-1, 0-1-42', '0-1-42'],
    ['0-1-42,', ','],
    ['0-1-42,,1-1-1', ','],
    [',0-1-42', ','],
    ['3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5'],
  ];
  for (const [text, part] of cases) {
    it(`rejects ${JSON.stringify(text)} naming ${JSON.stringify(part)}`, () => assertParseError(text, part));
  }

  it('rejects a non-string with GtidParseError, not a TypeError', () => {
    assert.throws(() => parseMariaGtidList(undefined as unknown as string), GtidParseError);
  });
});

describe('compareMariaGtidLists', () => {
  it('follows the per-domain rules', () => {
    assert.equal(relation('0-1-5', '0-1-5'), 'equal');
    assert.equal(relation('0-1-6', '0-1-5'), 'ahead');
    assert.equal(relation('0-1-5', '0-1-6'), 'behind');
    assert.equal(relation('0-1-5', '0-2-5'), 'diverged');
    assert.equal(relation('0-1-5,1-2-1', '0-1-5'), 'ahead');
    assert.equal(relation('', '0-1-1'), 'behind');
    assert.equal(relation('', ''), 'equal');
  });

  it('calls ahead in one domain and behind in another diverged, with the breakdown', () => {
    assert.deepEqual(compareMariaGtidLists(parse('0-1-6,1-2-1'), parse('1-2-2,0-1-5')), {
      relation: 'diverged',
      domains: [
        { domain: 0, relation: 'ahead' },
        { domain: 1, relation: 'behind' },
      ],
    });
  });

  it('treats seq 0 as nothing applied, whatever the server id', () => {
    assert.equal(relation('0-1-0', ''), 'equal');
    assert.equal(relation('0-1-0', '0-2-0'), 'equal');
    assert.equal(compareMariaDomain({ server: 1, seq: 0n }, undefined), 'equal');
  });

  it('compares beyond 2^53 exactly', () => {
    assert.equal(relation('0-1-9007199254740993', '0-1-9007199254740992'), 'ahead');
    assert.equal(relation('0-1-18446744073709551614', '0-1-18446744073709551615'), 'behind');
  });
});

describe('mergeMariaGtidLists, mariaMissing, mariaContains', () => {
  it('merges to the higher seq per domain', () => {
    const merged = mergeMariaGtidLists(parse('0-1-5,1-2-3'), parse('2-3-1,0-1-7'));
    assert.equal(formatMariaGtidList(merged), '0-1-7,1-2-3,2-3-1');
  });

  it("keeps a's GTID where both stop at the same seq on different servers", () => {
    assert.equal(formatMariaGtidList(mergeMariaGtidLists(parse('0-1-5'), parse('0-2-5'))), '0-1-5');
    assert.equal(formatMariaGtidList(mergeMariaGtidLists(parse('0-2-5'), parse('0-1-5'))), '0-2-5');
  });

  it('lists what a has that b lacks', () => {
    assert.deepEqual(mariaMissing(parse('0-1-10,1-2-3'), parse('0-1-4')), [
      { domain: 0, server: 1, fromSeqExclusive: 4n, toSeq: 10n },
      { domain: 1, server: 2, fromSeqExclusive: 0n, toSeq: 3n },
    ]);
    assert.deepEqual(mariaMissing(parse('0-1-5'), parse('0-2-5')), [
      { domain: 0, server: 1, fromSeqExclusive: 4n, toSeq: 5n },
    ]);
    assert.deepEqual(mariaMissing(parse('0-1-4'), parse('0-1-10,1-2-3')), []);
    assert.deepEqual(mariaMissing(parse('0-1-0'), parse('')), []);
  });

  it('says whether a has everything b has', () => {
    assert.equal(mariaContains(parse('0-1-10,1-2-3'), parse('0-1-4')), true);
    assert.equal(mariaContains(parse('0-1-4'), parse('0-1-10')), false);
    assert.equal(mariaContains(parse('0-1-5'), parse('0-2-5')), false);
    assert.equal(mariaContains(parse(''), parse('')), true);
  });
});

describe('MariaDB list properties', () => {
  it('round-trips: parse(format(l)) = l, and format is canonical', () => {
    fc.assert(
      fc.property(listArb, (list) => {
        const text = formatMariaGtidList(list);
        assert.deepEqual(parse(text), list);
        assert.equal(formatMariaGtidList(parse(text)), text);
      }),
      RUNS,
    );
  });

  it('parses any server-style spelling of a list to the same value', () => {
    const spelled = listArb.chain((list) =>
      fc
        .tuple(fc.shuffledSubarray([...list], { minLength: list.size }), fc.constantFrom(',', ', ', ',\n'))
        .map(([entries, sep]) => ({ list, text: entries.map(([d, g]) => `${d}-${g.server}-${g.seq}`).join(sep) })),
    );
    fc.assert(fc.property(spelled, ({ list, text }) => assert.deepEqual(parse(text), list)), RUNS);
  });

  it('is antisymmetric: a ahead of b exactly when b is behind a', () => {
    const flip = { ahead: 'behind', behind: 'ahead', equal: 'equal', diverged: 'diverged' } as const;
    fc.assert(
      fc.property(listArb, listArb, (a, b) => {
        assert.equal(compareMariaGtidLists(b, a).relation, flip[compareMariaGtidLists(a, b).relation]);
      }),
      RUNS,
    );
  });

  it('agrees with containment: equal iff each contains the other, missing empty iff b contains a', () => {
    fc.assert(
      fc.property(listArb, listArb, (a, b) => {
        const rel = compareMariaGtidLists(a, b).relation;
        assert.equal(rel === 'equal', mariaContains(a, b) && mariaContains(b, a));
        assert.equal(rel === 'ahead' || rel === 'equal', mariaContains(a, b));
        assert.equal(mariaMissing(a, b).length === 0, mariaContains(b, a));
      }),
      RUNS,
    );
  });

  it('merge contains a, and b unless they stop at the same seq on different servers', () => {
    fc.assert(
      fc.property(listArb, listArb, (a, b) => {
        const merged = mergeMariaGtidLists(a, b);
        assert.ok(mariaContains(merged, a));
        // A domain only diverges when both stop at the same seq on different servers.
        const sameSeqSplit = compareMariaGtidLists(a, b).domains.some((d) => d.relation === 'diverged');
        assert.equal(mariaContains(merged, b), !sameSeqSplit);
      }),
      RUNS,
    );
  });
});
