import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { ActionRunner, ActionRunners, BrainDeps } from '../../lib/brain/actions.js';
import { coreRoutes } from '../../lib/brain/api-core.js';
import { baseRoutes, startBrainApi, type BrainApiServer, type Route } from '../../lib/brain/api.js';
import { BrainStore } from '../../lib/brain/history.js';
import { integrityOutcome, repairOutcome } from '../../lib/brain/integrity-job.js';
import { createBrainMetrics } from '../../lib/brain/jobs.js';
import { BrainLease, claimFence, recordedFence } from '../../lib/brain/lease.js';
import { registerLeaseMetric } from '../../lib/coordination/lease.js';
import { timezoneProblem, validateSchedule } from '../../lib/brain/scheduler.js';
import { createAlerting, type Alerting } from '../../lib/brain/alerts/index.js';
import { AlertStore } from '../../lib/brain/alerts/store.js';
import { createBackfillAction, historyInitPending, initRoutes, keepInitializingHistory } from '../../lib/brain/history-init.js';
import { createRetentionAction } from '../../lib/brain/retention-action.js';
import { prepareBrainSchema } from '../../lib/brain/schema.js';
import { TaskScheduler } from '../../lib/brain/task-scheduler.js';
import { TaskStore } from '../../lib/brain/tasks.js';
import { ensureBrainToken } from '../../lib/brain/token.js';
import { runIntegrity } from '../../lib/checks/integrity.js';
import { runRepair } from '../../lib/checks/repair.js';
import type { Config } from '../../lib/config/schema.js';
import type { Daemon, HealthReport } from '../../lib/daemon-context.js';
import { ConfigError, MprismError, errorMessage } from '../../lib/errors.js';
import { postgresUrl, redisUrl } from '../../lib/infra/endpoints.js';
import { PACKAGE_ROOT } from '../../lib/paths.js';

/** Tasks are re-read this often, so edits made through another brain's API apply here too. */
const TASKS_RELOAD_MS = 10_000;
/** How far back integrity and repair look when a task's params do not say (as their commands do). */
const INTEGRITY_SINCE_SECONDS = 3600;
const REPAIR_SINCE_SECONDS = 24 * 3600;

const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

/** The config's seed tasks must be valid before anything connects: a bad one is a config error, not an outage. */
function validateTaskSeeds(config: Config): void {
  config.brain.tasks.forEach((t, i) => {
    validateSchedule(t.cron, `brain.tasks.${i}.cron`);
    const problem = timezoneProblem(t.timezone);
    if (problem !== null) throw new ConfigError(`brain.tasks.${i}.timezone: ${problem}`);
  });
}

/** params.sinceSeconds as milliseconds: a positive number, else the action fails naming it. */
function sinceMs(params: Readonly<Record<string, unknown>>, fallbackSeconds: number): number {
  const v = params.sinceSeconds ?? fallbackSeconds;
  if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`params.sinceSeconds: must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return v * 1000;
}

const integrityAction: ActionRunner = async (ctx) => integrityOutcome(await runIntegrity(ctx.config, { sinceMs: sinceMs(ctx.params, INTEGRITY_SINCE_SECONDS), signal: ctx.signal }));
const repairAction: ActionRunner = async (ctx) => repairOutcome(await runRepair(ctx.config, { dryRun: false, sinceMs: sinceMs(ctx.params, REPAIR_SINCE_SECONDS), signal: ctx.signal }));

/** The runner of every action, over the brain's long-lived connections. */
function actionRunners(deps: BrainDeps, parts: { simulate: boolean; healthAction: ActionRunner }): ActionRunners {
  return {
    integrity: integrityAction,
    repair: repairAction,
    retention: createRetentionAction(deps),
    backfill: createBackfillAction(deps, parts.simulate),
    health: parts.healthAction,
  };
}

/**
 * Coordinator: runs the tasks of the `tasks` table on their schedules while it holds the brain lease
 * (a second brain is a hot standby), records every run in PostgreSQL, and serves the brain API.
 * `adapt` may wrap the action runners (tests hold one open to decide when it ends).
 */
export const createBrain =
  (adapt: (runners: ActionRunners) => ActionRunners = (runners) => runners): Daemon =>
  async (ctx, config) => {
    const { log, signal } = ctx;
    validateTaskSeeds(config);
    const brainId = `${hostname()}:${config.brain.port}:${process.pid}`;
    const startedAt = Date.now();

    const pool = new pg.Pool({ connectionString: postgresUrl(config), max: 6, connectionTimeoutMillis: 5_000 });
    pool.on('error', (err) => log.warn({ err: errorMessage(err) }, 'idle postgres connection failed'));
    // A hung Redis must fail a lease renewal in time for the leader to step down (see BrainLease).
    const redis = new Redis(redisUrl(config), { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: Math.max(500, Math.floor((config.brain.lease.ttlSeconds * 1000) / 6)) });
    redis.on('error', () => undefined); // reported per request in /api/v1/status and /health
    let api: BrainApiServer | null = null;
    let scheduler: TaskScheduler | null = null;
    let lease: BrainLease | null = null;
    let leadershipWork: Promise<void> = Promise.resolve();
    let alerting: Alerting | null = null;

    try {
      const schema = await prepareBrainSchema(pool, config);
      if (schema.created.length > 0) log.info({ created: schema.created }, 'created brain tables');
      const store = new BrainStore(pool);
      const tasks = new TaskStore(pool);
      const seeded = await tasks.seed(config.brain.tasks, store.progress);
      if (seeded.length > 0) log.info({ seeded }, 'seeded tasks from the config');
      await redis.connect().catch((err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'redis unreachable; this brain cannot lead (and the registry shows as unavailable) until it is back');
      });

      const metrics = createBrainMetrics(ctx.metrics);
      const deps: BrainDeps = { config, pool, redis, log, metrics: ctx.metrics };
      alerting = createAlerting(deps);
      const sched = new TaskScheduler({
        config,
        tasks,
        store,
        progress: store.progress,
        runners: adapt(actionRunners(deps, { simulate: ctx.simulate, healthAction: alerting.healthAction })),
        metrics,
        leadership: { brainId, fence: () => lease?.fence() ?? null, claim: (fence) => claimFence(pool, fence, brainId) },
        log,
        reloadIntervalMs: TASKS_RELOAD_MS,
      });
      scheduler = sched;

      const onAcquired = async (fence: number) => {
        // Recorded first: from here on a brain with an older token cannot start a run.
        if (!(await claimFence(pool, fence, brainId))) {
          // Only a newer leader can have recorded a larger token: let it lead.
          log.error({ fence }, 'took the lease under a token older than one already recorded; handing the lease back');
          await lease?.release();
          return;
        }
        const abandoned = await store.abandonUnfinishedRuns(fence);
        if (abandoned > 0) log.warn({ abandoned }, 'closed runs left open by a brain that led before');
        // Retried with backoff until it completes, for as long as this lease term lasts.
        await keepInitializingHistory({
          pending: () => historyInitPending(store.progress, config),
          attempt: async () => {
            const started = await sched.runAction('backfill', 'init', {});
            return started.kind === 'started' ? await started.done : started.kind;
          },
          leading: () => lease?.fence() === fence,
          signal,
          log,
        });
      };
      lease = new BrainLease(
        redis,
        { brainId, ttlMs: config.brain.lease.ttlSeconds * 1000, log, fenceFloor: () => recordedFence(pool) },
        {
          onAcquired: (fence) => {
            leadershipWork = leadershipWork
              .then(() => onAcquired(fence))
              .catch((err: unknown) => log.error({ err: errorMessage(err) }, 'cannot take up leadership duties'));
          },
          onLost: (reason) => {
            sched.abortRuns(`lost the brain lease: ${reason}`);
            // The new leader delivers what is pending; leading again starts afresh.
            void alerting?.onLeadershipLost().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'cannot stop alert delivery'));
          },
        },
      );
      const leading = () => lease?.isLeader() ?? false;
      registerLeaseMetric(ctx.metrics, () => [{ name: 'brain', held: leading() }]);

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
        return { ok: postgres === 'up' && registry === 'up', postgres, redis: registry, brainId, leading: leading() };
      };
      ctx.setHealth(health);

      // First match wins: the alert and init modules' routes come before the core's.
      const routes: Route[] = [
        ...baseRoutes({ health, metrics: ctx.metrics }),
        ...alerting.routes,
        ...initRoutes(store.progress, config),
        ...coreRoutes({ config, version, startedAt, brainId, redis, store, alerts: new AlertStore(pool), tasks, scheduler: sched, leading }),
      ];
      try {
        api = await startBrainApi(config.brain.host, config.brain.port, () => routes, ensureBrainToken(config.home));
      } catch (err) {
        throw new MprismError(`brain: cannot listen on ${config.brain.host}:${config.brain.port}: ${errorMessage(err)}`, { cause: err });
      }
      log.info({ host: config.brain.host, port: api.port, brainId }, 'brain API listening');

      await sched.start();
      lease.start();

      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      log.info('stopping: aborting runs in progress and waiting for them to end');
    } finally {
      // Runs end before the lease is handed back, so a standby never starts while one of ours runs.
      await scheduler?.stop();
      await leadershipWork;
      await lease?.stop();
      await alerting?.close();
      await api?.close();
      redis.disconnect();
      await pool.end();
    }
  };

export const brain: Daemon = createBrain();
