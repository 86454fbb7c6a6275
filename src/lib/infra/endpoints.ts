import type { ClickHouseServerConfig, Config } from '../config/schema.js';
import type { InfraName } from '../paths.js';

/** Client URLs for each server: the configured external URL, else the local server's address. */
export function natsUrl(c: Config): string {
  return c.nats.url ?? `nats://${c.nats.host}:${c.nats.port}`;
}

export function clickhouseUrl(s: ClickHouseServerConfig): string {
  return s.url ?? `http://${s.host}:${s.httpPort}`;
}

export function redisUrl(c: Config): string {
  return c.redis.url ?? `redis://${c.redis.host}:${c.redis.port}`;
}

export function postgresUrl(c: Config): string {
  return c.postgres.url ?? `postgres://${c.postgres.user}@${c.postgres.host}:${c.postgres.port}/${c.postgres.database}`;
}

/** True when the user configured a URL for this server kind: mprism then starts no local server. */
export function isExternal(c: Config, name: InfraName): boolean {
  switch (name) {
    case 'nats':
      return c.nats.url !== null;
    case 'clickhouse-hot':
      return c.clickhouse.hot.url !== null;
    case 'clickhouse-cold':
      return c.clickhouse.cold.url !== null;
    case 'redis':
      return c.redis.url !== null;
    case 'postgres':
      return c.postgres.url !== null;
  }
}

export function infraUrl(c: Config, name: InfraName): string {
  switch (name) {
    case 'nats':
      return natsUrl(c);
    case 'clickhouse-hot':
      return clickhouseUrl(c.clickhouse.hot);
    case 'clickhouse-cold':
      return clickhouseUrl(c.clickhouse.cold);
    case 'redis':
      return redisUrl(c);
    case 'postgres':
      return postgresUrl(c);
  }
}

/** host:port for redacted display (no credentials). */
export function displayAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return url;
  }
}
