import { describe, expect, it } from 'vitest';
import type { StoredParts } from '../../src/lib/bus/publisher.js';
import { estimatedBytes, RecordQueue, type RecordSink } from '../../src/lib/feeds/record-queue.js';
import { subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { tradeAt } from '../helpers/records.js';

/** A sink that holds every call until released, like JetStream while it is slow. */
class GatedSink implements RecordSink {
  calls: { subject: string; records: readonly MarketRecord[] }[] = [];
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;
  close(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open();
  }
  async publishBatch(subject: string, records: readonly MarketRecord[], max: number, onStored?: StoredParts): Promise<void> {
    await this.gate;
    for (let i = 0; i < records.length; i += max) {
      const part = records.slice(i, i + max);
      this.calls.push({ subject, records: part });
      onStored?.(i, i + part.length);
    }
  }
}

const on = (symbol: string, id: number) => tradeAt(1_700_000_000_000 + id, String(id), { symbol });

describe('RecordQueue', () => {
  it('hands every subject of a pass on in one synchronous run while the sink takes them at once (one socket write for all)', async () => {
    const runs: number[] = [];
    let run = 0;
    const sink: RecordSink = {
      publishBatch: () => {
        // A microtask between two calls would bump `run` before the second.
        if (runs.length === 0) queueMicrotask(() => run++);
        runs.push(run);
        return null;
      },
    };
    const q = new RecordQueue(sink, { pause: () => undefined, resume: () => undefined }, { maxRecordsPerMessage: 500, maxQueuedBytes: 1e9 });
    for (const [i, symbol] of ['BTC-USDT', 'ETH-USDT', 'SOL-USDT', 'XRP-USDT'].entries()) q.push(on(symbol, i));
    await q.drain();
    expect(runs).toEqual([0, 0, 0, 0]);
  });

  it('hands on what gathered in one turn as one call per subject, in order, and reports each record stored', async () => {
    const sink = new GatedSink();
    const q = new RecordQueue(sink, { pause: () => undefined, resume: () => undefined }, { maxRecordsPerMessage: 500, maxQueuedBytes: 1e9 });
    const stored: string[] = [];
    const records = [on('BTC-USDT', 1), on('ETH-USDT', 2), on('BTC-USDT', 3), on('ETH-USDT', 4), on('BTC-USDT', 5)];
    for (const r of records) q.push(r, () => stored.push((r as { tradeId: string }).tradeId));
    await q.drain();
    expect(sink.calls.map((c) => [c.subject, c.records.map((r) => (r as { tradeId: string }).tradeId)])).toEqual([
      [subjectFor(records[0]!), ['1', '3', '5']],
      [subjectFor(records[1]!), ['2', '4']],
    ]);
    expect(stored.sort()).toEqual(['1', '2', '3', '4', '5']);
  });

  it('pauses its sources at its byte budget while the sink is stuck, and resumes them once it drains', async () => {
    const sink = new GatedSink();
    const events: string[] = [];
    const budget = 20 * estimatedBytes(on('BTC-USDT', 0));
    const q = new RecordQueue(sink, { pause: () => events.push('pause'), resume: () => events.push('resume') }, { maxRecordsPerMessage: 500, maxQueuedBytes: budget });
    sink.close();
    for (let i = 1; i <= 19; i++) q.push(on('BTC-USDT', i));
    expect(events).toEqual([]);
    q.push(on('BTC-USDT', 20));
    expect(events).toEqual(['pause']);
    expect(q.backedUp).toBe(true);
    sink.release();
    await q.drain();
    expect(events).toEqual(['pause', 'resume']);
    expect(q.backedUp).toBe(false);
    expect(sink.calls.flatMap((c) => c.records)).toHaveLength(20);
  });

  it('counts a book by its levels', () => {
    const level = ['1.5', '2'] as const;
    const book = (levels: number) => ({ ...on('BTC-USDT', 1), dataType: 'orderbook', bids: Array(levels).fill(level), asks: Array(levels).fill(level) }) as unknown as MarketRecord;
    expect(estimatedBytes(book(50))).toBeGreaterThan(5 * estimatedBytes(on('BTC-USDT', 1)));
    expect(estimatedBytes(book(100)) - estimatedBytes(book(50))).toBe(estimatedBytes(book(50)) - estimatedBytes(book(0)));
  });
});
