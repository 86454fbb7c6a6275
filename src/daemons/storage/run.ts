import type { JsMsg } from 'nats';
import { Counter, Gauge, Histogram } from 'prom-client';
import { backoffDelay, sleep } from '../../lib/backoff.js';
import { connectNats } from '../../lib/bus/connection.js';
import { ensureDurableConsumer, pullBatches } from '../../lib/bus/consumer.js';
import { STREAM_SPECS } from '../../lib/bus/streams.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import type { MarketRecord } from '../../lib/records.js';
import { createClickHouse } from '../../lib/store/client.js';
import { insertRecords } from '../../lib/store/writer.js';

/**
 * JetStream -> ClickHouse hot. One durable pull consumer per stream; a batch is acked only after
 * its rows are in ClickHouse. Redelivered messages (a crash between insert and ack) are inserted
 * with skipExisting, so a replay never shows duplicate rows.
 */
export const storage: Daemon = async (ctx, config) => {
  const { log, metrics, signal } = ctx;
  const nc = await connectNats(config, 'storage');
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const ch = createClickHouse(config.clickhouse.hot);
  const database = config.clickhouse.hot.database;

  const labelNames = ['stream'] as const;
  const inserted = new Counter({ name: 'mprism_storage_rows_inserted_total', help: 'Rows inserted into ClickHouse hot', labelNames, registers: [metrics] });
  const skipped = new Counter({ name: 'mprism_storage_rows_skipped_total', help: 'Redelivered rows already in ClickHouse', labelNames, registers: [metrics] });
  const invalid = new Counter({ name: 'mprism_storage_invalid_messages_total', help: 'Messages that are not a valid record (terminated)', labelNames, registers: [metrics] });
  const failures = new Counter({ name: 'mprism_storage_insert_failures_total', help: 'Batch inserts that failed and were retried', labelNames, registers: [metrics] });
  const batchSeconds = new Histogram({ name: 'mprism_storage_batch_insert_seconds', help: 'Insert time per batch', labelNames, registers: [metrics], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5] });
  const lastInsert = new Gauge({ name: 'mprism_storage_last_insert_timestamp_seconds', help: 'Time of the last successful insert', labelNames, registers: [metrics] });

  const state = { lastInsertAt: null as string | null, lastError: null as string | null, consecutiveFailures: 0 };
  ctx.setHealth(() => ({
    ok: !nc.isClosed() && state.consecutiveFailures < 3,
    nats: nc.isClosed() ? 'closed' : 'connected',
    lastInsertAt: state.lastInsertAt,
    lastError: state.lastError,
  }));

  async function consume(stream: string): Promise<void> {
    const durable = `storage-${stream.toLowerCase().replace(/_/g, '-')}`;
    const outcome = await ensureDurableConsumer(jsm, {
      stream,
      durable,
      ackWaitMs: config.storage.ackWaitSeconds * 1000,
      maxAckPending: config.storage.batchSize * 4,
    });
    log.info({ stream, durable, outcome }, 'consumer ready');
    for await (const batch of pullBatches(js, { stream, durable }, { batchSize: config.storage.batchSize, maxWaitMs: config.storage.flushIntervalMs, signal })) {
      await writeBatch(stream, batch);
    }
  }

  /** Insert, then ack; on failure retry the same batch until it lands or shutdown (then nak for redelivery). */
  async function writeBatch(stream: string, batch: JsMsg[]): Promise<void> {
    const fresh: MarketRecord[] = [];
    const redelivered: MarketRecord[] = [];
    const valid: JsMsg[] = [];
    for (const m of batch) {
      let record: MarketRecord;
      try {
        record = m.json<MarketRecord>();
        if (typeof record?.dataType !== 'string') throw new Error('not a record');
      } catch (err) {
        invalid.inc({ stream });
        log.error({ stream, seq: m.seq, err: errorMessage(err) }, 'invalid message terminated');
        m.term();
        continue;
      }
      (m.redelivered ? redelivered : fresh).push(record);
      valid.push(m);
    }
    for (let attempt = 0; valid.length > 0; attempt++) {
      const timer = batchSeconds.startTimer({ stream });
      try {
        // A failed attempt may still have landed rows (e.g. a timeout after the server wrote them),
        // so every retry checks for existing rows, as redeliveries always do.
        const checked = attempt === 0 ? redelivered : [...fresh, ...redelivered];
        const unchecked = attempt === 0 ? fresh : [];
        const a = unchecked.length > 0 ? await insertRecords(ch, database, unchecked, { skipExisting: false }) : { inserted: 0, skipped: 0 };
        const b = checked.length > 0 ? await insertRecords(ch, database, checked, { skipExisting: true }) : { inserted: 0, skipped: 0 };
        timer();
        inserted.inc({ stream }, a.inserted + b.inserted);
        skipped.inc({ stream }, b.skipped);
        lastInsert.set({ stream }, Date.now() / 1000);
        state.lastInsertAt = new Date().toISOString();
        state.consecutiveFailures = 0;
        for (const m of valid) m.ack();
        return;
      } catch (err) {
        timer();
        failures.inc({ stream });
        state.lastError = errorMessage(err);
        state.consecutiveFailures++;
        log.error({ stream, rows: valid.length, attempt, err: state.lastError }, 'insert failed; retrying');
        if (signal.aborted) {
          for (const m of valid) m.nak();
          return;
        }
        // Keep the messages in progress while we wait, so JetStream does not redeliver them meanwhile.
        for (const m of valid) m.working();
        await sleep(backoffDelay(attempt, { initialMs: 500, maxMs: 15_000, jitter: 0.2 }), signal);
      }
    }
  }

  try {
    await Promise.all(STREAM_SPECS.map((s) => consume(s.name)));
  } finally {
    await nc.drain().catch(() => undefined);
    await ch.close();
  }
};
