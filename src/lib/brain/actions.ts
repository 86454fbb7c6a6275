import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { RunTrigger, TaskAction } from './schema.js';

/** What a job reports: a JSON-able result, and the problems found (none means clean). */
export interface JobOutcome {
  result: unknown;
  problems: string[];
}

/** Saved state of resumable work (PostgreSQL job_progress), by key. */
export interface ProgressStore {
  load(key: string): Promise<unknown>;
  save(key: string, state: unknown): Promise<void>;
  clear(key: string): Promise<void>;
  /** Every key starting with prefix, with its state. */
  list(prefix: string): Promise<{ key: string; state: unknown; updatedAt: string }[]>;
}

/** Everything one run of a task's action gets. */
export interface ActionContext {
  config: Config;
  /** The task's params (JSON object from the tasks table); each action validates its own. */
  params: Readonly<Record<string, unknown>>;
  trigger: RunTrigger;
  /** Aborted when the brain stops or loses its lease: stop promptly, keep progress saved. */
  signal: AbortSignal;
  log: Logger;
  progress: ProgressStore;
}

export type ActionRunner = (ctx: ActionContext) => Promise<JobOutcome>;

/** One runner per action: a missing action is a compile error. */
export type ActionRunners = { readonly [A in TaskAction]: ActionRunner };

/** What the brain hands an action factory at start: long-lived connections, shared by every run. */
export interface BrainDeps {
  config: Config;
  pool: pg.Pool;
  redis: Redis;
  log: Logger;
  metrics: Registry;
}
