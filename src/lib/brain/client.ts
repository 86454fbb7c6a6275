import type { Config } from '../config/schema.js';
import { ConfigError, MprismError, UnreachableError } from '../errors.js';
import { isObject } from '../json-guards.js';
import { brainTokenFile, readBrainToken } from './token.js';

const REQUEST_TIMEOUT_MS = 10_000;

/** Where a client on this machine reaches the brain: its bind address, or loopback when it binds every interface. */
export function brainBaseUrl(config: Config): string {
  const host = config.brain.host === '0.0.0.0' || config.brain.host === '::' ? '127.0.0.1' : config.brain.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.brain.port}`;
}

/** The `error` of an API answer, or the start of whatever else it was. */
export const errorOf = (body: unknown): string => (isObject(body) && typeof body.error === 'string' ? body.error : String(body).slice(0, 300));

/**
 * One request to the brain's API, as the CLI makes them: mutations carry the token from MPRISM_HOME.
 * An unreachable brain is an UnreachableError (exit 3), a refused token a ConfigError (exit 2).
 */
export async function brainRequest(config: Config, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
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

/** The body of an answer with the expected status, or an error saying what failed. */
export function expectStatus(what: string, res: { status: number; body: unknown }, ok = 200): unknown {
  if (res.status !== ok) throw new MprismError(`brain: ${what} failed (HTTP ${res.status}): ${errorOf(res.body)}`);
  return res.body;
}
