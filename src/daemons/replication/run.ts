import { backoffDelay, sleep } from '../../lib/backoff.js';
import { connectNats } from '../../lib/bus/connection.js';
import { oldestUnackedEventTime } from '../../lib/bus/consumer.js';
import { storageDurable } from '../../lib/bus/streams.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { createReplicationMetrics } from '../../lib/replication/metrics.js';
import { Replicator } from '../../lib/replication/replicator.js';
import { WatermarkStore, watermarkFile } from '../../lib/replication/watermarks.js';
import { createClickHouse } from '../../lib/store/client.js';
import { TABLES } from '../../lib/store/tables.js';

/** Copies closed windows hot -> cold every pollIntervalMs until ctx.signal aborts. */
export const replication: Daemon = async (ctx, config) => {
  // A corrupt watermark file throws here: the daemon must not start from a guessed position.
  const store = new WatermarkStore(watermarkFile(config.home));
  const hot = createClickHouse(config.clickhouse.hot);
  const cold = createClickHouse(config.clickhouse.cold);
  // Storage's consumer positions tell how far hot is complete (see Replicator.ingestFloor).
  const nc = await connectNats(config, 'replication');
  const jsm = await nc.jetstreamManager();
  const replicator = new Replicator({
    hot,
    cold,
    config,
    store,
    log: ctx.log,
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
  const policy = { initialMs: 1000, maxMs: Math.max(1000, config.replication.pollIntervalMs * 6), jitter: 0.2 };
  let failures = 0;
  try {
    while (!ctx.signal.aborted) {
      const { backlog, errors } = await replicator.runCycle();
      failures = errors > 0 ? failures + 1 : 0;
      if (failures > 0) await sleep(backoffDelay(failures - 1, policy), ctx.signal);
      else if (!backlog) await sleep(config.replication.pollIntervalMs, ctx.signal);
    }
  } finally {
    await Promise.all([hot.close(), cold.close(), nc.close()]);
  }
};
