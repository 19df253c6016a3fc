import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, GtidParseError, PrimacyError } from '../errors.js';
import {
  compareGtid,
  formatGtid,
  gtidContains,
  gtidCountMissing,
  gtidMissing,
  isEmptyGtid,
  mergeGtid,
  mostAdvanced,
  parseGtid,
  type Flavor,
  type GtidPosition,
} from './index.js';

const RUNS = { numRuns: 250 };
const U1 = '1f8a2b3c-0d4e-11ef-9a5b-0242ac120002';
const U2 = '5c0d8e7a-0d4f-11ef-8c21-0242ac120003';
const maria = (text: string) => parseGtid('mariadb', text);
const mysql = (text: string) => parseGtid('mysql', text);

function assertFlavorError(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof PrimacyError && err.code === ErrorCodes.GTID_FLAVOR);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries drawn from small universes, so equal, behind, ahead and diverged all come up often.

const mariaPosArb: fc.Arbitrary<GtidPosition> = fc
  .uniqueArray(
    fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 3 })),
    { selector: ([d]) => d, maxLength: 2 },
  )
  .map((gtids) => maria(gtids.map(([d, s, n]) => `${d}-${s}-${n}`).join(',')));

const MYSQL_PIECES = [`${U1}:1-5`, `${U1}:6-8`, `${U2}:1-3`, `${U1}:t:1`, `${U1}:2`, `${U2}:9`];
const mysqlPosArb: fc.Arbitrary<GtidPosition> = fc.subarray(MYSQL_PIECES).map((pieces) => mysql(pieces.join(',\n')));

const positionsArb: fc.Arbitrary<GtidPosition[]> = fc.oneof(
  fc.array(mariaPosArb, { minLength: 1, maxLength: 5 }),
  fc.array(mysqlPosArb, { minLength: 1, maxLength: 5 }),
);
const pairArb = fc.oneof(fc.tuple(mariaPosArb, mariaPosArb), fc.tuple(mysqlPosArb, mysqlPosArb));

/** MariaDB merge keeps a's GTID where both stop at the same seq on different servers (see mariadb.ts). */
function sameSeqSplit(a: GtidPosition, b: GtidPosition): boolean {
  if (a.flavor !== 'mariadb' || b.flavor !== 'mariadb') return false;
  return [...a.list].some(([d, g]) => {
    const h = b.list.get(d);
    return h !== undefined && g.seq !== 0n && h.seq === g.seq && h.server !== g.server;
  });
}

// ---------------------------------------------------------------------------------------------

describe('parseGtid and formatGtid', () => {
  it('reads and prints each flavor canonically', () => {
    assert.equal(formatGtid(maria('1-3-7, 0-1-42')), '0-1-42,1-3-7');
    assert.equal(formatGtid(mysql(`${U2}:1-3,\n${U1.toUpperCase()}:5:1-4`)), `${U1}:1-5,${U2}:1-3`);
    assert.equal(formatGtid(maria('')), '');
    assert.equal(formatGtid(mysql('')), '');
  });

  it('throws GtidParseError naming the bad part, for either flavor', () => {
    assert.throws(() => maria('0-1-42,0-1-x'), (e: unknown) => e instanceof GtidParseError && e.part === '0-1-x');
    assert.throws(() => mysql(`${U1}:5-3`), (e: unknown) => e instanceof GtidParseError && e.part === `${U1}:5-3`);
    assert.throws(() => maria(`${U1}:1`), GtidParseError);
    assert.throws(() => mysql('0-1-42'), GtidParseError);
  });

  it('refuses an unknown flavor with GTID_FLAVOR', () => {
    assertFlavorError(() => parseGtid('postgres' as Flavor, ''));
  });

  it('tells whether a position is empty', () => {
    assert.equal(isEmptyGtid(maria('')), true);
    assert.equal(isEmptyGtid(maria('0-1-0')), true);
    assert.equal(isEmptyGtid(maria('0-1-1')), false);
    assert.equal(isEmptyGtid(mysql('')), true);
    assert.equal(isEmptyGtid(mysql(`${U1}:1`)), false);
  });
});

describe('compareGtid, gtidContains, gtidMissing, mergeGtid on examples', () => {
  it('compares MySQL sets by inclusion', () => {
    assert.equal(compareGtid(mysql(`${U1}:1-5`), mysql(`${U1}:1-5`)), 'equal');
    assert.equal(compareGtid(mysql(`${U1}:1-4`), mysql(`${U1}:1-5`)), 'behind');
    assert.equal(compareGtid(mysql(`${U1}:1-5,${U2}:1`), mysql(`${U1}:1-5`)), 'ahead');
    assert.equal(compareGtid(mysql(`${U1}:1-4,${U2}:1`), mysql(`${U1}:1-5`)), 'diverged');
    assert.equal(compareGtid(mysql(`${U1}:1-3:5`), mysql(`${U1}:1-4`)), 'diverged');
  });

  it('compares MariaDB lists per domain', () => {
    assert.equal(compareGtid(maria('0-1-42'), maria('0-1-42')), 'equal');
    assert.equal(compareGtid(maria('0-1-41'), maria('0-1-42')), 'behind');
    assert.equal(compareGtid(maria('0-1-42,1-3-7'), maria('0-1-42')), 'ahead');
    assert.equal(compareGtid(maria('0-1-42'), maria('0-2-42')), 'diverged');
  });

  it('names errant transactions in the replica’s own flavor', () => {
    const primary = mysql(`${U1}:1-12`);
    const replica = mysql(`${U1}:1-10,\n${U2}:1`);
    assert.equal(gtidMissing(replica, primary), `${U2}:1`);
    assert.equal(gtidMissing(primary, replica), `${U1}:11-12`);
    assert.equal(gtidMissing(replica, mergeGtid(primary, replica)), '');
    assert.equal(gtidContains(primary, replica), false);
    assert.equal(gtidContains(mergeGtid(primary, replica), replica), true);
  });

  it('writes MariaDB missing ranges as a’s last GTID in each domain where a has more', () => {
    assert.equal(gtidMissing(maria('0-1-10,1-2-3'), maria('0-1-4')), '0-1-10,1-2-3');
    assert.equal(gtidMissing(maria('0-1-5,1-2-3'), maria('0-2-5,1-2-3')), '0-1-5');
    assert.equal(gtidMissing(maria('0-1-4'), maria('0-1-10')), '');
    assert.equal(formatGtid(mergeGtid(maria('0-1-5,1-2-3'), maria('0-1-7'))), '0-1-7,1-2-3');
  });

  it('refuses to mix flavors with GTID_FLAVOR', () => {
    const a = maria('0-1-1');
    const b = mysql(`${U1}:1`);
    assertFlavorError(() => compareGtid(a, b));
    assertFlavorError(() => gtidContains(b, a));
    assertFlavorError(() => gtidMissing(a, b));
    assertFlavorError(() => mergeGtid(a, b));
    assertFlavorError(() => mostAdvanced([a, a, b]));
  });
});

describe('mostAdvanced on examples', () => {
  it('picks the position that contains all others', () => {
    assert.deepEqual(mostAdvanced([mysql(`${U1}:1-5`), mysql(`${U1}:1-7`), mysql(`${U1}:1-6`)]), { index: 1 });
    assert.deepEqual(mostAdvanced([maria('0-1-5'), maria('0-1-7,1-2-1'), maria('1-2-1')]), { index: 1 });
    assert.deepEqual(mostAdvanced([maria('')]), { index: 0 });
  });

  it('picks the first of several equal leaders', () => {
    assert.deepEqual(mostAdvanced([mysql(`${U1}:1-5`), mysql(`${U1}:1-7`), mysql(`${U1}:1-7`)]), { index: 1 });
  });

  it('reports divergence when no position contains all others', () => {
    assert.deepEqual(mostAdvanced([mysql(`${U1}:1-7`), mysql(`${U1}:1-6,${U2}:1`)]), { diverged: true });
    assert.deepEqual(mostAdvanced([maria('0-1-7'), maria('0-2-7')]), { diverged: true });
    assert.deepEqual(mostAdvanced([maria('0-1-7,1-1-1'), maria('0-1-6,1-1-2')]), { diverged: true });
  });

  it('refuses an empty list', () => {
    assert.throws(
      () => mostAdvanced([]),
      (e: unknown) => e instanceof PrimacyError && e.code === ErrorCodes.OPERATION_REFUSED,
    );
  });
});

describe('facade properties, for both flavors', () => {
  it('round-trips: parse(format(p)) formats the same and compares equal', () => {
    fc.assert(
      fc.property(fc.oneof(mariaPosArb, mysqlPosArb), (p) => {
        const again = parseGtid(p.flavor, formatGtid(p));
        assert.equal(formatGtid(again), formatGtid(p));
        assert.equal(compareGtid(again, p), 'equal');
      }),
      RUNS,
    );
  });

  it('is antisymmetric: a ahead of b exactly when b is behind a', () => {
    const flip = { ahead: 'behind', behind: 'ahead', equal: 'equal', diverged: 'diverged' } as const;
    fc.assert(
      fc.property(pairArb, ([a, b]) => assert.equal(compareGtid(b, a), flip[compareGtid(a, b)])),
      RUNS,
    );
  });

  it('compare agrees with containment, and missing is empty exactly when b contains a', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const rel = compareGtid(a, b);
        assert.equal(rel === 'equal', gtidContains(a, b) && gtidContains(b, a));
        assert.equal(rel === 'equal' || rel === 'ahead', gtidContains(a, b));
        const missing = gtidMissing(a, b);
        assert.equal(missing === '', gtidContains(b, a));
        assert.doesNotThrow(() => parseGtid(a.flavor, missing));
      }),
      RUNS,
    );
  });

  it('merge contains both (MariaDB: except a same-seq split, where a is kept)', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const merged = mergeGtid(a, b);
        assert.ok(gtidContains(merged, a));
        assert.equal(gtidContains(merged, b), !sameSeqSplit(a, b));
      }),
      RUNS,
    );
  });

  it('mostAdvanced agrees with pairwise containment', () => {
    fc.assert(
      fc.property(positionsArb, (ps) => {
        const containsAll = ps.map((p) => ps.every((q) => gtidContains(p, q)));
        const result = mostAdvanced(ps);
        if ('index' in result) {
          assert.equal(containsAll[result.index], true);
          assert.equal(containsAll.indexOf(true), result.index);
        } else {
          assert.equal(containsAll.includes(true), false);
        }
      }),
      RUNS,
    );
  });
});

describe('gtidCountMissing', () => {
  it('counts the transactions a has that b lacks, in either flavor', () => {
    assert.equal(gtidCountMissing(maria('0-1-18,1-2-5'), maria('0-1-16,1-2-5')), 2n);
    assert.equal(gtidCountMissing(maria('0-1-16'), maria('0-1-18')), 0n);
    assert.equal(gtidCountMissing(mysql(`${U1}:1-10,${U2}:1-3`), mysql(`${U1}:1-7`)), 6n);
    assertFlavorError(() => gtidCountMissing(maria('0-1-1'), mysql(`${U1}:1`)));
  });
});
