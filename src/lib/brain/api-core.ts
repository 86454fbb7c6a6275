import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { supervisorView } from '../checks/status.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { DAEMON_NAMES, activeDaemons, homePaths, type DaemonName } from '../paths.js';
import { readRegistry, type RegistryEntry } from '../registry.js';
import { callSupervisor } from '../supervisor/control.js';
import type { DaemonStatus } from '../supervisor/state.js';
import { BadRequestError, ConflictError, NotFoundError, UnavailableError, json, type ApiRequest, type Route } from './api.js';
import type { BrainStore } from './history.js';
import { readLeader } from './lease.js';
import { TASK_ACTIONS, type TaskAction } from './schema.js';
import type { AlertStore } from './alerts/store.js';
import { collectBrainStatus } from './status.js';
import type { TaskScheduler } from './task-scheduler.js';
import { checkTaskParams } from './task-params.js';
import { parseNewTask, parseTaskChange, parseTaskId, type TaskStore } from './tasks.js';

export const DEFAULT_RUNS_LIMIT = 20;
export const MAX_RUNS_LIMIT = 1000;

/** ?limit= as an integer from 1 to MAX_RUNS_LIMIT (default DEFAULT_RUNS_LIMIT); 400 naming `limit` otherwise. */
export function parseLimit(query: URLSearchParams): number {
  const raw = query.get('limit');
  if (raw === null) return DEFAULT_RUNS_LIMIT;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= MAX_RUNS_LIMIT)) throw new BadRequestError('limit', `limit: must be an integer from 1 to ${MAX_RUNS_LIMIT}`);
  return n;
}

function parseJob(query: URLSearchParams): TaskAction | undefined {
  const raw = query.get('job');
  if (raw === null) return undefined;
  if (!(TASK_ACTIONS as readonly string[]).includes(raw)) throw new BadRequestError('job', `job: must be one of ${TASK_ACTIONS.join(', ')}`);
  return raw as TaskAction;
}

function parseRunId(raw: string): number {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw new BadRequestError('id', `id: "${raw}" is not a run id (a positive integer)`);
  return Number(raw);
}

/** A daemon as GET /api/v1/services shows it: its registry heartbeat and what the supervisor says. */
export interface ServiceView {
  name: DaemonName;
  /** This brain's host's daemon of that name; null: no live heartbeat in Redis. */
  registry: RegistryEntry | null;
  /** Live heartbeats of daemons of that name on other hosts sharing Redis. */
  otherHosts: RegistryEntry[];
  /** null: the supervisor has never run it (or its state cannot be read). */
  supervisor: DaemonStatus | null;
  /** Whether the supervisor answered (else `supervisor` is its last saved snapshot). */
  supervisorReachable: boolean;
}

export interface CoreSources {
  config: Config;
  version: string;
  /** Epoch ms this brain started. */
  startedAt: number;
  brainId: string;
  redis: Redis;
  store: BrainStore;
  alerts: Pick<AlertStore, 'alerts'>;
  tasks: TaskStore;
  scheduler: Pick<TaskScheduler, 'runTask' | 'isRunning' | 'reload'>;
  leading(): boolean;
}

function parseServiceName(raw: string): DaemonName {
  if (!(DAEMON_NAMES as readonly string[]).includes(raw)) throw new NotFoundError(`no service ${raw} (services: ${DAEMON_NAMES.join(', ')})`);
  return raw as DaemonName;
}

async function services(s: CoreSources): Promise<{ services: ServiceView[]; errors: string[] }> {
  const errors: string[] = [];
  const [registry, view] = await Promise.all([
    readRegistry(s.redis).catch((err: unknown) => {
      errors.push(`redis: ${errorMessage(err)}`);
      return [] as RegistryEntry[];
    }),
    supervisorView(s.config),
  ]);
  if (!view.reachable) errors.push('supervisor: not running (showing its last saved state)');
  const host = hostname();
  return {
    services: activeDaemons(s.config).map((name) => ({
      name,
      registry: registry.find((e) => e.name === name && e.host === host) ?? null,
      otherHosts: registry.filter((e) => e.name === name && e.host !== host),
      supervisor: view.snapshot?.daemons.find((d) => d.name === name) ?? null,
      supervisorReachable: view.reachable,
    })),
    errors,
  };
}

async function notLeader(s: CoreSources): Promise<never> {
  const leader = await readLeader(s.redis).catch(() => null);
  throw new UnavailableError(
    leader === null
      ? `this brain (${s.brainId}) does not lead and no brain holds the lease now; retry in a few seconds`
      : `this brain (${s.brainId}) does not lead: ${leader.brainId} does (fence ${leader.fence}); send the request to it`,
  );
}

/** The brain's own routes: info, status, services, tasks and their runs (alerts and init have theirs). */
export function coreRoutes(s: CoreSources): Route[] {
  const taskId = (req: ApiRequest) => parseTaskId(req.params.id!);
  return [
    {
      method: 'GET',
      path: '/api/v1/info',
      handle: async () =>
        json(200, {
          name: 'mprism-brain',
          version: s.version,
          brainId: s.brainId,
          leading: s.leading(),
          leader: await readLeader(s.redis).catch(() => null),
          uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000),
        }),
    },
    {
      method: 'GET',
      path: '/api/v1/status',
      handle: async () =>
        json(200, await collectBrainStatus({ redis: s.redis, store: s.store, alerts: s.alerts, tasks: s.tasks, brainId: s.brainId, leading: s.leading, isRunning: (id) => s.scheduler.isRunning(id) })),
    },
    { method: 'GET', path: '/api/v1/services', handle: async () => json(200, await services(s)) },
    {
      method: 'GET',
      path: '/api/v1/services/:name',
      handle: async (req) => {
        const name = parseServiceName(req.params.name!);
        const all = await services(s);
        return json(200, { ...all.services.find((v) => v.name === name)!, errors: all.errors });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/services/:name/restart',
      handle: async (req) => {
        const name = parseServiceName(req.params.name!);
        // Stopping the brain would end this request before the start half is sent.
        if (name === 'brain') throw new ConflictError('the brain cannot restart itself through its API: run `mprism restart brain`');
        const socket = homePaths(s.config.home).supervisorSocket;
        const state = await callSupervisor(socket, 'GET /state', undefined, 2000);
        await callSupervisor(socket, 'POST /stop', { names: [name], timeoutMs: 20_000 }, 40_000);
        const started = await callSupervisor(socket, 'POST /start', { names: [name], simulate: state.simulate }, 120_000);
        return json(200, { name, restarted: true, start: started });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/runs',
      handle: async (req) => json(200, { runs: await s.store.recentRuns(parseLimit(req.query), { job: parseJob(req.query) }) }),
    },
    {
      method: 'GET',
      path: '/api/v1/runs/:id',
      handle: async (req) => {
        const run = await s.store.getRun(parseRunId(req.params.id!));
        if (run === null) throw new NotFoundError(`no run with id ${req.params.id}`);
        return json(200, run);
      },
    },
    { method: 'GET', path: '/api/v1/tasks', handle: async () => json(200, { tasks: await s.tasks.list() }) },
    {
      method: 'POST',
      path: '/api/v1/tasks',
      handle: async (req) => {
        const fields = parseNewTask(req.body);
        checkTaskParams(fields.action, fields.params, s.config);
        const task = await s.tasks.create(fields);
        await s.scheduler.reload();
        return json(201, task);
      },
    },
    { method: 'GET', path: '/api/v1/tasks/:id', handle: async (req) => json(200, await s.tasks.require(taskId(req))) },
    {
      method: 'PUT',
      path: '/api/v1/tasks/:id',
      handle: async (req) => {
        const id = taskId(req);
        const change = parseTaskChange(req.body);
        if (change.action !== undefined || change.params !== undefined) {
          const current = await s.tasks.require(id);
          checkTaskParams(change.action ?? current.action, change.params ?? current.params, s.config);
        }
        const task = await s.tasks.update(id, change);
        await s.scheduler.reload();
        return json(200, task);
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/tasks/:id',
      handle: async (req) => {
        const task = await s.tasks.delete(taskId(req));
        await s.scheduler.reload();
        return json(200, task);
      },
    },
    {
      method: 'POST',
      path: '/api/v1/tasks/:id/toggle',
      handle: async (req) => {
        const task = await s.tasks.toggle(taskId(req));
        await s.scheduler.reload();
        return json(200, task);
      },
    },
    {
      method: 'POST',
      path: '/api/v1/tasks/:id/trigger',
      handle: async (req) => {
        const task = await s.tasks.require(taskId(req));
        if (!s.leading()) return notLeader(s);
        const result = await s.scheduler.runTask(task, 'manual');
        switch (result.kind) {
          case 'started':
            return json(202, { runId: result.runId, taskId: task.id, taskName: task.name });
          case 'skipped':
            throw new ConflictError(`a run of task ${task.name} is in progress: this trigger was skipped (and counted)`);
          case 'not-leader':
            return notLeader(s);
          case 'gone':
            throw new NotFoundError(`no task with id ${task.id}`);
          case 'failed':
            throw new Error(`cannot start a run of ${task.name}: ${result.error}`);
        }
      },
    },
    {
      method: 'GET',
      path: '/api/v1/tasks/:id/history',
      handle: async (req) => {
        const task = await s.tasks.require(taskId(req));
        return json(200, { task: { id: task.id, name: task.name }, runs: await s.store.recentRuns(parseLimit(req.query), { taskId: task.id }) });
      },
    },
  ];
}
