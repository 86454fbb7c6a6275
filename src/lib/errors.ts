/** Exit codes of the CLI contract. */
export const ExitCode = {
  ok: 0,
  problemsFound: 1,
  usage: 2,
  unreachable: 3,
  internal: 70,
} as const;

/** Base class: every error a user should see cleanly carries its exit code. */
export class MprismError extends Error {
  readonly exitCode: number = ExitCode.internal;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad flags or arguments. */
export class UsageError extends MprismError {
  override readonly exitCode = ExitCode.usage;
}

/** Invalid or unreadable configuration; message is `file: path: message` lines. */
export class ConfigError extends MprismError {
  override readonly exitCode = ExitCode.usage;
}

/** A server or daemon that should answer does not. */
export class UnreachableError extends MprismError {
  override readonly exitCode = ExitCode.unreachable;
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
  override readonly exitCode = ExitCode.problemsFound;
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
  override readonly exitCode = ExitCode.unreachable;
}

/** A check ran and found problems (exit 1, the report has the details). */
export class ProblemsFoundError extends MprismError {
  override readonly exitCode = ExitCode.problemsFound;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A check whose report already told the user what is wrong: exit 1, nothing more to print. */
export class CheckFailed extends MprismError {
  override readonly exitCode = ExitCode.problemsFound;
  constructor() {
    super('');
  }
}
