/** Exit codes of the CLI contract. */
export const ExitCode = {
  ok: 0,
  problemsFound: 1,
  usage: 2,
  unreachable: 3,
  internal: 70,
} as const;

/** What went wrong, as a domain fact; only the CLI boundary turns it into an exit status (EXIT_STATUS). */
export type ErrorCode = 'internal' | 'usage' | 'config' | 'unreachable' | 'lock_held' | 'missing_binary' | 'problems_found' | 'malformed_frame';

/** The CLI contract's exit status per error code: a missing code is a compile error. */
export const EXIT_STATUS: { readonly [C in ErrorCode]: number } = {
  internal: ExitCode.internal,
  usage: ExitCode.usage,
  config: ExitCode.usage,
  unreachable: ExitCode.unreachable,
  lock_held: ExitCode.problemsFound,
  missing_binary: ExitCode.unreachable,
  problems_found: ExitCode.problemsFound,
  // A venue's answer the CLI could not read (a refill in `repair`): the venue is the trouble, not mprism.
  malformed_frame: ExitCode.unreachable,
};

/** Base class: every error a user should see cleanly carries its code. */
export class MprismError extends Error {
  readonly code: ErrorCode = 'internal';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad flags or arguments. */
export class UsageError extends MprismError {
  override readonly code = 'usage';
}

/** Invalid or unreadable configuration; message is `file: path: message` lines. */
export class ConfigError extends MprismError {
  override readonly code = 'config';
}

/** A server or daemon that should answer does not. */
export class UnreachableError extends MprismError {
  override readonly code = 'unreachable';
  constructor(
    readonly target: string,
    readonly address: string,
    options?: { cause?: unknown },
  ) {
    const why = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`${target} unreachable at ${address}${why}`, options);
  }
}

/** A lock held by a live process. */
export class LockHeldError extends MprismError {
  override readonly code = 'lock_held';
  constructor(
    readonly lockFile: string,
    readonly holderPid: number,
    readonly holderName: string,
  ) {
    super(`${holderName} is already running (pid ${holderPid}, lock ${lockFile})`);
  }
}

/** A required server binary is missing and could not or may not be installed. */
export class MissingBinaryError extends MprismError {
  override readonly code = 'missing_binary';
}

/** A check ran and found problems (exit 1, the report has the details). */
export class ProblemsFoundError extends MprismError {
  override readonly code = 'problems_found';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A check whose report already told the user what is wrong: exit 1, nothing more to print. */
export class CheckFailed extends MprismError {
  override readonly code = 'problems_found';
  constructor() {
    super('');
  }
}
