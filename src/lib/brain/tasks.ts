import { isObject } from '../json-guards.js';
import type pg from 'pg';
import { NAME_PATTERN, type TaskSeed } from '../config/schema.js';
import type { ProgressStore } from './actions.js';
import { BadRequestError, ConflictError, NotFoundError } from './api.js';
import { cronProblem, timezoneProblem } from './scheduler.js';
import { TASK_ACTIONS, type TaskAction } from './schema.js';

/** What a client sets: everything but the id, the counters and the times. */
export interface TaskFields {
  name: string;
  cron: string;
  timezone: string;
  action: TaskAction;
  params: Record<string, unknown>;
  enabled: boolean;
}

/** One row of `tasks` (stable JSON shape of the brain API). */
export interface Task extends TaskFields {
  id: number;
  /** Triggers skipped because a run of this task was still going. */
  skipped: number;
  createdAt: string;
  updatedAt: string;
}


const FIELD_NAMES: readonly (keyof TaskFields)[] = ['name', 'cron', 'timezone', 'action', 'params', 'enabled'];
const DEFAULTS: Pick<TaskFields, 'timezone' | 'params' | 'enabled'> = { timezone: 'UTC', params: {}, enabled: true };

/** Checks one field; throws BadRequestError naming it. */
function checkField<K extends keyof TaskFields>(field: K, value: unknown): TaskFields[K] {
  const bad = (message: string): never => {
    throw new BadRequestError(field, `${field}: ${message}`);
  };
  switch (field) {
    case 'name':
      if (typeof value !== 'string' || !NAME_PATTERN.test(value)) bad('lowercase letters, digits, - and _, at most 63, starting with a letter or digit');
      break;
    case 'cron': {
      if (typeof value !== 'string' || value.trim() === '') bad('a cron expression is required');
      const problem = cronProblem(value as string);
      if (problem !== null) bad(problem);
      break;
    }
    case 'timezone': {
      if (typeof value !== 'string' || value === '') bad('an IANA time zone name is required');
      const problem = timezoneProblem(value as string);
      if (problem !== null) bad(problem);
      break;
    }
    case 'action':
      if (typeof value !== 'string' || !(TASK_ACTIONS as readonly string[]).includes(value)) bad(`must be one of ${TASK_ACTIONS.join(', ')}`);
      break;
    case 'params':
      if (!isObject(value)) bad('must be a JSON object');
      break;
    case 'enabled':
      if (typeof value !== 'boolean') bad('must be true or false');
      break;
  }
  return value as TaskFields[K];
}

function checkBody(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw new BadRequestError('body', 'body: a JSON object with the task fields is required');
  const unknown = Object.keys(body).filter((k) => !(FIELD_NAMES as readonly string[]).includes(k));
  if (unknown.length > 0) throw new BadRequestError(unknown[0]!, `${unknown[0]}: not a task field (fields: ${FIELD_NAMES.join(', ')})`);
  return body;
}

/** A new task from a request body: name, cron and action required; timezone, params, enabled defaulted. */
export function parseNewTask(body: unknown): TaskFields {
  const input = checkBody(body);
  const pick = <K extends keyof TaskFields>(field: K): TaskFields[K] => {
    const value = input[field];
    if (value === undefined) {
      if (field in DEFAULTS) return DEFAULTS[field as keyof typeof DEFAULTS] as TaskFields[K];
      throw new BadRequestError(field, `${field}: required`);
    }
    return checkField(field, value);
  };
  return { name: pick('name'), cron: pick('cron'), timezone: pick('timezone'), action: pick('action'), params: pick('params'), enabled: pick('enabled') };
}

/** A change from a request body: any subset of the fields (PUT leaves the others as they are). */
export function parseTaskChange(body: unknown): Partial<TaskFields> {
  const input = checkBody(body);
  const change: Partial<TaskFields> = {};
  for (const field of FIELD_NAMES) {
    if (input[field] !== undefined) (change as Record<string, unknown>)[field] = checkField(field, input[field]);
  }
  if (Object.keys(change).length === 0) throw new BadRequestError('body', `body: no task field to change (fields: ${FIELD_NAMES.join(', ')})`);
  return change;
}

/** A task id from a path: a positive integer, else 400 naming `id`. */
export function parseTaskId(raw: string): number {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw new BadRequestError('id', `id: "${raw}" is not a task id (a positive integer)`);
  return Number(raw);
}

interface TaskRow {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  action: TaskAction;
  params: Record<string, unknown>;
  enabled: boolean;
  skipped: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, name, cron, timezone, action, params, enabled, skipped, created_at, updated_at';

const toTask = (r: TaskRow): Task => ({
  id: Number(r.id),
  name: r.name,
  cron: r.cron,
  timezone: r.timezone,
  action: r.action,
  params: r.params,
  enabled: r.enabled,
  skipped: Number(r.skipped),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

/** job_progress key of the seed task names inserted once (never again, even when deleted since). */
const SEEDED_KEY = 'brain:seeded-tasks';

/** PostgreSQL's SQLSTATE for a unique violation. */
const UNIQUE_VIOLATION = '23505';

function nameTaken(err: unknown, name: string | undefined): never {
  if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) throw new ConflictError(`a task named ${name} exists already`);
  throw err;
}

/** The brain's tasks, one row each in PostgreSQL: what runs, when, with which params. */
export class TaskStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(): Promise<Task[]> {
    const res = await this.pool.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks ORDER BY name`);
    return res.rows.map(toTask);
  }

  async get(id: number): Promise<Task | null> {
    const res = await this.pool.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1`, [id]);
    return res.rows[0] === undefined ? null : toTask(res.rows[0]);
  }

  /** get, or NotFoundError. */
  async require(id: number): Promise<Task> {
    const task = await this.get(id);
    if (task === null) throw new NotFoundError(`no task with id ${id}`);
    return task;
  }

  async create(fields: TaskFields): Promise<Task> {
    const res = await this.pool
      .query<TaskRow>(
        `INSERT INTO tasks (name, cron, timezone, action, params, enabled) VALUES ($1, $2, $3, $4, $5::jsonb, $6) RETURNING ${COLUMNS}`,
        [fields.name, fields.cron, fields.timezone, fields.action, JSON.stringify(fields.params), fields.enabled],
      )
      .catch((err: unknown) => nameTaken(err, fields.name));
    return toTask(res.rows[0]!);
  }

  async update(id: number, change: Partial<TaskFields>): Promise<Task> {
    const res = await this.pool
      .query<TaskRow>(
        `UPDATE tasks SET name = coalesce($2, name), cron = coalesce($3, cron), timezone = coalesce($4, timezone),
                action = coalesce($5, action), params = coalesce($6::jsonb, params), enabled = coalesce($7, enabled),
                updated_at = now()
          WHERE id = $1 RETURNING ${COLUMNS}`,
        [
          id,
          change.name ?? null,
          change.cron ?? null,
          change.timezone ?? null,
          change.action ?? null,
          change.params === undefined ? null : JSON.stringify(change.params),
          change.enabled ?? null,
        ],
      )
      .catch((err: unknown) => nameTaken(err, change.name));
    if (res.rows[0] === undefined) throw new NotFoundError(`no task with id ${id}`);
    return toTask(res.rows[0]);
  }

  async delete(id: number): Promise<Task> {
    const res = await this.pool.query<TaskRow>(`DELETE FROM tasks WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    if (res.rows[0] === undefined) throw new NotFoundError(`no task with id ${id}`);
    return toTask(res.rows[0]);
  }

  /** Flips enabled in one statement, so two toggles never both read the same state. */
  async toggle(id: number): Promise<Task> {
    const res = await this.pool.query<TaskRow>(
      `UPDATE tasks SET enabled = NOT enabled, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    if (res.rows[0] === undefined) throw new NotFoundError(`no task with id ${id}`);
    return toTask(res.rows[0]);
  }

  async countSkipped(id: number): Promise<void> {
    await this.pool.query('UPDATE tasks SET skipped = skipped + 1 WHERE id = $1', [id]);
  }

  /**
   * Inserts the config's seed tasks that were never seeded before and whose names are free: an
   * existing task is left as it is, and a seeded task the operator deleted stays deleted. Returns
   * the names inserted.
   */
  async seed(seeds: readonly TaskSeed[], progress: ProgressStore): Promise<string[]> {
    const loaded = await progress.load(SEEDED_KEY);
    const before = new Set(Array.isArray(loaded) ? (loaded as unknown[]).filter((n): n is string => typeof n === 'string') : []);
    const created: string[] = [];
    for (const s of seeds.filter((t) => !before.has(t.name))) {
      const res = await this.pool.query(
        `INSERT INTO tasks (name, cron, timezone, action, params, enabled) VALUES ($1, $2, $3, $4, $5::jsonb, $6)
         ON CONFLICT (name) DO NOTHING`,
        [s.name, s.cron, s.timezone, s.action, JSON.stringify(s.params), s.enabled],
      );
      if ((res.rowCount ?? 0) > 0) created.push(s.name);
    }
    const all = [...new Set([...before, ...seeds.map((t) => t.name)])].sort();
    if (all.length !== before.size) await progress.save(SEEDED_KEY, all);
    return created;
  }
}
