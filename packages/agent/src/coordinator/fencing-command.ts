/**
 * The operator's fencing command (STONITH), run by the coordinator for an old primary it cannot
 * prove fenced otherwise, with the old primary in its environment (operator-command.ts runs it,
 * bounded). Exit 0 within the timeout is a proof; anything else is not.
 */
import { runOperatorCommand, type CommandRun } from '../operator-command.js';

export interface FencingTarget {
  readonly cluster: string;
  readonly node: string;
  readonly host: string;
  readonly port: number;
  /** The old primary's epoch, and the epoch the failover promotes to. */
  readonly epoch: number;
  readonly failoverEpoch: number;
}

export type FencingRun = CommandRun;

export function runFencingCommand(command: string, target: FencingTarget, timeoutMs: number): Promise<FencingRun> {
  return runOperatorCommand({
    command,
    timeoutMs,
    env: {
      PRIMACY_CLUSTER: target.cluster,
      PRIMACY_NODE: target.node,
      PRIMACY_HOST: target.host,
      PRIMACY_PORT: String(target.port),
      PRIMACY_EPOCH: String(target.epoch),
      PRIMACY_FAILOVER_EPOCH: String(target.failoverEpoch),
    },
  });
}
