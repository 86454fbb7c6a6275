import type pg from 'pg';
import type { ProgressStore } from './actions.js';
import type { AlertSeverity, RunTrigger, TaskAction } from './schema.js';

/** One recorded job execution (stable JSON shape of the brain API). */
export interface JobRun {
  id: number;
  /** The action that ran. */
  job: TaskAction;
  /** The task it ran for; null for a task-less run (history initialization) or a task deleted since. */
  taskId: number | null;
  taskName: string | null;
  trigger: RunTrigger;
  /** The lease fencing token and the id of the brain that ran it. */
  fence: number | null;
  brainId: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** null while running; false when the job found problems or failed. */
  ok: boolean | null;
  result: unknown;
  error: string | null;
}

/** How a run ended: it produced a result (clean or with problems), or it threw. */
export type RunOutcome = { ok: boolean; result: unknown } | { ok: false; error: string };

/** What a run is recorded under when it starts. */
export interface RunStart {
  job: TaskAction;
  taskId: number | null;
  taskName: string | null;
  trigger: RunTrigger;
  fence: number;
  brainId: string;
}

interface JobRunRow {
  id: string;
  job: TaskAction;
  task_id: string | null;
  task_name: string | null;
  trigger: RunTrigger;
  fence: string | null;
  brain_id: string | null;
  started_at: Date;
  finished_at: Date | null;
  ok: boolean | null;
  result: unknown;
  error: string | null;
}

const RUN_COLUMNS = 'id, job, task_id, task_name, trigger, fence, brain_id, started_at, finished_at, ok, result, error';

// bigserial/bigint values arrive as strings; they stay far below 2^53 for these tables' lifetime.
const toRun = (r: JobRunRow): JobRun => ({
  id: Number(r.id),
  job: r.job,
  taskId: r.task_id === null ? null : Number(r.task_id),
  taskName: r.task_name,
  trigger: r.trigger,
  fence: r.fence === null ? null : Number(r.fence),
  brainId: r.brain_id,
  startedAt: r.started_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  ok: r.ok,
  result: r.result,
  error: r.error,
});

/** Saved state of resumable work, one job_progress row per key. */
export class ProgressTable implements ProgressStore {
  constructor(private readonly pool: pg.Pool) {}

  async load(key: string): Promise<unknown> {
    const res = await this.pool.query<{ state: unknown }>('SELECT state FROM job_progress WHERE job = $1', [key]);
    return res.rows[0]?.state ?? null;
  }

  async save(key: string, state: unknown): Promise<void> {
    await this.pool.query(
      `INSERT INTO job_progress (job, state, updated_at) VALUES ($1, $2::jsonb, now())
       ON CONFLICT (job) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
      [key, JSON.stringify(state)],
    );
  }

  async clear(key: string): Promise<void> {
    await this.pool.query('DELETE FROM job_progress WHERE job = $1', [key]);
  }

  async list(prefix: string): Promise<{ key: string; state: unknown; updatedAt: string }[]> {
    // starts_with, not LIKE: a prefix with % or _ in it means those characters.
    const res = await this.pool.query<{ job: string; state: unknown; updated_at: Date }>(
      'SELECT job, state, updated_at FROM job_progress WHERE starts_with(job, $1) ORDER BY job',
      [prefix],
    );
    return res.rows.map((r) => ({ key: r.job, state: r.state, updatedAt: r.updated_at.toISOString() }));
  }
}

/** Typed access to the brain's run history, alerts and job progress (tables from ensureBrainSchema). */
export class BrainStore {
  readonly progress: ProgressStore;

  constructor(private readonly pool: pg.Pool) {
    this.progress = new ProgressTable(pool);
  }

  /**
   * Record the start of a run, unless `fence` is no longer the newest lease token recorded in
   * brain_fence (null then: the lease has passed to another brain, which must be the only one
   * starting runs). The row lock (FOR SHARE) orders this insert against a new leader's claim: either
   * this run is recorded before the new leader starts, or it is not recorded at all.
   */
  async startRun(run: RunStart): Promise<number | null> {
    const res = await this.pool.query<{ id: string }>(
      `INSERT INTO job_runs (job, task_id, task_name, trigger, fence, brain_id)
       SELECT $1, $2, $3, $4, $5, $6
        WHERE EXISTS (SELECT 1 FROM brain_fence WHERE id = 1 AND fence = $5 FOR SHARE)
       RETURNING id`,
      [run.job, run.taskId, run.taskName, run.trigger, run.fence, run.brainId],
    );
    return res.rows[0] === undefined ? null : Number(res.rows[0].id);
  }

  /** Close a run. A run already closed (by a new leader, as abandoned) keeps that record. */
  async finishRun(id: number, outcome: RunOutcome): Promise<void> {
    const result = 'result' in outcome ? JSON.stringify(outcome.result) : null;
    const error = 'error' in outcome ? outcome.error : null;
    await this.pool.query(
      `UPDATE job_runs SET finished_at = now(), ok = $2, result = $3::jsonb, error = $4
        WHERE id = $1 AND finished_at IS NULL`,
      [id, outcome.ok, result, error],
    );
  }

  /**
   * Close runs that brains leading before `fence` left open (killed mid-run), so history never shows
   * a run as forever in progress. Runs under the current fence are this leader's own. Returns how many.
   */
  async abandonUnfinishedRuns(fence: number): Promise<number> {
    const res = await this.pool.query(
      `UPDATE job_runs SET finished_at = now(), ok = false,
              error = 'interrupted: the brain running it stopped or lost its lease before it finished'
        WHERE finished_at IS NULL AND (fence IS NULL OR fence < $1)`,
      [fence],
    );
    return res.rowCount ?? 0;
  }

  /** Newest first, optionally for one action or one task. */
  async recentRuns(limit: number, filter: { job?: TaskAction; taskId?: number } = {}): Promise<JobRun[]> {
    const res = await this.pool.query<JobRunRow>(
      `SELECT ${RUN_COLUMNS} FROM job_runs
        WHERE ($2::text IS NULL OR job = $2) AND ($3::bigint IS NULL OR task_id = $3)
        ORDER BY started_at DESC, id DESC LIMIT $1`,
      [limit, filter.job ?? null, filter.taskId ?? null],
    );
    return res.rows.map(toRun);
  }

  /** The newest run of each action that has run at least once. */
  async latestRuns(): Promise<JobRun[]> {
    const res = await this.pool.query<JobRunRow>(
      `SELECT DISTINCT ON (job) ${RUN_COLUMNS} FROM job_runs ORDER BY job, started_at DESC, id DESC`,
    );
    return res.rows.map(toRun);
  }

  /** The newest run of each task that has run at least once, by task id. */
  async latestTaskRuns(): Promise<Map<number, JobRun>> {
    const res = await this.pool.query<JobRunRow>(
      `SELECT DISTINCT ON (task_id) ${RUN_COLUMNS} FROM job_runs WHERE task_id IS NOT NULL
        ORDER BY task_id, started_at DESC, id DESC`,
    );
    return new Map(res.rows.map((r) => [Number(r.task_id), toRun(r)]));
  }

  async getRun(id: number): Promise<JobRun | null> {
    const res = await this.pool.query<JobRunRow>(`SELECT ${RUN_COLUMNS} FROM job_runs WHERE id = $1`, [id]);
    return res.rows[0] === undefined ? null : toRun(res.rows[0]);
  }

  /**
   * Deletes finished runs, and alerts resolved (with their delivery attempts), before `days` ago:
   * the health task alone records a run every 15 s. Open alerts stay whatever their age.
   */
  async pruneHistory(days: number): Promise<{ runs: number; alerts: number; deliveries: number }> {
    const runs = await this.pool.query(`DELETE FROM job_runs WHERE finished_at < now() - make_interval(days => $1)`, [days]);
    const deliveries = await this.pool.query(
      `DELETE FROM alert_deliveries d USING alerts a
        WHERE d.alert_id = a.id AND a.resolved_at < now() - make_interval(days => $1)`,
      [days],
    );
    const alerts = await this.pool.query(`DELETE FROM alerts WHERE resolved_at < now() - make_interval(days => $1)`, [days]);
    return { runs: runs.rowCount ?? 0, alerts: alerts.rowCount ?? 0, deliveries: deliveries.rowCount ?? 0 };
  }
}
