import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flavorOfVersion, SELECT_VERSION } from './index.js';
import { loadFixture, replay } from './recorded-fixtures.js';

const mariadb = loadFixture('mariadb-10.11.json');
const mysql = loadFixture('mysql-8.4.3.json');
const refused = { errno: -111, code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:3306' };

describe('connectNode with flavor auto', () => {
  it('reads the flavor from VERSION()', () => {
    assert.equal(flavorOfVersion('10.11.19-MariaDB-0+deb12u1-log'), 'mariadb');
    assert.equal(flavorOfVersion('5.5.5-10.6.18-MariaDB'), 'mariadb');
    assert.equal(flavorOfVersion('8.0.36'), 'mysql');
    assert.equal(flavorOfVersion('8.0.36-28'), 'mysql');
    assert.equal(flavorOfVersion('8.4.3'), 'mysql');
  });

  it('detects on first contact, then probes with that flavor', async () => {
    for (const [fixture, version, flavor, show] of [
      [mariadb, '10.11.19-MariaDB-0+deb12u1-log', 'mariadb', 'SHOW SLAVE STATUS'],
      [mysql, '8.4.3', 'mysql', 'SHOW REPLICA STATUS'],
    ] as const) {
      const { driver, transcript } = replay(fixture, 'primary', 'auto', [{ match: SELECT_VERSION, rows: [{ version }] }]);
      assert.throws(() => driver.flavor, /not known yet/);
      const o = await driver.observe();
      assert.equal(o.health, 'up');
      assert.equal(o.state?.flavor, flavor);
      assert.equal(driver.flavor, flavor);
      await driver.observe();
      assert.deepEqual(
        transcript.statements.filter((s) => !s.startsWith('SELECT @@GLOBAL')),
        [SELECT_VERSION, show, show],
        'VERSION() is asked once',
      );
    }
  });

  it('reports down until the server answers, then detects', async () => {
    const { driver } = replay(mysql, 'primary', 'auto', [
      { match: SELECT_VERSION, error: refused, once: true },
      { match: SELECT_VERSION, rows: [{ version: '8.4.3' }] },
    ]);
    const first = await driver.observe();
    assert.equal(first.health, 'down');
    assert.equal(first.state, null);
    assert.match(first.error ?? '', /ECONNREFUSED/);
    assert.equal((await driver.observe()).health, 'up');
    assert.equal(driver.flavor, 'mysql');
  });

  it('an operation before any contact detects first', async () => {
    const { driver, transcript } = replay(mysql, 'primary', 'auto', [{ match: SELECT_VERSION, rows: [{ version: '8.4.3' }] }]);
    await driver.setReadOnly(true);
    assert.deepEqual(transcript.statements, [SELECT_VERSION, 'SET GLOBAL super_read_only = ON']);
  });
});
