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

/** Tiers mprism runs itself that are replicated: they need ZooKeeper. */
export function localReplicatedTiers(c: Config): ('hot' | 'cold')[] {
  return (['hot', 'cold'] as const).filter((tier) => c.clickhouse[tier].url === null && c.clickhouse[tier].replication !== null);
}

/** True when mprism must run a ZooKeeper: a local tier is replicated and no ensemble is configured. */
export function needsLocalZooKeeper(c: Config): boolean {
  return c.clickhouse.zookeeper.servers === null && localReplicatedTiers(c).length > 0;
}

/** host:port of each ZooKeeper server the local replicas use. */
export function zookeeperServers(c: Config): { host: string; port: number }[] {
  return (c.clickhouse.zookeeper.servers ?? [`${c.clickhouse.zookeeper.host}:${c.clickhouse.zookeeper.port}`]).map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
}
