import { validateDetailed } from 'node-cron';
import { ConfigError } from '../errors.js';

const CRON_FORMS = 'expected 5 fields "min hour day month weekday", or 6 with seconds first';

/** Why `expression` is not valid node-cron, or null when it is. */
export function cronProblem(expression: string): string | null {
  const check = validateDetailed(expression);
  if (check.valid) return null;
  const why = check.errors.map((e) => e.message).join('; ');
  return `invalid cron expression "${expression}": ${why} (${CRON_FORMS})`;
}

/** Why `timezone` is not an IANA time zone this runtime knows, or null when it is. */
export function timezoneProblem(timezone: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return null;
  } catch {
    return `unknown time zone "${timezone}" (expected an IANA name such as UTC or Europe/Berlin)`;
  }
}

/** Throws a ConfigError naming the config key when `expression` is not valid cron. */
export function validateSchedule(expression: string, key: string): void {
  const problem = cronProblem(expression);
  if (problem !== null) throw new ConfigError(`${key}: ${problem}`);
}

/**
 * Runs an async job at most once at a time. A trigger that arrives while a run is in progress is
 * skipped (and reported) rather than queued: a slow check must not pile up behind itself.
 */
export class SingleFlight<A = void> {
  private current: Promise<void> | null = null;

  constructor(
    private readonly run: (arg: A) => Promise<void>,
    /** Told which trigger was skipped. */
    private readonly onSkip: (arg: A) => void,
  ) {}

  get running(): boolean {
    return this.current !== null;
  }

  /** Starts a run; returns its promise, or null when skipped. The promise never rejects. */
  trigger(arg: A): Promise<void> | null {
    if (this.current !== null) {
      this.onSkip(arg);
      return null;
    }
    const run = this.run(arg)
      .catch(() => undefined)
      .finally(() => {
        this.current = null;
      });
    this.current = run;
    return run;
  }

  /** Resolves when no run is in progress. */
  async idle(): Promise<void> {
    while (this.current !== null) await this.current;
  }
}
