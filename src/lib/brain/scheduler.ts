import { createTask, validateDetailed, type ScheduledTask } from 'node-cron';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';

/** Throws a ConfigError naming the config key and the bad field when `expression` is not valid cron. */
export function validateSchedule(expression: string, key: string): void {
  const check = validateDetailed(expression);
  if (check.valid) return;
  const why = check.errors.map((e) => e.message).join('; ');
  throw new ConfigError(
    `${key}: invalid cron expression "${expression}": ${why} ` +
      '(expected 5 fields "min hour day month weekday", or 6 with seconds first)',
  );
}

/**
 * Runs an async job at most once at a time. A trigger that arrives while a run is in progress is
 * skipped (and reported) rather than queued: a slow check must not pile up behind itself.
 */
export class SingleFlight {
  private current: Promise<void> | null = null;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly onSkip: () => void,
  ) {}

  get running(): boolean {
    return this.current !== null;
  }

  /** Starts a run; returns its promise, or null when skipped. The promise never rejects. */
  trigger(): Promise<void> | null {
    if (this.current !== null) {
      this.onSkip();
      return null;
    }
    const run = this.run()
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

export interface JobSchedule {
  /** Run now, outside the schedule (same no-overlap rule). */
  runNow(): Promise<void> | null;
  readonly running: boolean;
  /** Stop triggering and wait for a run in progress to finish. */
  stop(): Promise<void>;
}

export interface ScheduleOptions {
  name: string;
  expression: string;
  /** Config key of the expression, for the error message when it is invalid. */
  configKey: string;
  /** Should handle its own errors; a rejection is swallowed so the schedule keeps going. */
  run: () => Promise<void>;
  onSkip: () => void;
  log: Logger;
}

/** Starts a cron schedule for a non-overlapping job. Validates the expression first. */
export function scheduleJob(options: ScheduleOptions): JobSchedule {
  validateSchedule(options.expression, options.configKey);
  const flight = new SingleFlight(options.run, () => {
    options.log.warn({ job: options.name }, 'previous run still in progress; skipping this trigger');
    options.onSkip();
  });
  const task: ScheduledTask = createTask(
    options.expression,
    () => {
      // Not awaited: node-cron stays free, and overlap is decided by SingleFlight (skip + count).
      flight.trigger();
    },
    {
      name: options.name,
      logger: {
        info: (m) => options.log.debug({ job: options.name }, m),
        warn: (m) => options.log.warn({ job: options.name }, m),
        error: (m, err) => options.log.error({ job: options.name, err: err ?? m }, String(m)),
        debug: (m) => options.log.debug({ job: options.name }, String(m)),
      },
    },
  );
  void task.start();
  let stopped = false;
  return {
    runNow: () => (stopped ? null : flight.trigger()),
    get running() {
      return flight.running;
    },
    async stop() {
      if (!stopped) {
        stopped = true;
        await task.destroy();
      }
      await flight.idle();
    },
  };
}
