import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { backoffDelay, sleep } from '../backoff.js';
import { recordsOfBody } from '../bus/message-body.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { RowBatch } from './writer.js';

/** A delivered message as storage needs it; a nats JsMsg is one. */
export interface IngestMessage {
  readonly seq: number;
  readonly subject: string;
  readonly info: { readonly timestampNanos: number };
  /** The body as text. */
  string(): string;
  ack(): void;
  nak(millis?: number): void;
  term(reason?: string): void;
  working(): void;
}

/** Where messages come from (bus/consumer.ts JetStreamSource over a durable pull consumer). */
export interface MessageSource<M extends IngestMessage = IngestMessage> {
  /** Waits until a message is available or signal aborts, then returns up to max of them (none only on abort). */
  next(max: number, signal: AbortSignal): Promise<M[]>;
}

/** Where rows go: ClickHouse hot (writer.ts insertRows), skipping rows already stored (replays). Throws when nothing was stored. */
export interface RowSink {
  insert(rows: RowBatch): Promise<{ inserted: number; skipped: number }>;
}

export interface IngestMetrics {
  inserted: Counter<'stream'>;
  skipped: Counter<'stream'>;
  invalid: Counter<'stream'>;
  failures: Counter<'stream'>;
  pullErrors: Counter<'stream'>;
  batchSeconds: Histogram<'stream'>;
  storedToInsertedSeconds: Histogram<'stream'>;
  lastInsert: Gauge<'stream'>;
}

export function createIngestMetrics(registry: Registry): IngestMetrics {
  const labelNames = ['stream'] as const;
  const registers = [registry];
  return {
    inserted: new Counter({ name: 'mprism_storage_rows_inserted_total', help: 'Rows inserted into ClickHouse hot', labelNames, registers }),
    skipped: new Counter({ name: 'mprism_storage_rows_skipped_total', help: 'Delivered rows already in ClickHouse (replays)', labelNames, registers }),
    invalid: new Counter({ name: 'mprism_storage_invalid_records_total', help: 'Delivered records that are not valid (skipped; a message with none valid is terminated)', labelNames, registers }),
    failures: new Counter({ name: 'mprism_storage_insert_failures_total', help: 'Batch inserts that failed and were retried', labelNames, registers }),
    pullErrors: new Counter({ name: 'mprism_storage_pull_errors_total', help: 'Failed JetStream pulls (retried)', labelNames, registers }),
    batchSeconds: new Histogram({ name: 'mprism_storage_batch_insert_seconds', help: 'Insert time per batch', labelNames, registers, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5] }),
    // Redeliveries show here as a tail at the ack wait: the figure the issue 7 latency bug hid in.
    storedToInsertedSeconds: new Histogram({
      name: 'mprism_storage_stored_to_inserted_seconds',
      help: 'Time from JetStream storing a message to its row being in ClickHouse hot',
      labelNames,
      registers,
      buckets: [0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30, 60],
    }),
    lastInsert: new Gauge({ name: 'mprism_storage_last_insert_timestamp_seconds', help: 'Time of the last successful insert', labelNames, registers }),
  };
}

/** Shared by a storage daemon's streams, for its health report. */
export interface IngestStatus {
  lastInsertAt: string | null;
  lastError: string | null;
  consecutiveFailures: number;
  /** Per stream, since when every batch closed full (rows were waiting beyond it); absent: its last one was not full. */
  fullBatchesSince: Map<string, number>;
}

export function newIngestStatus(): IngestStatus {
  return { lastInsertAt: null, lastError: null, consecutiveFailures: 0, fullBatchesSince: new Map() };
}

export interface IngestOptions {
  stream: string;
  source: MessageSource;
  sink: RowSink;
  batchSize: number;
  /** A batch is written this long after its first message at the latest. */
  flushIntervalMs: number;
  metrics: IngestMetrics;
  status: IngestStatus;
  log: Logger;
  /** On abort the messages in hand are still written (or nak'ed if that fails), then ingest returns. */
  signal: AbortSignal;
  now?: () => number;
  /**
   * The consumer's ack wait. An insert still running after a third of it marks its messages in
   * progress, so JetStream does not hand them to another storage instance meanwhile: two
   * instances inserting the same rows at once would both pass the key check.
   */
  ackWaitMs?: number;
}

/** Messages taken from the source at once, at most. */
const MAX_TAKE = 256;

/** A batch being filled: its rows, encoded as they arrive, and the messages they came in. */
interface Batch {
  rows: RowBatch;
  messages: IngestMessage[];
}

/**
 * The storage protocol for one stream: size-and-time batches of rows, each inserted and then
 * acked, so a message is acked only once all its rows are in ClickHouse. A message holds one record
 * or several (an array; see bus/publisher.ts). One that can never become a row is terminated; a
 * failed insert is retried (messages kept in progress meanwhile) until it lands.
 */
export async function runIngest(o: IngestOptions): Promise<void> {
  const now = o.now ?? Date.now;
  // Messages are taken by the rows they are expected to hold (as the last ones did), so a batch
  // of many-record messages overshoots batchSize by little and one of single records not at all.
  // The estimate falls by half at most per take, and a take is at most MAX_TAKE messages, so one
  // quiet single-record message before a backlog of full ones cannot make a batch of millions of rows.
  let rowsPerMessage = 1;
  const take = async (batch: Batch, rowsWanted: number, signal: AbortSignal): Promise<void> => {
    const messages = await o.source.next(Math.min(MAX_TAKE, Math.max(1, Math.ceil(rowsWanted / rowsPerMessage))), signal);
    const before = batch.rows.size;
    decode(o, messages, batch);
    if (messages.length > 0) rowsPerMessage = Math.max(1, (batch.rows.size - before) / messages.length, rowsPerMessage / 2);
  };
  // Two batches at a time: the next one is taken and encoded (storage's CPU) while the last one is
  // checked and inserted (ClickHouse's), so the two processes work side by side instead of in turn.
  // Writes stay one at a time and in order: a batch's key check runs after the rows before it are in.
  let writing: Promise<void> | null = null;
  while (!o.signal.aborted) {
    const batch: Batch = { rows: new RowBatch(), messages: [] };
    await take(batch, o.batchSize, o.signal);
    if (batch.messages.length === 0) continue;
    const deadline = now() + o.flushIntervalMs;
    while (batch.rows.size < o.batchSize && !o.signal.aborted) {
      const left = deadline - now();
      if (left <= 0) break;
      await take(batch, o.batchSize - batch.rows.size, AbortSignal.any([o.signal, AbortSignal.timeout(left)]));
    }
    if (batch.rows.size < o.batchSize) o.status.fullBatchesSince.delete(o.stream);
    else if (!o.status.fullBatchesSince.has(o.stream)) o.status.fullBatchesSince.set(o.stream, now());
    if (writing !== null) await keptInProgress(batch.messages, writing, o.ackWaitMs);
    writing = writeBatch(o, batch, now);
    // Awaited before the next write or at the end; meanwhile a failure must not count as unhandled.
    writing.catch(() => undefined);
  }
  if (writing !== null) await writing;
}

/**
 * Waits for `until` with the messages kept in progress meanwhile (every third of the ack wait): an
 * insert that runs long, or a batch waiting for the one before it through a ClickHouse outage, must
 * not be redelivered to another instance meanwhile: two instances inserting the same rows at once
 * would both pass the key check.
 */
async function keptInProgress<T>(messages: readonly IngestMessage[], until: Promise<T>, ackWaitMs: number | undefined): Promise<T> {
  const timer = ackWaitMs === undefined ? null : setInterval(() => messages.forEach((m) => m.working()), Math.max(100, ackWaitMs / 3));
  try {
    return await until;
  } finally {
    if (timer !== null) clearInterval(timer);
  }
}

/**
 * Adds the records of each message to the batch, each encoded once, straight from the parsed body
 * into its row. A record that can never become a row is logged and counted, and the message's other
 * records are kept; a message with none left is terminated (not retried: one bad message must not
 * stall the stream).
 */
function decode(o: IngestOptions, messages: readonly IngestMessage[], batch: Batch): void {
  const { stream, metrics, log } = o;
  for (const m of messages) {
    let rows = 0;
    let invalid = 0;
    let firstError: unknown = null;
    let items: unknown[] = [];
    try {
      items = recordsOfBody(m.string());
    } catch (err) {
      invalid = 1;
      firstError = err;
    }
    for (const item of items) {
      try {
        batch.rows.add(item);
        rows++;
      } catch (err) {
        invalid++;
        firstError ??= err;
      }
    }
    if (invalid > 0) {
      // One line per message, however many of its records are bad.
      metrics.invalid.inc({ stream }, invalid);
      log.error({ stream, seq: m.seq, subject: m.subject, invalid, kept: rows, err: errorMessage(firstError) }, 'invalid records skipped');
    }
    if (rows === 0) {
      m.term();
      continue;
    }
    batch.messages.push(m);
  }
}

/**
 * Insert, then ack. Every batch goes through the sink's duplicate check: a redelivery flag is not
 * enough to know a message is new (a publish retried after the duplicate window, a recreated consumer,
 * a batch cut differently by a restarted collector).
 */
async function writeBatch(o: IngestOptions, { rows, messages }: Batch, now: () => number): Promise<void> {
  const { stream, metrics, status, log } = o;
  for (let attempt = 0; messages.length > 0; attempt++) {
    const timer = metrics.batchSeconds.startTimer({ stream });
    try {
      const r = await keptInProgress(messages, o.sink.insert(rows), o.ackWaitMs);
      timer();
      metrics.inserted.inc({ stream }, r.inserted);
      metrics.skipped.inc({ stream }, r.skipped);
      const at = now();
      metrics.lastInsert.set({ stream }, at / 1000);
      status.lastInsertAt = new Date(at).toISOString();
      status.consecutiveFailures = 0;
      for (const m of messages) {
        m.ack();
        metrics.storedToInsertedSeconds.observe({ stream }, Math.max(0, at - m.info.timestampNanos / 1e6) / 1000);
      }
      return;
    } catch (err) {
      timer();
      metrics.failures.inc({ stream });
      status.lastError = errorMessage(err);
      status.consecutiveFailures++;
      log.error({ stream, rows: rows.size, attempt, err: status.lastError }, 'insert failed; retrying');
      if (o.signal.aborted) {
        for (const m of messages) m.nak();
        return;
      }
      // Keep the messages in progress while we wait, so JetStream does not redeliver them meanwhile.
      for (const m of messages) m.working();
      await sleep(backoffDelay(attempt, { initialMs: 500, maxMs: 15_000, jitter: 0.2 }), o.signal);
    }
  }
}
