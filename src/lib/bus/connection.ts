import { connect, type NatsConnection } from 'nats';
import type { Config } from '../config/schema.js';
import { UnreachableError } from '../errors.js';
import { displayAddress, natsUrl } from '../infra/endpoints.js';

/**
 * Connect for a long-lived daemon: reconnects forever once connected, so a NATS restart
 * does not kill the daemon. The first connect fails fast with UnreachableError.
 */
export async function connectNats(config: Config, name: string, timeoutMs = 5000): Promise<NatsConnection> {
  const url = natsUrl(config);
  try {
    return await connect({
      servers: url.split(','),
      name: `mprism-${name}`,
      timeout: timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
  } catch (err) {
    throw new UnreachableError('NATS', displayAddress(url), { cause: err });
  }
}
