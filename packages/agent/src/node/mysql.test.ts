/**
 * The MySQL driver is tested against RECORDED server output, because no MySQL server runs on these
 * machines (Debian ships only MariaDB). The fixtures (fixtures/mysql-*.json) hold, for each statement
 * the driver sends, rows with MySQL 8.0's and 8.4's column names and value shapes; each fixture says
 * where its shapes come from. The tests replay them through the SqlSession interface and check both
 * the NodeState parsed from them and the exact statements each operation sends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeStateSchema, type NodeState } from '@primacy/common';
import type { NodeDriver } from './driver.js';
import { MYSQL_DIALECT, MYSQL_HEARTBEAT_GUARD, MYSQL_WRITE_HEARTBEAT, mySqlProbeSql, parseMySqlDialect, SHOW_REPLICA_STATUS } from './mysql.js';
import { CREATE_HEARTBEAT_TABLE, HEARTBEAT_TABLE_EXISTS, READ_HEARTBEAT } from './probe.js';
import { loadFixture, QUERY_TIMEOUT_MS, replay } from './recorded-fixtures.js';
import { LIST_SESSIONS } from './fence.js';

const A = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const B = '5a8d1c2e-2f7b-11ef-8b3a-0242ac120003';

const mysql80 = loadFixture('mysql-8.0.36.json');
const mysql8022 = loadFixture('mysql-8.0.22.json');
const mysql84 = loadFixture('mysql-8.4.3.json');

const PROBE_WITH_HEARTBEAT = mySqlProbeSql(
  '(SELECT epoch FROM primacy.heartbeat WHERE id = 1) AS heartbeat_epoch, ' +
    '(SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM primacy.heartbeat WHERE id = 1) AS heartbeat_age_us',
);
const PROBE_CHECKING_TABLE = mySqlProbeSql(`${HEARTBEAT_TABLE_EXISTS} AS heartbeat_table`);

const SOURCE = { host: '10.0.0.12', port: 3306, user: 'repl', password: 'repl-pw' };
const CHANGE_SOURCE =
  'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, ' +
  'SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, SOURCE_RETRY_COUNT = 86400, GET_SOURCE_PUBLIC_KEY = 1';

async function observed(driver: NodeDriver): Promise<NodeState> {
  const o = await driver.observe();
  assert.equal(o.error, null);
  assert.equal(o.health, 'up');
  assert.ok(o.state);
  assert.ok(NodeStateSchema.safeParse(o.state).success, 'the state matches the member-key schema');
  return o.state;
}

describe('MySQL driver on recorded output: observe()', () => {
  for (const [fixture, version] of [
    [mysql80, '8.0.36'],
    [mysql84, '8.4.3'],
  ] as const) {
    it(`${version} primary: semi-sync source active, GTID set normalised, no replication, no lag`, async () => {
      const { driver, transcript } = replay(fixture, 'primary', 'mysql');
      const expected: NodeState = {
        flavor: 'mysql',
        version,
        serverId: 1,
        serverUuid: A,
        readOnly: false,
        superReadOnly: false,
        logBin: true,
        gtid: { executed: `${A}:1-1042,${B}:1-3`, received: `${A}:1-1042,${B}:1-3` },
        replication: null,
        lagMs: null,
        heartbeatEpoch: 12,
        semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 2, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
        connections: 23,
        maxConnections: 500,
      };
      assert.deepEqual(await observed(driver), expected);
      // Two round trips per probe.
      assert.deepEqual(transcript.statements, [PROBE_WITH_HEARTBEAT, SHOW_REPLICA_STATUS]);
      assert.deepEqual(new Set(transcript.sent.map((s) => s.session)), new Set(['probe']));
    });

    it(`${version} replica: received = executed ∪ Retrieved_Gtid_Set, lag from the heartbeat`, async () => {
      const { driver } = replay(fixture, 'replica', 'mysql');
      const expected: NodeState = {
        flavor: 'mysql',
        version,
        serverId: 2,
        serverUuid: B,
        readOnly: true,
        superReadOnly: true,
        logBin: true,
        gtid: { executed: `${A}:1-1040,${B}:1-3`, received: `${A}:1-1042,${B}:1-3`, retrieved: `${A}:1-1042` },
        replication: {
          sourceHost: '10.0.0.11',
          sourcePort: 3306,
          ioState: 'running',
          sqlRunning: true,
          lastIoError: '',
          lastSqlError: '',
          autoPosition: true,
          secondsBehind: 0,
        },
        lagMs: 180.512,
        heartbeatEpoch: 12,
        semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: true, replicaActive: true, sourceTimeoutMs: null, sourceWaitNoReplica: null },
        connections: 9,
        maxConnections: 500,
      };
      assert.deepEqual(await observed(driver), expected);
    });
  }

  it('replica whose source is gone: IO thread connecting, its error kept, no Seconds_Behind_Source', async () => {
    const state = await observed(replay(mysql80, 'connectingReplica', 'mysql').driver);
    assert.equal(state.replication?.ioState, 'connecting');
    assert.equal(state.replication?.sqlRunning, true);
    assert.match(state.replication?.lastIoError ?? '', /^error connecting to source 'repl@10\.0\.0\.11:3306'/);
    assert.equal(state.replication?.secondsBehind, null);
    assert.equal(state.lagMs, 9512);
    assert.equal(state.semiSync.replicaActive, false);
  });

  it('without the semi-sync plugins: semi-sync all false, no failure', async () => {
    const state = await observed(replay(mysql80, 'noSemiSyncPlugin', 'mysql').driver);
    assert.deepEqual(state.semiSync, { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null });
    // Everything received is applied: received equals executed.
    assert.equal(state.gtid.received, state.gtid.executed);
  });

  it('8.0.22 with the old rpl_semi_sync_master/slave plugin: the same columns through the driver aliases', async () => {
    const state = await observed(replay(mysql8022, 'replicaWithOldSemiSyncPlugin', 'mysql').driver);
    assert.equal(state.semiSync.replicaEnabled, true);
    assert.equal(state.semiSync.replicaActive, true);
  });

  it('a missing heartbeat table: one retry without it, then information_schema until it appears', async () => {
    const { driver, transcript } = replay(mysql80, 'heartbeatMissing', 'mysql');
    const first = await observed(driver);
    assert.equal(first.heartbeatEpoch, null);
    assert.equal(first.lagMs, null);
    const second = await driver.observe();
    assert.equal(second.health, 'up');
    assert.deepEqual(transcript.statements, [
      PROBE_WITH_HEARTBEAT,
      PROBE_CHECKING_TABLE,
      SHOW_REPLICA_STATUS,
      PROBE_CHECKING_TABLE,
      SHOW_REPLICA_STATUS,
    ]);
  });

  it('a server error on the probe is reported, not thrown', async () => {
    const { driver } = replay(mysql80, 'replica', 'mysql', [
      { match: 'SELECT @@GLOBAL.version', error: { errno: 1040, code: 'ER_CON_COUNT_ERROR', message: 'Too many connections' } },
    ]);
    const o = await driver.observe();
    assert.equal(o.health, 'refusing');
    assert.equal(o.state, null);
    assert.equal(o.error, 'ER_CON_COUNT_ERROR (1040): Too many connections');
  });
});

describe('MySQL driver on recorded output: statements', () => {
  it('8.0.36 and 8.4: each operation sends exactly these statements', async () => {
    for (const fixture of [mysql80, mysql84]) {
      const cases: ReadonlyArray<readonly [string, (d: NodeDriver) => Promise<unknown>, readonly string[], string?]> = [
        ['setReadOnly(true)', (d) => d.setReadOnly(true), ['SET GLOBAL super_read_only = ON']],
        ['setReadOnly(false)', (d) => d.setReadOnly(false), ['SET GLOBAL read_only = OFF']],
        ['stopReplicaIo', (d) => d.stopReplicaIo(), ['STOP REPLICA IO_THREAD']],
        ['stopReplication', (d) => d.stopReplication(), ['STOP REPLICA']],
        ['startReplication', (d) => d.startReplication(), ['START REPLICA']],
        ['resetReplication', (d) => d.resetReplication(), ['STOP REPLICA', 'RESET REPLICA ALL']],
        ['replicateFrom', (d) => d.replicateFrom(SOURCE), [MYSQL_DIALECT, 'STOP REPLICA', CHANGE_SOURCE, 'START REPLICA']],
        [
          'setSemiSyncSource(true)',
          (d) => d.setSemiSyncSource(true, 5000),
          [MYSQL_DIALECT, 'SET GLOBAL rpl_semi_sync_source_timeout = ?', 'SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON', 'SET GLOBAL rpl_semi_sync_source_enabled = ON'],
        ],
        ['setSemiSyncSource(false)', (d) => d.setSemiSyncSource(false, 5000), [MYSQL_DIALECT, 'SET GLOBAL rpl_semi_sync_source_enabled = OFF']],
        [
          'setSemiSyncReplica(true) restarts the running receiver',
          (d) => d.setSemiSyncReplica(true),
          [MYSQL_DIALECT, 'SET GLOBAL rpl_semi_sync_replica_enabled = ON', SHOW_REPLICA_STATUS, 'STOP REPLICA IO_THREAD', 'START REPLICA IO_THREAD'],
        ],
        ['writeHeartbeat on a writable node with the table', (d) => d.writeHeartbeat(13, 'db-2'), [MYSQL_HEARTBEAT_GUARD, MYSQL_WRITE_HEARTBEAT], 'primary'],
        ['writeHeartbeat on a read-only node', (d) => d.writeHeartbeat(13, 'db-2'), [MYSQL_HEARTBEAT_GUARD]],
        ['readHeartbeat', (d) => d.readHeartbeat(), [READ_HEARTBEAT]],
        ['waitForGtid', (d) => d.waitForGtid(`${A}:1-1042`, 2500), ['SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS result']],
        ['waitForGtid without waiting', (d) => d.waitForGtid(`${A}:1-1042`, 0), ['SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed) AS done']],
        [
          'waitForRelayApplied',
          (d) => d.waitForRelayApplied(2500),
          [SHOW_REPLICA_STATUS, 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS result'],
        ],
      ];
      for (const [name, op, statements, scenario = 'replica'] of cases) {
        const { driver, transcript } = replay(fixture, scenario, 'mysql');
        await op(driver);
        assert.deepEqual(transcript.statements, statements, `${fixture.server}: ${name}`);
      }
    }
  });

  it('replicateFrom binds the source, never inlines the password', async () => {
    const { driver, transcript } = replay(mysql84, 'replica', 'mysql');
    await driver.replicateFrom(SOURCE);
    const change = transcript.sent.find((s) => s.sql.startsWith('CHANGE'));
    assert.deepEqual(change?.params, ['10.0.0.12', 3306, 'repl', 'repl-pw']);
    assert.ok(transcript.sent.every((s) => !s.sql.includes('repl-pw')));
  });

  it('8.4 never gets a SLAVE or MASTER statement, whatever the operation', async () => {
    const { driver, transcript } = replay(mysql84, 'replica', 'mysql');
    await driver.observe();
    await driver.setReadOnly(true);
    await driver.setReadOnly(false);
    await driver.killClientSessions();
    await driver.stopReplicaIo();
    await driver.stopReplication();
    await driver.startReplication();
    await driver.resetReplication();
    await driver.replicateFrom(SOURCE);
    await driver.waitForGtid(`${A}:1-1042`, 1000);
    await driver.waitForRelayApplied(1000);
    await driver.setSemiSyncSource(true, 1000);
    await driver.setSemiSyncReplica(true);
    await driver.writeHeartbeat(13, 'db-2');
    await driver.readHeartbeat();
    const primary = replay(mysql84, 'primary', 'mysql');
    await primary.driver.writeHeartbeat(13, 'db-1');
    await primary.driver.killClientSessions();
    transcript.sent.push(...primary.transcript.sent);
    assert.ok(transcript.sent.length >= 25);
    const old = transcript.statements.filter((sql) => /\b(SLAVE|MASTER)\b/i.test(sql));
    assert.deepEqual(old, []);
  });

  it('8.0.22: CHANGE MASTER (no CHANGE REPLICATION SOURCE yet) and the old semi-sync variable names', async () => {
    const { driver, transcript } = replay(mysql8022, 'replicaWithOldSemiSyncPlugin', 'mysql');
    await driver.replicateFrom(SOURCE);
    await driver.setSemiSyncSource(true, 800);
    await driver.setSemiSyncReplica(false);
    assert.deepEqual(transcript.statements, [
      MYSQL_DIALECT,
      'STOP REPLICA',
      'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
        'MASTER_AUTO_POSITION = 1, MASTER_CONNECT_RETRY = 1, MASTER_RETRY_COUNT = 86400, GET_MASTER_PUBLIC_KEY = 1',
      'START REPLICA',
      MYSQL_DIALECT,
      'SET GLOBAL rpl_semi_sync_master_timeout = ?',
      'SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON',
      'SET GLOBAL rpl_semi_sync_master_enabled = ON',
      MYSQL_DIALECT,
      'SET GLOBAL rpl_semi_sync_slave_enabled = OFF',
      SHOW_REPLICA_STATUS,
      'STOP REPLICA IO_THREAD',
      'START REPLICA IO_THREAD',
    ]);
    assert.deepEqual(transcript.sent[5]?.params, [800]);
  });

  it('parseMySqlDialect reads the version and the installed plugin', () => {
    assert.deepEqual(parseMySqlDialect({ version: '8.0.23', semi_sync_variables: null }), {
      changeSource: 'source',
      semiSyncSource: null,
      semiSyncReplica: null,
    });
    assert.deepEqual(parseMySqlDialect({ version: '8.4.3', semi_sync_variables: 'rpl_semi_sync_source_enabled' }), {
      changeSource: 'source',
      semiSyncSource: 'rpl_semi_sync_source',
      semiSyncReplica: null,
    });
    assert.equal(parseMySqlDialect({ version: '8.0.22-13', semi_sync_variables: '' }).changeSource, 'master');
    assert.equal(parseMySqlDialect({ version: '9.1.0', semi_sync_variables: '' }).changeSource, 'source');
  });

  it('without the plugin: enabling semi-sync fails with the fix, disabling is a no-op', async () => {
    const { driver, transcript } = replay(mysql80, 'noSemiSyncPlugin', 'mysql');
    await assert.rejects(driver.setSemiSyncSource(true, 1000), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'PRIMACY_E_NODE_STATEMENT');
      assert.match(err.message, /INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source\.so'/);
      return true;
    });
    await driver.setSemiSyncSource(false, 1000);
    await driver.setSemiSyncReplica(false);
    assert.deepEqual(transcript.statements, [MYSQL_DIALECT, MYSQL_DIALECT, MYSQL_DIALECT]);
  });

  it('killClientSessions kills clients and root, spares our threads, the scheduler and binlog dumps', async () => {
    const { driver, transcript } = replay(mysql80, 'primary', 'mysql');
    assert.equal(await driver.killClientSessions(), 3);
    assert.deepEqual(transcript.statements, [LIST_SESSIONS, 'KILL CONNECTION ?', 'KILL CONNECTION ?', 'KILL CONNECTION ?']);
    assert.deepEqual(
      transcript.sent.slice(1).map((s) => s.params),
      [[80], [81], [95]],
    );
  });

  it('killClientSessions on a replica spares the replication threads (system user)', async () => {
    const { driver, transcript } = replay(mysql80, 'replica', 'mysql');
    assert.equal(await driver.killClientSessions(), 1);
    assert.deepEqual(transcript.sent.slice(1).map((s) => s.params), [[40]]);
  });

  it('writeHeartbeat on a fenced node only reads read_only: nothing that could write is sent', async () => {
    const { driver, transcript } = replay(mysql84, 'fencedPrimary', 'mysql');
    await driver.writeHeartbeat(14, 'db-1');
    assert.deepEqual(transcript.statements, [MYSQL_HEARTBEAT_GUARD]);
  });

  it('writeHeartbeat creates the table first on a writable node without it', async () => {
    const { driver, transcript } = replay(mysql80, 'heartbeatMissing', 'mysql');
    await driver.writeHeartbeat(1, 'db-1');
    assert.deepEqual(transcript.statements, [MYSQL_HEARTBEAT_GUARD, 'CREATE DATABASE IF NOT EXISTS primacy', CREATE_HEARTBEAT_TABLE, MYSQL_WRITE_HEARTBEAT]);
    assert.deepEqual(transcript.sent[3]?.params, [1, 'db-1', 1, 'db-1']);
  });

  it('readHeartbeat gives the row and its age by the server clock', async () => {
    const { driver } = replay(mysql80, 'replica', 'mysql');
    assert.deepEqual(await driver.readHeartbeat(), { epoch: 12, node: 'db-1', ageMs: 180.512 });
  });

  it('readHeartbeat without the table is null', async () => {
    const { driver } = replay(mysql80, 'replica', 'mysql', [
      { match: 'SELECT epoch, node', error: { errno: 1146, code: 'ER_NO_SUCH_TABLE', message: "Table 'primacy.heartbeat' doesn't exist" } },
    ]);
    assert.equal(await driver.readHeartbeat(), null);
  });

  it('waits run on their own session with the wait added to the query timeout', async () => {
    const { driver, transcript } = replay(mysql80, 'replica', 'mysql');
    assert.equal(await driver.waitForRelayApplied(2500), true);
    const wait = transcript.sent[1];
    assert.equal(wait?.session, 'wait');
    assert.deepEqual(wait?.params, [`${A}:1-1042`, 2.5]);
    assert.equal(wait?.timeoutMs, 2500 + QUERY_TIMEOUT_MS);
  });

  it('WAIT_FOR_EXECUTED_GTID_SET returning 1 is a timeout', async () => {
    const { driver } = replay(mysql80, 'replica', 'mysql', [{ match: 'SELECT WAIT_FOR_EXECUTED_GTID_SET', rows: [{ result: 1 }] }]);
    assert.equal(await driver.waitForGtid(`${A}:1-2000`, 100), false);
  });

  it('waitForRelayApplied on a node that replicates from no one is done at once', async () => {
    const { driver, transcript } = replay(mysql80, 'primary', 'mysql');
    assert.equal(await driver.waitForRelayApplied(1000), true);
    assert.deepEqual(transcript.statements, [SHOW_REPLICA_STATUS]);
  });
});
