import { connectNats } from '../../lib/bus/connection.js';
import { ensureDurableConsumer, JetStreamSource } from '../../lib/bus/consumer.js';
import { STREAM_SPECS, storageDurable } from '../../lib/bus/streams.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import { createClickHouse } from '../../lib/store/client.js';
import { createIngestMetrics, newIngestStatus, runIngest, type RowSink } from '../../lib/store/ingest.js';
import { insertRows } from '../../lib/store/writer.js';
import { EventLoopLag, storageOverload } from '../../lib/overload.js';

/**
 * JetStream -> ClickHouse hot. One durable pull consumer per stream, read by lib/store/ingest.ts:
 * a batch is acked only after its rows are in ClickHouse, and rows already stored are skipped, so
 * a replay (a crash between insert and ack) never shows duplicate rows.
 */
/**
 * Lifetime of one pull request. Messages keep flowing across expiries (consume() re-pulls on one
 * inbox); the value bounds how long a pull lost without a reconnect (server restarted its
 * JetStream) goes unnoticed: two missed heartbeats at half of it.
 */
const PULL_EXPIRES_MS = 5_000;
/**
 * Messages delivered and not yet acked, per stream. consume() keeps pulling up to this whether or
 * not ingest has taken what arrived, so it is what bounds storage's memory: a message holds up to
 * 500 records and 256 KiB (collector.publish), about 125 kB of trades, so about 128 MB at worst.
 */
const MAX_ACK_PENDING = 1000;

const earliest = (times: Iterable<number>): number | null => {
  let min: number | null = null;
  for (const t of times) if (min === null || t < min) min = t;
  return min;
};

export const storage: Daemon = async (ctx, config) => {
  const { log, signal } = ctx;
  const nc = await connectNats(config, 'storage');
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const ch = createClickHouse(config.clickhouse.hot);
  const database = config.clickhouse.hot.database;
  const metrics = createIngestMetrics(ctx.metrics);
  const status = newIngestStatus();
  const lag = new EventLoopLag();
  ctx.setHealth(() => ({
    ok: !nc.isClosed() && status.consecutiveFailures < 3,
    nats: nc.isClosed() ? 'closed' : 'connected',
    overloaded: storageOverload({ eventLoopLagMs: lag.delayMs(), fullBatchesSince: earliest(status.fullBatchesSince.values()), now: Date.now() }),
    eventLoopLagMs: lag.delayMs(),
    lastInsertAt: status.lastInsertAt,
    lastError: status.lastError,
  }));
  const sink: RowSink = { insert: (rows) => insertRows(ch, database, rows, { skipExisting: true }) };

  async function consume(stream: string): Promise<void> {
    const spec = {
      stream,
      durable: storageDurable(stream),
      ackWaitMs: config.storage.ackWaitSeconds * 1000,
      maxAckPending: MAX_ACK_PENDING,
    };
    log.info({ stream, durable: spec.durable, outcome: await ensureDurableConsumer(jsm, spec) }, 'consumer ready');
    const source = new JetStreamSource(js, spec, {
      maxMessages: MAX_ACK_PENDING,
      expiresMs: PULL_EXPIRES_MS,
      recover: () => ensureDurableConsumer(jsm, spec),
      onError: (err) => {
        metrics.pullErrors.inc({ stream });
        status.lastError = `pull ${stream}: ${errorMessage(err)}`;
        log.warn({ stream, err: errorMessage(err) }, 'pull failed; retrying');
      },
    });
    try {
      await runIngest({ stream, source, sink, batchSize: config.storage.batchSize, flushIntervalMs: config.storage.flushIntervalMs, metrics, status, log, signal, ackWaitMs: spec.ackWaitMs });
    } finally {
      await source.close();
    }
  }

  try {
    await Promise.all(STREAM_SPECS.map((s) => consume(s.name)));
  } finally {
    lag.stop();
    await nc.drain().catch(() => undefined);
    await ch.close();
  }
};
