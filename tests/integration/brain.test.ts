import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { brain } from '../../src/daemons/brain/run.js';
import type { BrainStatus } from '../../src/lib/brain/status.js';
import type { JobRun } from '../../src/lib/brain/history.js';
import { BrainStore } from '../../src/lib/brain/history.js';
import { ensureBrainSchema } from '../../src/lib/brain/schema.js';
import type { Config } from '../../src/lib/config/schema.js';
import type { HealthReport } from '../../src/lib/daemon-context.js';
import { postgresUrl, redisUrl } from '../../src/lib/infra/endpoints.js';
import { ensurePostgresDatabase } from '../../src/lib/infra/probe.js';
import { writeHeartbeat } from '../../src/lib/registry.js';
import { createClickHouse, detectDialect } from '../../src/lib/store/client.js';
import { ensureSchema } from '../../src/lib/store/tables.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['redis', 'postgres', 'clickhouse-hot', 'clickhouse-cold'],
    overrides: { brain: { integritySchedule: '* * * * * *', integritySinceSeconds: 600 } },
  });
});

afterAll(async () => {
  await infra?.stop();
});

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== null) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

async function getJson<T>(config: Config, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${config.brain.port}${path}`);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

describe('brain schema', () => {
  it('creates its tables once and is idempotent', async () => {
    await ensurePostgresDatabase(infra.config);
    const pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
    try {
      expect(await ensureBrainSchema(pool)).toEqual({ created: ['job_runs', 'alerts', 'job_progress'], existing: [] });
      expect(await ensureBrainSchema(pool)).toEqual({ created: [], existing: ['job_runs', 'alerts', 'job_progress'] });

      const store = new BrainStore(pool);
      const id = await store.startRun('repair');
      await store.finishRun(id, { ok: true, result: { removed: 3 } });
      expect((await store.recentRuns(5, 'repair'))[0]).toMatchObject({ id, ok: true, result: { removed: 3 }, error: null });

      // At most one open alert per source: raising again refreshes it.
      const first = await store.raiseAlert({ severity: 'warning', source: 'retention', message: 'one' });
      const second = await store.raiseAlert({ severity: 'critical', source: 'retention', message: 'two' });
      expect(second.id).toBe(first.id);
      expect((await store.openAlerts()).map((a) => [a.source, a.severity, a.message])).toEqual([['retention', 'critical', 'two']]);
      expect(await store.resolveAlerts('retention')).toBe(1);
      expect(await store.openAlerts()).toEqual([]);

      await store.saveProgress('retention', { partition: 202401 });
      expect(await store.loadProgress('retention')).toEqual({ partition: 202401 });
      await store.clearProgress('retention');
      expect(await store.loadProgress('retention')).toBeNull();
    } finally {
      await pool.end();
    }
  });
});

describe('brain daemon', () => {
  it('schedules integrity, records runs and alerts, serves its API, and stops cleanly', async () => {
    // A database the brain has never seen: it creates the database and its tables itself.
    const config: Config = { ...infra.config, postgres: { ...infra.config.postgres, database: 'brain_fresh' } };
    const redis = new Redis(redisUrl(config));
    const pool = new pg.Pool({ connectionString: postgresUrl(config) });
    const controller = new AbortController();
    let health: (() => HealthReport | Promise<HealthReport>) | null = null;
    const running = brain(
      {
        signal: controller.signal,
        log: pino({ level: 'silent' }),
        metrics: new Registry(),
        setHealth: (p) => (health = p),
        simulate: false,
      },
      config,
    );
    let stopped = false;
    void running.finally(() => (stopped = true));

    try {
      const startedAt = new Date().toISOString();
      await writeHeartbeat(
        redis,
        { name: 'storage', pid: 4242, host: 'test', port: 1, startedAt, lastHeartbeat: startedAt, healthy: true },
        60,
      );

      // ClickHouse has no tables yet: the scheduled check finds problems and raises an alert.
      const status = await waitFor('an integrity run with problems', async () => {
        const s = await getJson<BrainStatus>(config, '/api/v1/status');
        const run = s.latestRuns.find((r) => r.job === 'integrity' && r.finishedAt !== null);
        return run !== undefined && s.openAlerts.length > 0 ? s : null;
      });
      expect(status.errors).toEqual([]);
      expect(status.services.map((e) => [e.name, e.pid])).toEqual([['storage', 4242]]);
      const problemRun = status.latestRuns[0]!;
      expect(problemRun.ok).toBe(false);
      expect(problemRun.result).toMatchObject({ ok: false, tables: expect.arrayContaining([expect.objectContaining({ table: 'trades' })]) });
      expect(status.openAlerts[0]).toMatchObject({ source: 'integrity', severity: 'warning' });
      expect(status.openAlerts[0]!.message).toMatch(/missing on hot/);
      expect((await health!()).ok).toBe(true);

      // Create the tables: the next clean run resolves the alert.
      for (const server of [config.clickhouse.hot, config.clickhouse.cold]) {
        const client = createClickHouse(server);
        await ensureSchema(client, server.database, await detectDialect(client));
        await client.close();
      }
      await waitFor('a clean integrity run', async () => {
        const s = await getJson<BrainStatus>(config, '/api/v1/status');
        return s.latestRuns[0]?.ok === true && s.openAlerts.length === 0 ? s : null;
      });
      const { alerts } = await getJson<{ alerts: unknown[] }>(config, '/api/v1/alerts');
      expect(alerts).toEqual([]);
      const { runs } = await getJson<{ runs: JobRun[] }>(config, '/api/v1/runs?limit=2');
      expect(runs).toHaveLength(2);
      expect(runs[0]!.id).toBeGreaterThan(runs[1]!.id);

      const metrics = await (await fetch(`http://127.0.0.1:${config.brain.port}/metrics`)).text();
      expect(metrics).toMatch(/mprism_brain_job_runs_total\{job="integrity",result="problems"\} [1-9]/);
      expect(metrics).toMatch(/mprism_brain_job_runs_total\{job="integrity",result="ok"\} [1-9]/);
      expect(metrics).toMatch(/mprism_brain_job_duration_seconds_count\{job="integrity"\} [1-9]/);
    } finally {
      controller.abort();
      await running;
      redis.disconnect();
    }

    expect(stopped).toBe(true);
    await expect(fetch(`http://127.0.0.1:${config.brain.port}/health`)).rejects.toThrow();
    try {
      // Shutdown waited for the run in progress: nothing is left unfinished.
      const open = await pool.query('SELECT count(*)::int AS n FROM job_runs WHERE finished_at IS NULL');
      expect(open.rows[0]).toEqual({ n: 0 });
      const done = await pool.query('SELECT count(*)::int AS n FROM job_runs WHERE result IS NOT NULL');
      expect((done.rows[0] as { n: number }).n).toBeGreaterThanOrEqual(2);
    } finally {
      await pool.end();
    }
  });

  it('refuses an invalid schedule with a config error before connecting anywhere', async () => {
    const config: Config = { ...infra.config, brain: { ...infra.config.brain, integritySchedule: '*/5 * *' } };
    const ctx = {
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      metrics: new Registry(),
      setHealth: () => undefined,
      simulate: false,
    };
    await expect(brain(ctx, config)).rejects.toThrow(/brain\.integritySchedule: invalid cron expression "\*\/5 \* \*"/);
  });
});
