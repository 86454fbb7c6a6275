import type { Config } from '../config/schema.js';
import type { InfraName } from '../paths.js';
import type { LocalServerSpec } from './server-spec.js';
import { natsServer } from './nats-server.js';
import { clickhouseServer } from './clickhouse-server.js';
import { redisServer } from './redis-server.js';
import { postgresServer } from './postgres-server.js';

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
