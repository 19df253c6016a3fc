import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, compileAgentConfig } from './config.js';
import { ConfigError, ErrorCodes } from './errors.js';

const dir = mkdtempSync(join(tmpdir(), 'primacy-config-'));
writeFileSync(join(dir, 'mysql.pw'), 'secret\n');

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const minimal = `
cluster: main
node: db1
etcd:
  endpoints: [http://127.0.0.1:2379]
mysql:
  port: 3307
  user: primacy
  password: { file: mysql.pw }
replication:
  user: repl
  password: { env: REPL_PW }
`;

test('a minimal config gets every default and reads passwords from file and environment', () => {
  const c = loadAgentConfig(write('ok.yaml', minimal), { REPL_PW: 'rpw' });
  assert.equal(c.cluster, 'main');
  assert.equal(c.mysql.host, '127.0.0.1');
  assert.equal(c.mysql.port, 3307);
  assert.equal(c.secrets.mysqlPassword, 'secret');
  assert.equal(c.secrets.replicationPassword, 'rpw');
  assert.equal(c.timings.probeIntervalMs, 250);
  assert.equal(c.timings.leaseTtlS, 5);
  assert.equal(c.timings.fenceMarginMs, 1500);
  assert.equal(c.timings.antiFlapMs, 300_000);
  assert.equal(c.etcd.root, '/primacy');
  assert.equal(c.http.port, 8008);
  assert.equal(c.promotion.noPromote, false);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.timings) && Object.isFrozen(c.etcd.endpoints));
});

test('environment overrides reach nested fields and are typed', () => {
  const c = loadAgentConfig(write('env.yaml', minimal), {
    REPL_PW: 'x',
    PRIMACY__MYSQL__PORT: '3310',
    PRIMACY__TIMINGS__PROBE_INTERVAL_MS: '100',
    PRIMACY__NODE: 'db9',
    PRIMACY__ETCD__ENDPOINTS: '[http://127.0.0.1:1, http://127.0.0.1:2]',
    PRIMACY__PROMOTION__NOPROMOTE: 'true',
  });
  assert.equal(c.mysql.port, 3310);
  assert.equal(c.timings.probeIntervalMs, 100);
  assert.equal(c.node, 'db9');
  assert.deepEqual([...c.etcd.endpoints], ['http://127.0.0.1:1', 'http://127.0.0.1:2']);
  assert.equal(c.promotion.noPromote, true);
});

function rejects(text: string, expected: RegExp, env: NodeJS.ProcessEnv = { REPL_PW: 'x' }): void {
  const file = write('bad.yaml', text);
  assert.throws(
    () => loadAgentConfig(file, env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.doesNotMatch(err.message, /\n/, 'one line');
      assert.match(err.message, expected);
      return true;
    },
  );
}

test('a wrong field is one line naming its path and what was expected', () => {
  rejects(minimal.replace('port: 3307', 'port: "x"'), /mysql\.port: .*expected number/i);
  rejects(minimal.replace('node: db1', 'node: "db 1/x"'), /node: expected a name/);
  rejects(minimal + 'timings:\n  probeIntervalMs: -5\n', /timings\.probeIntervalMs/);
  rejects(minimal + 'surprise: 1\n', /surprise|unrecognized/i);
  rejects(minimal.replace('endpoints: [http://127.0.0.1:2379]', 'endpoints: []'), /etcd\.endpoints/);
  rejects(minimal + 'timings:\n  fenceMarginMs: 6000\n', /fenceMarginMs: expected less than the lease TTL/);
  rejects(minimal + 'http:\n  advertiseUrl: db1:8008\n', /http\.advertiseUrl/);
  rejects(minimal.replace('endpoints: [http://127.0.0.1:2379]', 'endpoints: [http://127.0.0.1:2379]\n  user: primacy'), /etcd\.password: required when etcd\.user is set/);
});

test('a password written inline is refused: secrets come from a file or the environment', () => {
  rejects(minimal.replace("password: { file: mysql.pw }", "password: hunter2"), /mysql\.password: expected { file: PATH } or { env: NAME }/);
});

test('a missing secret, file or YAML error is a clear ConfigError', () => {
  rejects(minimal, /REPL_PW is not set/, {});
  rejects(minimal.replace('mysql.pw', 'nope.pw'), /cannot read password file .*nope\.pw: ENOENT/);
  rejects('cluster: [unclosed', /not valid YAML/);
  assert.throws(() => loadAgentConfig(join(dir, 'absent.yaml')), (e: unknown) => e instanceof ConfigError && e.code === ErrorCodes.CONFIG_READ);
});

test('compileAgentConfig validates objects built in code the same way', () => {
  assert.throws(() => compileAgentConfig({ cluster: 'x' }, { env: {} }), /etcd|node/);
});

test('etcd TLS files resolve against the config file and must be readable', () => {
  writeFileSync(join(dir, 'ca.pem'), 'x');
  const c = loadAgentConfig(write('tls.yaml', minimal.replace('  endpoints: [http://127.0.0.1:2379]', '  endpoints: [https://127.0.0.1:2379]\n  tls: { ca: ca.pem }')), { REPL_PW: 'x' });
  assert.equal(c.etcd.tls?.ca, join(dir, 'ca.pem'));
  rejects(minimal.replace('  endpoints: [http://127.0.0.1:2379]', '  endpoints: [https://127.0.0.1:2379]\n  tls: { ca: missing.pem }'), /etcd\.tls\.ca: cannot read .*missing\.pem: ENOENT/);
});

test('mysql.pidFile resolves against the config file, and fencing has its defaults', () => {
  const c = loadAgentConfig(write('pid.yaml', minimal.replace('  port: 3307\n', '  port: 3307\n  pidFile: run/mysqld.pid\n')), { REPL_PW: 'rpw' });
  assert.equal(c.mysql.pidFile, join(dir, 'run/mysqld.pid'));
  assert.deepEqual({ ...c.fencing }, { timeoutMs: 10_000, retryMs: 5_000 });
  const withCommand = loadAgentConfig(write('fence.yaml', `${minimal}fencing:\n  command: /usr/local/sbin/fence-node\n  timeoutMs: 3000\n`), { REPL_PW: 'rpw' });
  assert.equal(withCommand.fencing.command, '/usr/local/sbin/fence-node');
  assert.equal(withCommand.fencing.timeoutMs, 3000);
  assert.throws(() => loadAgentConfig(write('fence-bad.yaml', `${minimal}fencing:\n  command: ''\n`), { REPL_PW: 'rpw' }), (e: ConfigError) => /fencing\.command/.test(e.message));
});

test('hooks: none by default, a 10 s bound; a misspelt hook or an empty command is refused with its path', () => {
  const c = loadAgentConfig(write('no-hooks.yaml', minimal), { REPL_PW: 'rpw' });
  assert.deepEqual({ ...c.hooks }, { timeoutMs: 10_000 });
  const h = loadAgentConfig(write('hooks.yaml', `${minimal}hooks:\n  preFailover: /etc/primacy/notify\n  postFailover: /etc/primacy/vip up\n  postUnsuccessfulFailover: /etc/primacy/page\n  timeoutMs: 2000\n`), { REPL_PW: 'rpw' });
  assert.deepEqual([h.hooks.preFailover, h.hooks.postFailover, h.hooks.postUnsuccessfulFailover, h.hooks.preSwitchover, h.hooks.timeoutMs], ['/etc/primacy/notify', '/etc/primacy/vip up', '/etc/primacy/page', undefined, 2000]);
  rejects(`${minimal}hooks:\n  preFailvoer: x\n`, /hooks: Unrecognized key: "preFailvoer"|hooks.*preFailvoer/);
  rejects(`${minimal}hooks:\n  postSwitchover: ''\n`, /hooks\.postSwitchover/);
  rejects(`${minimal}hooks:\n  timeoutMs: 0\n`, /hooks\.timeoutMs/);
});
