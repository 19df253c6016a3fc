import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedNetwork } from './simulated-mariadb.js';

describe('a simulated MariaDB, through the real MariaDB driver', () => {
  it('starts read-only with an empty binlog and no source', async () => {
    const db = new SimulatedNetwork().server('127.88.0.1', 3306, 1);
    const o = await db.driver().observe();
    assert.equal(o.health, 'up', o.error ?? '');
    assert.equal(o.state?.readOnly, true);
    assert.equal(o.state?.replication, null);
    assert.equal(o.state?.gtid.executed, '');
  });

  it('a replica follows its source: position, heartbeat, semi-sync; a revoke stops it', async () => {
    const net = new SimulatedNetwork();
    const p = net.server('127.88.0.1', 3306, 1).driver();
    const r = net.server('127.88.0.2', 3306, 2).driver();
    await p.setReadOnly(false);
    await p.setSemiSyncSource(true, 10_000);
    await r.setSemiSyncReplica(true);
    await r.replicateFrom({ host: '127.88.0.1', port: 3306, user: 'repl', password: 'x' });
    await p.writeHeartbeat(1, 'db1');
    await p.writeHeartbeat(1, 'db1');
    const [po, ro] = [await p.observe(), await r.observe()];
    assert.equal(po.state?.gtid.executed, '0-1-2');
    assert.equal(po.state?.semiSync.sourceClients, 1);
    assert.equal(ro.state?.gtid.executed, '0-1-2');
    assert.equal(ro.state?.replication?.ioState, 'running');
    assert.equal(ro.state?.replication?.sourceHost, '127.88.0.1');
    assert.equal(ro.state?.heartbeatEpoch, 1);
    assert.equal(ro.state?.lagMs, 0);
    await r.stopReplicaIo();
    await p.writeHeartbeat(1, 'db1');
    assert.equal((await r.observe()).state?.replication?.ioState, 'stopped');
    assert.equal((await r.readFenceState()).gtidExecuted, '0-1-2', 'a revoked replica receives nothing more');
    assert.equal(await r.waitForRelayApplied(1000), true);
  });

  it('a promoted replica continues the domain\'s sequence under its own server id', async () => {
    const net = new SimulatedNetwork();
    const p = net.server('127.88.0.1', 3306, 1).driver();
    const r = net.server('127.88.0.2', 3306, 2).driver();
    await p.setReadOnly(false);
    await r.replicateFrom({ host: '127.88.0.1', port: 3306, user: 'repl', password: 'x' });
    await p.writeHeartbeat(1, 'db1');
    await r.observe();
    await r.resetReplication();
    await r.setReadOnly(false);
    await r.writeHeartbeat(2, 'db2');
    assert.equal((await r.readFenceState()).gtidExecuted, '0-2-2');
    assert.equal(await p.waitForGtid('0-2-2', 0), false, 'the old primary does not replicate from the new one');
    assert.deepEqual(await r.readHeartbeat().then((h) => h && { epoch: h.epoch, node: h.node }), { epoch: 2, node: 'db2' });
  });

  it('a statement it does not know fails as a parse error would', async () => {
    const db = new SimulatedNetwork().server('127.88.0.1', 3306, 1);
    assert.throws(() => db.query('SELECT something_new()', []), /does not know/);
  });
});
