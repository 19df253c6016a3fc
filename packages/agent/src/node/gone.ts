/**
 * When a server that does not answer is provably gone, not merely silent (DESIGN.md invariant 4): a
 * connection refused on the agent's own host (nothing listens on the port or the socket), or the
 * mysqld process the agent watches has exited. A timeout, a reset, 1040 or a hung server prove nothing.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export interface WatchedServer {
  readonly host: string;
  readonly socket?: string | undefined;
  /** mysqld's pid file, when the agent runs beside it. */
  readonly pidFile?: string | undefined;
}

/** A loopback address or a unix socket: a refusal there comes from this host's own kernel. */
export function isLocalEndpoint(s: WatchedServer): boolean {
  if (s.socket !== undefined) return true;
  const h = s.host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Why a failed probe proves the server gone, or null when it does not. Pure but for `processAlive`. */
export function goneReason(error: string | null, s: WatchedServer, processAlive: (pid: number) => boolean | null = pidAlive): string | null {
  if (error === null) return null;
  if (isLocalEndpoint(s) && /\bECONNREFUSED\b/.test(error)) return `connection refused on this host (${s.socket ?? s.host})`;
  if (s.socket !== undefined && /\bENOENT\b/.test(error)) return `the socket ${s.socket} does not exist`;
  if (s.pidFile !== undefined) {
    const pid = readPid(s.pidFile);
    if (pid !== null && processAlive(pid) === false) return `mysqld (pid ${pid} in ${s.pidFile}) has exited`;
  }
  return null;
}

/** The pid in a pid file; null when there is none or it cannot be read. */
export function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null; // no pid file: mysqld may be starting or stopped; proves nothing either way
  }
}

/** True when the process exists (a stopped one too), false when it does not, null when unknown. */
function pidAlive(pid: number): boolean | null {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ESRCH' ? false : code === 'EPERM' ? true : null;
  }
}
