/**
 * The sandbox runs Debian's own servers: `etcd` from etcd-server, `mariadbd` and `mariadb-install-db`
 * from mariadb-server. When they are missing it says which `apt-get install` line to run, or runs it
 * when asked to (`--install`) and allowed to (root).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, writeFileSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SandboxError, SandboxErrorCodes } from './errors.js';
import { childEnv, type Env } from './output.js';

export interface Binaries {
  readonly etcd: string;
  readonly mariadbd: string;
  readonly installDb: string;
}

const SBIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];
/** The client packages come along so that the printed `mariadb …` and `etcdctl` lines work too. */
const PACKAGES = { etcd: 'etcd-server', mariadbd: 'mariadb-server', installDb: 'mariadb-server', client: 'mariadb-client', etcdctl: 'etcd-client' } as const;

function findExecutable(name: string, env: Env): string | null {
  const dirs = [...(env['PATH'] ?? '').split(delimiter), ...SBIN_DIRS].filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function missingPackages(env: Env): string[] {
  const wanted = new Set<string>();
  if (findExecutable('etcd', env) === null) wanted.add(PACKAGES.etcd);
  if (findExecutable('mariadbd', env) === null || findExecutable('mariadb-install-db', env) === null) wanted.add(PACKAGES.mariadbd);
  if (findExecutable('mariadb', env) === null) wanted.add(PACKAGES.client);
  if (findExecutable('etcdctl', env) === null) wanted.add(PACKAGES.etcdctl);
  return [...wanted];
}

export function installLine(packages: readonly string[]): string {
  const sudo = isRoot() ? '' : 'sudo ';
  return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    child.on('error', () => resolve(127));
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

async function aptInstall(packages: readonly string[], env: Env): Promise<void> {
  const aptEnv = { ...childEnv(env, () => false), DEBIAN_FRONTEND: 'noninteractive' };
  // policy-rc.d keeps the packaged mariadb service from starting: the sandbox runs its own servers.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    if ((await run('apt-get', ['update', '-qq'], aptEnv)) !== 0) throw new Error('apt-get update failed');
    const code = await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], aptEnv);
    if (code !== 0) throw new Error(`apt-get install exited with ${code}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

/** The servers' paths; installs or explains what is missing. */
export async function ensureBinaries(install: boolean, env: Env, say: (line: string) => void): Promise<Binaries> {
  let missing = missingPackages(env);
  if (missing.length > 0 && install && isRoot()) {
    say(`installing Debian packages: ${missing.join(' ')}`);
    try {
      await aptInstall(missing, env);
    } catch (cause) {
      throw new SandboxError(SandboxErrorCodes.PACKAGES_MISSING, `${(cause as Error).message}; run it yourself: ${installLine(missing)}`, { cause });
    }
    missing = missingPackages(env);
  }
  const etcd = findExecutable('etcd', env);
  const mariadbd = findExecutable('mariadbd', env);
  const installDb = findExecutable('mariadb-install-db', env);
  if (etcd === null || mariadbd === null || installDb === null) {
    const hint = install && !isRoot() ? ' (--install needs root)' : isRoot() ? ', or run again with --install' : '';
    throw new SandboxError(SandboxErrorCodes.PACKAGES_MISSING, `missing Debian packages; install them with: ${installLine(missing)}${hint}`);
  }
  return { etcd, mariadbd, installDb };
}
