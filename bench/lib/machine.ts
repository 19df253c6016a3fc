/** What the numbers were measured on, for the header of every results file. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../../test/harness/index.js';
import { SBIN_DIRS } from '../../test/harness/processes.js';

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly mariadb: string;
  readonly etcd: string;
  readonly commit: string;
  /** Files of packages/agent and packages/common that differ from the commit: the agents run from this working tree. */
  readonly uncommitted: number;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  const osRelease = (() => {
    try {
      return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown';
    } catch {
      return 'unknown';
    }
  })();
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const find = (name: string, dirs: string[] = []) => {
    try {
      return findExecutable(name, dirs);
    } catch {
      return name;
    }
  };
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: osRelease,
    node: process.version,
    mariadb: firstLine(find('mariadbd', SBIN_DIRS), ['--version']).replace(/^.*?Ver\s+/, '').replace(/\s+for .*$/, ''),
    etcd: firstLine(find('etcd'), ['--version']).replace(/^etcd Version:\s*/, ''),
    commit: firstLine('git', ['-C', repo, 'rev-parse', '--short', 'HEAD']),
    uncommitted: (() => {
      try {
        return execFileSync('git', ['-C', repo, 'status', '--porcelain', '--', 'packages/agent', 'packages/common'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
      } catch {
        return -1;
      }
    })(),
  };
}

export function machineLine(m: Machine): string {
  const tree = m.uncommitted > 0 ? ` with ${m.uncommitted} uncommitted agent/common files` : m.uncommitted === 0 ? ' (clean agent/common tree)' : '';
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB RAM, ${m.os}, Node ${m.node}, MariaDB ${m.mariadb}, etcd ${m.etcd}, commit ${m.commit}${tree}`;
}
