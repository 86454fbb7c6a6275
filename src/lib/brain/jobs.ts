import { Counter, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { BrainStore } from './history.js';
import type { JobOutcome } from './actions.js';
import type { TaskAction } from './schema.js';

/** `result` label values of mprism_brain_job_runs_total. */
export type JobResult = 'ok' | 'problems' | 'error' | 'skipped';

export interface BrainMetrics {
  jobRuns: Counter<'job' | 'result'>;
  jobDuration: Histogram<'job'>;
}

export function createBrainMetrics(registry: Registry): BrainMetrics {
  return {
    jobRuns: new Counter({
      name: 'mprism_brain_job_runs_total',
      help: 'Scheduled job runs by outcome (ok, problems, error, skipped because the previous run was still going)',
      labelNames: ['job', 'result'],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'mprism_brain_job_duration_seconds',
      help: 'Wall time of brain job runs',
      labelNames: ['job'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}


export interface JobDeps {
  store: Pick<BrainStore, 'startRun' | 'finishRun' | 'raiseAlert' | 'resolveAlerts'>;
  metrics: BrainMetrics;
  log: Logger;
}

/** How many problems an alert message lists before summarizing the rest. */
const ALERT_PROBLEMS_SHOWN = 3;

export function alertMessage(job: TaskAction, problems: readonly string[]): string {
  const shown = problems.slice(0, ALERT_PROBLEMS_SHOWN).join('; ');
  const more = problems.length > ALERT_PROBLEMS_SHOWN ? ` (+${problems.length - ALERT_PROBLEMS_SHOWN} more)` : '';
  return `${job}: ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${shown}${more}`;
}

/**
 * Run a job and keep its record: a job_runs row from start to finish, an alert (source = job name)
 * raised while it finds problems or fails, resolved by the next clean run. Never throws: the
 * brain must keep scheduling even when PostgreSQL or the job itself is failing.
 */
export async function runRecordedJob(
  deps: JobDeps,
  job: TaskAction,
  execute: () => Promise<JobOutcome>,
): Promise<JobResult> {
  const log = deps.log.child({ job });
  const stopTimer = deps.metrics.jobDuration.startTimer({ job });
  let runId: number | null = null;
  // Anything that escapes before an outcome is known counts as an error.
  let result: JobResult = 'error';
  try {
    runId = await deps.store.startRun(job);
    let outcome: JobOutcome;
    try {
      outcome = await execute();
    } catch (err) {
      const message = errorMessage(err);
      log.error({ err, runId }, 'job failed');
      await deps.store.finishRun(runId, { ok: false, error: message });
      await deps.store.raiseAlert({ severity: 'critical', source: job, message: `${job} failed: ${message}` });
      return result;
    }
    const ok = outcome.problems.length === 0;
    result = ok ? 'ok' : 'problems';
    await deps.store.finishRun(runId, { ok, result: outcome.result });
    if (ok) {
      const resolved = await deps.store.resolveAlerts(job);
      log.info({ runId, resolvedAlerts: resolved }, 'job clean');
    } else {
      await deps.store.raiseAlert({ severity: 'warning', source: job, message: alertMessage(job, outcome.problems) });
      log.warn({ runId, problems: outcome.problems.length }, 'job found problems');
    }
    return result;
  } catch (err) {
    log.error({ err, runId }, 'cannot record job run');
    return result;
  } finally {
    stopTimer();
    deps.metrics.jobRuns.inc({ job, result });
  }
}
