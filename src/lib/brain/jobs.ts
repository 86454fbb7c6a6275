import { Counter, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { JobOutcome } from './actions.js';
import type { BrainStore, RunStart } from './history.js';

/**
 * `result` label values of mprism_brain_job_runs_total: `skipped` when a run of the same task was
 * still going, `refused` when the fence says this brain no longer leads.
 */
export type JobResult = 'ok' | 'problems' | 'error' | 'skipped' | 'refused';

export interface BrainMetrics {
  jobRuns: Counter<'job' | 'result'>;
  jobDuration: Histogram<'job'>;
}

export function createBrainMetrics(registry: Registry): BrainMetrics {
  return {
    jobRuns: new Counter({
      name: 'mprism_brain_job_runs_total',
      help: 'Task runs by task name and outcome (ok, problems, error; skipped: the previous run of the task was still going; refused: this brain no longer leads)',
      labelNames: ['job', 'result'],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'mprism_brain_job_duration_seconds',
      help: 'Wall time of brain task runs, by task name',
      labelNames: ['job'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}

export interface JobDeps {
  store: Pick<BrainStore, 'startRun' | 'finishRun'>;
  metrics: BrainMetrics;
  log: Logger;
}

export interface RecordedRun {
  /** The metrics' job label: the task's name, or the action of a task-less run. */
  label: string;
  start: RunStart;
  /** Called once the run is recorded as started, with its id (before the action runs). */
  onStarted?: (runId: number) => void;
}

/**
 * Run a job and keep its record: a job_runs row from start to finish. A run whose start the fence
 * refuses does not run. Never throws: the brain must keep scheduling even when PostgreSQL or the job
 * itself is failing. Alerts about failing jobs and problems found come from the alert rules, which
 * read these rows.
 */
export async function runRecordedJob(deps: JobDeps, run: RecordedRun, execute: () => Promise<JobOutcome>): Promise<JobResult> {
  const log = deps.log.child({ job: run.label, trigger: run.start.trigger });
  const stopTimer = deps.metrics.jobDuration.startTimer({ job: run.label });
  let runId: number | null = null;
  // Anything that escapes before an outcome is known counts as an error.
  let result: JobResult = 'error';
  try {
    runId = await deps.store.startRun(run.start);
    if (runId === null) {
      result = 'refused';
      log.warn({ fence: run.start.fence }, 'run refused: a newer lease fence is recorded, another brain leads');
      return result;
    }
    run.onStarted?.(runId);
    let outcome: JobOutcome;
    try {
      outcome = await execute();
    } catch (err) {
      log.error({ err, runId }, 'job failed');
      await deps.store.finishRun(runId, { ok: false, error: errorMessage(err) });
      return result;
    }
    const ok = outcome.problems.length === 0;
    result = ok ? 'ok' : 'problems';
    await deps.store.finishRun(runId, { ok, result: outcome.result });
    if (ok) log.info({ runId }, 'job clean');
    else log.warn({ runId, problems: outcome.problems.length }, 'job found problems');
    return result;
  } catch (err) {
    log.error({ err, runId }, 'cannot record job run');
    return result;
  } finally {
    stopTimer();
    deps.metrics.jobRuns.inc({ job: run.label, result });
  }
}
