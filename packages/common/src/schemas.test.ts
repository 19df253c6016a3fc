import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeValue, encodeValue, isInMaintenance, PrimarySchema, ClusterConfigSchema, ClusterConfigStrictSchema, type Primary } from './schemas.js';
import { EtcdValueError, ErrorCodes } from './errors.js';
import { clusterKeys, epochSegment, isValidName, keyName } from './keys.js';

const primary: Primary = {
  node: 'db1', host: '127.0.0.1', port: 3306, epoch: 3, state: 'ready', since: 1, gtid: '0-1-5', serverId: 1, serverUuid: null,
};

test('a value round-trips through its schema', () => {
  const back = decodeValue(PrimarySchema, 'k', encodeValue(primary));
  assert.deepEqual(back, { ok: true, value: primary });
  assert.equal(decodeValue(PrimarySchema, 'k', null), null);
});

test('a malformed or foreign value is reported, never thrown', () => {
  for (const raw of ['not json', '{"node":"db1"}', '42', JSON.stringify({ ...primary, state: 'weird' }), Buffer.from('{')]) {
    const r = decodeValue(PrimarySchema, '/primacy/main/primary', raw);
    assert.ok(r && !r.ok);
    assert.ok(r.error instanceof EtcdValueError);
    assert.equal(r.error.code, ErrorCodes.ETCD_VALUE_INVALID);
    assert.match(r.error.message, /^ignoring malformed value at \/primacy\/main\/primary: /);
    assert.doesNotMatch(r.error.message, /\n/);
  }
});

test('cluster config fills its defaults', () => {
  const r = decodeValue(ClusterConfigSchema, 'c', '{}');
  assert.deepEqual(r, { ok: true, value: { paused: false, nodes: {} } });
});

test('cluster config: per-node maintenance; the strict schema refuses what the lenient one drops', () => {
  const config = ClusterConfigSchema.parse({ nodes: { db1: { maintenance: true }, db2: { maintenance: false, noPromot: true } } });
  assert.deepEqual(config.nodes, { db1: { maintenance: true }, db2: { maintenance: false } });
  assert.deepEqual([isInMaintenance(config, 'db1'), isInMaintenance(config, 'db2'), isInMaintenance(config, 'db9')], [true, false, false]);
  const strict = ClusterConfigStrictSchema.safeParse({ nodes: { db2: { noPromot: true } } });
  assert.ok(!strict.success && strict.error.issues[0]?.code === 'unrecognized_keys');
  assert.ok(ClusterConfigStrictSchema.safeParse({ paused: true, nodes: { db1: { priority: 1, noPromote: true, maintenance: true } }, maxLagMs: 1, antiFlapMs: 0, durability: 'strict' }).success);
});

test('key layout follows DESIGN.md and orders epochs', () => {
  const k = clusterKeys('main');
  assert.equal(k.primary, '/primacy/main/primary');
  assert.equal(k.epoch, '/primacy/main/epoch');
  assert.equal(k.member('db1'), '/primacy/main/members/db1');
  assert.equal(k.op(7), '/primacy/main/ops/0000000007');
  assert.equal(k.config, '/primacy/main/config');
  assert.equal(k.request('r1'), '/primacy/main/requests/r1');
  assert.equal(clusterKeys('x', '/other/').primary, '/other/x/primary');
  assert.ok(k.op(9) < k.op(10));
  assert.equal(epochSegment(12), '0000000012');
  assert.equal(keyName(k.membersPrefix, k.member('db2')), 'db2');
  assert.ok(isValidName('db-1.a_b'));
  assert.ok(!isValidName('a/b') && !isValidName('') && !isValidName('-x'));
});
