/**
 * The MariaDB driver's pure parts on rows recorded from a live MariaDB 10.11 (fixtures/mariadb-10.11.json).
 * The driver itself runs against real servers in test/driver-mariadb.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeStateSchema, type NodeState } from '@primacy/common';
import { MARIADB_CHANGE_MASTER, MARIADB_WRITE_HEARTBEAT, mariaDbProbeSql, parseMariaDbState, resumePosition, SHOW_SLAVE_STATUS } from './mariadb.js';
import { loadFixture, replay } from './recorded-fixtures.js';
import type { Row } from './session.js';

const recorded = loadFixture('mariadb-10.11.json');
const VERSION = '10.11.19-MariaDB-0+deb12u1-log';
const SOURCE = { host: '10.0.0.12', port: 3306, user: 'repl', password: 'repl-pw' };

/** The recorded rows of one scenario: the probe row and SHOW SLAVE STATUS's row (or null). */
function rows(scenario: string): [Row, Row | null] {
  const responses = recorded.scenarios[scenario]?.responses ?? [];
  const probe = responses.find((r) => r.match.startsWith('SELECT'))?.rows?.[0];
  const slave = responses.find((r) => r.match === SHOW_SLAVE_STATUS)?.rows?.[0] ?? null;
  assert.ok(probe, `recorded probe row for ${scenario}`);
  return [probe, slave];
}

function parsed(scenario: string, patchReplica: Partial<Record<string, unknown>> = {}): NodeState {
  const [probe, replica] = rows(scenario);
  const state = parseMariaDbState(probe, replica === null ? null : { ...replica, ...patchReplica });
  assert.ok(NodeStateSchema.safeParse(state).success, 'the state matches the member-key schema');
  return state;
}

describe('parseMariaDbState on recorded MariaDB 10.11 rows', () => {
  it('primary with one semi-sync replica', () => {
    assert.deepEqual(parsed('primary'), {
      flavor: 'mariadb',
      version: VERSION,
      serverId: 1,
      serverUuid: null,
      readOnly: false,
      superReadOnly: null,
      logBin: true,
      gtid: { executed: '0-1-16', received: '0-1-16', binlogPos: '0-1-16', binlogState: '0-1-16', slavePos: '', currentPos: '0-1-16' },
      replication: null,
      lagMs: null,
      heartbeatEpoch: 3,
      semiSync: { sourceEnabled: true, sourceActive: true, sourceClients: 1, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null },
      connections: 2,
      maxConnections: 151,
    } satisfies NodeState);
  });

  it('replica: threads, Gtid_IO_Pos, semi-sync replica active; caught up with a fresh heartbeat, lag 0', () => {
    assert.deepEqual(parsed('replica'), {
      flavor: 'mariadb',
      version: VERSION,
      serverId: 2,
      serverUuid: null,
      readOnly: true,
      superReadOnly: null,
      logBin: true,
      gtid: { executed: '0-1-16', received: '0-1-16', binlogPos: '0-1-16', binlogState: '0-1-16', slavePos: '0-1-16', currentPos: '0-1-16', ioPos: '0-1-16' },
      replication: {
        sourceHost: '127.0.0.1',
        sourcePort: 23301,
        ioState: 'running',
        sqlRunning: true,
        lastIoError: '',
        lastSqlError: '',
        autoPosition: true,
        secondsBehind: 0,
      },
      lagMs: 0,
      heartbeatEpoch: 3,
      semiSync: { sourceEnabled: false, sourceActive: false, sourceClients: 0, replicaEnabled: true, replicaActive: true, sourceTimeoutMs: null, sourceWaitNoReplica: null },
      connections: 1,
      maxConnections: 151,
    } satisfies NodeState);
  });

  it('replica lag: the heartbeat\'s age whenever the replica is not provably current', () => {
    // The recorded replica's heartbeat is 210 ms old; it has applied all it received (0-1-16).
    assert.equal(parsed('replica', { Slave_SQL_Running: 'No' }).lagMs, 210.187, 'SQL thread stopped');
    assert.equal(parsed('replica', { Gtid_IO_Pos: '0-1-18' }).lagMs, 210.187, 'a relay log of two transactions left to apply');
    assert.equal(parsed('replica', { Gtid_IO_Pos: '0-1-17' }).lagMs, 0, 'the one transaction it is applying (most often the newest heartbeat) is not lag');
    assert.equal(parsed('replica', { Slave_IO_Running: 'Connecting' }).lagMs, 210.187, 'not receiving');
    const [probe, replica] = rows('replica');
    const stale = { ...probe, heartbeat_age_us: 1_700_000 };
    assert.equal(parseMariaDbState(stale, replica).lagMs, 1700, 'heartbeats stopped coming (older than an interval and the grace)');
    assert.equal(parseMariaDbState(stale, replica, 2000).lagMs, 0, 'within a longer interval');
  });

  it('revoked replica: IO stopped, SQL running, semi-sync replica inactive, no Seconds_Behind_Master', () => {
    const state = parsed('revokedReplica');
    assert.equal(state.replication?.ioState, 'stopped');
    assert.equal(state.replication?.sqlRunning, true);
    assert.equal(state.replication?.secondsBehind, null);
    assert.equal(state.semiSync.replicaActive, false);
    assert.equal(state.lagMs, 717.841);
  });

  it('primary whose semi-sync fell back to async: enabled but not active, no clients', () => {
    const state = parsed('primaryFallenBackToAsync');
    assert.deepEqual(state.semiSync, { sourceEnabled: true, sourceActive: false, sourceClients: 0, replicaEnabled: false, replicaActive: false, sourceTimeoutMs: null, sourceWaitNoReplica: null });
    assert.equal(state.gtid.executed, '0-1-17');
  });

  it('replica that cannot reach its source: connecting, with the server error text', () => {
    const state = parsed('connectingReplica');
    assert.equal(state.replication?.ioState, 'connecting');
    assert.match(state.replication?.lastIoError ?? '', /^error connecting to master 'repl@127\.0\.0\.1:1'.*Connection refused/);
  });

  it('received merges gtid_current_pos with Gtid_IO_Pos, per domain', () => {
    const state = parsed('replica', { Gtid_IO_Pos: '0-1-20,1-5-3' });
    assert.equal(state.gtid.executed, '0-1-16');
    assert.equal(state.gtid.received, '0-1-20,1-5-3');
    assert.equal(state.gtid.ioPos, '0-1-20,1-5-3');
  });

  it('Using_Gtid No is not auto-positioned', () => {
    assert.equal(parsed('replica', { Using_Gtid: 'No' }).replication?.autoPosition, false);
  });
});

describe('resumePosition: a former primary resumes after its own binlog', () => {
  const cases: ReadonlyArray<readonly [string, string, string, string | null]> = [
    ['former primary, empty slave pos', '0-1-17', '', '0-1-17'],
    ['ordinary replica (log_slave_updates)', '0-1-16', '0-1-16', null],
    ['slave pos ahead of the binlog (log_slave_updates off)', '0-1-10', '0-2-12', null],
    ['primary again after an earlier epoch as replica', '0-1-30', '0-2-12', '0-1-30'],
    ['a domain only the binlog has', '0-1-10,1-1-5', '0-2-12', '0-2-12,1-1-5'],
    ['no binlog at all', '', '0-1-5', null],
    ['same seq on two servers keeps the slave pos (a divergence, not ours to hide)', '0-1-10', '0-2-10', null],
  ];
  for (const [name, binlog, slave, expected] of cases) {
    it(name, () => assert.equal(resumePosition(binlog, slave), expected));
  }
});

describe('MariaDB statements on recorded output', () => {
  it('a probe is two round trips on the probe session', async () => {
    const { driver, transcript } = replay(recorded, 'replica', 'mariadb');
    const o = await driver.observe();
    assert.equal(o.health, 'up');
    assert.equal(transcript.sent.length, 2);
    assert.ok(transcript.statements[0]?.startsWith(mariaDbProbeSql('').slice(0, 60)));
    assert.equal(transcript.statements[1], SHOW_SLAVE_STATUS);
  });

  it('replicateFrom on a former primary sets gtid_slave_pos from its binlog first', async () => {
    const { driver, transcript } = replay(recorded, 'primaryFallenBackToAsync', 'mariadb', [
      { match: 'SELECT @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos', rows: [{ gtid_binlog_pos: '0-1-17', gtid_slave_pos: '' }] },
    ]);
    await driver.replicateFrom(SOURCE);
    assert.deepEqual(transcript.statements, [
      'STOP SLAVE',
      'SELECT @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos, @@GLOBAL.gtid_slave_pos AS gtid_slave_pos',
      'SET GLOBAL gtid_slave_pos = ?',
      MARIADB_CHANGE_MASTER,
      'START SLAVE',
    ]);
    assert.deepEqual(transcript.sent[2]?.params, ['0-1-17']);
    assert.deepEqual(transcript.sent[3]?.params, ['10.0.0.12', 3306, 'repl', 'repl-pw']);
  });

  it('replicateFrom on an ordinary replica leaves gtid_slave_pos alone', async () => {
    const { driver, transcript } = replay(recorded, 'replica', 'mariadb', [
      { match: 'SELECT @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos', rows: [{ gtid_binlog_pos: '0-1-16', gtid_slave_pos: '0-1-16' }] },
    ]);
    await driver.replicateFrom(SOURCE);
    assert.ok(!transcript.statements.some((s) => s.startsWith('SET GLOBAL gtid_slave_pos')));
  });

  it('setSemiSyncReplica restarts a running IO thread, but never starts a stopped (revoked) one', async () => {
    const running = replay(recorded, 'replica', 'mariadb');
    await running.driver.setSemiSyncReplica(true);
    assert.deepEqual(running.transcript.statements, [
      'SET GLOBAL rpl_semi_sync_slave_enabled = ON',
      SHOW_SLAVE_STATUS,
      'STOP SLAVE IO_THREAD',
      'START SLAVE IO_THREAD',
    ]);
    const revoked = replay(recorded, 'revokedReplica', 'mariadb');
    await revoked.driver.setSemiSyncReplica(false);
    assert.deepEqual(revoked.transcript.statements, ['SET GLOBAL rpl_semi_sync_slave_enabled = OFF', SHOW_SLAVE_STATUS]);
  });

  it('writeHeartbeat is one statement whose read_only check is inside it', async () => {
    const { driver, transcript } = replay(recorded, 'primary', 'mariadb');
    await driver.writeHeartbeat(5, 'db-1');
    assert.deepEqual(transcript.statements, [MARIADB_WRITE_HEARTBEAT]);
    assert.ok(MARIADB_WRITE_HEARTBEAT.startsWith('IF @@GLOBAL.read_only = 0 THEN '));
    assert.deepEqual(transcript.sent[0]?.params, [5, 'db-1']);
  });

  it('waitForRelayApplied waits for Gtid_IO_Pos with MASTER_GTID_WAIT on the wait session', async () => {
    const { driver, transcript } = replay(recorded, 'replica', 'mariadb', [{ match: 'SELECT MASTER_GTID_WAIT', rows: [{ result: -1 }] }]);
    assert.equal(await driver.waitForRelayApplied(300), false);
    assert.deepEqual(
      transcript.sent.map((s) => [s.session, s.sql, s.params]),
      [
        ['wait', SHOW_SLAVE_STATUS, []],
        ['wait', 'SELECT MASTER_GTID_WAIT(?, ?) AS result', ['0-1-16', 0.3]],
      ],
    );
  });
});
