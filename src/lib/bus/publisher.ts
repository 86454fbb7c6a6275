import { JSONCodec, type JetStreamClient, type NatsConnection } from 'nats';
import { Counter, type Registry } from 'prom-client';
import { backoffDelay, sleep } from '../backoff.js';
import { boundedSignal } from '../abort.js';
import { ConnectionWatch } from './connection.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../records.js';

const codec = JSONCodec<MarketRecord>();

export interface PublisherOptions {
  metrics: Registry;
  component: string;
  /** Publishes awaiting a JetStream ack; publish() waits for room beyond this (backpressure). */
  maxInFlight?: number;
  /** Stop retrying a record after this signal aborts (shutdown); the record is then counted as lost. */
  signal?: AbortSignal;
}

/**
 * Pipelined JetStream publisher with deterministic Msg-Ids. A failed publish is retried with
 * backoff, never dropped: JetStream's duplicate window makes a retry of an already-stored
 * message harmless.
 */
export class Publisher {
  private readonly js: JetStreamClient;
  private readonly maxInFlight: number;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly published: Counter<'data_type' | 'venue'>;
  private readonly duplicates: Counter<'data_type' | 'venue'>;
  private readonly retries: Counter<'data_type' | 'venue'>;
  private readonly lost: Counter<'data_type' | 'venue'>;
  /** Last error of a publish given up during shutdown, for the daemon's final log line. */
  lastError: unknown = null;
  /** opts.signal, allowed one listener per publish in flight: each waits on it during an outage. */
  private readonly signal: AbortSignal | undefined;

  /** Connection state, also for the owner's health report. */
  readonly connection: ConnectionWatch;

  constructor(
    nc: NatsConnection,
    private readonly opts: PublisherOptions,
  ) {
    this.js = nc.jetstream();
    this.connection = new ConnectionWatch(nc);
    this.maxInFlight = opts.maxInFlight ?? 1024;
    this.signal = opts.signal && boundedSignal(opts.signal, this.maxInFlight + 1).signal;
    const prefix = `mprism_${opts.component}`;
    const labelNames = ['venue', 'data_type'] as const;
    this.published = new Counter({ name: `${prefix}_published_total`, help: 'Records stored by JetStream', labelNames, registers: [opts.metrics] });
    this.duplicates = new Counter({ name: `${prefix}_publish_duplicates_total`, help: 'Publishes JetStream dropped as duplicate Msg-Id', labelNames, registers: [opts.metrics] });
    this.retries = new Counter({ name: `${prefix}_publish_retries_total`, help: 'Publishes retried after an error', labelNames, registers: [opts.metrics] });
    this.lost = new Counter({ name: `${prefix}_publish_lost_total`, help: 'Records given up on at shutdown after retries', labelNames, registers: [opts.metrics] });
  }

  /**
   * Resolves as soon as the record is in flight; waits first when the in-flight window is full.
   * `onStored` is called once JetStream has acknowledged it (stored, or already stored).
   */
  async publish(record: MarketRecord, onStored?: () => void): Promise<void> {
    while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
    const p = this.publishWithRetry(record)
      .then(onStored)
      .catch((err: unknown) => {
        this.lost.inc({ venue: record.venue, data_type: record.dataType });
        this.lastError = err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Resolves when every record handed to publish() so far is acknowledged by JetStream. */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  get pending(): number {
    return this.inFlight.size;
  }

  private async publishWithRetry(record: MarketRecord): Promise<void> {
    const labels = { venue: record.venue, data_type: record.dataType };
    const data = codec.encode(record);
    const subject = subjectFor(record);
    const msgID = msgIdFor(record);
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await this.js.publish(subject, data, { msgID, timeout: 10_000 });
        (ack.duplicate ? this.duplicates : this.published).inc(labels);
        return;
      } catch (err) {
        this.retries.inc(labels);
        // During shutdown keep trying for a bounded time only; the caller logs what was lost.
        if (this.signal?.aborted && attempt >= 5) throw err;
        await sleep(backoffDelay(attempt, { initialMs: 100, maxMs: 5000, jitter: 0.3 }));
        // While disconnected a retry would only add another copy to the client's outgoing buffer,
        // which grows without bound during a long outage: wait for the reconnect instead.
        await this.connection.waitConnected(this.signal);
      }
    }
  }
}
