/**
 * Fencing a node: afterwards it takes no writes from any client (invariants 3 and 4). Sessions are
 * killed before read_only is set because SET GLOBAL read_only waits for commits in flight, and under
 * semi-sync a commit whose replicas were revoked waits for the whole semi-sync timeout. They are
 * killed again after, for any session that slipped in between (MariaDB's SUPER users ignore read_only).
 * Then read_only is read back: a fence is done only when the server itself says so.
 * Each step is tried even when the one before failed: a session that could not be killed must not
 * keep the node from turning read-only.
 */
import { ErrorCodes, PrimacyError, STRICT_SEMI_SYNC_TIMEOUT_MS } from '@primacy/common';
import { classifyError } from './node/classify.js';
import type { NodeDriver } from './node/driver.js';

export interface Fenced {
  readonly killed: number;
  /** The node's executed GTID position, read back with read_only: everything it will ever have acknowledged. */
  readonly gtid: string;
}

/**
 * Commits wait for a semi-sync acknowledgement that no replica can send (strict semi-sync, every
 * replica revoked). Killing any session would acknowledge them (MariaDB 10.11 answers OK to the
 * other members of a killed session's binlog group commit, and to a killed query): writes that
 * exist only here. They must stay waiting until the server is stopped.
 */
export class StrictWaitError extends PrimacyError {
  constructor(readonly waiting: number) {
    super(ErrorCodes.NODE_STATEMENT, `${waiting} commit${waiting === 1 ? '' : 's'} wait for a semi-sync acknowledgement that no replica can send (strict semi-sync, no replica connected); killing sessions would acknowledge ${waiting === 1 ? 'it' : 'them'}, so none is killed: stop mysqld`);
  }
}

/**
 * Under strict semi-sync with no replica connected nothing can commit, and a kill is what could make
 * a commit complete: waiting commits make the fence impossible (StrictWaitError), and without them
 * the fence sets read_only and reads it back without killing anyone (a commit that starts waiting
 * meanwhile holds SET read_only up; the next attempt sees it). Throws when the server does not say.
 */
async function strictRevoked(driver: NodeDriver): Promise<boolean> {
  // A server that cannot say is not fenced by killing into it: a kill sent now may run when it wakes,
  // and release what waits. The attempt fails here, and the next one asks again.
  const w = await driver.readSemiSyncWait();
  if (w.clients > 0 || (w.timeoutMs ?? 0) < STRICT_SEMI_SYNC_TIMEOUT_MS) return false;
  if (w.waiting > 0) throw new StrictWaitError(w.waiting);
  return true;
}

export async function fenceNode(driver: NodeDriver, attempts = 3): Promise<Fenced> {
  if (await strictRevoked(driver)) {
    await driver.setReadOnly(true);
    const state = await driver.readFenceState();
    if (!state.readOnly) throw new PrimacyError(ErrorCodes.NODE_STATEMENT, 'read_only reads OFF right after it was set: something turned it off again');
    await strictRevoked(driver); // a commit that slipped in before read_only still waits: not fenced
    return { killed: 0, gtid: state.gtidExecuted };
  }
  let killed = 0;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    let failed = false;
    let unreachable = false;
    const attempt = async (step: () => Promise<number | void>): Promise<void> => {
      // A server that does not answer one step will not answer the next: each would wait out its timeout.
      if (unreachable) return;
      try {
        const n = await step();
        if (typeof n === 'number') killed += n;
      } catch (err) {
        failed = true;
        lastError = err;
        unreachable = classifyError(err).health === 'down';
      }
    };
    await attempt(() => driver.killClientSessions());
    await attempt(() => driver.setReadOnly(true));
    await attempt(() => driver.killClientSessions());
    if (failed) continue;
    try {
      const state = await driver.readFenceState();
      if (state.readOnly) return { killed, gtid: state.gtidExecuted };
      lastError = new PrimacyError(ErrorCodes.NODE_STATEMENT, 'read_only reads OFF right after it was set: something turned it off again');
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/**
 * A planned demotion: read_only first, which waits for commits in flight (the drain, bounded by
 * `drainMs`), then the sessions are killed and read_only read back. If the drain times out, fence at
 * once: the sessions still committing are killed, their transactions roll back, and their clients
 * get an error.
 */
export async function demoteNode(driver: NodeDriver, drainMs: number): Promise<Fenced> {
  try {
    await driver.setReadOnly(true, drainMs);
    const killed = await driver.killClientSessions();
    const state = await driver.readFenceState();
    if (state.readOnly) return { killed, gtid: state.gtidExecuted };
  } catch {
    // fall through to the fence
  }
  return fenceNode(driver);
}
