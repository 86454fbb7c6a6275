import { Redis } from 'ioredis';

/** Service registry in Redis: one key per daemon, refreshed by its heartbeat, expiring by TTL. */
export const REGISTRY_PREFIX = 'mprism:registry:';

export interface RegistryEntry {
  name: string;
  pid: number;
  host: string;
  port: number;
  startedAt: string;
  lastHeartbeat: string;
  healthy: boolean;
}

export async function writeHeartbeat(redis: Redis, entry: RegistryEntry, ttlSeconds: number): Promise<void> {
  await redis.set(REGISTRY_PREFIX + entry.name, JSON.stringify(entry), 'EX', ttlSeconds);
}

export async function removeEntry(redis: Redis, name: string): Promise<void> {
  await redis.del(REGISTRY_PREFIX + name);
}

/** Live entries only: an expired heartbeat is simply absent. Unparseable values are skipped. */
export async function readRegistry(redis: Redis): Promise<RegistryEntry[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${REGISTRY_PREFIX}*`, 'COUNT', 100);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  const entries: RegistryEntry[] = [];
  for (const v of values) {
    if (v === null) continue;
    try {
      entries.push(JSON.parse(v) as RegistryEntry);
    } catch {
      // A foreign or half-written value must not break status for every other daemon.
    }
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

/** One-shot read for the CLI: null when Redis cannot be reached within timeoutMs. */
export async function fetchRegistry(url: string, timeoutMs = 2000): Promise<RegistryEntry[] | null> {
  return withRedis(url, timeoutMs, readRegistry);
}

/** One short-lived connection for a CLI read: the result, or null when Redis cannot be reached. */
export async function withRedis<T>(url: string, timeoutMs: number, read: (redis: Redis) => Promise<T>): Promise<T | null> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: timeoutMs, retryStrategy: () => null });
  redis.on('error', () => undefined); // the null result says it
  try {
    await redis.connect();
    return await read(redis);
  } catch {
    return null;
  } finally {
    redis.disconnect();
  }
}
