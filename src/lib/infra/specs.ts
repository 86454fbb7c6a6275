import type { Config } from '../config/schema.js';
import type { InfraName, LocalServerName } from '../paths.js';
import type { BinaryName } from './binaries.js';
import type { LocalServerSpec } from './server-spec.js';
import { natsServer } from './nats-server.js';
import { clickhouseReplicaServer, clickhouseServer } from './clickhouse-server.js';
import { localReplicatedTiers, needsLocalZooKeeper } from './endpoints.js';
import { redisServer } from './redis-server.js';
import { postgresServer } from './postgres-server.js';
import { zookeeperServer } from './zookeeper-server.js';

export function localServerSpec(config: Config, name: InfraName): LocalServerSpec {
  switch (name) {
    case 'nats':
    case 'nats-2':
    case 'nats-3':
      return natsServer(config, name);
    case 'clickhouse-hot':
    case 'clickhouse-cold':
      return clickhouseServer(config, name);
    case 'redis':
      return redisServer(config);
    case 'postgres':
      return postgresServer(config);
  }
}

function tierOf(name: InfraName): 'hot' | 'cold' | null {
  return name === 'clickhouse-hot' ? 'hot' : name === 'clickhouse-cold' ? 'cold' : null;
}

/**
 * The servers that start before `name` and stop after it: for a replicated tier mprism runs, the local
 * ZooKeeper (unless an ensemble is configured) and the tier's other replicas. Empty otherwise.
 */
export function companionSpecs(config: Config, name: InfraName): LocalServerSpec[] {
  const tier = tierOf(name);
  if (tier === null || !localReplicatedTiers(config).includes(tier)) return [];
  const replicas = config.clickhouse[tier].replication?.replicas ?? [];
  return [
    ...(needsLocalZooKeeper(config) ? [zookeeperServer(config)] : []),
    ...replicas.map((_, i) => clickhouseReplicaServer(config, tier, i + 2)),
  ];
}

/** The binary a local server runs: every ClickHouse replica runs clickhouse-server. */
export function binaryOf(name: LocalServerName): BinaryName {
  if (name === 'zookeeper' || name === 'prometheus') return name;
  if (name.startsWith('clickhouse-hot')) return 'clickhouse-hot';
  if (name.startsWith('clickhouse-cold')) return 'clickhouse-cold';
  return name as InfraName;
}
