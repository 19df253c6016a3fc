/**
 * Every error Primacy reports is made here, with a stable code, a message that tells the operator
 * what to do, and the `cause` it came from. Codes never change meaning once released.
 */
export const ErrorCodes = {
  CONFIG_READ: 'PRIMACY_E_CONFIG_READ',
  CONFIG_INVALID: 'PRIMACY_E_CONFIG_INVALID',
  GTID_PARSE: 'PRIMACY_E_GTID_PARSE',
  GTID_FLAVOR: 'PRIMACY_E_GTID_FLAVOR',
  ETCD_VALUE_INVALID: 'PRIMACY_E_ETCD_VALUE_INVALID',
  ETCD_UNREACHABLE: 'PRIMACY_E_ETCD_UNREACHABLE',
  FENCED_WRITE_REJECTED: 'PRIMACY_E_FENCED_WRITE_REJECTED',
  NODE_UNREACHABLE: 'PRIMACY_E_NODE_UNREACHABLE',
  NODE_AUTH: 'PRIMACY_E_NODE_AUTH',
  NODE_REFUSING: 'PRIMACY_E_NODE_REFUSING',
  NODE_STATEMENT: 'PRIMACY_E_NODE_STATEMENT',
  SECRET_READ: 'PRIMACY_E_SECRET_READ',
  USAGE: 'PRIMACY_E_USAGE',
  OPERATION_REFUSED: 'PRIMACY_E_OPERATION_REFUSED',
  /** A rejoin step (salvage, flashback, reseed, script) started and failed part-way; its message says what state it left. */
  REJOIN_ABORTED: 'PRIMACY_E_REJOIN_ABORTED',
  UNKNOWN_CLUSTER: 'PRIMACY_E_UNKNOWN_CLUSTER',
  UNKNOWN_NODE: 'PRIMACY_E_UNKNOWN_NODE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class PrimacyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  /** One line for an operator: code and message, nothing else. */
  toLine(): string {
    return `${this.code}: ${this.message}`;
  }
}

export class ConfigError extends PrimacyError {}

export class GtidParseError extends PrimacyError {
  /** The offending part of the input, as written. */
  readonly part: string;
  constructor(part: string, input: string, why: string) {
    super(ErrorCodes.GTID_PARSE, `bad GTID "${part}" in "${input}": ${why}`);
    this.part = part;
  }
}

export class EtcdValueError extends PrimacyError {
  readonly key: string;
  /** What is wrong with the value, without the key. */
  readonly why: string;
  constructor(key: string, why: string, options?: { cause?: unknown }) {
    super(ErrorCodes.ETCD_VALUE_INVALID, `ignoring malformed value at ${key}: ${why}`, options);
    this.key = key;
    this.why = why;
  }
}

/** The one-line text of any thrown value, for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof PrimacyError) return err.toLine();
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
