import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientError } from './errors.js';
import { compilePoolOptions, compileRegistrationOptions, compileWatchOptions, type PoolOptions } from './options.js';
import { registrationFor } from './registration.js';

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ClientError, String(err));
    assert.equal(err.code, 'PRIMACY_E_OPTIONS_INVALID');
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

describe('options', () => {
  it('fill every default and are frozen', () => {
    const o = compilePoolOptions({ etcd: ['http://127.0.0.1:2379'], cluster: 'main', connection: { user: 'app', password: 'pw' } });
    assert.equal(o.root, '/primacy');
    assert.equal(o.holdWritesMs, 5000);
    assert.equal(o.maxReplicaLagMs, 1000);
    assert.equal(o.connectionLimit, 10);
    assert.equal(o.verifyHeartbeat, true);
    assert.equal(o.register, undefined);
    assert.ok(Object.isFrozen(o));
    const r = compilePoolOptions({ etcd: ['http://127.0.0.1:2379'], cluster: 'main', connection: {}, register: { id: 'proxy-1' } });
    assert.deepEqual(r.register, { id: 'proxy-1', ttlSeconds: 5, drainMs: 1000 });
    assert.equal(compileWatchOptions({ etcd: ['http://127.0.0.1:2379'], cluster: 'main' }).etcdTimeoutMs, 2000);
  });

  it('name the wrong field and what was expected, in one line', () => {
    const base: PoolOptions = { etcd: ['http://127.0.0.1:2379'], cluster: 'main', connection: { user: 'app' } };
    rejects(() => compilePoolOptions({ ...base, holdWritesMs: -1 }), /holdWritesMs/);
    rejects(() => compilePoolOptions({ ...base, cluster: 'a/b' }), /cluster: expected a name/);
    rejects(() => compilePoolOptions({ ...base, etcd: [] }), /etcd/);
    rejects(() => compilePoolOptions({ ...base, connection: { user: 'app', host: 'x' } as never }), /host, port and socketPath come from etcd/);
    rejects(() => compilePoolOptions({ ...base, connection: { multipleStatements: true } }), /multipleStatements/);
    rejects(() => compilePoolOptions({ ...base, holdWrites: 1 } as never), /holdWrites/);
    rejects(() => compilePoolOptions({ connection: {} }), /give "etcd" and "cluster", or a "watch"/);
    rejects(() => compileRegistrationOptions({ etcd: ['http://127.0.0.1:2379'], cluster: 'main', id: 'bad id' }), /id: expected a name/);
    rejects(() => compileWatchOptions({ etcd: ['not a url'], cluster: 'main' }), /etcd/);
  });
});

describe('registrationFor', () => {
  const p = { node: 'db1', host: 'h', port: 1, epoch: 7, since: 0, gtid: '', serverId: 1, serverUuid: null };
  it('holds writes unless the primary is ready, and reports its epoch', () => {
    assert.deepEqual(registrationFor('a', { ...p, state: 'ready' }, 0, 5), { id: 'a', writesPaused: false, epoch: 7, updatedAt: 5 });
    assert.deepEqual(registrationFor('a', { ...p, state: 'switching' }, 0, 5), { id: 'a', writesPaused: true, epoch: 7, updatedAt: 5 });
    assert.deepEqual(registrationFor('a', { ...p, state: 'promoting', epoch: 8 }, 7, 5), { id: 'a', writesPaused: true, epoch: 8, updatedAt: 5 });
    assert.deepEqual(registrationFor('a', null, 7, 5), { id: 'a', writesPaused: true, epoch: 7, updatedAt: 5 });
  });
});
