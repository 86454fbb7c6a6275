import { isObject } from '../../json-guards.js';
import type { Config } from '../../config/schema.js';
import { ConfigError, MprismError, UnreachableError, UsageError } from '../../errors.js';
import { brainTokenFile, readBrainToken } from '../token.js';
import type { AlertView } from './store.js';

const REQUEST_TIMEOUT_MS = 10_000;

/** Where a client on this machine reaches the brain: its bind address, or loopback when it binds every interface. */
export function brainBaseUrl(config: Config): string {
  const host = config.brain.host === '0.0.0.0' || config.brain.host === '::' ? '127.0.0.1' : config.brain.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.brain.port}`;
}

async function brainRequest(config: Config, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
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
  return { status: res.status, body: parsed };
}

const errorOf = (body: unknown) => (isObject(body) && typeof body.error === 'string' ? body.error : String(body).slice(0, 300));

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
  if (res.status === 401) throw new ConfigError(`the brain refused the token in ${brainTokenFile(config.home)}: ${errorOf(res.body)}`);
  if (res.status === 404 || res.status === 400) throw new UsageError(`alert ${id}: ${errorOf(res.body)}`);
  if (res.status !== 200 || !isObject(res.body) || !isObject(res.body.alert)) {
    throw new MprismError(`brain: acknowledging alert ${id} failed (HTTP ${res.status}): ${errorOf(res.body)}`);
  }
  return res.body.alert as unknown as AlertView;
}
