import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { UnreachableError } from '../errors.js';
import { displayAddress, postgresUrl } from '../infra/endpoints.js';
import { ensurePostgresDatabase } from '../infra/probe.js';
import { ALERT_RULE_KINDS, ALERT_SEVERITIES, TASK_ACTIONS, type AlertRuleKind, type AlertSeverity, type TaskAction } from '../config/schema.js';

export { ALERT_RULE_KINDS, ALERT_SEVERITIES, TASK_ACTIONS, type AlertRuleKind, type AlertSeverity, type TaskAction };

/** What started a run: its cron, an operator (API, `mprism tasks run`), or history initialization at first start. */
export const RUN_TRIGGERS = ['schedule', 'manual', 'init'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

/** Alert events delivered to the webhook and NATS. */
export const ALERT_EVENTS = ['opened', 'resolved'] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

const quoted = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

/**
 * Table name -> DDL that creates it (and its indexes) idempotently, and brings a table an older
 * brain created up to date (ADD COLUMN IF NOT EXISTS, constraints replaced by name).
 */
const TABLE_DDL: Readonly<Record<string, readonly string[]>> = {
  tasks: [
    `CREATE TABLE IF NOT EXISTS tasks (
       id bigserial PRIMARY KEY,
       name text NOT NULL UNIQUE,
       cron text NOT NULL,
       timezone text NOT NULL DEFAULT 'UTC',
       action text NOT NULL CHECK (action IN (${quoted(TASK_ACTIONS)})),
       params jsonb NOT NULL DEFAULT '{}'::jsonb,
       enabled boolean NOT NULL DEFAULT true,
       skipped bigint NOT NULL DEFAULT 0,
       created_at timestamptz NOT NULL DEFAULT now(),
       updated_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
  job_runs: [
    `CREATE TABLE IF NOT EXISTS job_runs (
       id bigserial PRIMARY KEY,
       job text NOT NULL,
       started_at timestamptz NOT NULL DEFAULT now(),
       finished_at timestamptz NULL,
       ok boolean NULL,
       result jsonb NULL,
       error text NULL
     )`,
    // job is the action; task_id/task_name say which task ran it (null task_id: the task was deleted since).
    'ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS task_id bigint NULL REFERENCES tasks (id) ON DELETE SET NULL',
    'ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS task_name text NULL',
    `ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS trigger text NOT NULL DEFAULT 'schedule'`,
    // The lease's fencing token of the brain that ran it, and that brain's id.
    'ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS fence bigint NULL',
    'ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS brain_id text NULL',
    // Replaced once, not at every start (that takes an exclusive lock and re-checks every row): the
    // constraint's name says which action list it holds; a new action needs a new name.
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'job_runs_action_check_v1') THEN
         ALTER TABLE job_runs DROP CONSTRAINT IF EXISTS job_runs_job_check;
         ALTER TABLE job_runs ADD CONSTRAINT job_runs_action_check_v1 CHECK (job IN (${quoted(TASK_ACTIONS)}));
       END IF;
     END $$`,
    'CREATE INDEX IF NOT EXISTS job_runs_job_started_idx ON job_runs (job, started_at DESC)',
    'CREATE INDEX IF NOT EXISTS job_runs_task_started_idx ON job_runs (task_id, started_at DESC)',
  ],
  alerts: [
    `CREATE TABLE IF NOT EXISTS alerts (
       id bigserial PRIMARY KEY,
       created_at timestamptz NOT NULL DEFAULT now(),
       severity text NOT NULL CHECK (severity IN (${quoted(ALERT_SEVERITIES)})),
       source text NOT NULL,
       message text NOT NULL,
       resolved_at timestamptz NULL
     )`,
    // source is the alert's identity: `<rule>:<subject>` (stream-stale:trade.binance_spot.BTCUSDT).
    'ALTER TABLE alerts ADD COLUMN IF NOT EXISTS rule text NULL',
    'ALTER TABLE alerts ADD COLUMN IF NOT EXISTS subject text NULL',
    'ALTER TABLE alerts ADD COLUMN IF NOT EXISTS details jsonb NULL',
    'ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acked_at timestamptz NULL',
    'ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acked_by text NULL',
    // A condition that persists must not add a row per evaluation: one open alert per source.
    'CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_per_source ON alerts (source) WHERE resolved_at IS NULL',
  ],
  alert_rules: [
    `CREATE TABLE IF NOT EXISTS alert_rules (
       name text PRIMARY KEY,
       kind text NOT NULL CHECK (kind IN (${quoted(ALERT_RULE_KINDS)})),
       severity text NOT NULL CHECK (severity IN (${quoted(ALERT_SEVERITIES)})),
       enabled boolean NOT NULL DEFAULT true,
       threshold double precision NULL,
       updated_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
  alert_deliveries: [
    `CREATE TABLE IF NOT EXISTS alert_deliveries (
       id bigserial PRIMARY KEY,
       alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
       event text NOT NULL CHECK (event IN (${quoted(ALERT_EVENTS)})),
       channel text NOT NULL CHECK (channel IN ('webhook', 'nats')),
       attempt integer NOT NULL,
       at timestamptz NOT NULL DEFAULT now(),
       ok boolean NOT NULL,
       status integer NULL,
       error text NULL
     )`,
    'CREATE INDEX IF NOT EXISTS alert_deliveries_alert_idx ON alert_deliveries (alert_id, at)',
  ],
  job_progress: [
    // job is a progress key, e.g. `init:funding_rate:binance_derivatives:BTCUSDT`.
    `CREATE TABLE IF NOT EXISTS job_progress (
       job text PRIMARY KEY,
       state jsonb NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
  brain_fence: [
    // The highest lease fencing token a brain has acted under: a brain holding an older token has
    // lost its lease, and its writes are refused (see lease.ts).
    `CREATE TABLE IF NOT EXISTS brain_fence (
       id integer PRIMARY KEY CHECK (id = 1),
       fence bigint NOT NULL,
       brain_id text NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
};

export const BRAIN_TABLES = Object.keys(TABLE_DDL);

/** Arbitrary constant: serializes concurrent schema creation across processes sharing the database. */
const SCHEMA_LOCK_KEY = 0x6d707273;

/**
 * Create the brain's tables when missing. Idempotent; reports which tables this call created.
 * Runs in one transaction under an advisory lock because concurrent CREATE TABLE IF NOT EXISTS
 * can still fail on PostgreSQL's catalog unique indexes.
 */
export async function ensureBrainSchema(pool: pg.Pool): Promise<{ created: string[]; existing: string[] }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    const found = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_name = ANY($1::text[])`,
      [BRAIN_TABLES],
    );
    const existingSet = new Set(found.rows.map((r) => r.table_name));
    for (const statements of Object.values(TABLE_DDL)) {
      for (const sql of statements) await client.query(sql);
    }
    await client.query('COMMIT');
    return {
      created: BRAIN_TABLES.filter((t) => !existingSet.has(t)),
      existing: BRAIN_TABLES.filter((t) => existingSet.has(t)),
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** PostgreSQL's SQLSTATE for "database does not exist". */
const INVALID_CATALOG_NAME = '3D000';

/**
 * ensureBrainSchema, creating the database first when a fresh server lacks it. Only then: an external
 * server may not let this user into the maintenance database the creation goes through.
 */
export async function prepareBrainSchema(pool: pg.Pool, config: Config): Promise<{ created: string[]; existing: string[] }> {
  try {
    return await ensureBrainSchema(pool);
  } catch (err) {
    if ((err as { code?: unknown }).code !== INVALID_CATALOG_NAME) {
      throw new UnreachableError('postgres', displayAddress(postgresUrl(config)), { cause: err });
    }
  }
  await ensurePostgresDatabase(config);
  try {
    return await ensureBrainSchema(pool);
  } catch (err) {
    throw new UnreachableError('postgres', displayAddress(postgresUrl(config)), { cause: err });
  }
}
