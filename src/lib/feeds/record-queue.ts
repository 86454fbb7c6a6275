import { groupBy } from '../group-by.js';
import type { StoredParts } from '../bus/publisher.js';
import { subjectFor, type MarketRecord } from '../records.js';

/**
 * Where records go; the bus Publisher fits. publishBatch() takes records of one subject, in order,
 * and returns null when they are in flight already, or a promise that resolves once they are (the
 * sink is full); `onStored` is called with the index range of each part the sink has durably
 * stored (in as many parts as it cut them into). The sink keeps no record once it has encoded it.
 */
export interface RecordSink {
  publishBatch(subject: string, records: readonly MarketRecord[], maxRecordsPerMessage: number, onStored?: StoredParts): Promise<void> | null;
}

/** Below this share of its budget, a paused queue resumes its sources. */
const RESUME_AT = 0.25;

/**
 * About what a waiting record holds in memory, cheap to compute: a trade as the collector keeps it
 * (the record, its queue entry and its coverage entry) about 400 bytes (283 bytes measured in the
 * queue alone); a book 72 bytes a level besides the record (the `[price, quantity]` tuple `top()`
 * makes and its slot; the strings are shared with the live book until they change there).
 */
export function estimatedBytes(record: MarketRecord): number {
  return record.dataType === 'orderbook' ? 250 + 72 * (record.bids.length + record.asks.length) : 400;
}

interface Entry {
  record: MarketRecord;
  onStored: (() => void) | undefined;
  bytes: number;
}

/**
 * The bounded queue between a venue's sources (sockets, polls, books) and the sink. Records are
 * handed on in arrival order per subject, as many per message as have gathered: one record when
 * the feed is quiet (no added latency), hundreds when the sink is the bottleneck (what gathered
 * while it was busy). When the sink falls behind (JetStream slow or down), the sources are paused
 * once the queue holds maxQueuedBytes (socket reads stop, so the venue's TCP window pushes back)
 * instead of the queue growing without bound; a venue that then drops the connection leaves a
 * recorded hole, like any disconnect.
 */
export class RecordQueue {
  private queue: Entry[] = [];
  private queuedBytes = 0;
  private pumping: Promise<void> | null = null;
  private paused = false;

  constructor(
    private readonly sink: RecordSink,
    private readonly sources: { pause(): void; resume(): void },
    private readonly opts: { maxRecordsPerMessage: number; maxQueuedBytes: number },
  ) {}

  push(record: MarketRecord, onStored?: () => void): void {
    const bytes = estimatedBytes(record);
    this.queue.push({ record, onStored, bytes });
    this.queuedBytes += bytes;
    if (!this.paused && this.queuedBytes >= this.opts.maxQueuedBytes) {
      this.paused = true;
      this.sources.pause();
    }
    // Started once this turn of the event loop has read every socket that had data: the records
    // of all those frames travel together (a message per stream, not per frame).
    this.pumping ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.pump());
  }

  /** Resolves when every record pushed so far has been handed to the sink. */
  async drain(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
  }

  /** The sink cannot keep up: the queue reached its high-water mark and the sources are paused. */
  get backedUp(): boolean {
    return this.paused;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const taken = this.queue;
        this.queue = [];
        // By subject, each in arrival order; subjects in order of their first record.
        for (const [subject, entries] of groupBy(taken, (e) => subjectFor(e.record))) {
          const records = entries.map((e) => e.record);
          // The callbacks by index, not the records: these stay until JetStream's ack, the records need not.
          const callbacks = entries.map((e) => e.onStored);
          const onStored = callbacks.every((c) => c === undefined)
            ? undefined
            : (from: number, to: number) => {
                for (let i = from; i < to; i++) callbacks[i]?.();
              };
          // No await while the sink takes them at once: the subjects of one pass then share a socket write.
          const waiting = this.sink.publishBatch(subject, records, this.opts.maxRecordsPerMessage, onStored);
          if (waiting !== null) await waiting;
          // Counted as queued until the sink took them: its own window bounds what it holds.
          for (const e of entries) this.queuedBytes -= e.bytes;
          if (this.paused && this.queuedBytes < this.opts.maxQueuedBytes * RESUME_AT) {
            this.paused = false;
            this.sources.resume();
          }
        }
      }
    } finally {
      this.pumping = null;
    }
  }
}
