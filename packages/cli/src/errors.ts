/**
 * The CLI's failures, each with its documented exit code (docs/cli.md, "Exit codes"). A CliError
 * becomes one line on stderr, `primacy: <message>`, and never a stack trace.
 */
import { describeError } from '@primacy/common';

export const ExitCode = {
  OK: 0,
  /** The operation was refused, aborted or failed. */
  FAILED: 1,
  /** Unknown command or flag, or a bad value. */
  USAGE: 2,
  ETCD_UNREACHABLE: 3,
  /** No keys under the cluster's prefix, or no such node or epoch. */
  UNKNOWN: 4,
  TIMEOUT: 5,
  /** Ctrl-C while waiting for an operation: the request may still be carried out. */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCodeValue,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(ExitCode.USAGE, `${message} (see primacy --help)`);
}

export function etcdUnreachable(endpoints: readonly string[], cause: unknown): CliError {
  return new CliError(ExitCode.ETCD_UNREACHABLE, `cannot reach etcd at ${endpoints.join(',')}: ${grpcReason(describeError(cause))}`, { cause });
}

/** gRPC's messages bury the reason: `14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note: `. */
export function grpcReason(message: string): string {
  const last = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/.exec(message);
  const text = last?.[1] ?? message.replace(/\s*Resolution note:.*$/, '');
  return text.replace(/^\d+ [A-Z_]+: /, '').trim() || message;
}

export function unknownCluster(cluster: string, prefix: string, endpoints: readonly string[]): CliError {
  return new CliError(ExitCode.UNKNOWN, `unknown cluster ${cluster}: no keys under ${prefix} in etcd at ${endpoints.join(',')} (check --cluster and --root)`);
}

export function unknownNode(node: string, cluster: string, known: readonly string[]): CliError {
  const list = known.length > 0 ? `; its members are ${known.join(', ')}` : '; it has no members';
  return new CliError(ExitCode.UNKNOWN, `unknown node ${node} in cluster ${cluster}${list}`);
}

export function refused(message: string): CliError {
  return new CliError(ExitCode.FAILED, message);
}

export function timedOut(message: string): CliError {
  return new CliError(ExitCode.TIMEOUT, message);
}
