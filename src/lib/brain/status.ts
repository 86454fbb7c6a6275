import type { Redis } from 'ioredis';
import { errorMessage } from '../errors.js';
import { readRegistry, type RegistryEntry } from '../registry.js';
import type { Alert, BrainStore, JobRun } from './history.js';

/** GET /api/v1/status (stable JSON shape). A failing source leaves its part empty and adds an error line. */
export interface BrainStatus {
  now: string;
  services: RegistryEntry[];
  latestRuns: JobRun[];
  openAlerts: Alert[];
  /** e.g. "redis: connect ECONNREFUSED 127.0.0.1:6379" */
  errors: string[];
}

export async function collectBrainStatus(deps: { redis: Redis; store: BrainStore }): Promise<BrainStatus> {
  const errors: string[] = [];
  const guard = async <T>(source: string, fallback: T, read: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      errors.push(`${source}: ${errorMessage(err)}`);
      return fallback;
    }
  };
  const [services, latestRuns, openAlerts] = await Promise.all([
    guard('redis', [] as RegistryEntry[], () => readRegistry(deps.redis)),
    guard('postgres', [] as JobRun[], () => deps.store.latestRuns()),
    guard('postgres', [] as Alert[], () => deps.store.openAlerts()),
  ]);
  return { now: new Date().toISOString(), services, latestRuns, openAlerts, errors: [...new Set(errors)] };
}
