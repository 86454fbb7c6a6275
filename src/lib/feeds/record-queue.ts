import { subjectFor, type MarketRecord } from '../records.js';

/**
 * Where records go; the bus Publisher fits. publishBatch() takes records of one subject, in order,
 * and resolves once they are in flight; `onStored` is called with each part the sink has durably
 * stored (in as many parts as it cut them into).
 */
export interface RecordSink {
  publishBatch(subject: string, records: readonly MarketRecord[], maxRecordsPerMessage: number, onStored?: (records: readonly MarketRecord[]) => void): Promise<void>;
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
 * handed on in arrival order per subject, as many per message as have gathered: one record when
 * the feed is quiet (no added latency), hundreds when the sink is the bottleneck (what gathered
 * while it was busy). When the sink falls behind, the sources are paused (socket reads stop, so
 * the venue's TCP window pushes back) instead of the queue growing without bound.
 */
export class RecordQueue {
  private queue: Entry[] = [];
  private pumping: Promise<void> | null = null;
  private paused = false;

  constructor(
    private readonly sink: RecordSink,
    private readonly sources: { pause(): void; resume(): void },
    private readonly maxRecordsPerMessage: number,
  ) {}

  push(record: MarketRecord, onStored?: () => void): void {
    this.queue.push({ record, onStored });
    if (!this.paused && this.queue.length >= QUEUE_HIGH_WATER) {
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

  get length(): number {
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const taken = this.queue;
        this.queue = [];
        let left = taken.length;
        for (const [subject, entries] of groupBySubject(taken)) {
          const records = entries.map((e) => e.record);
          const callbacks = new Map<MarketRecord, () => void>();
          for (const e of entries) if (e.onStored !== undefined) callbacks.set(e.record, e.onStored);
          const onStored = callbacks.size === 0 ? undefined : (stored: readonly MarketRecord[]) => stored.forEach((r) => callbacks.get(r)?.());
          await this.sink.publishBatch(subject, records, this.maxRecordsPerMessage, onStored);
          left -= entries.length;
          if (this.paused && left + this.queue.length < QUEUE_LOW_WATER) {
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

/** Entries by subject, each group in arrival order; groups in order of their first entry. */
function groupBySubject(entries: readonly Entry[]): Map<string, Entry[]> {
  const groups = new Map<string, Entry[]>();
  for (const e of entries) {
    const subject = subjectFor(e.record);
    const group = groups.get(subject);
    if (group === undefined) groups.set(subject, [e]);
    else group.push(e);
  }
  return groups;
}
