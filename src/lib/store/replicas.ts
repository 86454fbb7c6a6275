import type { ClickHouseServerConfig } from '../config/schema.js';
import { errorMessage, UnreachableError } from '../errors.js';
import { clickhouseUrl, displayAddress } from '../infra/endpoints.js';
import { createClickHouse, type ClickHouseClient } from './client.js';
import { qualified } from './sql.js';

/**
 * A tier's replicas as server configs, the tier's own address first. Every replica holds every row
 * (ReplicatedMergeTree), so one of them answers for the tier; database, user and password are the tier's.
 */
export function tierReplicas(server: ClickHouseServerConfig): ClickHouseServerConfig[] {
  const others = server.replication?.replicas ?? [];
  return [server, ...others.map((r) => ({ ...server, url: r.url, host: r.host, httpPort: r.httpPort, tcpPort: r.tcpPort }))];
}

/** Where a replica is, for messages and reports (no credentials). */
export function replicaAddress(server: ClickHouseServerConfig): string {
  return displayAddress(clickhouseUrl(server));
}

export interface ReplicaReader {
  client: ClickHouseClient;
  /** 1-based position in tierReplicas: 1 is the tier's own address. */
  index: number;
  address: string;
  /** Replicas tried before this one that did not answer, with why. */
  skipped: { address: string; error: string }[];
}

/**
 * A client on the first replica of the tier that answers /ping: reads fail over in configured order.
 * Reading one replica counts each row once; summing replicas would count it once per replica.
 * Throws UnreachableError naming every replica when none answers.
 */
export async function openReadableReplica(server: ClickHouseServerConfig, target: string): Promise<ReplicaReader> {
  const skipped: ReplicaReader['skipped'] = [];
  const replicas = tierReplicas(server);
  for (const [i, replica] of replicas.entries()) {
    const client = createClickHouse(replica);
    const ping = await client.ping();
    if (ping.success) return { client, index: i + 1, address: replicaAddress(replica), skipped };
    skipped.push({ address: replicaAddress(replica), error: errorMessage(ping.error) });
    await client.close();
  }
  const tried = skipped.map((s) => `${s.address} (${s.error})`).join(', ');
  throw new UnreachableError(target, replicas.length === 1 ? replicaAddress(server) : `any replica: ${tried}`, {
    cause: new Error(skipped.at(-1)?.error ?? 'no answer'),
  });
}

/**
 * Waits until this replica has fetched every part ZooKeeper lists for the table (rows written through
 * another replica included), at most timeoutMs. Returns null when in sync, else why not: a replica
 * whose peer is down cannot fetch the peer's unreplicated parts and would wait forever.
 */
export async function syncReplica(client: ClickHouseClient, database: string, table: string, timeoutMs: number): Promise<string | null> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    await client.command({
      query: `SYSTEM SYNC REPLICA ${qualified(database, table)}`,
      abort_signal: abort.signal,
      // The server gives up as well (on versions that bound SYNC REPLICA by receive_timeout).
      clickhouse_settings: { receive_timeout: Math.ceil(timeoutMs / 1000) },
    });
    return null;
  } catch (err) {
    return abort.signal.aborted ? `not in sync after ${timeoutMs} ms` : errorMessage(err);
  } finally {
    clearTimeout(timer);
  }
}
