import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { encodeBatches } from '../../src/lib/bus/publisher.js';
import { subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { createIngestMetrics, newIngestStatus, runIngest, type IngestMessage, type MessageSource, type RowSink } from '../../src/lib/store/ingest.js';
import type { RowBatch } from '../../src/lib/store/writer.js';
import { tradeAt } from '../helpers/records.js';
import { waitFor } from '../helpers/wait.js';

type Outcome = 'ack' | 'nak' | 'term';

class FakeMessage implements IngestMessage {
  readonly subject = 'trade.binance_spot.spot.BTC-USDT';
  readonly info = { timestampNanos: Date.now() * 1e6 };
  outcomes: Outcome[] = [];
  working = () => void this.inProgress++;
  inProgress = 0;
  constructor(
    readonly seq: number,
    private readonly body: unknown,
  ) {}
  json<T>(): T {
    if (typeof this.body === 'string') return JSON.parse(this.body) as T;
    return this.body as T;
  }
  string(): string {
    return typeof this.body === 'string' ? this.body : JSON.stringify(this.body);
  }
  ack = () => void this.outcomes.push('ack');
  nak = () => void this.outcomes.push('nak');
  term = () => void this.outcomes.push('term');
}

/** Like the JetStream source: messages arrive whenever the test pushes them, and wait in a queue until taken. */
class FakeSource implements MessageSource<FakeMessage> {
  private readonly queue: FakeMessage[] = [];
  private wake: (() => void) | null = null;
  takes: number[] = [];
  push(...ms: FakeMessage[]): void {
    this.queue.push(...ms);
    this.wake?.();
  }
  async next(max: number, signal: AbortSignal): Promise<FakeMessage[]> {
    while (this.queue.length === 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => resolve(), { once: true });
        this.wake = resolve;
      });
    }
    const taken = this.queue.splice(0, max);
    if (taken.length > 0) this.takes.push(taken.length);
    return taken;
  }
}

class FakeSink implements RowSink {
  batches: MarketRecord[][] = [];
  failuresLeft = 0;
  gate: Promise<void> | null = null;
  /** Inserts started, and the most running at once. */
  started = 0;
  private running = 0;
  maxRunning = 0;
  async insert(rows: RowBatch) {
    this.started++;
    this.maxRunning = Math.max(this.maxRunning, ++this.running);
    try {
      return await this.store(rows);
    } finally {
      this.running--;
    }
  }
  private async store(rows: RowBatch) {
    if (this.gate) await this.gate;
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new Error('clickhouse down');
    }
    // The rows by column name (TabSeparated cells as written).
    this.batches.push([...rows.byTable()].flatMap((t) => t.lines.map((line) => Object.fromEntries(t.spec.columns.map((c, i) => [c.name, line.split('\t')[i]])) as unknown as MarketRecord)));
    return { inserted: rows.size, skipped: 0 };
  }
  get rows(): number {
    return this.batches.reduce((n, b) => n + b.length, 0);
  }
}

let seq = 0;
const trade = () => new FakeMessage(++seq, tradeAt(1_700_000_000_000 + seq, String(seq)));

function start(opts: { batchSize?: number; flushIntervalMs?: number; ackWaitMs?: number } = {}) {
  const source = new FakeSource();
  const sink = new FakeSink();
  const controller = new AbortController();
  const registry = new Registry();
  const metrics = createIngestMetrics(registry);
  const status = newIngestStatus();
  const done = runIngest({
    stream: 'MARKET_DATA',
    source,
    sink,
    batchSize: opts.batchSize ?? 100,
    flushIntervalMs: opts.flushIntervalMs ?? 30,
    metrics,
    status,
    log: pino({ level: 'silent' }),
    signal: controller.signal,
    ...(opts.ackWaitMs !== undefined ? { ackWaitMs: opts.ackWaitMs } : {}),
  });
  const stop = async () => {
    controller.abort();
    await done;
  };
  return { source, sink, metrics, registry, status, stop };
}

describe('runIngest', () => {
  it('acks a batch only after the sink stored it', async () => {
    const { source, sink, stop } = start();
    let open!: () => void;
    sink.gate = new Promise((r) => (open = r));
    const ms = [trade(), trade(), trade()];
    source.push(...ms);
    await new Promise((r) => setTimeout(r, 100));
    expect(ms.every((m) => m.outcomes.length === 0)).toBe(true);
    open();
    await waitFor(() => ms.every((m) => m.outcomes.length > 0));
    expect(ms.map((m) => m.outcomes)).toEqual([['ack'], ['ack'], ['ack']]);
    expect(sink.batches).toHaveLength(1);
    await stop();
  });

  it('takes the next batch while one is being inserted, then inserts them one at a time and in order', async () => {
    const { source, sink, stop } = start({ batchSize: 3, ackWaitMs: 300 });
    let open!: () => void;
    sink.gate = new Promise((r) => (open = r));
    const first = [trade(), trade(), trade()];
    source.push(...first);
    await waitFor(() => sink.started === 1);
    const second = [trade(), trade(), trade()];
    source.push(...second);
    await waitFor(() => source.takes.length === 2);
    // Two batches in hand at most: a third waits in the source until the first is stored.
    const third = [trade(), trade(), trade()];
    source.push(...third);
    await new Promise((r) => setTimeout(r, 400));
    expect(source.takes).toHaveLength(2);
    expect(sink.started).toBe(1);
    // The batch waiting for the insert before it is kept in progress, like the one being inserted.
    expect(second.every((m) => m.inProgress > 0)).toBe(true);
    expect([...first, ...second].every((m) => m.outcomes.length === 0)).toBe(true);
    open();
    await waitFor(() => third.every((m) => m.outcomes.length > 0));
    expect([...first, ...second, ...third].map((m) => m.outcomes)).toEqual(Array.from({ length: 9 }, () => ['ack']));
    const ids = (batch: MarketRecord[]) => batch.map((r) => (r as unknown as { trade_id: string }).trade_id);
    const expected = (ms: FakeMessage[]) => ms.map((m) => m.json<{ tradeId: string }>().tradeId);
    expect(sink.batches.map(ids)).toEqual([expected(first), expected(second), expected(third)]);
    expect(sink.maxRunning).toBe(1);
    await stop();
  });

  it("reads a message of trade rows (the collector's form for several trades of a stream)", async () => {
    const { source, sink, stop } = start();
    const records = Array.from({ length: 5 }, (_, i) => tradeAt(1_700_000_200_000 + i, `r${i}`));
    const [encoded] = encodeBatches(subjectFor(records[0]!), records, 500);
    const m = new FakeMessage(++seq, new TextDecoder().decode(encoded!.data));
    expect(JSON.parse(new TextDecoder().decode(encoded!.data))).toHaveProperty('rows');
    source.push(m);
    await waitFor(() => m.outcomes.length > 0);
    expect(m.outcomes).toEqual(['ack']);
    expect(sink.batches.flat().map((r) => (r as unknown as { trade_id: string }).trade_id)).toEqual(records.map((r) => r.tradeId));
    await stop();
  });

  it('terminates a message that cannot become a row and writes the rest of its batch', async () => {
    const { source, sink, metrics, stop } = start();
    const bad = new FakeMessage(++seq, '{not json');
    const noPrice = new FakeMessage(++seq, { ...tradeAt(1_700_000_000_000, 'x'), price: 42 });
    const good = trade();
    source.push(bad, good, noPrice);
    await waitFor(() => good.outcomes.length > 0);
    expect(bad.outcomes).toEqual(['term']);
    expect(noPrice.outcomes).toEqual(['term']);
    expect(good.outcomes).toEqual(['ack']);
    expect(sink.rows).toBe(1);
    expect((await metrics.invalid.get()).values[0]?.value).toBe(2);
    await stop();
  });

  it('inserts every record of a many-record message and acks it once', async () => {
    const { source, sink, stop } = start({ batchSize: 5 });
    const records = Array.from({ length: 7 }, (_, i) => tradeAt(1_700_000_100_000 + i, `b${i}`));
    const batched = new FakeMessage(++seq, JSON.stringify(records));
    const single = trade();
    source.push(batched, single);
    await waitFor(() => single.outcomes.length > 0 && batched.outcomes.length > 0);
    expect(batched.outcomes).toEqual(['ack']);
    expect(single.outcomes).toEqual(['ack']);
    expect(sink.batches.flat().map((r) => (r as unknown as { trade_id: string }).trade_id)).toEqual([...records.map((r) => r.tradeId), single.json<{ tradeId: string }>().tradeId]);
    await stop();
  });

  it('skips an invalid record of a many-record message, counts it, and writes the others', async () => {
    const { source, sink, metrics, stop } = start();
    const good = [tradeAt(1_700_000_200_000, 'g1'), tradeAt(1_700_000_200_001, 'g2')];
    const m = new FakeMessage(++seq, [good[0], { ...tradeAt(1_700_000_200_002, 'bad'), price: 42 }, good[1]]);
    const allBad = new FakeMessage(++seq, [{ nope: true }, 7]);
    source.push(m, allBad);
    await waitFor(() => m.outcomes.length > 0 && allBad.outcomes.length > 0);
    expect(m.outcomes).toEqual(['ack']);
    expect(allBad.outcomes).toEqual(['term']);
    expect(sink.rows).toBe(2);
    expect((await metrics.invalid.get()).values[0]?.value).toBe(3);
    await stop();
  });

  it('retries a failed insert, keeping the messages in progress, and acks once it lands', async () => {
    const { source, sink, status, stop } = start();
    sink.failuresLeft = 1;
    const m = trade();
    source.push(m);
    await waitFor(() => m.outcomes.length > 0, 5_000);
    expect(m.inProgress).toBe(1);
    expect(m.outcomes).toEqual(['ack']);
    expect(status.consecutiveFailures).toBe(0);
    expect(status.lastError).toBe('clickhouse down');
    await stop();
  });

  it('keeps the messages of a slow insert in progress every third of the ack wait, so no other reader gets them meanwhile', async () => {
    const { source, sink, stop } = start({ ackWaitMs: 300 });
    let release!: () => void;
    sink.gate = new Promise<void>((resolve) => (release = resolve));
    const m = trade();
    source.push(m);
    // 350 ms of insert: past the ack wait, with a mark at every 100 ms.
    await new Promise((r) => setTimeout(r, 350));
    const marks = m.inProgress;
    release();
    await waitFor(() => m.outcomes.length > 0);
    expect(marks).toBeGreaterThanOrEqual(2);
    expect(m.outcomes).toEqual(['ack']);
    // None after the insert returned.
    const after = m.inProgress;
    await new Promise((r) => setTimeout(r, 250));
    expect(m.inProgress).toBe(after);
    await stop();
  });

  it("nak's the batch it could not store when shutdown comes, so it is redelivered at once", async () => {
    const { source, sink, stop } = start();
    sink.failuresLeft = 1_000;
    const m = trade();
    source.push(m);
    await waitFor(() => m.inProgress > 0);
    await stop();
    expect(m.outcomes).toEqual(['nak']);
  });

  it('closes batches at batchSize and after flushIntervalMs, and loses nothing that arrives between pulls', async () => {
    const { source, sink, stop } = start({ batchSize: 10, flushIntervalMs: 40 });
    const all: FakeMessage[] = [];
    // Bursts and trickles around the flush deadline: what arrives after a batch closed joins the next one.
    for (let round = 0; round < 20; round++) {
      const burst = Array.from({ length: round % 3 === 0 ? 25 : 1 + (round % 4) }, trade);
      all.push(...burst);
      source.push(...burst);
      await new Promise((r) => setTimeout(r, 5 + ((round * 7) % 45)));
    }
    await waitFor(() => all.every((m) => m.outcomes.length > 0));
    expect(all.every((m) => m.outcomes.length === 1 && m.outcomes[0] === 'ack')).toBe(true);
    expect(sink.rows).toBe(all.length);
    expect(Math.max(...sink.batches.map((b) => b.length))).toBeLessThanOrEqual(10);
    await stop();
  });

  it('records since when its batches close full, and forgets it at the first one that does not', async () => {
    const { source, sink, status, stop } = start({ batchSize: 3, flushIntervalMs: 30 });
    source.push(trade(), trade(), trade());
    await waitFor(() => sink.rows === 3);
    const since = status.fullBatchesSince.get('MARKET_DATA');
    expect(since).toBeTypeOf('number');
    source.push(trade(), trade(), trade(), trade());
    await waitFor(() => sink.rows === 7);
    expect(status.fullBatchesSince.has('MARKET_DATA')).toBe(false);
    await stop();
  });

  it('holds a batch open for flushIntervalMs after its first message, not longer', async () => {
    const { source, sink, stop } = start({ batchSize: 1000, flushIntervalMs: 150 });
    const first = trade();
    const t0 = Date.now();
    source.push(first);
    await new Promise((r) => setTimeout(r, 50));
    source.push(trade());
    await waitFor(() => sink.batches.length === 1);
    const took = Date.now() - t0;
    expect(sink.batches[0]).toHaveLength(2);
    expect(took).toBeGreaterThanOrEqual(140);
    await stop();
  });

  it('writes the messages in hand on shutdown before returning', async () => {
    const { source, sink, stop } = start({ batchSize: 1000, flushIntervalMs: 60_000 });
    const ms = [trade(), trade()];
    source.push(...ms);
    await new Promise((r) => setTimeout(r, 20));
    await stop();
    expect(sink.rows).toBe(2);
    expect(ms.map((m) => m.outcomes)).toEqual([['ack'], ['ack']]);
  });
});
