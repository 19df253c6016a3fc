/**
 * The sandbox's MariaDB servers: one `mariadb-install-db` into a template, copied for every node,
 * and the server options every node starts with (read-only, binlog, GTID strict, ROW). Semi-sync is
 * built into 10.11; the servers start with both sides off and the agents turn on what their role needs.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CREATE_HEARTBEAT_TABLE } from '@primacy/agent';
import { SandboxError, SandboxErrorCodes } from './errors.js';
import { LOOPBACK } from './ports.js';
import { logTail } from './processes.js';
import type { NodeRecord, SandboxState } from './state.js';

export interface Users {
  readonly admin: { readonly user: string; readonly password: string };
  readonly repl: { readonly user: string; readonly password: string };
  readonly app: { readonly user: string; readonly password: string };
}

export const ADMIN_USER = 'primacy';
export const REPL_USER = 'repl';
export const APP_USER = 'app';
export const APP_DATABASE = 'app';

const INNODB_SIZING = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=8M'];

function runAsRootArgs(): string[] {
  // mariadbd refuses to run as root unless told so explicitly.
  return process.getuid?.() === 0 ? ['--user=root'] : [];
}

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function initSql(users: Users): string {
  const account = (name: string) => `${sqlString(name)}@'${LOOPBACK}'`;
  return [
    // Bootstrap runs with grants disabled; CREATE USER needs them loaded.
    'FLUSH PRIVILEGES;',
    // A proxy grant for root@<hostname> only produces a warning under skip_name_resolve.
    "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
    `CREATE DATABASE ${APP_DATABASE};`,
    'CREATE DATABASE primacy;',
    `CREATE USER ${account(users.admin.user)} IDENTIFIED BY ${sqlString(users.admin.password)};`,
    `GRANT ALL PRIVILEGES ON *.* TO ${account(users.admin.user)} WITH GRANT OPTION;`,
    `CREATE USER ${account(users.repl.user)} IDENTIFIED BY ${sqlString(users.repl.password)};`,
    `GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ${account(users.repl.user)};`,
    // Table grants only: without SUPER or READ ONLY ADMIN, read_only binds it (error 1290).
    `CREATE USER ${account(users.app.user)} IDENTIFIED BY ${sqlString(users.app.password)};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE VIEW, SHOW VIEW ON ${APP_DATABASE}.* TO ${account(users.app.user)};`,
    // @primacy/client reads the heartbeat's epoch on each new connection to the primary. A table grant
    // needs the table, so it is made here, in the template every node starts from, as the agent would.
    `${CREATE_HEARTBEAT_TABLE};`,
    `GRANT SELECT ON primacy.heartbeat TO ${account(users.app.user)};`,
    'FLUSH PRIVILEGES;',
    '',
  ].join('\n');
}

/** Runs `mariadb-install-db` once into `<dir>/template/data`; the init file with the passwords is removed afterwards. */
export async function installTemplate(installDb: string, dir: string, users: Users, timeoutMs: number): Promise<string> {
  const templateDir = join(dir, 'template');
  const dataDir = join(templateDir, 'data');
  const initFile = join(dir, 'init.sql');
  const logFile = join(dir, 'install-db.log');
  writeFileSync(initFile, initSql(users), { mode: 0o600 });
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
    '--skip-name-resolve',
    // No lookup of the hostname (nor of localhost): it fails where neither resolves, e.g. without /etc/hosts.
    '--force',
    `--extra-file=${initFile}`,
    ...runAsRootArgs(),
    ...INNODB_SIZING,
  ];
  const logFd = openSync(logFile, 'a');
  try {
    const outcome = await new Promise<string | null>((resolve) => {
      const child = spawn(installDb, args, { cwd: dir, stdio: ['ignore', logFd, logFd] });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(`did not finish within ${timeoutMs / 1000} s`);
      }, timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        resolve(error.message);
      });
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        resolve(code === 0 ? null : `exited with ${code ?? sig}`);
      });
    });
    if (outcome !== null) {
      throw new SandboxError(SandboxErrorCodes.START_FAILED, `mariadb-install-db ${outcome}; last lines of ${logFile}:`, { detail: logTail(logFile) });
    }
  } finally {
    closeSync(logFd);
    await rm(initFile, { force: true });
  }
  return dataDir;
}

export async function copyTemplate(templateDataDir: string, node: NodeRecord): Promise<void> {
  await cp(templateDataDir, node.dataDir, { recursive: true, preserveTimestamps: true });
}

export function serverArgs(state: SandboxState, node: NodeRecord): string[] {
  return [
    '--no-defaults',
    ...runAsRootArgs(),
    `--datadir=${node.dataDir}`,
    `--tmpdir=${node.dir}`,
    `--socket=${join(node.dir, 'mariadbd.sock')}`,
    `--pid-file=${join(node.dir, 'mariadbd.pid')}`,
    `--port=${node.port}`,
    `--bind-address=${LOOPBACK}`,
    `--server-id=${node.serverId}`,
    `--report-host=${LOOPBACK}`,
    `--report-port=${node.port}`,
    '--log-bin=mariadb-bin',
    '--relay-log=relay-bin',
    '--log-slave-updates=ON',
    '--binlog-format=ROW',
    '--gtid-strict-mode=ON',
    '--gtid-domain-id=0',
    // Parallel replication: under a steady write load a single applier falls behind, and a candidate
    // then waits for its relay log before it can be promoted (docs/operations.md, "Replication settings").
    '--slave-parallel-threads=4',
    '--slave-parallel-mode=optimistic',
    // Invariant 1: only the node's own agent makes it writable.
    '--read-only=ON',
    '--skip-name-resolve',
    '--max-connections=100',
    '--innodb-flush-log-at-trx-commit=1',
    '--sync-binlog=1',
    ...INNODB_SIZING,
    '--innodb-buffer-pool-dump-at-shutdown=OFF',
    '--innodb-buffer-pool-load-at-startup=OFF',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    // Both sides start off: the source side on a replica can make its applier wait for acknowledgements
    // nobody sends. The agent turns the source side on for the primary only.
    '--rpl-semi-sync-master-enabled=OFF',
    '--rpl-semi-sync-slave-enabled=OFF',
    '--rpl-semi-sync-master-timeout=10000',
    // 10.11's default is AFTER_COMMIT; AFTER_SYNC is the lossless one.
    ...(state.semiSync ? ['--rpl-semi-sync-master-wait-point=AFTER_SYNC'] : []),
  ];
}

/** True when the server on `port` sends a MySQL protocol greeting (protocol 10), false otherwise. */
export function acceptsConnections(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    let data = Buffer.alloc(0);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      // 3-byte length, 1-byte sequence, then the payload: 0x0a is a handshake, 0xff an error packet.
      if (data.length >= 5) done(data[4] === 0x0a);
    });
  });
}
