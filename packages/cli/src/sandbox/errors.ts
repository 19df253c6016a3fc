/**
 * The sandbox's errors: a stable code, one line that tells the user what to do, and the exit code
 * the CLI returns. `detail` holds extra lines (a log's tail) printed under that line.
 */
export const SandboxErrorCodes = {
  USAGE: 'PRIMACY_E_USAGE',
  PACKAGES_MISSING: 'PRIMACY_E_SANDBOX_PACKAGES_MISSING',
  NOT_FOUND: 'PRIMACY_E_SANDBOX_NOT_FOUND',
  STATE_INVALID: 'PRIMACY_E_SANDBOX_STATE_INVALID',
  DIR_TAKEN: 'PRIMACY_E_SANDBOX_DIR_TAKEN',
  STOPPED: 'PRIMACY_E_SANDBOX_STOPPED',
  PORTS: 'PRIMACY_E_SANDBOX_PORTS',
  START_FAILED: 'PRIMACY_E_SANDBOX_START_FAILED',
  STOP_FAILED: 'PRIMACY_E_SANDBOX_STOP_FAILED',
  UNKNOWN_NODE: 'PRIMACY_E_UNKNOWN_NODE',
} as const;

export type SandboxErrorCode = (typeof SandboxErrorCodes)[keyof typeof SandboxErrorCodes];

export class SandboxError extends Error {
  readonly code: SandboxErrorCode;
  readonly exitCode: number;
  readonly detail: string | undefined;
  constructor(code: SandboxErrorCode, message: string, options: { exitCode?: number; detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SandboxError';
    this.code = code;
    this.exitCode = options.exitCode ?? (code === SandboxErrorCodes.USAGE ? 2 : 1);
    this.detail = options.detail;
  }
}

export function usageError(message: string): SandboxError {
  return new SandboxError(SandboxErrorCodes.USAGE, message);
}

/** The one-line text of any thrown value. */
export function errorLine(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
