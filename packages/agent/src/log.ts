/**
 * The agent's logger: pino, one JSON object per line on stdout, with the cluster and node on every
 * line and the epoch on every line written while acting for one. A line that announces a decision
 * also carries `reason`.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { AgentConfig } from '@primacy/common';

export type Logger = PinoLogger;
export type LogLevel = AgentConfig['log']['level'] | 'silent';

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly cluster: string;
  readonly node: string;
  /** Where lines go; stdout when absent. Tests pass a stream to read the lines back. */
  readonly destination?: DestinationStream;
  /** The cluster's current epoch, added to every line once known. */
  readonly epoch?: () => number | null;
}

export function createLogger(options: LoggerOptions): Logger {
  const settings = {
    level: options.level,
    // cluster and node replace pino's pid and hostname: they are what an operator filters on.
    base: { cluster: options.cluster, node: options.node },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    mixin: (): Record<string, unknown> => {
      const epoch = options.epoch?.() ?? null;
      return epoch === null ? {} : { epoch };
    },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

/** A child whose every line carries `epoch`: use it for all work done for one epoch. */
export function withEpoch(logger: Logger, epoch: number): Logger {
  return logger.child({ epoch });
}
