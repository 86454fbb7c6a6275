import { Redis } from 'ioredis';

/**
 * Service registry in Redis: one key per daemon and host (`mprism:registry:<name>@<host>`), refreshed
 * by its heartbeat, expiring by TTL. Per host because daemons of one name run on several machines
 * sharing Redis (storage, replication, standby brains): one would otherwise overwrite the other.
 */
export const REGISTRY_PREFIX = 'mprism:registry:';

function registryKey(name: string, host: string): string {
  return `${REGISTRY_PREFIX}${name}@${host}`;
}

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
  await redis.set(registryKey(entry.name, entry.host), JSON.stringify(entry), 'EX', ttlSeconds);
}

export async function removeEntry(redis: Redis, name: string, host: string): Promise<void> {
  await redis.del(registryKey(name, host));
}

/** The entries of the daemons of one machine (the one a CLI or supervisor runs on, hostname()). */
export function entriesOfHost(entries: readonly RegistryEntry[], host: string): RegistryEntry[] {
  return entries.filter((e) => e.host === host);
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
  return entries.sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host));
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
