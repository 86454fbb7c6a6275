import { AckPolicy, DeliverPolicy, nanos, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { backoffDelay, sleep } from '../backoff.js';
import { isJetStreamNotFound, JS_CONSUMER_NOT_FOUND, JS_MESSAGE_NOT_FOUND, JS_STREAM_NOT_FOUND } from './connection.js';

export interface DurableConsumerSpec {
  stream: string;
  durable: string;
  /** Must exceed the longest batch insert, or messages are redelivered while still being written. */
  ackWaitMs: number;
  maxAckPending: number;
}

/**
 * A durable pull consumer that delivers the whole stream once and then resumes where the
 * previous run acked (MarketPrism recreated its consumers with DeliverPolicy LAST and lost backlog).
 * An existing consumer is kept, so its position survives restarts.
 */
export async function ensureDurableConsumer(jsm: JetStreamManager, spec: DurableConsumerSpec): Promise<'created' | 'existing' | 'updated'> {
  try {
    const info = await jsm.consumers.info(spec.stream, spec.durable);
    // Tuning changes apply in place; the consumer (and so its position) is never recreated.
    if (info.config.ack_wait !== nanos(spec.ackWaitMs) || info.config.max_ack_pending !== spec.maxAckPending) {
      await jsm.consumers.update(spec.stream, spec.durable, { ack_wait: nanos(spec.ackWaitMs), max_ack_pending: spec.maxAckPending });
      return 'updated';
    }
    return 'existing';
  } catch (err) {
    if (!isJetStreamNotFound(err, JS_CONSUMER_NOT_FOUND)) throw err;
  }
  await jsm.consumers.add(spec.stream, {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(spec.ackWaitMs),
    max_ack_pending: spec.maxAckPending,
    max_deliver: -1,
  });
  return 'created';
}

/**
 * Yields batches of up to batchSize messages; a batch closes when full or after maxWaitMs,
 * which gives size-and-time batching with one pull request per batch. A failed pull (NATS
 * restarting, JetStream not ready yet, consumer gone) is reported to onError, then retried with
 * backoff after `recover` (which re-creates the consumer if needed): the loop ends only on abort.
 */
export async function* pullBatches(
  js: JetStreamClient,
  spec: Pick<DurableConsumerSpec, 'stream' | 'durable'>,
  opts: { batchSize: number; maxWaitMs: number; signal: AbortSignal; recover: () => Promise<unknown>; onError: (err: unknown) => void },
): AsyncGenerator<JsMsg[]> {
  let failures = 0;
  while (!opts.signal.aborted) {
    const batch: JsMsg[] = [];
    try {
      const consumer = await js.consumers.get(spec.stream, spec.durable);
      const messages = await consumer.fetch({ max_messages: opts.batchSize, expires: Math.max(1000, opts.maxWaitMs) });
      const stop = () => void messages.close();
      opts.signal.addEventListener('abort', stop, { once: true });
      try {
        for await (const m of messages) batch.push(m);
      } finally {
        opts.signal.removeEventListener('abort', stop);
      }
      failures = 0;
    } catch (err) {
      opts.onError(err);
      await sleep(backoffDelay(failures++, { initialMs: 500, maxMs: 10_000, jitter: 0.2 }), opts.signal);
      await opts.recover().catch((e: unknown) => opts.onError(e));
    }
    // Messages received before a failure are still ours to write (unacked ones come back anyway).
    if (batch.length > 0) yield batch;
  }
}

/**
 * Event time of the oldest message the consumer has not acked yet, or null when it has acked
 * everything (or does not exist yet). Rows older than this are all in the database; newer ones
 * may still be on their way.
 */
export async function oldestUnackedEventTime(jsm: JetStreamManager, stream: string, durable: string): Promise<number | null> {
  let info;
  try {
    info = await jsm.consumers.info(stream, durable);
  } catch (err) {
    // No stream or no consumer yet: storage has not started, so nothing is known to be pending.
    if (isJetStreamNotFound(err, JS_CONSUMER_NOT_FOUND, JS_STREAM_NOT_FOUND)) return null;
    throw err;
  }
  if (info.num_pending === 0 && info.num_ack_pending === 0) return null;
  try {
    const msg = await jsm.streams.getMessage(stream, { seq: info.ack_floor.stream_seq + 1 });
    const time = (msg.json<{ eventTime?: unknown }>()).eventTime;
    return typeof time === 'number' ? time : null;
  } catch (err) {
    // Gone (expired by retention, or terminated as invalid): nothing of it can still arrive.
    if (isJetStreamNotFound(err, JS_MESSAGE_NOT_FOUND)) return null;
    throw err;
  }
}
