import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePoolOptions, compileRegistrationOptions, compileWatchOptions, type PoolOptions } from './options.js';
import { registrationFor } from './registration.js';
import { rejectsOptions } from './testing/options.js';

const rejects = rejectsOptions;

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

  it('take etcd as endpoints with TLS and a user, and check the halves and the files up front', () => {
    const endpoints = ['https://127.0.0.1:2379'];
    const o = compileWatchOptions({ etcd: { endpoints, auth: { username: 'app', password: 'pw' } }, cluster: 'main' });
    assert.deepEqual(o.etcd, { endpoints, credentials: null, auth: { username: 'app', password: 'pw' }, origins: { ca: null, cert: null } });
    assert.deepEqual((compileWatchOptions({ etcd: endpoints, cluster: 'main' }).etcd as { auth: unknown }).auth, null);
    const watch = (etcd: unknown) => () => compileWatchOptions({ etcd: etcd as never, cluster: 'main' });
    rejects(watch({ endpoints, tls: { cert: '-----BEGIN CERTIFICATE-----' } }), /^invalid watchPrimary options: etcd\.tls\.key: required with tls\.cert/);
    rejects(watch({ endpoints, tls: { key: Buffer.from('k') } }), /^invalid watchPrimary options: etcd\.tls\.cert: required with tls\.key/);
    rejects(watch({ endpoints, auth: { username: 'app' } }), /^invalid watchPrimary options: etcd\.auth\.password: etcd user app needs a password$/);
    rejects(watch({ endpoints, auth: { password: 'pw' } }), /^invalid watchPrimary options: etcd\.auth\.username: required/);
    rejects(watch({ endpoints, tls: { ca: { file: 'no/such/ca.pem' } } }), /^invalid watchPrimary options: etcd\.tls\.ca: cannot read file no\/such\/ca\.pem: no such file$/);
    rejects(watch({ endpoints, tls: { ca: 'ca.pem' } }), /etcd\.tls\.ca: not a PEM certificate; to read a file, give \{ file: "ca\.pem" \}$/);
    rejects(watch({ endpoints, tls: { ca: 7 } }), /etcd\.tls\.ca: expected PEM text \(a string or a Buffer\) or \{ file: PATH \}/);
    rejects(watch({ endpoints: ['http://127.0.0.1:2379'], tls: {} }), /etcd\.endpoints: http:\/\/127\.0\.0\.1:2379 is plain http but tls is given: use https:\/\//);
    rejects(watch({ endpoints, tsl: {} }), /etcd: Unrecognized key: "tsl"/);
    rejects(watch('http://127.0.0.1:2379'), /etcd: expected a list of etcd endpoint URLs, \{ endpoints, tls\?, auth\? \}, or an Etcd3 client/);
    rejects(() => compileRegistrationOptions({ etcd: { endpoints, auth: { username: 'app', password: '' } }, cluster: 'main', id: 'a' }), /^invalid registerClient options: etcd\.auth\.password/);
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
