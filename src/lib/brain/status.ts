import type { Redis } from 'ioredis';
import { errorMessage } from '../errors.js';
import { readRegistry, type RegistryEntry } from '../registry.js';
import type { AlertStore, AlertView } from './alerts/store.js';
import type { BrainStore, JobRun } from './history.js';
import { readLeader, type LeaderInfo } from './lease.js';
import type { TaskAction } from './schema.js';
import type { TaskStore } from './tasks.js';

/** One task as status shows it. */
export interface TaskSummary {
  id: number;
  name: string;
  action: TaskAction;
  cron: string;
  timezone: string;
  enabled: boolean;
  /** A run of it is in progress in this brain. */
  running: boolean;
  skipped: number;
  lastRun: Pick<JobRun, 'id' | 'startedAt' | 'finishedAt' | 'ok' | 'error'> | null;
}

/** GET /api/v1/status (stable JSON shape). A failing source leaves its part empty and adds an error line. */
export interface BrainStatus {
  now: string;
  /** The brain that answered, and whether it leads. */
  brainId: string;
  leading: boolean;
  /** The brain holding the lease (maybe another one), or null when none does. */
  leader: LeaderInfo | null;
  services: RegistryEntry[];
  latestRuns: JobRun[];
  openAlerts: AlertView[];
  tasks: TaskSummary[];
  /** e.g. "redis: connect ECONNREFUSED 127.0.0.1:6379" */
  errors: string[];
}

export interface StatusSources {
  redis: Redis;
  store: Pick<BrainStore, 'latestRuns' | 'latestTaskRuns'>;
  alerts: Pick<AlertStore, 'alerts'>;
  tasks: Pick<TaskStore, 'list'>;
  brainId: string;
  leading(): boolean;
  isRunning(taskId: number): boolean;
}

/** Open alerts in the status, most severe first; the alert routes list them all. */
const OPEN_ALERTS_SHOWN = 100;

export async function collectBrainStatus(deps: StatusSources): Promise<BrainStatus> {
  const errors: string[] = [];
  const guard = async <T>(source: string, fallback: T, read: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      errors.push(`${source}: ${errorMessage(err)}`);
      return fallback;
    }
  };
  const [services, leader, latestRuns, openAlerts, tasks, taskRuns] = await Promise.all([
    guard('redis', [] as RegistryEntry[], () => readRegistry(deps.redis)),
    guard('redis', null, () => readLeader(deps.redis)),
    guard('postgres', [] as JobRun[], () => deps.store.latestRuns()),
    guard('postgres', [] as AlertView[], () => deps.alerts.alerts({ state: 'open', limit: OPEN_ALERTS_SHOWN })),
    guard('postgres', [], () => deps.tasks.list()),
    guard('postgres', new Map<number, JobRun>(), () => deps.store.latestTaskRuns()),
  ]);
  const summaries = tasks.map((t): TaskSummary => {
    const run = taskRuns.get(t.id);
    return {
      id: t.id,
      name: t.name,
      action: t.action,
      cron: t.cron,
      timezone: t.timezone,
      enabled: t.enabled,
      running: deps.isRunning(t.id),
      skipped: t.skipped,
      lastRun: run === undefined ? null : { id: run.id, startedAt: run.startedAt, finishedAt: run.finishedAt, ok: run.ok, error: run.error },
    };
  });
  return {
    now: new Date().toISOString(),
    brainId: deps.brainId,
    leading: deps.leading(),
    leader,
    services,
    latestRuns,
    openAlerts,
    tasks: summaries,
    errors: [...new Set(errors)],
  };
}
