import { AckPolicy, DeliverPolicy, nanos, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';

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
    const e = err as { code?: string; api_error?: { err_code?: number } };
    if (e?.code !== '404' && e?.api_error?.err_code !== 10014) throw err;
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
 * which gives size-and-time batching with one pull request per batch.
 */
export async function* pullBatches(
  js: JetStreamClient,
  spec: Pick<DurableConsumerSpec, 'stream' | 'durable'>,
  opts: { batchSize: number; maxWaitMs: number; signal: AbortSignal },
): AsyncGenerator<JsMsg[]> {
  const consumer = await js.consumers.get(spec.stream, spec.durable);
  while (!opts.signal.aborted) {
    const batch: JsMsg[] = [];
    const messages = await consumer.fetch({ max_messages: opts.batchSize, expires: Math.max(1000, opts.maxWaitMs) });
    const stop = () => void messages.close();
    opts.signal.addEventListener('abort', stop, { once: true });
    try {
      for await (const m of messages) batch.push(m);
    } finally {
      opts.signal.removeEventListener('abort', stop);
    }
    if (batch.length > 0) yield batch;
  }
}
