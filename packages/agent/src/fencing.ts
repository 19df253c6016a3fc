/**
 * Fencing a node: afterwards it takes no writes from any client (invariants 3 and 4). Sessions are
 * killed before read_only is set because SET GLOBAL read_only waits for commits in flight, and under
 * semi-sync a commit whose replicas were revoked waits for the whole semi-sync timeout. They are
 * killed again after, for any session that slipped in between (MariaDB's SUPER users ignore read_only).
 * Each step is tried even when the one before failed: a session that could not be killed must not
 * keep the node from turning read-only.
 */
import type { NodeDriver } from './node/driver.js';

export async function fenceNode(driver: NodeDriver, attempts = 3): Promise<{ killed: number }> {
  let killed = 0;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    let failed = false;
    const attempt = async (step: () => Promise<number | void>): Promise<void> => {
      try {
        const n = await step();
        if (typeof n === 'number') killed += n;
      } catch (err) {
        failed = true;
        lastError = err;
      }
    };
    await attempt(() => driver.killClientSessions());
    await attempt(() => driver.setReadOnly(true));
    await attempt(() => driver.killClientSessions());
    if (!failed) return { killed };
  }
  throw lastError;
}

/**
 * A planned demotion: read_only first, which waits for commits in flight (the drain, bounded by
 * `drainMs`), then the sessions are killed. If the drain times out, fence at once: the sessions
 * still committing are killed, their transactions roll back, and their clients get an error.
 */
export async function demoteNode(driver: NodeDriver, drainMs: number): Promise<{ killed: number }> {
  try {
    await driver.setReadOnly(true, drainMs);
    return { killed: await driver.killClientSessions() };
  } catch {
    return fenceNode(driver);
  }
}
