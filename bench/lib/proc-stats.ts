/** Memory and CPU of a process from /proc (Linux only). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Resident set size in KiB (VmRSS), or null when the process is gone. */
export function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface MemoryKiB {
  /** VmRSS. */
  readonly rss: number;
  /** RssAnon: the process's own pages (heap, stacks, malloc). */
  readonly anon: number;
  /** RssFile + RssShmem: mapped files, mostly the node binary and shared libraries, shared with every process that maps them. */
  readonly file: number;
  /** Pss from smaps_rollup: resident pages, each shared one divided among the processes that map it; null where unreadable. */
  readonly pss: number | null;
}

/** The resident set split by kind, in KiB, or null when the process is gone. */
export function memoryKiB(pid: number): MemoryKiB | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    let pss: number | null = null;
    try {
      pss = Number(/^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? Number.NaN);
    } catch {
      pss = null;
    }
    return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') + field('RssShmem'), pss: Number.isNaN(pss) ? null : pss };
  } catch {
    return null;
  }
}

/** utime + stime in clock ticks (fields 14 and 15 of /proc/<pid>/stat), or null when the process is gone. */
export function cpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may contain spaces: state is field 3, utime field 14.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

let ticksPerSecond: number | undefined;

/** The kernel's USER_HZ (`getconf CLK_TCK`), almost always 100. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The process's command line, arguments joined by spaces. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** The 1-minute load average. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}
