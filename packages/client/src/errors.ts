/**
 * Every error @primacy/client raises is made here, with the same shape as common's PrimacyError:
 * a stable code, a message that tells the application what to do, and the `cause`. (Common's
 * registry is closed to new codes from other packages, so the client keeps its own.)
 */
export const ClientErrorCodes = {
  OPTIONS_INVALID: 'PRIMACY_E_OPTIONS_INVALID',
  NO_PRIMARY: 'PRIMACY_E_NO_PRIMARY',
  STALE_PRIMARY: 'PRIMACY_E_STALE_PRIMARY',
  NOT_PRIMARY: 'PRIMACY_E_NOT_PRIMARY',
  OUTCOME_UNKNOWN: 'PRIMACY_E_OUTCOME_UNKNOWN',
  HEARTBEAT_UNREADABLE: 'PRIMACY_E_HEARTBEAT_UNREADABLE',
  CONNECTION_CLOSED: 'PRIMACY_E_CONNECTION_CLOSED',
  POOL_CLOSED: 'PRIMACY_E_POOL_CLOSED',
  WATCH_CLOSED: 'PRIMACY_E_WATCH_CLOSED',
  ETCD_UNREACHABLE: 'PRIMACY_E_ETCD_UNREACHABLE',
  /** TLS or auth: etcd's certificate cannot be verified, or etcd refused the client's certificate, user or password. */
  ETCD_AUTH_FAILED: 'PRIMACY_E_ETCD_AUTH_FAILED',
  REGISTRATION_FAILED: 'PRIMACY_E_REGISTRATION_FAILED',
} as const;

export type ClientErrorCode = (typeof ClientErrorCodes)[keyof typeof ClientErrorCodes];

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  /** One line: code and message, nothing else. */
  toLine(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** The statement may or may not have been executed; the pool never retries it. */
export class OutcomeUnknownError extends ClientError {
  /** The node and epoch the statement was sent to. */
  readonly node: string;
  readonly epoch: number;
  constructor(node: string, epoch: number, cause: unknown) {
    super(
      ClientErrorCodes.OUTCOME_UNKNOWN,
      `the connection to ${node} (epoch ${epoch}) was lost while the statement ran: it may or may not have been executed; check before repeating it (${oneLine(cause)})`,
      { cause },
    );
    this.node = node;
    this.epoch = epoch;
  }
}

export function isClientError(err: unknown, code?: ClientErrorCode): err is ClientError {
  return err instanceof ClientError && (code === undefined || err.code === code);
}

/** The first line of any thrown value's message. */
export function oneLine(err: unknown): string {
  if (err instanceof ClientError) return err.toLine();
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const first = err.message.split('\n')[0] ?? err.name;
    return typeof code === 'string' && !first.includes(code) ? `${code}: ${first}` : first;
  }
  return String(err);
}
