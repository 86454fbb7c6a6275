import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { UnreachableError } from '../errors.js';
import { displayAddress, postgresUrl } from '../infra/endpoints.js';
import { ensurePostgresDatabase } from '../infra/probe.js';

/** Jobs the brain schedules and records; the CHECK constraint below keeps the column honest. */
export const JOB_NAMES = ['integrity', 'repair', 'retention'] as const;
export type JobName = (typeof JOB_NAMES)[number];

export const ALERT_SEVERITIES = ['warning', 'critical'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

const quoted = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

/** Table name -> DDL that creates it (and its indexes) idempotently. */
const TABLE_DDL: Readonly<Record<string, readonly string[]>> = {
  job_runs: [
    `CREATE TABLE IF NOT EXISTS job_runs (
       id bigserial PRIMARY KEY,
       job text NOT NULL CHECK (job IN (${quoted(JOB_NAMES)})),
       started_at timestamptz NOT NULL DEFAULT now(),
       finished_at timestamptz NULL,
       ok boolean NULL,
       result jsonb NULL,
       error text NULL
     )`,
    'CREATE INDEX IF NOT EXISTS job_runs_job_started_idx ON job_runs (job, started_at DESC)',
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
    // A scheduled check that keeps failing must not add a row every run: one open alert per source.
    'CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_per_source ON alerts (source) WHERE resolved_at IS NULL',
  ],
  job_progress: [
    `CREATE TABLE IF NOT EXISTS job_progress (
       job text PRIMARY KEY,
       state jsonb NOT NULL,
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
