import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { baseRoutes, json, startBrainApi, type BrainApiServer } from '../../lib/brain/api.js';
import { ensureBrainToken } from '../../lib/brain/token.js';
import { BrainStore } from '../../lib/brain/history.js';
import { integrityOutcome } from '../../lib/brain/integrity-job.js';
import { createBrainMetrics, runRecordedJob } from '../../lib/brain/jobs.js';
import { scheduleJob, validateSchedule, type JobSchedule } from '../../lib/brain/scheduler.js';
import { prepareBrainSchema } from '../../lib/brain/schema.js';
import { collectBrainStatus } from '../../lib/brain/status.js';
import { runIntegrity } from '../../lib/checks/integrity.js';
import type { Daemon, HealthReport } from '../../lib/daemon-context.js';
import { MprismError, errorMessage } from '../../lib/errors.js';
import { postgresUrl, redisUrl } from '../../lib/infra/endpoints.js';

/** First integrity run this long after start, so a fresh platform has a run without waiting for cron. */
const FIRST_RUN_DELAY_MS = 10_000;
/** The brain is an operator API: it stays on loopback, like every mprism port. */
const API_HOST = '127.0.0.1';

/** Coordinator: schedules integrity checks, records them in PostgreSQL, serves the status API. */
export const brain: Daemon = async (ctx, config) => {
  const { log, signal } = ctx;
  // Fail before touching any server: a bad schedule is a config error, not an outage.
  const integrityTask = config.brain.tasks.find((t) => t.action === 'integrity');
  const integritySchedule = integrityTask?.cron ?? '*/5 * * * *';
  validateSchedule(integritySchedule, 'brain.tasks.integrity.cron');

  const pool = new pg.Pool({ connectionString: postgresUrl(config), max: 4, connectionTimeoutMillis: 5_000 });
  pool.on('error', (err) => log.warn({ err: errorMessage(err) }, 'idle postgres connection failed'));
  const redis = new Redis(redisUrl(config), { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', () => undefined); // reported per request in /api/v1/status and /health
  let api: BrainApiServer | null = null;
  let schedule: JobSchedule | null = null;
  let firstRun: Promise<void> | null = null;
  const stopFirstRun = new AbortController();

  try {
    const schema = await prepareBrainSchema(pool, config);
    if (schema.created.length > 0) log.info({ created: schema.created }, 'created brain tables');
    const store = new BrainStore(pool);
    const abandoned = await store.abandonUnfinishedRuns();
    if (abandoned > 0) log.warn({ abandoned }, 'closed job runs left open by a previous brain');
    await redis.connect().catch((err: unknown) => {
      log.warn({ err: errorMessage(err) }, 'redis unreachable; the registry will show as unavailable until it is back');
    });

    const metrics = createBrainMetrics(ctx.metrics);
    const integrity = () =>
      runRecordedJob({ store, metrics, log }, 'integrity', async () =>
        integrityOutcome(await runIntegrity(config, { sinceMs: Number(integrityTask?.params.sinceSeconds ?? 3600) * 1000 })),
      ).then(() => undefined);

    const health = async (): Promise<HealthReport> => {
      const [postgres, registry] = await Promise.all([
        pool.query('SELECT 1').then(
          () => 'up',
          (err: unknown) => `down: ${errorMessage(err)}`,
        ),
        redis.ping().then(
          () => 'up',
          (err: unknown) => `down: ${errorMessage(err)}`,
        ),
      ]);
      return { ok: postgres === 'up' && registry === 'up', postgres, redis: registry, jobRunning: schedule?.running ?? false };
    };
    ctx.setHealth(health);

    try {
      const routes = [
        ...baseRoutes({ health, metrics: ctx.metrics }),
        { method: 'GET' as const, path: '/api/v1/status', handle: async () => json(200, await collectBrainStatus({ redis, store })) },
        { method: 'GET' as const, path: '/api/v1/alerts', handle: async () => json(200, { alerts: await store.openAlerts() }) },
      ];
      api = await startBrainApi(API_HOST, config.brain.port, () => routes, ensureBrainToken(config.home));
    } catch (err) {
      throw new MprismError(`brain: cannot listen on ${API_HOST}:${config.brain.port}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    log.info({ host: API_HOST, port: api.port, schedule: integritySchedule }, 'brain API listening');

    schedule = scheduleJob({
      name: 'integrity',
      expression: integritySchedule,
      configKey: 'brain.tasks.integrity.cron',
      run: integrity,
      onSkip: () => metrics.jobRuns.inc({ job: 'integrity', result: 'skipped' }),
      log,
    });
    const scheduled = schedule;
    firstRun = sleep(FIRST_RUN_DELAY_MS, undefined, { signal: stopFirstRun.signal }).then(
      () => {
        scheduled.runNow();
      },
      () => undefined, // cancelled by shutdown
    );

    if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    log.info('stopping: waiting for a running job to finish');
  } finally {
    stopFirstRun.abort();
    await firstRun;
    await schedule?.stop();
    await api?.close();
    redis.disconnect();
    await pool.end();
  }
};
