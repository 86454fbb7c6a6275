import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { brain } from '../../src/daemons/brain/run.js';
import type { BrainStatus } from '../../src/lib/brain/status.js';
import type { JobRun } from '../../src/lib/brain/history.js';
import { BrainStore } from '../../src/lib/brain/history.js';
import { BRAIN_TABLES, ensureBrainSchema } from '../../src/lib/brain/schema.js';
import { claimFence, readLeader } from '../../src/lib/brain/lease.js';
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
    overrides: {
      brain: {
        tasks: [{ name: 'integrity', cron: '* * * * * *', action: 'integrity', params: { sinceSeconds: 600 } }],
        init: { enabled: false },
      },
    },
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
  it('creates its tables once and is idempotent; runs are recorded only under the newest fence', async () => {
    await ensurePostgresDatabase(infra.config);
    const pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
    try {
      expect(await ensureBrainSchema(pool)).toEqual({ created: BRAIN_TABLES, existing: [] });
      expect(await ensureBrainSchema(pool)).toEqual({ created: [], existing: BRAIN_TABLES });

      const store = new BrainStore(pool);
      const start = { job: 'repair', taskId: null, taskName: null, trigger: 'manual', brainId: 'b1' } as const;
      expect(await claimFence(pool, 5, 'b1')).toBe(true);
      const id = await store.startRun({ ...start, fence: 5 });
      expect(id).not.toBeNull();
      await store.finishRun(id!, { ok: true, result: { removed: 3 } });
      expect((await store.recentRuns(5, { job: 'repair' }))[0]).toMatchObject({ id, ok: true, result: { removed: 3 }, error: null, fence: 5, brainId: 'b1', trigger: 'manual' });
      // A brain still holding fence 4 (it lost its lease) records nothing.
      expect(await store.startRun({ ...start, fence: 4, brainId: 'old' })).toBeNull();
      // A newer leader closes what older ones left open, not its own runs.
      const open5 = await store.startRun({ ...start, fence: 5 });
      expect(await claimFence(pool, 6, 'b2')).toBe(true);
      expect(await store.startRun({ ...start, fence: 5 })).toBeNull();
      const open6 = await store.startRun({ ...start, fence: 6, brainId: 'b2' });
      expect(await store.abandonUnfinishedRuns(6)).toBe(1);
      expect((await store.getRun(open5!))!.error).toMatch(/interrupted/);
      expect((await store.getRun(open6!))!.finishedAt).toBeNull();
      // The old brain finishing late does not rewrite the abandoned record.
      await store.finishRun(open5!, { ok: true, result: null });
      expect((await store.getRun(open5!))!.ok).toBe(false);

      await store.progress.save('init:funding_rate:a', { page: 1 });
      await store.progress.save('init:funding_rate:b', { page: 2 });
      await store.progress.save('init_other', { x: 1 });
      await store.progress.save('init:funding_rate:a', { page: 3 });
      expect(await store.progress.load('init:funding_rate:a')).toEqual({ page: 3 });
      expect((await store.progress.list('init:')).map((p) => [p.key, p.state])).toEqual([
        ['init:funding_rate:a', { page: 3 }],
        ['init:funding_rate:b', { page: 2 }],
      ]);
      // A prefix is literal: _ is not a wildcard.
      expect((await store.progress.list('init_')).map((p) => p.key)).toEqual(['init_other']);
      await store.progress.clear('init:funding_rate:a');
      expect(await store.progress.load('init:funding_rate:a')).toBeNull();

      // History past brainHistoryDays goes: finished runs, and alerts resolved that long ago with their deliveries.
      const old = await store.startRun({ ...start, fence: 6, brainId: 'b2' });
      await store.finishRun(old!, { ok: true, result: null });
      await pool.query(`UPDATE job_runs SET started_at = now() - interval '31 days', finished_at = now() - interval '31 days' WHERE id = $1`, [old]);
      const alerts = await pool.query<{ id: string; resolved: boolean }>(
        `INSERT INTO alerts (severity, source, message, resolved_at) VALUES
           ('warning', 'x:old', 'old', now() - interval '31 days'), ('warning', 'x:open', 'open', NULL) RETURNING id, resolved_at IS NOT NULL AS resolved`,
      );
      for (const a of alerts.rows) {
        await pool.query(`INSERT INTO alert_deliveries (alert_id, event, channel, attempt, ok) VALUES ($1, 'opened', 'webhook', 1, true)`, [a.id]);
      }
      const runsBefore = Number((await pool.query('SELECT count(*) AS n FROM job_runs')).rows[0].n);
      expect(await store.pruneHistory(30)).toEqual({ runs: 1, alerts: 1, deliveries: 1 });
      expect(await store.getRun(old!)).toBeNull();
      expect(Number((await pool.query('SELECT count(*) AS n FROM job_runs')).rows[0].n)).toBe(runsBefore - 1);
      const left = await pool.query('SELECT a.source FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id');
      expect(left.rows).toEqual([{ source: 'x:open' }]);
      expect((await pool.query(`SELECT source FROM alerts WHERE source LIKE 'x:%'`)).rows).toEqual([{ source: 'x:open' }]);
      await pool.query(`DELETE FROM alerts WHERE source LIKE 'x:%'`);
    } finally {
      await pool.end();
    }
  });
});

describe('brain daemon', () => {
  it('seeds its tasks, leads, runs integrity on its schedule, records the runs, serves its API, and stops cleanly', async () => {
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

      // ClickHouse has no tables yet: the scheduled check finds problems.
      const status = await waitFor('an integrity run with problems', async () => {
        const s = await getJson<BrainStatus>(config, '/api/v1/status');
        const run = s.latestRuns.find((r) => r.job === 'integrity' && r.finishedAt !== null);
        return run !== undefined ? s : null;
      });
      expect(status.errors).toEqual([]);
      expect(status.leading).toBe(true);
      expect(status.leader).toMatchObject({ brainId: status.brainId });
      expect(status.services.map((e) => [e.name, e.pid])).toEqual([['storage', 4242]]);
      expect(status.tasks.map((t) => [t.name, t.action, t.cron, t.enabled])).toEqual([['integrity', 'integrity', '* * * * * *', true]]);
      const problemRun = status.latestRuns[0]!;
      expect(problemRun).toMatchObject({ ok: false, job: 'integrity', taskName: 'integrity', trigger: 'schedule', brainId: status.brainId });
      expect(problemRun.fence).toBe(status.leader!.fence);
      expect(problemRun.result).toMatchObject({ ok: false, tables: expect.arrayContaining([expect.objectContaining({ table: 'trades' })]) });
      // Alerts come from the alert rules now: a run does not raise one itself.
      expect(status.openAlerts).toEqual([]);
      expect((await health!()).ok).toBe(true);
      const info = await getJson<{ name: string; version: string; brainId: string; leading: boolean; uptimeSeconds: number }>(config, '/api/v1/info');
      expect(info).toMatchObject({ name: 'mprism-brain', brainId: status.brainId, leading: true });
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/);

      // Create the tables: the next run is clean.
      for (const server of [config.clickhouse.hot, config.clickhouse.cold]) {
        const client = createClickHouse(server);
        await ensureSchema(client, server.database, await detectDialect(client));
        await client.close();
      }
      await waitFor('a clean integrity run', async () => {
        const s = await getJson<BrainStatus>(config, '/api/v1/status');
        return s.latestRuns[0]?.ok === true ? s : null;
      });
      const { runs } = await getJson<{ runs: JobRun[] }>(config, '/api/v1/runs?limit=2&job=integrity');
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
    const check = new Redis(redisUrl(config));
    try {
      // Shutdown waited for the run in progress: nothing is left unfinished, and the lease was handed back.
      const open = await pool.query('SELECT count(*)::int AS n FROM job_runs WHERE finished_at IS NULL');
      expect(open.rows[0]).toEqual({ n: 0 });
      const done = await pool.query('SELECT count(*)::int AS n FROM job_runs WHERE result IS NOT NULL');
      expect((done.rows[0] as { n: number }).n).toBeGreaterThanOrEqual(2);
      expect(await readLeader(check)).toBeNull();
    } finally {
      check.disconnect();
      await pool.end();
    }
  });

  it('refuses an invalid seed schedule or time zone with a config error before connecting anywhere', async () => {
    const ctx = {
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      metrics: new Registry(),
      setHealth: () => undefined,
      simulate: false,
    };
    const seed = { name: 'x', cron: '*/5 * *', timezone: 'UTC', action: 'integrity', params: {}, enabled: true } as const;
    const badCron: Config = { ...infra.config, brain: { ...infra.config.brain, tasks: [seed] } };
    await expect(brain(ctx, badCron)).rejects.toThrow(/brain\.tasks\.0\.cron: invalid cron expression "\*\/5 \* \*"/);
    const badZone: Config = { ...infra.config, brain: { ...infra.config.brain, tasks: [{ ...seed, cron: '* * * * *', timezone: 'Nowhere/City' }] } };
    await expect(brain(ctx, badZone)).rejects.toThrow(/brain\.tasks\.0\.timezone: unknown time zone "Nowhere\/City"/);
  });
});
