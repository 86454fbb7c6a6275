import type { Config } from '../config/schema.js';
import { MprismError, UsageError } from '../errors.js';
import { brainRequest, errorOf, expectStatus } from './client.js';
import type { JobRun } from './history.js';
import type { BrainStatus, TaskSummary } from './status.js';
import type { Task } from './tasks.js';

/** How often `mprism tasks run` asks whether its run has ended. */
const POLL_MS = 500;

/** A task run was asked of a brain that does not lead (the message names the one that does). */
export class NotLeaderError extends MprismError {
  override readonly code = 'unreachable';
}

/** A run of the task is already in progress: this trigger was skipped (and counted). */
export class TaskBusyError extends MprismError {
  override readonly code = 'problems_found';
}

/** The tasks as the brain's status shows them, with who leads. */
export async function fetchTaskStatus(config: Config): Promise<Pick<BrainStatus, 'brainId' | 'leading' | 'leader' | 'tasks' | 'errors'>> {
  const s = expectStatus('reading status', await brainRequest(config, 'GET', '/api/v1/status')) as BrainStatus;
  return { brainId: s.brainId, leading: s.leading, leader: s.leader, tasks: s.tasks, errors: s.errors };
}

async function taskNamed(config: Config, name: string): Promise<Task> {
  const { tasks } = expectStatus('listing tasks', await brainRequest(config, 'GET', '/api/v1/tasks')) as { tasks: Task[] };
  const task = tasks.find((t) => t.name === name);
  if (task === undefined) throw new UsageError(`no task named ${name} (tasks: ${tasks.map((t) => t.name).join(', ') || 'none'})`);
  return task;
}

export async function setTaskEnabled(config: Config, name: string, enabled: boolean): Promise<Task> {
  const task = await taskNamed(config, name);
  return expectStatus(`changing ${name}`, await brainRequest(config, 'PUT', `/api/v1/tasks/${task.id}`, { enabled })) as Task;
}

/** Starts a run of the task now; its run id. */
export async function triggerTask(config: Config, name: string): Promise<{ runId: number; task: Task }> {
  const task = await taskNamed(config, name);
  const res = await brainRequest(config, 'POST', `/api/v1/tasks/${task.id}/trigger`);
  if (res.status === 409) throw new TaskBusyError(errorOf(res.body));
  if (res.status === 503) throw new NotLeaderError(errorOf(res.body));
  const { runId } = expectStatus(`starting ${name}`, res, 202) as { runId: number };
  return { runId, task };
}

/** Waits for a run to end. */
export async function waitForRun(config: Config, runId: number): Promise<JobRun> {
  for (;;) {
    const run = expectStatus(`reading run ${runId}`, await brainRequest(config, 'GET', `/api/v1/runs/${runId}`)) as JobRun;
    if (run.finishedAt !== null) return run;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
