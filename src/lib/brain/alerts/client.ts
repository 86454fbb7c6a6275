import { isObject } from '../../json-guards.js';
import type { Config } from '../../config/schema.js';
import { MprismError, UsageError } from '../../errors.js';
import { brainRequest, errorOf } from '../client.js';
import type { AlertView } from './store.js';

/** Alerts from the brain: open ones (most severe first), or with `all` resolved ones too (newest first). */
export async function fetchAlerts(config: Config, opts: { all: boolean; limit?: number }): Promise<AlertView[]> {
  const query = new URLSearchParams({ state: opts.all ? 'all' : 'open', limit: String(opts.limit ?? 100) });
  const res = await brainRequest(config, 'GET', `/api/v1/monitoring/alerts?${query}`);
  if (res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.alerts)) {
    throw new MprismError(`brain: listing alerts failed (HTTP ${res.status}): ${errorOf(res.body)}`);
  }
  return res.body.alerts as AlertView[];
}

/** Parse an alert id given on the command line. */
export function parseAlertId(text: string): number {
  const id = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) throw new UsageError(`alert id must be a positive integer, not '${text}'`);
  return id;
}

/** Acknowledge one alert; idempotent. A missing id is a usage error (exit 2). */
export async function ackAlert(config: Config, id: number, by: string | null): Promise<AlertView> {
  const res = await brainRequest(config, 'POST', '/api/v1/monitoring/alerts/ack', by === null ? { id } : { id, by });
  if (res.status === 404 || res.status === 400) throw new UsageError(`alert ${id}: ${errorOf(res.body)}`);
  if (res.status !== 200 || !isObject(res.body) || !isObject(res.body.alert)) {
    throw new MprismError(`brain: acknowledging alert ${id} failed (HTTP ${res.status}): ${errorOf(res.body)}`);
  }
  return res.body.alert as unknown as AlertView;
}
