import { createClient, ClickHouseError, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import type { ClickHouseServerConfig } from '../config/schema.js';
import { MprismError, UnreachableError } from '../errors.js';
import { clickhouseUrl, displayAddress } from '../infra/endpoints.js';

export type { ClickHouseClient };

/** Queries run as one statement each; a minute covers INSERT ... SELECT of a large window on a slow disk. */
const REQUEST_TIMEOUT_MS = 60_000;

export function createClickHouse(server: ClickHouseServerConfig): ClickHouseClient {
  const url = clickhouseUrl(server);
  const credentialsInUrl = new URL(url).username !== '';
  return createClient({
    url,
    ...(credentialsInUrl ? {} : { username: server.user, password: server.password }),
    request_timeout: REQUEST_TIMEOUT_MS,
    // Errors are thrown to the caller and logged there with context; the client's own console logging would duplicate them.
    log: { level: ClickHouseLogLevel.OFF },
  });
}

/**
 * Server generation. `legacy` is an 18.x/19.x-era server: the schema rendered for it avoids DateTime64, TTL,
 * CODEC, query parameters and LowCardinality (which 18.x only accepts behind a profile setting).
 */
export interface Dialect {
  version: string;
  major: number;
  minor: number;
  legacy: boolean;
}

export function dialectFromVersion(version: string): Dialect {
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  if (!m) throw new MprismError(`unrecognized ClickHouse version: ${JSON.stringify(version)}`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return { version: version.trim(), major, minor, legacy: major < 20 };
}

export async function detectDialect(client: ClickHouseClient): Promise<Dialect> {
  const rows = await selectRows<{ v: string }>(client, 'SELECT version() AS v');
  const row = rows[0];
  if (!row) throw new MprismError('SELECT version() returned no row');
  return dialectFromVersion(row.v);
}

/** SELECT as JSONEachRow. UInt64/Int64 values arrive as strings (quoted by the server). */
export async function selectRows<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return result.json<T>();
}

/** Throws UnreachableError when the server does not answer /ping. */
export async function ensureReachable(client: ClickHouseClient, target: string, server: ClickHouseServerConfig): Promise<void> {
  const ping = await client.ping();
  if (!ping.success) throw new UnreachableError(target, displayAddress(clickhouseUrl(server)), { cause: ping.error });
}

/**
 * The server's error code of a failed request, or null. Current servers' errors are parsed by the
 * client (ClickHouseError.code); 18.16's text (`Code: 216, e.displayText() = ...`) is not, so it is
 * read from the message.
 */
export function clickHouseErrorCode(err: unknown): number | null {
  if (err instanceof ClickHouseError && /^\d+$/.test(err.code)) return Number(err.code);
  const m = err instanceof Error ? /\bCode: (\d+)\b/.exec(err.message) : null;
  return m === null ? null : Number(m[1]);
}
