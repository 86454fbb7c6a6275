import type { ClickHouseServerConfig, Config } from '../config/schema.js';
import { NATS_NODE_NAMES, natsNodeIndex, type InfraName, type NatsNodeName } from '../paths.js';
import { urlHost } from './server-spec.js';

/** A local NATS node's ports: node k uses the configured ones plus k; clusterPort null for a lone server. */
export function natsNodePorts(c: Config, name: NatsNodeName): { port: number; monitorPort: number; clusterPort: number | null } {
  const k = natsNodeIndex(name);
  return {
    port: c.nats.port + k,
    monitorPort: c.nats.monitorPort + k,
    clusterPort: c.nats.cluster.nodes > 1 ? c.nats.cluster.port + k : null,
  };
}

/** The local nodes in use: `nats` alone, or all three of a local cluster. */
export function localNatsNodes(c: Config): NatsNodeName[] {
  return NATS_NODE_NAMES.slice(0, c.nats.cluster.nodes);
}

export function natsNodeUrl(c: Config, name: NatsNodeName): string {
  return `nats://${urlHost(c.nats.host)}:${natsNodePorts(c, name).port}`;
}

/**
 * Client URLs, comma-separated: the configured external URL(s), else every local node, so a
 * client fails over to another node when the one it uses dies.
 */
export function natsUrl(c: Config): string {
  return c.nats.url ?? localNatsNodes(c).map((name) => natsNodeUrl(c, name)).join(',');
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
    case 'nats-2':
    case 'nats-3':
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
    case 'nats-2':
    case 'nats-3':
      return c.nats.url ?? natsNodeUrl(c, name);
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
