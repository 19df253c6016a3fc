import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errantGtids, mariaNotReceived, mariaStateMissing, withoutOrigin } from './errant.js';
import { parseGtid } from './index.js';

const maria = (t: string) => parseGtid('mariadb', t);
const mysql = (t: string) => parseGtid('mysql', t);
const U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const U3 = '896e7882-18fe-11ef-ab88-22222d34d411';

test('MariaDB: a local write with the node\'s own server id that nobody has is errant', () => {
  assert.equal(errantGtids(maria('0-3-101'), { serverId: 3, serverUuid: null }, [maria('0-1-100'), maria('0-1-100')]), '0-3-101');
});

test('MariaDB: transactions received first from the old primary are not errant', () => {
  assert.equal(errantGtids(maria('0-1-105'), { serverId: 2, serverUuid: null }, [maria('0-1-100')]), '');
});

test('MariaDB: a local write that another node also has is not errant', () => {
  assert.equal(errantGtids(maria('0-3-101'), { serverId: 3, serverUuid: null }, [maria('0-3-101')]), '');
});

test('MySQL: only the node\'s own uuid counts, and only what others lack', () => {
  const node = mysql(`${U1}:1-100,\n${U3}:1-2`);
  assert.equal(errantGtids(node, { serverId: 3, serverUuid: U3.toUpperCase() }, [mysql(`${U1}:1-90`)]), `${U3}:1-2`);
  assert.equal(errantGtids(node, { serverId: 3, serverUuid: U3 }, [mysql(`${U1}:1-90,${U3}:1-2`)]), '');
  assert.equal(errantGtids(node, { serverId: 3, serverUuid: U3 }, []), `${U3}:1-2`);
});

test('MariaDB binlog state shows a demoted primary\'s late writes that positions hide', () => {
  // db1 wrote 0-1-101 after it was cut off; db2 was promoted at 0-1-100 and went on to 0-2-150.
  assert.equal(mariaStateMissing('0-1-101', '0-1-100,0-2-150'), '0-1-101');
  assert.equal(mariaStateMissing('0-1-100', '0-1-100,0-2-150'), '');
  assert.equal(mariaStateMissing('0-1-100,0-2-140', '0-2-150,0-1-100'), '');
  assert.equal(mariaStateMissing('', '0-1-1'), '');
  assert.equal(mariaStateMissing('0-1-5,1-3-2', '0-1-5'), '1-3-2');
});

test('withoutOrigin drops what the primary wrote itself (its published state is only older), keeps the rest', () => {
  assert.equal(withoutOrigin('mariadb', '0-1-12,0-3-4,9-1-2', { serverId: 1, serverUuid: null }), '0-3-4');
  assert.equal(withoutOrigin('mariadb', '', { serverId: 1, serverUuid: null }), '');
  const a = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
  const b = '4a4ac4e8-71ca-11e1-9e33-c80aa9429562';
  assert.equal(withoutOrigin('mysql', `${a}:5-7,\n${b}:1-2`, { serverId: 1, serverUuid: a.toUpperCase() }), `${b}:1-2`);
  assert.equal(withoutOrigin('mysql', `${a}:5-7`, { serverId: 1, serverUuid: a }), '');
});

test('mariaNotReceived: covered only by the same server\'s GTID in the domain, at least as far', () => {
  assert.equal(mariaNotReceived('0-1-12', '0-1-12'), '');
  assert.equal(mariaNotReceived('0-1-12', '0-1-15,1-2-3'), '');
  assert.equal(mariaNotReceived('0-1-12', '0-1-11'), '0-1-12');
  // A demoted primary's late write 0-1-101 is not covered by a new primary at 0-2-150.
  assert.equal(mariaNotReceived('0-1-101,9-3-1', '0-2-150'), '0-1-101,9-3-1');
  assert.equal(mariaNotReceived('0-1-101', ''), '0-1-101');
});
