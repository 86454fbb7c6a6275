import { AckPolicy, ConsumerEvents, DeliverPolicy, nanos, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { backoffDelay, sleep } from '../backoff.js';
import { recordsIn } from './message-body.js';
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
 * One stream's messages, from a single long-lived `consume()` of a durable pull consumer, queued
 * until taken. Not `fetch()`: a fetch ends its subscription when its own timer fires (expires x 1.05,
 * client time), and whatever the server sent for that pull after it, or while this process was too
 * busy to read its socket, was dropped unseen and came back only after the ack wait. consume()
 * keeps one inbox for its whole life, so a message answering any pull, expired or not, is received.
 * Messages still queued at close() are nak'ed for prompt redelivery (see close()).
 */
export class JetStreamSource {
  private readonly queue: JsMsg[] = [];
  /** When each queued message arrived or was last kept in progress, index for index with queue. */
  private readonly arrivedAt: number[] = [];
  private readonly keepAlive: NodeJS.Timeout | null;
  private wake: (() => void) | null = null;
  private messages: ConsumerMessages | null = null;
  private closing = false;
  /** Aborted by close(): ends a backoff wait at once. */
  private readonly closed = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    private readonly js: JetStreamClient,
    private readonly spec: Pick<DurableConsumerSpec, 'stream' | 'durable'> & { ackWaitMs?: number },
    private readonly opts: {
      /**
       * Messages asked for by each pull. consume() keeps pulling as messages arrive, taken or not:
       * what waits in this process is bounded by the consumer's max_ack_pending, so that is the
       * setting that bounds memory.
       */
      maxMessages: number;
      /** Lifetime of one pull request; the client re-pulls when it ends (min 1000). */
      expiresMs?: number;
      /** Re-creates the consumer when JetStream reports it (or its stream) gone. */
      recover: () => Promise<unknown>;
      onError: (err: unknown) => void;
    },
  ) {
    this.done = this.run();
    // A message waiting here longer than the ack wait would be redelivered while still queued, and
    // its second copy queued too (e.g. while an insert into a down ClickHouse is retried): keep
    // what has waited a third of it in progress instead.
    const ackWaitMs = spec.ackWaitMs;
    this.keepAlive =
      ackWaitMs === undefined
        ? null
        : setInterval(() => {
            const before = Date.now() - ackWaitMs / 3;
            // The whole queue: refreshed entries are no longer in arrival order (bounded by max_ack_pending).
            for (let i = 0; i < this.queue.length; i++) {
              if ((this.arrivedAt[i] as number) > before) continue;
              this.queue[i]?.working();
              this.arrivedAt[i] = Date.now();
            }
          }, Math.max(100, ackWaitMs / 6));
    this.keepAlive?.unref();
  }

  /** Messages received and not taken yet: close() hands these back at once. */
  get queued(): number {
    return this.queue.length;
  }

  /** Waits until a message is queued (or signal aborts), then takes up to max of the queued ones. */
  async next(max: number, signal: AbortSignal): Promise<JsMsg[]> {
    while (this.queue.length === 0 && !signal.aborted && !this.closing) {
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        signal.addEventListener('abort', stop, { once: true });
        this.wake = () => {
          signal.removeEventListener('abort', stop);
          resolve();
        };
      });
      this.wake = null;
    }
    this.arrivedAt.splice(0, max);
    return this.queue.splice(0, max);
  }

  /**
   * Stops pulling and nak's every message received but not taken. The nak is delayed by one pull
   * lifetime and a second more: nats-server 2.9 still hands messages to the pull this source leaves
   * open on the server after its inbox is gone (measured), and an immediate nak would go straight
   * back there and wait out the ack wait. The extra second covers a pull issued just before close
   * (a CI run under load redelivered into one with a delay of exactly one lifetime). Messages the server sends to that orphaned pull before it expires are the one
   * delivery left to the ack wait; it happens only at shutdown and covers at most expiresMs of traffic.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.closed.abort();
    if (this.keepAlive !== null) clearInterval(this.keepAlive);
    this.wake?.();
    await this.messages?.close();
    await this.done;
    this.arrivedAt.splice(0);
    for (const m of this.queue.splice(0)) m.nak(this.expiresMs + 1000);
  }

  private get expiresMs(): number {
    return Math.max(1000, this.opts.expiresMs ?? 30_000);
  }

  /** Keeps one consume() running; one that ends with an error (bad request, permissions) is restarted with backoff. */
  private async run(): Promise<void> {
    for (let failures = 0; !this.closing; ) {
      try {
        const consumer = await this.js.consumers.get(this.spec.stream, this.spec.durable);
        if (this.closing) return;
        const messages = await consumer.consume({
          max_messages: this.opts.maxMessages,
          expires: this.expiresMs,
          callback: (m) => {
            this.queue.push(m);
            this.arrivedAt.push(Date.now());
            this.wake?.();
          },
        });
        this.messages = messages;
        // close() may have run while consume() was being set up, and found nothing to close.
        if (this.closing) await messages.close();
        this.watch(messages).catch((e: unknown) => this.opts.onError(e));
        const err = await messages.closed();
        if (this.closing) return;
        // closed() resolves with the error that ended it, if any: either way, pull again.
        if (err) throw err;
        failures = 0;
      } catch (err) {
        if (this.closing) return;
        this.opts.onError(err);
        await sleep(backoffDelay(failures++, { initialMs: 500, maxMs: 10_000, jitter: 0.2 }), this.closed.signal);
        if (this.closing) return;
        await this.opts.recover().catch((e: unknown) => this.opts.onError(e));
      }
    }
  }

  /** consume() retries a vanished consumer forever on its own; re-creating it is ours to do. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    for await (const s of await messages.status()) {
      if (s.type === ConsumerEvents.ConsumerNotFound || s.type === ConsumerEvents.ConsumerDeleted || s.type === ConsumerEvents.StreamNotFound) {
        this.opts.onError(new Error(`${this.spec.stream}/${this.spec.durable}: ${s.type}`));
        await this.opts.recover().catch((e: unknown) => this.opts.onError(e));
      }
    }
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
    // One record, or several of one stream (bus/publisher.ts): the oldest of them.
    const times = recordsIn(msg.json<unknown>()).map((r) => (r as { eventTime?: unknown } | null)?.eventTime).filter((t): t is number => typeof t === 'number');
    return times.length === 0 ? null : Math.min(...times);
  } catch (err) {
    // Gone (expired by retention, or terminated as invalid): nothing of it can still arrive.
    if (isJetStreamNotFound(err, JS_MESSAGE_NOT_FOUND)) return null;
    throw err;
  }
}
