/**
 * The last step of every rejoin: point the node at the new primary with GTID auto-positioning and
 * wait until both replication threads run, so "rejoined" means replicating, not merely configured.
 */
import { ErrorCodes, PrimacyError } from '@primacy/common';
import type { Endpoint, Flavor, ReplicationSource } from '../node/driver.js';
import { connectNode } from '../node/index.js';

export interface ReplicationStarted {
  readonly ms: number;
}

export async function replicateFromPrimary(
  node: string,
  endpoint: Endpoint,
  flavor: Flavor,
  source: ReplicationSource,
  timeoutMs = 30_000,
): Promise<ReplicationStarted> {
  const started = Date.now();
  const driver = connectNode(endpoint, { flavor, connectTimeoutMs: 5_000, queryTimeoutMs: 10_000 });
  try {
    await driver.replicateFrom(source);
    let last = 'no replication status yet';
    while (Date.now() - started < timeoutMs) {
      const o = await driver.observe();
      const r = o.state?.replication;
      if (r?.ioState === 'running' && r.sqlRunning) return { ms: Date.now() - started };
      if (r) last = `IO ${r.ioState}, SQL ${r.sqlRunning ? 'running' : 'stopped'} ${r.lastIoError} ${r.lastSqlError}`.trim();
      // An SQL thread that stopped with an error will not start by itself.
      if (r && !r.sqlRunning && r.lastSqlError !== '') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new PrimacyError(ErrorCodes.REJOIN_ABORTED, `${node} does not replicate from ${source.host}:${source.port}: ${last}`);
  } finally {
    await driver.close();
  }
}
