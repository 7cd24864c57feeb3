/**
 * An error the user can act on: `message` says what is wrong, `hint` says what to do.
 * Everything else that escapes the core is a bug and is reported with its stack.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly code: string = 'E_USER',
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** One-paragraph text for terminals and notifications: the problem, then what to do. */
export function describeError(err: unknown): string {
  if (isUserError(err)) {
    return err.hint ? `${err.message}\n  → ${err.hint}` : err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export class CancelledError extends UserError {
  constructor(what = 'The operation') {
    super(`${what} was cancelled.`, undefined, 'E_CANCELLED');
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}
