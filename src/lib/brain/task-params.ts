import type { Config } from '../config/schema.js';
import { BadRequestError } from './api.js';
import { ParamError, scopeFromParams } from './backfill-plan.js';
import type { TaskAction } from './schema.js';

type Params = Readonly<Record<string, unknown>>;

function onlyKnown(params: Params, known: readonly string[]): void {
  for (const name of Object.keys(params)) {
    if (!known.includes(name)) throw new ParamError(`params.${name}`, known.length === 0 ? 'this action takes no params' : `unknown; this action takes ${known.join(', ')}`);
  }
}

/** params.sinceSeconds (integrity, repair): how far back to look, ms. */
export function sinceMsParam(params: Params, fallbackSeconds: number): number {
  const v = params.sinceSeconds ?? fallbackSeconds;
  if (typeof v !== 'number' || !(v > 0)) throw new ParamError('params.sinceSeconds', `must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return v * 1000;
}

/** params.dryRun (retention): plan and report, drop nothing. */
export function dryRunParam(params: Params): boolean {
  const v = params.dryRun ?? false;
  if (typeof v !== 'boolean') throw new ParamError('params.dryRun', `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Each action's check of its params: a missing action is a compile error. */
const CHECKS: { readonly [A in TaskAction]: (params: Params, config: Config) => void } = {
  integrity: (p) => (onlyKnown(p, ['sinceSeconds']), sinceMsParam(p, 1)),
  repair: (p) => (onlyKnown(p, ['sinceSeconds']), sinceMsParam(p, 1)),
  retention: (p) => (onlyKnown(p, ['dryRun']), dryRunParam(p)),
  backfill: (p, config) => scopeFromParams(p, config),
  health: (p) => onlyKnown(p, []),
};

/**
 * Refuses, as a 400 naming the param, params the task's action would fail on at every run: a task
 * saved with them would only ever fail (and raise job_failing).
 */
export function checkTaskParams(action: TaskAction, params: Params, config: Config): void {
  try {
    CHECKS[action](params, config);
  } catch (err) {
    if (err instanceof ParamError) throw new BadRequestError(err.param, err.message);
    throw err;
  }
}
