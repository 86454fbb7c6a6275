import type { Config } from '../config/schema.js';
import { ConfigError, MprismError, UnreachableError, UsageError } from '../errors.js';
import { brainBaseUrl } from './alerts/client.js';
import type { JobRun } from './history.js';
import type { BrainStatus, TaskSummary } from './status.js';
import type { Task } from './tasks.js';
import { brainTokenFile, readBrainToken } from './token.js';

const REQUEST_TIMEOUT_MS = 10_000;
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

type Method = 'GET' | 'POST' | 'PUT';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const errorOf = (body: unknown) => (isRecord(body) && typeof body.error === 'string' ? body.error : String(body).slice(0, 300));

async function request(config: Config, method: Method, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const base = brainBaseUrl(config);
  const headers: Record<string, string> = {};
  if (method !== 'GET') {
    headers.authorization = `Bearer ${readBrainToken(config.home)}`;
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new UnreachableError('brain', base, { cause: err instanceof Error && err.cause instanceof Error ? err.cause : err });
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the raw text for the error message
  }
  if (res.status === 401) throw new ConfigError(`the brain refused the token in ${brainTokenFile(config.home)}: ${errorOf(parsed)}`);
  return { status: res.status, body: parsed };
}

function expectOk(what: string, res: { status: number; body: unknown }, ok = 200): unknown {
  if (res.status !== ok) throw new MprismError(`brain: ${what} failed (HTTP ${res.status}): ${errorOf(res.body)}`);
  return res.body;
}

/** The tasks as the brain's status shows them, with who leads. */
export async function fetchTaskStatus(config: Config): Promise<Pick<BrainStatus, 'brainId' | 'leading' | 'leader' | 'tasks' | 'errors'>> {
  const s = expectOk('reading status', await request(config, 'GET', '/api/v1/status')) as BrainStatus;
  return { brainId: s.brainId, leading: s.leading, leader: s.leader, tasks: s.tasks, errors: s.errors };
}

async function taskNamed(config: Config, name: string): Promise<Task> {
  const { tasks } = expectOk('listing tasks', await request(config, 'GET', '/api/v1/tasks')) as { tasks: Task[] };
  const task = tasks.find((t) => t.name === name);
  if (task === undefined) throw new UsageError(`no task named ${name} (tasks: ${tasks.map((t) => t.name).join(', ') || 'none'})`);
  return task;
}

export async function setTaskEnabled(config: Config, name: string, enabled: boolean): Promise<Task> {
  const task = await taskNamed(config, name);
  return expectOk(`changing ${name}`, await request(config, 'PUT', `/api/v1/tasks/${task.id}`, { enabled })) as Task;
}

/** Starts a run of the task now; its run id. */
export async function triggerTask(config: Config, name: string): Promise<{ runId: number; task: Task }> {
  const task = await taskNamed(config, name);
  const res = await request(config, 'POST', `/api/v1/tasks/${task.id}/trigger`);
  if (res.status === 409) throw new TaskBusyError(errorOf(res.body));
  if (res.status === 503) throw new NotLeaderError(errorOf(res.body));
  const { runId } = expectOk(`starting ${name}`, res, 202) as { runId: number };
  return { runId, task };
}

/** Waits for a run to end. */
export async function waitForRun(config: Config, runId: number): Promise<JobRun> {
  for (;;) {
    const run = expectOk(`reading run ${runId}`, await request(config, 'GET', `/api/v1/runs/${runId}`)) as JobRun;
    if (run.finishedAt !== null) return run;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
