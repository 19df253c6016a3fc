import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostPort, mysqlDsn, readyPrimary, readyReplicas } from './dsn.js';
import { CliError, ExitCode } from './errors.js';
import { healthyView, member, primary, replicatingFrom } from './testing/fixtures.js';

function refusal(f: () => unknown): string | null {
  try {
    f();
  } catch (err) {
    if (err instanceof CliError && err.exitCode === ExitCode.FAILED) return err.message;
    throw err;
  }
  return null;
}

describe('which-primary and dsn', () => {
  test('the ready primary; none, or one not ready, is a refusal (exit 1) that says why', () => {
    assert.deepEqual(readyPrimary(healthyView()), { node: 'db2', host: '127.0.0.1', port: 3302 });
    assert.equal(refusal(() => readyPrimary(healthyView({ primary: null }))), 'main has no primary');
    assert.equal(refusal(() => readyPrimary(healthyView({ primary: primary('db2', { state: 'switching', epoch: 4 }) }))), 'main has no ready primary: db2 (epoch 4) is switching');
  });

  test('replicas fit to read from, least lag first; a lag limit drops the laggards and the unknown', () => {
    assert.deepEqual(readyReplicas(healthyView(), null).map((e) => e.node), ['db1', 'db3'], 'db1 at 12 ms, db3 at 1.5 s');
    assert.deepEqual(readyReplicas(healthyView(), 1000).map((e) => e.node), ['db1']);
    assert.equal(refusal(() => readyReplicas(healthyView(), 5)), 'main has no ready replica of db2 within 5 ms of lag');
    const v = healthyView({
      config: { nodes: { db3: { maintenance: true } } },
      members: [
        member('db1', {}, { replication: replicatingFrom('db2', { sqlRunning: false }), lagMs: 1 }),
        member('db2', { role: 'primary' }, { readOnly: false }),
        member('db3', {}, { replication: replicatingFrom('db2'), lagMs: 1 }),
        member('db4', {}, { replication: replicatingFrom('db9'), lagMs: 1 }),
        member('db5', {}, { replication: replicatingFrom('db2'), lagMs: null }),
      ],
    });
    assert.deepEqual(readyReplicas(v, null).map((e) => e.node), ['db5'], 'db1 broken, db3 in maintenance, db4 replicates from elsewhere');
    assert.equal(refusal(() => readyReplicas(v, 100)), 'main has no ready replica of db2 within 100 ms of lag');
  });

  test('host:port and the DSN, IPv6 in brackets, never a password', () => {
    assert.equal(hostPort({ host: '10.0.0.5', port: 3306 }), '10.0.0.5:3306');
    assert.equal(hostPort({ host: 'fd00::5', port: 3306 }), '[fd00::5]:3306');
    const e = { node: 'db1', host: 'db1.example', port: 3307 };
    assert.equal(mysqlDsn(e, null, null), 'mysql://db1.example:3307/');
    assert.equal(mysqlDsn(e, 'app', 'shop'), 'mysql://app@db1.example:3307/shop');
    assert.equal(mysqlDsn(e, 'a@b', 'x/y'), 'mysql://a%40b@db1.example:3307/x%2Fy');
  });
});
