import { describe, expect, it } from 'vitest';
import { okxChecksum } from '../../src/lib/exchanges/okx.js';
import { BookSync, SNAPSHOT_WAIT_KEEP_MS, type BookSyncOptions } from '../../src/lib/orderbook/sync.js';
import type { BookMessage, SequenceRules } from '../../src/lib/orderbook/types.js';
import type { PriceLevel } from '../../src/lib/records.js';
import { fixtureLines } from '../helpers/fixtures.js';

function fixtureJson(venue: 'binance_spot' | 'okx_spot', file: string): unknown[] {
  return fixtureLines(venue, file).map((line) => JSON.parse(line) as unknown);
}

/** Binance spot: drop u <= lastUpdateId, the first applied update straddles it, then U == previous u + 1. */
const spotRules: SequenceRules = {
  firstAfterSnapshot(snapshotId, m) {
    if (m.lastUpdateId! <= snapshotId) return { kind: 'skip' };
    if (m.firstUpdateId! <= snapshotId + 1) return { kind: 'apply' };
    return { kind: 'gap', detail: `first U ${m.firstUpdateId} > ${snapshotId + 1}` };
  },
  next(lastAppliedId, m) {
    if (m.lastUpdateId! <= lastAppliedId) return { kind: 'skip' };
    if (m.firstUpdateId === lastAppliedId + 1) return { kind: 'apply' };
    return { kind: 'gap', detail: `expected U ${lastAppliedId + 1}, got ${m.firstUpdateId}` };
  },
};

/** OKX-like chaining: prevUpdateId == previous id. */
const chainRules: SequenceRules = {
  firstAfterSnapshot: (snapshotId, m) => chainRules.next(snapshotId, m),
  next(lastAppliedId, m) {
    if (m.prevUpdateId === lastAppliedId) return { kind: 'apply' };
    return { kind: 'gap', detail: `expected prev ${lastAppliedId}, got ${m.prevUpdateId}` };
  },
};

function message(fields: Partial<BookMessage>): BookMessage {
  return {
    venue: 'binance_spot',
    marketType: 'spot',
    symbol: 'BTC-USDT',
    instrument: 'BTCUSDT',
    action: 'update',
    firstUpdateId: null,
    lastUpdateId: null,
    prevUpdateId: null,
    checksum: null,
    bids: [],
    asks: [],
    eventTime: 1_000,
    receiveTime: 1_001,
    ...fields,
  };
}

function diff(U: number, u: number, bids: PriceLevel[] = [], asks: PriceLevel[] = []): BookMessage {
  return message({ firstUpdateId: U, lastUpdateId: u, bids, asks, eventTime: 10_000 + u, receiveTime: 20_000 + u });
}

function restSnapshot(id: number, bids: PriceLevel[], asks: PriceLevel[]): BookMessage {
  return message({ action: 'snapshot', lastUpdateId: id, bids, asks, eventTime: 5_000, receiveTime: 5_000 });
}

function restSync(overrides: Partial<BookSyncOptions> = {}): BookSync {
  return new BookSync({ rules: spotRules, source: 'rest', depth: 10, minPublishIntervalMs: 100, ...overrides });
}

/** A rest book synced at update id 106 with bids 100/99 and asks 101/102. */
function syncedRestBook(overrides: Partial<BookSyncOptions> = {}): BookSync {
  const sync = restSync(overrides);
  sync.onMessage(diff(105, 106, [['99', '3']]), 0);
  sync.onSnapshot(restSnapshot(105, [['100', '1'], ['99', '2']], [['101', '1'], ['102', '2']]), 0);
  expect(sync.state).toBe('synced');
  return sync;
}

describe('BookSync, REST snapshot source', () => {
  it('buffers updates, asks once for a snapshot, skips stale ones and bridges', () => {
    const sync = restSync();
    expect(sync.onMessage(diff(101, 103, [['98', '1']]), 0)).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: null });
    expect(sync.onMessage(diff(104, 106, [['99', '5']]), 1).resync).toBeNull();
    expect(sync.onMessage(diff(107, 108, [], [['101', '0']]), 2).resync).toBeNull();
    expect(sync.state).toBe('awaiting_snapshot');
    expect(sync.stats.buffered).toBe(3);

    const out = sync.onSnapshot(restSnapshot(105, [['100', '1'], ['99', '2']], [['101', '1'], ['102', '2']]), 3);
    expect(out.gap).toBeNull();
    expect(out.resync).toBeNull();
    expect(out.publish).toEqual({
      dataType: 'orderbook',
      venue: 'binance_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTCUSDT',
      eventTime: 10_108,
      receiveTime: 20_108,
      lastUpdateId: 108,
      bestBidPrice: '100',
      bestAskPrice: '102',
      bids: [['100', '1'], ['99', '5']],
      asks: [['102', '2']],
    });
    expect(sync.stats).toMatchObject({ applied: 2, skipped: 1, buffered: 0, resyncs: 0, gaps: 0, lastUpdateId: 108 });

    const live = sync.onMessage(diff(109, 109, [['100.5', '1']]), 500);
    expect(live.publish?.bids[0]).toEqual(['100.5', '1']);
    expect(live.publish?.lastUpdateId).toBe(109);
  });

  it('publishes the snapshot itself when every buffered update is stale, and bridges with the next live one', () => {
    const sync = restSync();
    sync.onMessage(diff(101, 103), 0);
    const out = sync.onSnapshot(restSnapshot(105, [['100', '1']], [['101', '1']]), 0);
    expect(out.publish?.lastUpdateId).toBe(105);
    expect(out.publish?.eventTime).toBe(5_000);
    expect(sync.onMessage(diff(104, 107, [['100', '2']]), 200).publish?.bids).toEqual([['100', '2']]);
    expect(sync.onMessage(diff(108, 108, [['99', '2']]), 400).publish?.lastUpdateId).toBe(108);
  });

  it('keeps only the last few seconds of updates while its request waits its turn, and every update once it has left', () => {
    const sync = restSync();
    /** Update n, received at n seconds. */
    const at = (n: number) => message({ firstUpdateId: n, lastUpdateId: n, bids: [['99', String(n)]], eventTime: n * 1000, receiveTime: n * 1000 });
    for (let n = 1; n <= 20; n++) sync.onMessage(at(n), n * 1000);
    // Received at 20 s: those of the last 5 s (15..20) stay.
    expect(sync.stats.buffered).toBe(1 + SNAPSHOT_WAIT_KEEP_MS / 1000);
    sync.onSnapshotRequestSent(21_000);
    for (let n = 21; n <= 40; n++) sync.onMessage(at(n), n * 1000);
    // The request left at 21 s: what came since stays, however long the answer takes.
    expect(sync.stats.buffered).toBe(40 - 16 + 1);
    const out = sync.onSnapshot(restSnapshot(18, [['100', '1']], [['101', '1']]), 40_000);
    expect(out.publish?.lastUpdateId).toBe(40);
    expect(sync.stats).toMatchObject({ staleSnapshots: 0, gaps: 0, buffered: 0 });
  });

  it('fetches again, without a gap, a snapshot older than the updates a waiting book kept', () => {
    const sync = restSync();
    const at = (n: number) => message({ firstUpdateId: n, lastUpdateId: n, eventTime: n * 1000, receiveTime: n * 1000 });
    for (let n = 1; n <= 20; n++) sync.onMessage(at(n), n * 1000);
    sync.onSnapshotRequestSent(20_000);
    // A venue answering from a cache older than the margin: the updates after it were dropped.
    expect(sync.onSnapshot(restSnapshot(3, [['100', '1']], [['101', '1']]), 20_500)).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: 'stale_snapshot' });
    sync.onSnapshotRequestSent(20_600);
    expect(sync.onSnapshot(restSnapshot(19, [['100', '1']], [['101', '1']]), 21_000).publish?.lastUpdateId).toBe(20);
  });

  it('fetches a newer snapshot, without a gap record, when the snapshot is older than the buffered stream', () => {
    const sync = restSync();
    sync.onMessage(diff(110, 112, [['99', '1']]), 0);
    sync.onMessage(diff(113, 114, [['98', '1']]), 0);
    const stale = sync.onSnapshot(restSnapshot(105, [['100', '1']], [['101', '1']]), 0);
    expect(stale).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: 'stale_snapshot' });
    expect(sync.state).toBe('awaiting_snapshot');
    expect(sync.stats).toMatchObject({ staleSnapshots: 1, resyncs: 1, gaps: 0, buffered: 2 });

    const fresh = sync.onSnapshot(restSnapshot(111, [['100', '1']], [['101', '1']]), 0);
    expect(fresh.publish?.lastUpdateId).toBe(114);
    expect(fresh.publish?.bids).toEqual([['100', '1'], ['99', '1'], ['98', '1']]);
  });

  it('records a gap in the stream, not a stale snapshot, when the update after one already in the snapshot does not chain', () => {
    // The stream lost 107..109 after the snapshot (106) was taken: refetching alone would hide it.
    const sync = restSync();
    sync.onMessage(diff(105, 106), 0);
    expect(sync.onSnapshot(restSnapshot(106, [['100', '1']], [['101', '1']]), 0).publish?.lastUpdateId).toBe(106);
    const out = sync.onMessage(diff(110, 111, [['99', '1']]), 100);
    expect(out).toMatchObject({ publish: null, resync: 'rest_snapshot', reason: 'sequence_gap', gap: { reason: 'sequence_gap', detail: 'expected U 107, got 110' } });
    expect(sync.stats).toMatchObject({ gaps: 1, staleSnapshots: 0, buffered: 1 });

    // The same holds inside the buffer: 101..103 is in the snapshot, 108 does not follow it.
    const buffered = restSync();
    buffered.onMessage(diff(101, 103), 0);
    buffered.onMessage(diff(108, 109), 0);
    expect(buffered.onSnapshot(restSnapshot(105, [['100', '1']], [['101', '1']]), 0)).toMatchObject({ reason: 'sequence_gap', gap: { reason: 'sequence_gap' } });

    // An update that chains with the skipped one but still does not bridge: the snapshot is stale, no gap.
    const stale = restSync({ rules: { ...spotRules, firstAfterSnapshot: (id, m) => (m.lastUpdateId! <= id ? { kind: 'skip' } : { kind: 'gap', detail: 'too old' }) } });
    stale.onMessage(diff(101, 103), 0);
    stale.onMessage(diff(104, 106), 0);
    expect(stale.onSnapshot(restSnapshot(103, [['100', '1']], [['101', '1']]), 0)).toMatchObject({ gap: null, reason: 'stale_snapshot' });
  });

  it('on a sequence gap emits one gap record, resyncs, buffers the revealing update and recovers', () => {
    const sync = syncedRestBook({ minPublishIntervalMs: 10_000 });
    const out = sync.onMessage(diff(110, 112, [['97', '1']]), 1_000);
    expect(out.publish).toBeNull();
    expect(out.resync).toBe('rest_snapshot');
    expect(out.reason).toBe('sequence_gap');
    expect(out.gap).toEqual({
      dataType: 'orderbook_gap',
      venue: 'binance_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTCUSDT',
      eventTime: 10_112,
      receiveTime: 1_000,
      reason: 'sequence_gap',
      lastUpdateId: 106,
      detail: 'expected U 107, got 110',
    });
    expect(sync.state).toBe('awaiting_snapshot');
    expect(sync.stats).toMatchObject({ gaps: 1, resyncs: 1, buffered: 1, bidLevels: 0, askLevels: 0, lastUpdateId: null });

    // Still resyncing: no second request, no second gap record, even when the snapshot fails.
    expect(sync.onMessage(diff(113, 113, [['96', '1']]), 1_010)).toEqual({ publish: null, gap: null, resync: null, reason: null });
    expect(sync.onSnapshotFailed('HTTP 503', 1_020)).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: 'snapshot_failed' });

    // The first publish after the resync is immediate, although the last one was less than 10 s ago.
    const recovered = sync.onSnapshot(restSnapshot(111, [['100', '1']], [['101', '1']]), 1_030);
    expect(recovered.publish?.lastUpdateId).toBe(113);
    expect(recovered.publish?.bids).toEqual([['100', '1'], ['97', '1'], ['96', '1']]);
    expect(sync.state).toBe('synced');

    // A later gap opens a new record.
    expect(sync.onMessage(diff(120, 121), 2_000).gap?.lastUpdateId).toBe(113);
    expect(sync.stats.gaps).toBe(2);
  });

  it('keeps the updates after a failing one buffered when sync is lost while draining the buffer', () => {
    const sync = restSync();
    sync.onMessage(diff(104, 106, [['99', '1']]), 0);
    sync.onMessage(diff(107, 107, [], [['99.5', '1']]), 0);
    sync.onMessage(diff(108, 108, [], [['99.5', '0']]), 0);
    const out = sync.onSnapshot(restSnapshot(105, [['100', '1']], [['101', '1']]), 0);
    expect(out.gap?.reason).toBe('crossed_book');
    expect(out.publish).toBeNull();
    expect(sync.stats.buffered).toBe(2);
    // A snapshot that already contains both buffered updates skips them and syncs.
    expect(sync.onSnapshot(restSnapshot(108, [['99', '1']], [['101', '1']]), 0).publish?.lastUpdateId).toBe(108);
  });

  it('restarts the buffer and asks again when the snapshot takes too long', () => {
    const sync = restSync({ maxBufferedUpdates: 3 });
    expect(sync.onMessage(diff(101, 101), 0).resync).toBe('rest_snapshot');
    expect(sync.onMessage(diff(102, 102), 0).resync).toBeNull();
    expect(sync.onMessage(diff(103, 103), 0).resync).toBeNull();
    expect(sync.onMessage(diff(104, 104, [['99', '1']]), 0)).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: 'buffer_overflow' });
    expect(sync.stats).toMatchObject({ buffered: 1, resyncs: 1, gaps: 0 });
    expect(sync.onSnapshot(restSnapshot(103, [['100', '1']], [['101', '1']]), 0).publish?.lastUpdateId).toBe(104);
  });

  it('leaves a disconnect gap only for a synced book and asks for a snapshot with the first update after it', () => {
    const fresh = restSync();
    fresh.onMessage(diff(101, 101), 0);
    expect(fresh.onDisconnect(50).gap).toBeNull();

    const sync = syncedRestBook();
    const out = sync.onDisconnect(3_000);
    expect(out.resync).toBeNull();
    expect(out.gap).toMatchObject({ reason: 'disconnect', eventTime: 3_000, receiveTime: 3_000, lastUpdateId: 106 });
    expect(sync.state).toBe('awaiting_snapshot');
    expect(sync.onDisconnect(3_100).gap).toBeNull();
    expect(sync.onMessage(diff(200, 201), 4_000)).toEqual({ publish: null, gap: null, resync: 'rest_snapshot', reason: null });
    expect(sync.stats.gaps).toBe(1);
  });

  it('publishes the change the throttle held back before the disconnect gap, not after it is gone', () => {
    const sync = syncedRestBook({ minPublishIntervalMs: 1000 });
    expect(sync.onMessage(diff(107, 107, [['100', '4']]), 10).publish).toBeNull();
    const out = sync.onDisconnect(20);
    expect(out.publish).toMatchObject({ lastUpdateId: 107, bids: [['100', '4'], ['99', '3']] });
    expect(out.gap).toMatchObject({ reason: 'disconnect', lastUpdateId: 107 });
    // Nothing held back: the gap alone.
    expect(syncedRestBook().onDisconnect(30).publish).toBeNull();
  });

  it('records a failed first snapshot once', () => {
    const sync = restSync();
    sync.onMessage(diff(101, 101), 0);
    const out = sync.onSnapshotFailed('HTTP 429', 700);
    expect(out.resync).toBe('rest_snapshot');
    expect(out.gap).toMatchObject({ reason: 'snapshot_failed', detail: 'HTTP 429', eventTime: 700, lastUpdateId: 0 });
    expect(sync.onSnapshotFailed('HTTP 429', 800).gap).toBeNull();
  });

  it('ignores a snapshot that arrives while the book is synced', () => {
    const sync = syncedRestBook();
    expect(sync.onSnapshot(restSnapshot(200, [['1', '1']], [['2', '1']]), 0)).toEqual({ publish: null, gap: null, resync: null, reason: null });
    expect(sync.stats.lastUpdateId).toBe(106);
  });
});

describe('BookSync, crossed book and throttle', () => {
  it('never publishes a crossed book, not even from tick()', () => {
    const sync = syncedRestBook();
    const out = sync.onMessage(diff(107, 107, [['101.5', '1']]), 1_000);
    expect(out.publish).toBeNull();
    expect(out.gap).toMatchObject({ reason: 'crossed_book', detail: 'best bid 101.5 >= best ask 101', lastUpdateId: 107 });
    expect(out.resync).toBe('rest_snapshot');
    expect(sync.tick(10_000)).toBeNull();
  });

  it('publishes at most once per interval and lets tick() publish the held-back change', () => {
    const sync = syncedRestBook({ minPublishIntervalMs: 100 });
    // syncedRestBook published at 0.
    expect(sync.onMessage(diff(107, 107, [['100', '4']]), 10).publish).toBeNull();
    expect(sync.onMessage(diff(108, 108, [['100', '5']]), 20).publish).toBeNull();
    expect(sync.tick(99)).toBeNull();
    const trailing = sync.tick(100);
    expect(trailing?.lastUpdateId).toBe(108);
    expect(trailing?.bids[0]).toEqual(['100', '5']);
    expect(trailing?.eventTime).toBe(10_108);
    expect(sync.tick(500)).toBeNull();
    expect(sync.onMessage(diff(109, 109, [['100', '6']]), 200).publish?.lastUpdateId).toBe(109);
  });

  it('publishes at the new interval once the collector thins or restores snapshots', () => {
    const sync = syncedRestBook({ minPublishIntervalMs: 100 });
    sync.setPublishInterval(1000);
    expect(sync.onMessage(diff(107, 107, [['100', '4']]), 150).publish).toBeNull();
    expect(sync.tick(999)).toBeNull();
    expect(sync.tick(1000)?.lastUpdateId).toBe(107);
    sync.setPublishInterval(100);
    expect(sync.onMessage(diff(108, 108, [['100', '5']]), 1100).publish?.lastUpdateId).toBe(108);
  });

  it('publishes only the configured depth, best first', () => {
    const sync = restSync({ depth: 2 });
    sync.onMessage(diff(101, 101), 0);
    const out = sync.onSnapshot(restSnapshot(101, [['97', '1'], ['99', '1'], ['98', '1']], [['103', '1'], ['101', '1'], ['102', '1']]), 0);
    expect(out.publish).toMatchObject({ bids: [['99', '1'], ['98', '1']], asks: [['101', '1'], ['102', '1']] });
  });
});

describe('BookSync, stream snapshot source', () => {
  const base = { venue: 'okx_spot', symbol: 'BTC-USDT', instrument: 'BTC-USDT' } as const;
  const push = (action: 'snapshot' | 'update', prev: number, seq: number, bids: PriceLevel[], asks: PriceLevel[] = []): BookMessage =>
    message({ ...base, action, prevUpdateId: prev, lastUpdateId: seq, bids, asks, eventTime: seq, receiveTime: seq });

  function streamSync(): BookSync {
    return new BookSync({ rules: chainRules, source: 'stream', depth: 5, minPublishIntervalMs: 0 });
  }

  it('drops updates before the first snapshot, then chains, resubscribes on a gap and takes the next snapshot', () => {
    const sync = streamSync();
    expect(sync.onMessage(push('update', 9, 10, [['1', '1']]), 0)).toEqual({ publish: null, gap: null, resync: null, reason: null });
    expect(sync.stats.skipped).toBe(1);

    expect(sync.onMessage(push('snapshot', -1, 20, [['100', '1']], [['101', '1']]), 1).publish?.lastUpdateId).toBe(20);
    expect(sync.onMessage(push('update', 20, 21, [['100.5', '1']]), 2).publish?.bestBidPrice).toBe('100.5');

    const gap = sync.onMessage(push('update', 23, 24, [['99', '1']]), 3);
    expect(gap.resync).toBe('resubscribe');
    expect(gap.gap).toMatchObject({ reason: 'sequence_gap', lastUpdateId: 21, detail: 'expected prev 21, got 23' });
    expect(sync.stats.buffered).toBe(0);
    expect(sync.onMessage(push('update', 24, 25, [['99', '1']]), 4)).toEqual({ publish: null, gap: null, resync: null, reason: null });

    const again = sync.onMessage(push('snapshot', -1, 30, [['98', '1']], [['99', '1']]), 5);
    expect(again.publish).toMatchObject({ lastUpdateId: 30, bids: [['98', '1']], asks: [['99', '1']] });
  });

  it('replaces the book when the venue resends a snapshot while synced', () => {
    const sync = streamSync();
    sync.onMessage(push('snapshot', -1, 20, [['100', '1']], [['101', '1']]), 0);
    const out = sync.onMessage(push('snapshot', -1, 5, [['50', '1']], [['51', '1']]), 1);
    expect(out.gap).toBeNull();
    expect(out.publish).toMatchObject({ lastUpdateId: 5, bids: [['50', '1']], asks: [['51', '1']] });
    expect(sync.onMessage(push('update', 5, 6, [['50', '2']]), 2).publish?.bids).toEqual([['50', '2']]);
  });

  it('applies messages without a sequence id unchecked and publishes lastUpdateId 0', () => {
    const sync = streamSync();
    sync.onMessage(message({ ...base, action: 'snapshot', bids: [['100', '1']], asks: [['101', '1']] }), 0);
    const out = sync.onMessage(message({ ...base, prevUpdateId: 77, bids: [['100', '2']] }), 1);
    expect(out.publish).toMatchObject({ lastUpdateId: 0, bids: [['100', '2']] });
  });
});

interface OkxBooksFrame {
  action: 'snapshot' | 'update';
  data: [{ bids: string[][]; asks: string[][]; ts: string; checksum: number }];
}

/** okx_spot/books_ws.jsonl as BookMessages, by hand: [px, sz, "0", orders] -> [px, sz]; no seqId in 2022. */
function okxFixtureMessages(): BookMessage[] {
  const level = (l: string[]): PriceLevel => [l[0]!, l[1]!];
  return (fixtureJson('okx_spot', 'books_ws.jsonl') as OkxBooksFrame[]).map((frame) => {
    const d = frame.data[0];
    return message({
      venue: 'okx_spot',
      instrument: 'BTC-USDT',
      action: frame.action,
      checksum: d.checksum,
      bids: d.bids.map(level),
      asks: d.asks.map(level),
      eventTime: Number(d.ts),
      receiveTime: Number(d.ts),
    });
  });
}

describe('BookSync, OKX checksum on the captured BTC-USDT book', () => {
  function okxSync(): BookSync {
    return new BookSync({ rules: chainRules, source: 'stream', checksum: okxChecksum, depth: 25, minPublishIntervalMs: 0 });
  }

  it('verifies the checksum of the snapshot and of all 68 updates', () => {
    const sync = okxSync();
    const messages = okxFixtureMessages();
    expect(messages).toHaveLength(69);
    for (const m of messages) {
      const out = sync.onMessage(m, m.receiveTime);
      expect(out.gap).toBeNull();
      expect(out.publish).not.toBeNull();
    }
    expect(sync.stats).toMatchObject({ applied: 68, gaps: 0, resyncs: 0 });
  });

  it('resyncs on a wrong checksum', () => {
    const sync = okxSync();
    const [snapshot, update] = okxFixtureMessages();
    sync.onMessage(snapshot!, 0);
    const out = sync.onMessage({ ...update!, checksum: update!.checksum! + 1 }, 1);
    expect(out.publish).toBeNull();
    expect(out.resync).toBe('resubscribe');
    expect(out.gap?.reason).toBe('checksum_mismatch');
    expect(out.gap?.detail).toBe(`checksum ${update!.checksum! + 1} from venue, ${update!.checksum} computed`);
  });

  it('never treats checksum 0 as a mismatch', () => {
    const sync = okxSync();
    const [snapshot, , second] = okxFixtureMessages();
    sync.onMessage({ ...snapshot!, checksum: 0 }, 0);
    // Skipping update 1 leaves a book whose real checksum no longer matches; 0 means "nothing to verify".
    const out = sync.onMessage({ ...second!, checksum: 0 }, 1);
    expect(out.gap).toBeNull();
    expect(out.publish).not.toBeNull();
    expect(sync.onMessage(second!, 2).gap?.reason).toBe('checksum_mismatch');
  });
});

interface BinanceDepthFrame {
  data: { E: number; s: string; U: number; u: number; b: [string, string][]; a: [string, string][] };
}

interface BinanceDepthSnapshot {
  lastUpdateId: number;
  bids: [string, string][];
  asks: [string, string][];
}

describe('BookSync on the captured Binance spot NKNUSDT stream', () => {
  const snapshotBody = fixtureJson('binance_spot', 'depth_snapshot_rest.jsonl')[0] as BinanceDepthSnapshot;
  const updates = (fixtureJson('binance_spot', 'depth_update.jsonl') as BinanceDepthFrame[])
    .map((frame) => frame.data)
    .filter((d) => d.s === 'NKNUSDT');
  const nkn = { symbol: 'NKN-USDT', instrument: 'NKNUSDT' };
  const snapshot = message({ ...nkn, action: 'snapshot', lastUpdateId: snapshotBody.lastUpdateId, bids: snapshotBody.bids, asks: snapshotBody.asks, eventTime: 1, receiveTime: 1 });
  const diffs = updates.map((d) => message({ ...nkn, firstUpdateId: d.U, lastUpdateId: d.u, bids: d.b, asks: d.a, eventTime: d.E, receiveTime: d.E }));

  /** Independent recomputation: a price-keyed map, applying every update newer than the snapshot. */
  function expectedBook(): { bids: PriceLevel[]; asks: PriceLevel[] } {
    const bids = new Map<number, PriceLevel>();
    const asks = new Map<number, PriceLevel>();
    const set = (side: Map<number, PriceLevel>, [px, qty]: PriceLevel): void => {
      if (Number(qty) === 0) side.delete(Number(px));
      else side.set(Number(px), [px, qty]);
    };
    for (const l of snapshotBody.bids) set(bids, l);
    for (const l of snapshotBody.asks) set(asks, l);
    for (const d of updates.filter((u) => u.u > snapshotBody.lastUpdateId)) {
      for (const l of d.b) set(bids, l);
      for (const l of d.a) set(asks, l);
    }
    const sorted = (side: Map<number, PriceLevel>, dir: number): PriceLevel[] =>
      [...side.entries()].sort((x, y) => dir * (x[0] - y[0])).map(([, l]) => l);
    return { bids: sorted(bids, -1), asks: sorted(asks, 1) };
  }

  it('drops the stale first update, bridges with the second and ends on the recomputed book', () => {
    expect(updates).toHaveLength(30);
    const sync = new BookSync({ rules: spotRules, source: 'rest', depth: 5000, minPublishIntervalMs: 0 });
    expect(sync.onMessage(diffs[0]!, 0).resync).toBe('rest_snapshot');
    sync.onMessage(diffs[1]!, 0);
    sync.onMessage(diffs[2]!, 0);
    let last = sync.onSnapshot(snapshot, 0).publish;
    expect(sync.stats).toMatchObject({ skipped: 1, applied: 2 });
    for (const m of diffs.slice(3)) {
      const out = sync.onMessage(m, m.receiveTime);
      expect(out.gap).toBeNull();
      last = out.publish ?? last;
    }
    expect(sync.stats).toMatchObject({ skipped: 1, applied: 29, gaps: 0, lastUpdateId: updates[29]!.u });
    const expected = expectedBook();
    expect(last?.lastUpdateId).toBe(updates[29]!.u);
    expect(last?.bids).toEqual(expected.bids);
    expect(last?.asks).toEqual(expected.asks);
    expect(last?.bestBidPrice).toBe(expected.bids[0]![0]);
    expect(Number(last?.bestBidPrice)).toBeLessThan(Number(last?.bestAskPrice));
  });

  it('detects a gap when an update is lost from the captured stream', () => {
    const sync = new BookSync({ rules: spotRules, source: 'rest', depth: 10, minPublishIntervalMs: 0 });
    sync.onMessage(diffs[0]!, 0);
    sync.onSnapshot(snapshot, 0);
    sync.onMessage(diffs[1]!, 0);
    const out = sync.onMessage(diffs[3]!, 0);
    expect(out.gap).toMatchObject({ reason: 'sequence_gap', symbol: 'NKN-USDT', lastUpdateId: updates[1]!.u, eventTime: updates[3]!.E });
    expect(out.gap?.detail).toBe(`expected U ${updates[1]!.u + 1}, got ${updates[3]!.U}`);
  });
});
