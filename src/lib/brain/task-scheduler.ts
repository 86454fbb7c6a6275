import { createTask, type ScheduledTask } from 'node-cron';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ActionRunners, ProgressStore } from './actions.js';
import type { BrainStore } from './history.js';
import { runRecordedJob, type BrainMetrics, type JobResult } from './jobs.js';
import { SingleFlight } from './scheduler.js';
import type { RunTrigger, TaskAction } from './schema.js';
import type { Task, TaskStore } from './tasks.js';

/** This brain's side of the lease, as the scheduler needs it. */
export interface Leadership {
  readonly brainId: string;
  /** The fencing token while this brain leads, else null. */
  fence(): number | null;
  /** Records the fence in PostgreSQL; false when a newer one is there (see claimFence in lease.ts). */
  claim(fence: number): Promise<boolean>;
}

/** What asking for a run got. */
export type TriggerResult =
  | { kind: 'started'; runId: number; done: Promise<JobResult> }
  /** A run of the same task was in progress: skipped and counted. */
  | { kind: 'skipped' }
  /** This brain does not lead (or stopped leading before the run could start). */
  | { kind: 'not-leader' }
  /** The task was deleted, or a scheduled run found it disabled. */
  | { kind: 'gone' }
  /** Recording the start failed (PostgreSQL). */
  | { kind: 'failed'; error: string };

/** When a task fires: its schedule as node-cron sees it. */
const scheduleKey = (t: Task) => `${t.cron}\u0000${t.timezone}`;

/**
 * Which cron schedules to start and stop so that exactly the enabled tasks have one, each with its
 * current cron and timezone. `scheduled`: task id -> key of the schedule running now.
 */
export function planSchedules(scheduled: ReadonlyMap<number, string>, tasks: readonly Task[]): { start: Task[]; stop: number[] } {
  const wanted = new Map(tasks.filter((t) => t.enabled).map((t) => [t.id, t]));
  const stop = [...scheduled.keys()].filter((id) => wanted.get(id) === undefined || scheduleKey(wanted.get(id)!) !== scheduled.get(id));
  const start = [...wanted.values()].filter((t) => scheduled.get(t.id) !== scheduleKey(t));
  return { start, stop };
}

export interface TaskSchedulerDeps {
  config: Config;
  tasks: Pick<TaskStore, 'list' | 'get' | 'countSkipped'>;
  store: Pick<BrainStore, 'startRun' | 'finishRun'>;
  progress: ProgressStore;
  runners: ActionRunners;
  metrics: BrainMetrics;
  leadership: Leadership;
  log: Logger;
  /** Tasks are re-read this often, so edits made through another brain apply here too. */
  reloadIntervalMs: number;
}

interface RunRequest {
  trigger: RunTrigger;
  /** The task's name (an action's, for a run of no task): the `job` of logs and metrics. */
  label: string;
  /** The task as read when asked; a scheduled run re-reads it so it runs the latest params. */
  task: Task | null;
  taskId: number | null;
  action: TaskAction;
  params: Record<string, unknown>;
  settle: (r: TriggerResult) => void;
}

/**
 * One cron schedule per enabled task (in its timezone), triggering runs only while this brain leads.
 * Each task runs at most once at a time: a trigger during a run of the same task is skipped and
 * counted. Runs get an AbortSignal that fires when the brain stops or loses its lease.
 */
export class TaskScheduler {
  private readonly schedules = new Map<number, { key: string; cron: ScheduledTask }>();
  private readonly flights = new Map<string, SingleFlight<RunRequest>>();
  private readonly running = new Map<string, AbortController>();
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: TaskSchedulerDeps) {}

  /** Loads the tasks and keeps reloading them; returns once the first load is done (or failed, logged). */
  async start(): Promise<void> {
    await this.reload();
    const again = () => {
      this.reloadTimer = setTimeout(() => void this.reload().finally(() => !this.stopped && again()), this.deps.reloadIntervalMs);
    };
    if (!this.stopped) again();
  }

  /** Brings the cron schedules in line with the tasks table. Never throws (a failed read keeps the current schedules). */
  reload(): Promise<void> {
    // Serialized: two overlapping reloads could start one task's schedule twice.
    this.reloading = this.reloading.then(async () => {
      if (this.stopped) return;
      let tasks: Task[];
      try {
        tasks = await this.deps.tasks.list();
      } catch (err) {
        this.deps.log.warn({ err: errorMessage(err) }, 'cannot read tasks; keeping the current schedules');
        return;
      }
      if (this.stopped) return;
      const plan = planSchedules(new Map([...this.schedules].map(([id, s]) => [id, s.key])), tasks);
      for (const id of plan.stop) {
        await this.schedules.get(id)?.cron.destroy();
        this.schedules.delete(id);
      }
      for (const task of plan.start) this.schedules.set(task.id, { key: scheduleKey(task), cron: this.schedule(task) });
      const ids = new Set(tasks.map((t) => `task:${t.id}`));
      for (const [key, flight] of this.flights) if (key.startsWith('task:') && !ids.has(key) && !flight.running) this.flights.delete(key);
      if (plan.start.length + plan.stop.length > 0) {
        this.deps.log.info({ started: plan.start.map((t) => t.name), stopped: plan.stop.length }, 'task schedules updated');
      }
    });
    return this.reloading;
  }

  private schedule(task: Task): ScheduledTask {
    const log = this.deps.log.child({ task: task.name });
    const cron = createTask(
      task.cron,
      () => {
        // A standby keeps its schedules (it may lead any moment) but only the leader triggers.
        if (this.deps.leadership.fence() === null) return;
        void this.trigger({ trigger: 'schedule', label: task.name, task: null, taskId: task.id, action: task.action, params: task.params });
      },
      {
        name: `task-${task.id}`,
        timezone: task.timezone,
        logger: {
          info: (m) => log.debug(m),
          warn: (m) => log.warn(m),
          error: (m, err) => log.error({ err: err ?? m }, String(m)),
          debug: (m) => log.debug(String(m)),
        },
      },
    );
    void cron.start();
    return cron;
  }

  /** Runs `task` now, outside its schedule (same one-at-a-time rule). */
  runTask(task: Task, trigger: RunTrigger): Promise<TriggerResult> {
    return this.trigger({ trigger, label: task.name, task, taskId: task.id, action: task.action, params: task.params });
  }

  /** Runs an action for no task (history initialization at first start). */
  runAction(action: TaskAction, trigger: RunTrigger, params: Record<string, unknown>): Promise<TriggerResult> {
    return this.trigger({ trigger, label: action, task: null, taskId: null, action, params });
  }

  /** Whether a run of the task is in progress in this brain. */
  isRunning(taskId: number): boolean {
    return this.flights.get(`task:${taskId}`)?.running ?? false;
  }

  /** Aborts every run in progress (their ActionContext.signal): the lease is lost or the brain stops. */
  abortRuns(reason: string): void {
    for (const controller of this.running.values()) controller.abort(new Error(reason));
  }

  /** Stops the schedules and reloads, aborts the runs in progress and waits for them to end. */
  async stop(reason = 'the brain is stopping'): Promise<void> {
    this.stopped = true;
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    await this.reloading;
    for (const s of this.schedules.values()) await s.cron.destroy();
    this.schedules.clear();
    this.abortRuns(reason);
    await Promise.all([...this.flights.values()].map((f) => f.idle()));
  }

  private trigger(req: Omit<RunRequest, 'settle'>): Promise<TriggerResult> {
    if (this.stopped || this.deps.leadership.fence() === null) return Promise.resolve({ kind: 'not-leader' });
    const key = req.taskId === null ? `action:${req.action}` : `task:${req.taskId}`;
    let flight = this.flights.get(key);
    if (flight === undefined) {
      flight = new SingleFlight<RunRequest>(
        (r) => this.execute(key, r),
        // The skipped request's own label: a task renamed since its first trigger is counted by its new name.
        (r) => this.countSkip(r.taskId, r.label),
      );
      this.flights.set(key, flight);
    }
    return new Promise<TriggerResult>((settle) => {
      if (flight.trigger({ ...req, settle }) === null) settle({ kind: 'skipped' });
    });
  }

  private countSkip(taskId: number | null, label: string): void {
    this.deps.log.warn({ job: label }, 'previous run still in progress; skipping this trigger');
    this.deps.metrics.jobRuns.inc({ job: label, result: 'skipped' });
    if (taskId !== null) {
      this.deps.tasks.countSkipped(taskId).catch((err: unknown) => this.deps.log.warn({ err: errorMessage(err), taskId }, 'cannot count a skipped trigger'));
    }
  }

  private async execute(key: string, req: RunRequest): Promise<void> {
    const { leadership, log } = this.deps;
    let started = false;
    try {
      let task = req.task;
      if (req.taskId !== null && task === null) {
        task = await this.deps.tasks.get(req.taskId);
        if (task === null || !task.enabled) return req.settle({ kind: 'gone' });
      }
      const fence = leadership.fence();
      if (fence === null) return req.settle({ kind: 'not-leader' });
      if (!(await leadership.claim(fence))) {
        this.deps.metrics.jobRuns.inc({ job: task?.name ?? req.action, result: 'refused' });
        log.warn({ fence }, 'run refused: a newer lease fence is recorded, another brain leads');
        return req.settle({ kind: 'not-leader' });
      }
      const controller = new AbortController();
      this.running.set(key, controller);
      // Aborted between the check above and now: do not start.
      if (this.stopped || leadership.fence() !== fence) controller.abort(new Error('this brain stopped leading'));
      const action = task?.action ?? req.action;
      const params = task?.params ?? req.params;
      let resolveDone!: (r: JobResult) => void;
      const done = new Promise<JobResult>((r) => (resolveDone = r));
      const result = await runRecordedJob(
        this.deps,
        {
          label: task?.name ?? action,
          start: { job: action, taskId: task?.id ?? null, taskName: task?.name ?? null, trigger: req.trigger, fence, brainId: leadership.brainId },
          onStarted: (runId) => {
            started = true;
            req.settle({ kind: 'started', runId, done });
          },
        },
        async () => {
          controller.signal.throwIfAborted();
          return this.deps.runners[action]({
            config: this.deps.config,
            params,
            trigger: req.trigger,
            signal: controller.signal,
            log: log.child({ task: task?.name ?? null, action }),
            progress: this.deps.progress,
          });
        },
      );
      resolveDone(result);
      if (!started) req.settle(result === 'refused' ? { kind: 'not-leader' } : { kind: 'failed', error: 'the run could not be recorded (see the brain log)' });
    } catch (err) {
      if (!started) req.settle({ kind: 'failed', error: errorMessage(err) });
      throw err;
    } finally {
      this.running.delete(key);
    }
  }
}
