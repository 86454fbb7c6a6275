import { createHash } from 'node:crypto';
import type { JetStreamClient, NatsConnection } from 'nats';
import { Counter, type Registry } from 'prom-client';
import { backoffDelay, sleep } from '../backoff.js';
import { boundedSignal } from '../abort.js';
import { ConnectionWatch } from './connection.js';
import { bodyOf, bodyOverhead, bodyPart, sharesBody } from './message-body.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../records.js';

const encoder = new TextEncoder();

/**
 * A message body holds one record or several of one subject (see message-body.ts). Many per
 * message is what makes the pipeline fast: a JetStream publish and its ack cost about the same
 * for one record as for hundreds.
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** Msg-Id of a message holding `records` (one subject, in order): the record's own for one, a hash of all of theirs for several. */
export function messageIdFor(records: readonly MarketRecord[]): string {
  const first = records[0];
  if (first === undefined) throw new RangeError('a message holds at least one record');
  if (records.length === 1) return msgIdFor(first);
  // The digest of every record's id, each followed by a newline, hashed in one call: a call per id
  // cost more than the hashing. Same input bytes, so the same Msg-Ids as ever.
  let ids = '';
  for (const r of records) ids += `${msgIdFor(r)}\n`;
  const hash = createHash('sha1').update(ids).digest('hex');
  return `${msgIdFor(first)}+${records.length - 1}:${hash.slice(0, 20)}`;
}

/** Called once per message JetStream stored: records from..to (exclusive) of those handed to publishBatch are stored. */
export type StoredParts = (from: number, to: number) => void;

/**
 * One JetStream message: records from..to (exclusive) of those given to encodeBatches, encoded. It
 * keeps no reference to them, so a record is garbage once encoded rather than once JetStream acked
 * it: under load an ack takes long enough for waiting records to be copied by the young-generation
 * collector and promoted.
 */
export interface EncodedBatch {
  subject: string;
  msgId: string;
  data: Uint8Array;
  from: number;
  to: number;
  labels: { venue: string; data_type: string };
}

/**
 * Splits records of one subject into messages of at most maxRecords records and MAX_MESSAGE_BYTES
 * bytes (a single larger record still gets its own message), in the forms of message-body.ts. A
 * lone record keeps its own Msg-Id, so a re-publish of it is dropped by JetStream; a batch's Msg-Id
 * hashes every record's, so a retry of the same batch is dropped too, and a batch cut differently
 * after a restart is caught by storage's key check instead.
 */
export function encodeBatches(subject: string, records: readonly MarketRecord[], maxRecords: number): EncodedBatch[] {
  const out: EncodedBatch[] = [];
  let first: MarketRecord | null = null;
  let parts: string[] = [];
  let from = 0;
  let bytes = 0;
  const cut = () => {
    if (first === null) return;
    const to = from + parts.length;
    const data = encoder.encode(bodyOf(first, parts));
    out.push({ subject, msgId: messageIdFor(records.slice(from, to)), data, from, to, labels: { venue: first.venue, data_type: first.dataType } });
    from = to;
    first = null;
    parts = [];
  };
  for (const r of records) {
    if (first !== null && (parts.length >= maxRecords || !sharesBody(first, r))) cut();
    const part = bodyPart(first ?? r, r);
    if (first !== null && bytes + part.length + 1 > MAX_MESSAGE_BYTES) cut();
    if (first === null) {
      first = r;
      bytes = bodyOverhead(r);
    }
    parts.push(part);
    bytes += part.length + 1;
  }
  cut();
  return out;
}

export interface PublisherOptions {
  metrics: Registry;
  component: string;
  /** Messages awaiting a JetStream ack; publish() waits for room beyond this (backpressure). */
  maxInFlight?: number;
  /** Bytes of those messages: the window's bound in memory (default 32 MiB). */
  maxInFlightBytes?: number;
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
  private readonly maxInFlightBytes: number;
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightRecords = 0;
  private inFlightBytes = 0;
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
    this.maxInFlightBytes = opts.maxInFlightBytes ?? 32 * 1024 * 1024;
    this.signal = opts.signal && boundedSignal(opts.signal, this.maxInFlight + 1).signal;
    const prefix = `mprism_${opts.component}`;
    const labelNames = ['venue', 'data_type'] as const;
    this.published = new Counter({ name: `${prefix}_published_total`, help: 'Records stored by JetStream', labelNames, registers: [opts.metrics] });
    this.duplicates = new Counter({ name: `${prefix}_publish_duplicates_total`, help: 'Records in messages JetStream dropped as duplicates (Msg-Id already stored)', labelNames, registers: [opts.metrics] });
    this.retries = new Counter({ name: `${prefix}_publish_retries_total`, help: 'Publishes retried after an error', labelNames, registers: [opts.metrics] });
    this.lost = new Counter({ name: `${prefix}_publish_lost_total`, help: 'Records given up on at shutdown after retries', labelNames, registers: [opts.metrics] });
  }

  /**
   * Resolves as soon as the record is in flight; waits first when the in-flight window is full.
   * `onStored` is called once JetStream has acknowledged it (stored, or already stored).
   */
  async publish(record: MarketRecord, onStored?: () => void): Promise<void> {
    const [batch] = encodeBatches(subjectFor(record), [record], 1);
    await this.send(batch as EncodedBatch, onStored);
  }

  /**
   * Records of one subject, as few messages as the limits allow (see encodeBatches); `onStored` is
   * called once per message JetStream acknowledged, with its records. While the window has room
   * they are all put in flight at once and null is returned; otherwise a promise that resolves once
   * the rest are in flight. Why not always a promise: the NATS client sends what was published in
   * one synchronous run as one socket write, and an await between two publishes costs a write
   * each (with hundreds of streams, a fifth of the collector's CPU went to those writes).
   */
  publishBatch(subject: string, records: readonly MarketRecord[], maxRecordsPerMessage: number, onStored?: StoredParts): Promise<void> | null {
    const batches = encodeBatches(subject, records, maxRecordsPerMessage);
    const storedOf = (batch: EncodedBatch) => onStored && (() => onStored(batch.from, batch.to));
    for (let i = 0; i < batches.length; i++) {
      const batch = batches[i] as EncodedBatch;
      if (!this.hasRoomFor(batch.data.byteLength)) {
        const rest = batches.slice(i);
        return (async () => {
          for (const b of rest) await this.send(b, storedOf(b));
        })();
      }
      this.start(batch, storedOf(batch));
    }
    return null;
  }

  /** A message larger than the whole window still goes, alone. */
  private hasRoomFor(bytes: number): boolean {
    return this.inFlight.size < this.maxInFlight && (this.inFlightBytes === 0 || this.inFlightBytes + bytes <= this.maxInFlightBytes);
  }

  private async send(batch: EncodedBatch, onStored: (() => void) | undefined): Promise<void> {
    while (!this.hasRoomFor(batch.data.byteLength)) await Promise.race(this.inFlight);
    this.start(batch, onStored);
  }

  private start(batch: EncodedBatch, onStored: (() => void) | undefined): void {
    const n = batch.to - batch.from;
    const bytes = batch.data.byteLength;
    this.inFlightRecords += n;
    this.inFlightBytes += bytes;
    const p = this.publishWithRetry(batch)
      .then(onStored)
      .catch((err: unknown) => {
        this.lost.inc(batch.labels, n);
        this.lastError = err;
      })
      .finally(() => {
        this.inFlight.delete(p);
        this.inFlightRecords -= n;
        this.inFlightBytes -= bytes;
      });
    this.inFlight.add(p);
  }

  /** Resolves when every record handed to publish() so far is acknowledged by JetStream. */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Records in flight. */
  get pending(): number {
    return this.inFlightRecords;
  }

  private async publishWithRetry(batch: EncodedBatch): Promise<void> {
    const { labels } = batch;
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await this.js.publish(batch.subject, batch.data, { msgID: batch.msgId, timeout: 10_000 });
        (ack.duplicate ? this.duplicates : this.published).inc(labels, batch.to - batch.from);
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
