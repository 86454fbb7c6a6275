import type { MarketRecord } from '../records.js';

/**
 * Where records go; the bus Publisher fits. publish() resolves once the record is in flight;
 * `onStored` is called once the sink has durably stored it.
 */
export interface RecordSink {
  publish(record: MarketRecord, onStored?: () => void): Promise<void>;
}

/** Records waiting for the sink beyond this pause the sources; below the low mark they resume. */
const QUEUE_HIGH_WATER = 20_000;
const QUEUE_LOW_WATER = 5_000;

interface Entry {
  record: MarketRecord;
  onStored: (() => void) | undefined;
}

/**
 * The bounded queue between a venue's sources (sockets, polls, books) and the sink. Records are
 * handed on in arrival order; when the sink falls behind, the sources are paused (socket reads
 * stop, so the venue's TCP window pushes back) instead of the queue growing without bound.
 */
export class RecordQueue {
  private queue: Entry[] = [];
  private pumping: Promise<void> | null = null;
  private paused = false;

  constructor(
    private readonly sink: RecordSink,
    private readonly sources: { pause(): void; resume(): void },
  ) {}

  push(record: MarketRecord, onStored?: () => void): void {
    this.queue.push({ record, onStored });
    if (!this.paused && this.queue.length >= QUEUE_HIGH_WATER) {
      this.paused = true;
      this.sources.pause();
    }
    this.pumping ??= this.pump();
  }

  /** Resolves when every record pushed so far has been handed to the sink. */
  async drain(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        for (let i = 0; i < batch.length; i++) {
          const entry = batch[i] as Entry;
          await this.sink.publish(entry.record, entry.onStored);
          if (this.paused && batch.length - i + this.queue.length < QUEUE_LOW_WATER) {
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
