import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { backoffDelay, sleep } from '../../lib/backoff.js';
import { connectNats } from '../../lib/bus/connection.js';
import { oldestUnackedEventTime } from '../../lib/bus/consumer.js';
import { storageDurable } from '../../lib/bus/streams.js';
import { Lease, leaseKeys, registerLeaseMetric } from '../../lib/coordination/lease.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import { displayAddress, redisUrl } from '../../lib/infra/endpoints.js';
import { createReplicationMetrics } from '../../lib/replication/metrics.js';
import { Replicator, type TableLeases } from '../../lib/replication/replicator.js';
import { SharedWatermarks, watermarkFile } from '../../lib/replication/watermarks.js';
import { createClickHouse } from '../../lib/store/client.js';
import { TABLES, engineFor } from '../../lib/store/tables.js';

/** The lease of one table's replication: `mprism:lease:replication:<table>`. */
export const replicationLeaseName = (table: string): string => `replication:${table}`;

/**
 * Copies closed windows hot -> cold every pollIntervalMs until ctx.signal aborts, for the tables whose
 * lease it holds: any number of these daemons, on any hosts, share the tables, each copied by one.
 */
export const replication: Daemon = async (ctx, config) => {
  const { log } = ctx;
  // One process binds this port on this host: a restarted daemon (after kill -9) is the same holder and
  // takes its tables back at once (reclaimOwn) instead of leaving them uncopied for a ttl.
  const holderId = `${hostname()}:${config.replication.port}`.replace(/\s/g, '_');
  const ttlMs = config.replication.lease.ttlSeconds * 1000;
  const hot = createClickHouse(config.clickhouse.hot);
  const cold = createClickHouse(config.clickhouse.cold);
  const store = new SharedWatermarks(cold, config.clickhouse.cold.database, engineFor(config.clickhouse.cold));
  // A hung Redis must fail a renewal in time for the holder to stop before its lease can lapse.
  const redis = new Redis(redisUrl(config), { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: Math.max(500, Math.floor(ttlMs / 6)) });
  redis.on('error', () => undefined); // reported by the leases, in /health
  await redis.connect().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'redis unreachable: this daemon copies no table until it is back'));
  const leases = new Map(
    TABLES.map(({ table }) => [
      table,
      new Lease(
        redis,
        {
          keys: leaseKeys(replicationLeaseName(table)),
          holderId,
          ttlMs,
          log: log.child({ table }),
          label: 'replication daemon',
          reclaimOwn: true,
          // A Redis that lost its data must not hand out a fence older than one cold has seen.
          fenceFloor: () => store.storedFence(table),
        },
        { onAcquired: () => undefined, onLost: () => undefined },
      ),
    ]),
  );
  const tableLeases: TableLeases = {
    holderId,
    heldFence: (table) => {
      const lease = leases.get(table);
      return lease?.holds() === true ? lease.fence() : null;
    },
    release: async (table) => leases.get(table)?.release(),
    error: () => {
      const e = [...leases.values()].map((l) => l.error()).find((x) => x !== null);
      return e === undefined ? null : `cannot take or renew table leases at ${displayAddress(redisUrl(config))}: ${e}`;
    },
  };
  registerLeaseMetric(ctx.metrics, () => [...leases].map(([table, l]) => ({ name: replicationLeaseName(table), held: l.holds() })));

  let nc: Awaited<ReturnType<typeof connectNats>> | null = null;
  try {
    // Storage's consumer positions tell how far hot is complete (see Replicator.ingestFloor).
    nc = await connectNats(config, 'replication');
    const jsm = await nc.jetstreamManager();
    const replicator = new Replicator({
      hot,
      cold,
      config,
      store,
      leases: tableLeases,
      legacyWatermarkFile: watermarkFile(config.home),
      log,
      signal: ctx.signal,
      ingestFloor: (stream) => oldestUnackedEventTime(jsm, stream, storageDurable(stream)),
      metrics: createReplicationMetrics(ctx.metrics, () => {
        const lag = new Map<string, number>();
        for (const { table } of TABLES) {
          const seconds = replicator.lagSeconds(table);
          if (seconds !== null) lag.set(table, seconds);
        }
        return lag;
      }),
    });
    ctx.setHealth(() => replicator.health());
    for (const lease of leases.values()) lease.start();
    const policy = { initialMs: 1000, maxMs: Math.max(1000, config.replication.pollIntervalMs * 6), jitter: 0.2 };
    let failures = 0;
    while (!ctx.signal.aborted) {
      const { backlog, errors } = await replicator.runCycle();
      failures = errors > 0 ? failures + 1 : 0;
      if (failures > 0) await sleep(backoffDelay(failures - 1, policy), ctx.signal);
      else if (!backlog) await sleep(config.replication.pollIntervalMs, ctx.signal);
    }
  } finally {
    // The cycle has ended, so no copy of ours runs: hand the leases back for a standby to take at once.
    await Promise.all([...leases.values()].map((l) => l.stop()));
    redis.disconnect();
    await Promise.all([hot.close(), cold.close(), nc?.close()]);
  }
};
