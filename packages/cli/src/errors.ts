/**
 * The CLI's failures, each with its documented exit code (docs/cli.md, "Exit codes"). A CliError
 * becomes one line on stderr, `primacy: <message>`, and never a stack trace.
 */
import { describeError } from '@primacy/common';
import type { Target } from './args.js';

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

/** A TLS or password file that cannot be used: a usage error, found before any etcd call. */
export function badFile(file: { path: string; from: string }, why: string, cause: unknown): CliError {
  return new CliError(ExitCode.USAGE, `cannot use ${file.from} ${file.path}: ${why}`, { cause });
}

export function etcdUnreachable(endpoints: readonly string[], cause: unknown): CliError {
  return new CliError(ExitCode.ETCD_UNREACHABLE, `cannot reach etcd at ${endpoints.join(',')}: ${grpcReason(describeError(cause))}`, { cause });
}

/**
 * A failed etcd call, in the operator's words: refused credentials and TLS failures are named as
 * such, with the flag to check. All of them are exit code 3, as etcd cannot be used.
 */
export function etcdFailure(target: Pick<Target, 'endpoints' | 'tls' | 'auth'>, cause: unknown): CliError {
  const reason = grpcReason(describeError(cause));
  const at = `etcd at ${target.endpoints.join(',')}`;
  const fail = (message: string) => new CliError(ExitCode.ETCD_UNREACHABLE, message, { cause });
  const user = target.auth?.user;
  if (/authentication failed|invalid user ID or password/i.test(reason)) {
    return fail(`${at} refused user ${user ?? '(none)'}: wrong user name or password (check --user, and PRIMACY_ETCD_PASSWORD or --password-file)`);
  }
  if (/user name is empty/i.test(reason)) return fail(`${at} requires a user: give --user NAME and a password (PRIMACY_ETCD_PASSWORD or --password-file FILE)`);
  if (/permission denied/i.test(reason)) return fail(`${at} denied user ${user ?? '(none)'}: permission denied (grant it a role that may read and write the cluster's keys)`);
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(reason)) {
    const cert = target.tls?.cert;
    return fail(`${at} refused ${cert ? `the client certificate ${cert.path}` : 'a client without a certificate'}: give one signed by a CA it trusts, with --cert and --key`);
  }
  if (/unable to verify|self[- ]signed|certificate has expired|not yet valid|does not match certificate|unable to get (local )?issuer/i.test(reason)) {
    const ca = target.tls?.ca;
    return fail(`cannot verify the certificate of ${at}: ${reason} (${ca ? `is ${ca.from} ${ca.path} the CA that signed it?` : 'give its CA with --cacert FILE'})`);
  }
  const tooLarge = /Received message larger than max \((\d+) vs (\d+)\)/.exec(reason);
  if (tooLarge) return new CliError(ExitCode.FAILED, `${at} answered with ${tooLarge[1]} bytes, more than the CLI takes in one answer (${tooLarge[2]}): too many keys for one read`, { cause });
  return etcdUnreachable(target.endpoints, cause);
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
