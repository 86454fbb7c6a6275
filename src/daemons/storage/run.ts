import type { JsMsg } from 'nats';
import { Counter, Gauge, Histogram } from 'prom-client';
import { backoffDelay, sleep } from '../../lib/backoff.js';
import { connectNats } from '../../lib/bus/connection.js';
import { ensureDurableConsumer, pullBatches } from '../../lib/bus/consumer.js';
import { STREAM_SPECS, storageDurable } from '../../lib/bus/streams.js';
import type { Daemon } from '../../lib/daemon-context.js';
import { errorMessage } from '../../lib/errors.js';
import type { MarketRecord } from '../../lib/records.js';
import { createClickHouse } from '../../lib/store/client.js';
import { insertRecords, validateRecord } from '../../lib/store/writer.js';

/**
 * JetStream -> ClickHouse hot. One durable pull consumer per stream; a batch is acked only after
 * its rows are in ClickHouse, and rows already stored are skipped, so a replay (a crash between
 * insert and ack) never shows duplicate rows.
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
  const skipped = new Counter({ name: 'mprism_storage_rows_skipped_total', help: 'Delivered rows already in ClickHouse (replays)', labelNames, registers: [metrics] });
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

  const pullErrors = new Counter({ name: 'mprism_storage_pull_errors_total', help: 'Failed JetStream pulls (retried)', labelNames, registers: [metrics] });

  async function consume(stream: string): Promise<void> {
    const spec = {
      stream,
      durable: storageDurable(stream),
      ackWaitMs: config.storage.ackWaitSeconds * 1000,
      maxAckPending: config.storage.batchSize * 4,
    };
    log.info({ stream, durable: spec.durable, outcome: await ensureDurableConsumer(jsm, spec) }, 'consumer ready');
    const batches = pullBatches(js, spec, {
      batchSize: config.storage.batchSize,
      maxWaitMs: config.storage.flushIntervalMs,
      signal,
      recover: () => ensureDurableConsumer(jsm, spec),
      onError: (err) => {
        pullErrors.inc({ stream });
        state.lastError = `pull ${stream}: ${errorMessage(err)}`;
        log.warn({ stream, err: errorMessage(err) }, 'pull failed; retrying');
      },
    });
    for await (const batch of batches) await writeBatch(stream, batch);
  }

  /**
   * Insert, then ack. Every batch is inserted with skipExisting: a redelivery flag is not enough to
   * know a message is new (a publish retried after the duplicate window, a recreated consumer), and
   * the check is one primary-key range read per 500 rows. A failed insert is retried until it lands
   * or shutdown (then nak'ed for redelivery).
   */
  async function writeBatch(stream: string, batch: JsMsg[]): Promise<void> {
    const records: MarketRecord[] = [];
    const valid: JsMsg[] = [];
    for (const m of batch) {
      let record: MarketRecord;
      try {
        record = m.json<MarketRecord>();
        validateRecord(record);
      } catch (err) {
        // Terminated, not retried: one record that can never become a row must not stall the stream.
        invalid.inc({ stream });
        log.error({ stream, seq: m.seq, subject: m.subject, err: errorMessage(err) }, 'invalid message terminated');
        m.term();
        continue;
      }
      records.push(record);
      valid.push(m);
    }
    for (let attempt = 0; valid.length > 0; attempt++) {
      const timer = batchSeconds.startTimer({ stream });
      try {
        const r = await insertRecords(ch, database, records, { skipExisting: true });
        timer();
        inserted.inc({ stream }, r.inserted);
        skipped.inc({ stream }, r.skipped);
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
