import { describe, expect, it } from 'vitest';
import type { Venue } from '../../src/lib/config/schema.js';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { normalizeAll, type BookSupport, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import { BookSync, type BookSyncOutput } from '../../src/lib/orderbook/sync.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import type { OrderbookGapRecord, OrderbookRecord, PriceLevel } from '../../src/lib/records.js';
import { fixtureLines } from '../helpers/fixtures.js';

const NOW = 1_700_000_000_000;

/** One instrument's stream in the fixtures: its REST snapshot line and its update lines (1-based, inclusive). */
interface StreamCase {
  instrument: string;
  snapshotLine: number;
  firstLine: number;
  lastLine: number;
  /** Leading update lines the snapshot already holds (fixtures README). */
  dropped: number;
}

interface VenueCase {
  venue: Venue;
  adapter: VenueAdapter;
  streams: StreamCase[];
  /** The fields of a raw diff event that chain it onto `lastId`. */
  chainAfter(lastId: number): Record<string, number>;
}

const CASES: VenueCase[] = [
  {
    venue: 'binance_spot',
    adapter: binanceSpot,
    streams: [
      { instrument: 'NKNUSDT', snapshotLine: 1, firstLine: 1, lastLine: 30, dropped: 1 },
      { instrument: 'LRCBTC', snapshotLine: 2, firstLine: 31, lastLine: 45, dropped: 2 },
    ],
    chainAfter: (lastId) => ({ U: lastId + 1, u: lastId + 1 }),
  },
  {
    venue: 'binance_derivatives',
    adapter: binanceDerivatives,
    streams: [
      { instrument: 'SUSHIUSDT', snapshotLine: 1, firstLine: 1, lastLine: 20, dropped: 3 },
      { instrument: 'AKROUSDT', snapshotLine: 2, firstLine: 21, lastLine: 40, dropped: 1 },
      { instrument: 'KEEPUSDT', snapshotLine: 3, firstLine: 41, lastLine: 60, dropped: 3 },
    ],
    chainAfter: (lastId) => ({ U: lastId + 7, u: lastId + 9, pu: lastId }),
  },
];

function bookOf(adapter: VenueAdapter): BookSupport {
  if (adapter.book === null) throw new Error(`${adapter.venue} keeps no books`);
  return adapter.book;
}

function updateOf(adapter: VenueAdapter, frame: string): BookMessage {
  const { records, books } = normalizeAll(adapter, frame, NOW);
  expect(records).toEqual([]);
  const [m, ...rest] = books;
  expect(rest).toEqual([]);
  if (m === undefined) throw new Error(`no book message in ${frame.slice(0, 80)}`);
  return m;
}

function fixture(c: VenueCase, s: StreamCase): { snapshot: BookMessage; frames: string[]; updates: BookMessage[] } {
  const body = fixtureLines(c.venue, 'depth_snapshot_rest.jsonl')[s.snapshotLine - 1] as string;
  const snapshot = bookOf(c.adapter).parseSnapshot?.(body, s.instrument, NOW);
  if (snapshot === undefined) throw new Error(`${c.venue} parses no REST snapshots`);
  const frames = fixtureLines(c.venue, 'depth_update.jsonl').slice(s.firstLine - 1, s.lastLine);
  const updates = frames.map((f) => updateOf(c.adapter, f));
  for (const u of updates) expect(u.instrument).toBe(s.instrument);
  return { snapshot, frames, updates };
}

/** Publishes every change and the whole book, so the result can be compared level by level. */
function newSync(adapter: VenueAdapter): BookSync {
  const { rules, source } = bookOf(adapter);
  return new BookSync({ rules, source, depth: 10_000, minPublishIntervalMs: 0 });
}

/** Feeds updates; answers each REST snapshot request at once with `snapshot` (null: leave it unanswered). */
function drive(sync: BookSync, updates: readonly BookMessage[], snapshot: BookMessage | null): BookSyncOutput[] {
  const outputs: BookSyncOutput[] = [];
  for (const m of updates) {
    const out = sync.onMessage(m, NOW);
    outputs.push(out);
    if (out.resync === 'rest_snapshot' && snapshot !== null) outputs.push(sync.onSnapshot(snapshot, NOW));
  }
  return outputs;
}

const published = (outputs: readonly BookSyncOutput[]): OrderbookRecord[] => outputs.flatMap((o) => (o.publish === null ? [] : [o.publish]));
const gaps = (outputs: readonly BookSyncOutput[]): OrderbookGapRecord[] => outputs.flatMap((o) => (o.gap === null ? [] : [o.gap]));

/** An independent book: price -> quantity maps, zero deletes, sorted numerically. */
function referenceBook(snapshot: BookMessage, updates: readonly BookMessage[]): { bids: PriceLevel[]; asks: PriceLevel[] } {
  const bids = new Map<string, string>(snapshot.bids.map(([p, q]) => [p, q]));
  const asks = new Map<string, string>(snapshot.asks.map(([p, q]) => [p, q]));
  for (const m of updates) {
    for (const [side, levels] of [
      [bids, m.bids],
      [asks, m.asks],
    ] as const) {
      for (const [p, q] of levels) {
        if (Number(q) === 0) side.delete(p);
        else side.set(p, q);
      }
    }
  }
  const sorted = (side: Map<string, string>, sign: number) => [...side.entries()].sort((a, b) => sign * (Number(a[0]) - Number(b[0])));
  return { bids: sorted(bids, -1), asks: sorted(asks, 1) };
}

/** The snapshot the venue would serve right after `updates`: the reference book at their last id. */
function freshSnapshot(snapshot: BookMessage, updates: readonly BookMessage[]): BookMessage {
  const last = updates.at(-1) as BookMessage;
  return { ...snapshot, ...referenceBook(snapshot, updates), lastUpdateId: last.lastUpdateId, eventTime: last.eventTime };
}

function expectNeverCrossed(records: readonly OrderbookRecord[]): void {
  for (const r of records) {
    if (r.bestBidPrice !== null && r.bestAskPrice !== null) expect(Number(r.bestBidPrice)).toBeLessThan(Number(r.bestAskPrice));
  }
}

describe.each(CASES)('$venue orderbook from the captured stream', (c) => {
  const { rules } = bookOf(c.adapter);

  it.each(c.streams)('$instrument: the first $dropped update(s) are in the snapshot, the next one straddles it', (s) => {
    const { snapshot, updates } = fixture(c, s);
    const snapshotId = snapshot.lastUpdateId as number;
    updates.slice(0, s.dropped).forEach((m) => expect(rules.firstAfterSnapshot(snapshotId, m)).toEqual({ kind: 'skip' }));
    expect(rules.firstAfterSnapshot(snapshotId, updates[s.dropped] as BookMessage)).toEqual({ kind: 'apply' });

    // The stream started before the snapshot was fetched: buffered, then aligned, then chained.
    const sync = newSync(c.adapter);
    const bridging = drive(sync, updates.slice(0, s.dropped + 1), snapshot);
    expect(sync.state).toBe('synced');
    expect(sync.stats).toMatchObject({ skipped: s.dropped, applied: 1, gaps: 0, resyncs: 0, lastUpdateId: updates[s.dropped]?.lastUpdateId });
    expect(gaps(bridging)).toEqual([]);
  });

  it.each(c.streams)('$instrument: the whole stream applies without a gap and matches an independent book', (s) => {
    const { snapshot, updates } = fixture(c, s);
    const sync = newSync(c.adapter);
    const outputs = drive(sync, updates, snapshot);
    expect(gaps(outputs)).toEqual([]);
    expect(sync.stats).toMatchObject({ applied: updates.length - s.dropped, skipped: s.dropped, resyncs: 0, lastUpdateId: updates.at(-1)?.lastUpdateId });
    const records = published(outputs);
    expectNeverCrossed(records);
    const last = records.at(-1) as OrderbookRecord;
    expect({ bids: last.bids, asks: last.asks }).toEqual(referenceBook(snapshot, updates.slice(s.dropped)));
    expect({ ...last, bids: last.bids.slice(0, 5), asks: last.asks.slice(0, 5) }).toMatchSnapshot();
  });

  it('keeps every instrument of the interleaved file in sync at once', () => {
    const syncs = new Map<string, BookSync>();
    const snapshots = new Map(c.streams.map((s) => [s.instrument, fixture(c, s).snapshot]));
    const outputs: BookSyncOutput[] = [];
    for (const frame of fixtureLines(c.venue, 'depth_update.jsonl')) {
      const m = updateOf(c.adapter, frame);
      const sync = syncs.get(m.instrument) ?? newSync(c.adapter);
      syncs.set(m.instrument, sync);
      outputs.push(...drive(sync, [m], snapshots.get(m.instrument) ?? null));
    }
    expect(gaps(outputs)).toEqual([]);
    expect([...syncs.entries()].map(([instrument, sync]) => [instrument, sync.state])).toEqual(c.streams.map((s) => [s.instrument, 'synced']));
  });

  it.each(c.streams)('$instrument: a lost update leaves a gap record and resyncs from a fresh snapshot', (s) => {
    const { snapshot, updates } = fixture(c, s);
    const missing = s.dropped + 5;
    const sync = newSync(c.adapter);
    const before = drive(sync, updates.slice(0, missing), snapshot);
    expect(gaps(before)).toEqual([]);

    const next = updates[missing + 1] as BookMessage;
    const lost = sync.onMessage(next, NOW);
    expect(lost.publish).toBeNull();
    expect(lost.resync).toBe('rest_snapshot');
    expect(lost.gap).toMatchObject({
      dataType: 'orderbook_gap',
      venue: c.venue,
      instrument: s.instrument,
      reason: 'sequence_gap',
      lastUpdateId: updates[missing - 1]?.lastUpdateId,
      eventTime: next.eventTime,
    });
    expect(sync.state).toBe('awaiting_snapshot');

    // The venue's book now includes the lost update; the update that revealed the gap bridges it.
    const resynced = sync.onSnapshot(freshSnapshot(snapshot, updates.slice(s.dropped, missing + 1)), NOW);
    expect(resynced.gap).toBeNull();
    expect(sync.state).toBe('synced');
    const after = drive(sync, updates.slice(missing + 2), null);
    expect(gaps(after)).toEqual([]);
    const last = published([resynced, ...after]).at(-1) as OrderbookRecord;
    expect({ bids: last.bids, asks: last.asks }).toEqual(referenceBook(snapshot, updates.slice(s.dropped)));
    expect(sync.stats).toMatchObject({ gaps: 1, resyncs: 1, lastUpdateId: updates.at(-1)?.lastUpdateId });
  });

  it.each(c.streams)('$instrument: an update that crosses the book is never published and forces a resync', (s) => {
    const { snapshot, frames, updates } = fixture(c, s);
    const sync = newSync(c.adapter);
    const synced = published(drive(sync, updates, snapshot)).at(-1) as OrderbookRecord;
    const bestAsk = synced.bestAskPrice as string;

    // A chained, well-formed event whose bid reaches the best ask.
    const template = JSON.parse(frames.at(-1) as string) as { stream: string; data: Record<string, unknown> };
    const lastId = updates.at(-1)?.lastUpdateId as number;
    const crossing = { ...template, data: { ...template.data, ...c.chainAfter(lastId), b: [[bestAsk, '1']], a: [] } };
    const out = sync.onMessage(updateOf(c.adapter, JSON.stringify(crossing)), NOW + 1);

    expect(out.publish).toBeNull();
    expect(out.gap).toMatchObject({ dataType: 'orderbook_gap', reason: 'crossed_book', venue: c.venue, instrument: s.instrument });
    expect(out.gap?.detail).toContain(bestAsk);
    expect(out.resync).toBe('rest_snapshot');
    expect(sync.state).toBe('awaiting_snapshot');
    expect(sync.tick(NOW + 60_000)).toBeNull();
  });
});
