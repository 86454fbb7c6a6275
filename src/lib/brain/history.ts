import type pg from 'pg';
import type { AlertSeverity, TaskAction } from './schema.js';

/** One recorded job execution (stable JSON shape of the brain API). */
export interface JobRun {
  id: number;
  job: TaskAction;
  startedAt: string;
  finishedAt: string | null;
  /** null while running; false when the job found problems or failed. */
  ok: boolean | null;
  result: unknown;
  error: string | null;
}

export interface Alert {
  id: number;
  createdAt: string;
  severity: AlertSeverity;
  source: string;
  message: string;
  resolvedAt: string | null;
}

/** How a run ended: it produced a result (clean or with problems), or it threw. */
export type RunOutcome = { ok: boolean; result: unknown } | { ok: false; error: string };

interface JobRunRow {
  id: string;
  job: TaskAction;
  started_at: Date;
  finished_at: Date | null;
  ok: boolean | null;
  result: unknown;
  error: string | null;
}

interface AlertRow {
  id: string;
  created_at: Date;
  severity: AlertSeverity;
  source: string;
  message: string;
  resolved_at: Date | null;
}

const RUN_COLUMNS = 'id, job, started_at, finished_at, ok, result, error';
const ALERT_COLUMNS = 'id, created_at, severity, source, message, resolved_at';

// bigserial ids arrive as strings; they stay far below 2^53 for this table's lifetime.
const toRun = (r: JobRunRow): JobRun => ({
  id: Number(r.id),
  job: r.job,
  startedAt: r.started_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  ok: r.ok,
  result: r.result,
  error: r.error,
});

const toAlert = (r: AlertRow): Alert => ({
  id: Number(r.id),
  createdAt: r.created_at.toISOString(),
  severity: r.severity,
  source: r.source,
  message: r.message,
  resolvedAt: r.resolved_at?.toISOString() ?? null,
});

/** Typed access to the brain's history, alerts and job progress (tables from ensureBrainSchema). */
export class BrainStore {
  constructor(private readonly pool: pg.Pool) {}

  async startRun(job: TaskAction): Promise<number> {
    const res = await this.pool.query<{ id: string }>('INSERT INTO job_runs (job) VALUES ($1) RETURNING id', [job]);
    return Number(res.rows[0]!.id);
  }

  async finishRun(id: number, outcome: RunOutcome): Promise<void> {
    const result = 'result' in outcome ? JSON.stringify(outcome.result) : null;
    const error = 'error' in outcome ? outcome.error : null;
    await this.pool.query(
      'UPDATE job_runs SET finished_at = now(), ok = $2, result = $3::jsonb, error = $4 WHERE id = $1',
      [id, outcome.ok, result, error],
    );
  }

  /**
   * Close runs a previous brain left open (killed mid-run), so history never shows a run as
   * forever in progress. Returns how many were closed.
   */
  async abandonUnfinishedRuns(): Promise<number> {
    const res = await this.pool.query(
      `UPDATE job_runs SET finished_at = now(), ok = false,
              error = 'interrupted: the brain stopped before this run finished'
        WHERE finished_at IS NULL`,
    );
    return res.rowCount ?? 0;
  }

  /** Newest first, optionally for one job. */
  async recentRuns(limit: number, job?: TaskAction): Promise<JobRun[]> {
    const res =
      job === undefined
        ? await this.pool.query<JobRunRow>(
            `SELECT ${RUN_COLUMNS} FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1`,
            [limit],
          )
        : await this.pool.query<JobRunRow>(
            `SELECT ${RUN_COLUMNS} FROM job_runs WHERE job = $2 ORDER BY started_at DESC, id DESC LIMIT $1`,
            [limit, job],
          );
    return res.rows.map(toRun);
  }

  /** The newest run of each job that has run at least once. */
  async latestRuns(): Promise<JobRun[]> {
    const res = await this.pool.query<JobRunRow>(
      `SELECT DISTINCT ON (job) ${RUN_COLUMNS} FROM job_runs ORDER BY job, started_at DESC, id DESC`,
    );
    return res.rows.map(toRun);
  }

  /**
   * Open an alert for `source`, or refresh the one already open (severity and message follow the
   * latest finding; created_at keeps when the trouble began).
   */
  async raiseAlert(alert: { severity: AlertSeverity; source: string; message: string }): Promise<Alert> {
    const res = await this.pool.query<AlertRow>(
      `INSERT INTO alerts (severity, source, message) VALUES ($1, $2, $3)
       ON CONFLICT (source) WHERE resolved_at IS NULL
       DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message
       RETURNING ${ALERT_COLUMNS}`,
      [alert.severity, alert.source, alert.message],
    );
    return toAlert(res.rows[0]!);
  }

  /** Resolve every open alert of `source`; returns how many were open. */
  async resolveAlerts(source: string): Promise<number> {
    const res = await this.pool.query(
      'UPDATE alerts SET resolved_at = now() WHERE source = $1 AND resolved_at IS NULL',
      [source],
    );
    return res.rowCount ?? 0;
  }

  /** Open alerts, most severe first, then newest. */
  async openAlerts(): Promise<Alert[]> {
    const res = await this.pool.query<AlertRow>(
      `SELECT ${ALERT_COLUMNS} FROM alerts WHERE resolved_at IS NULL
        ORDER BY (severity = 'critical') DESC, created_at DESC, id DESC`,
    );
    return res.rows.map(toAlert);
  }

  /** Saved state of a resumable job, or null when it has none. */
  async loadProgress(job: TaskAction): Promise<unknown> {
    const res = await this.pool.query<{ state: unknown }>('SELECT state FROM job_progress WHERE job = $1', [job]);
    return res.rows[0]?.state ?? null;
  }

  async saveProgress(job: TaskAction, state: unknown): Promise<void> {
    await this.pool.query(
      `INSERT INTO job_progress (job, state, updated_at) VALUES ($1, $2::jsonb, now())
       ON CONFLICT (job) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
      [job, JSON.stringify(state)],
    );
  }

  async clearProgress(job: TaskAction): Promise<void> {
    await this.pool.query('DELETE FROM job_progress WHERE job = $1', [job]);
  }
}
