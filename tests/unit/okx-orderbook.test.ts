import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { OKX_CHECKSUM_DEPTH, okxChecksum, okxSequenceRules } from '../../src/lib/exchanges/okx.js';
import { okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { normalizeAll, type BookSupport, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import { BookSync, type BookSyncOutput } from '../../src/lib/orderbook/sync.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import type { PriceLevel } from '../../src/lib/records.js';
import { FIXTURES_DIR } from '../helpers/fixtures.js';

const FIXTURES = FIXTURES_DIR;
const lines = (path: string): string[] =>
  readFileSync(`${FIXTURES}/${path}`, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);

const derivatives = okxDerivatives(['UNI-USD-SWAP']);

function bookMessages(adapter: VenueAdapter, frames: readonly string[]): BookMessage[] {
  return frames.flatMap((frame, i) => normalizeAll(adapter, frame, 1_652_459_000_000 + i).books);
}

function support(adapter: VenueAdapter): BookSupport {
  if (adapter.book === null) throw new Error(`${adapter.venue} keeps no books`);
  return adapter.book;
}

function newSync(adapter: VenueAdapter): BookSync {
  const { rules, source, checksum } = support(adapter);
  return new BookSync({ rules, source, checksum, depth: 50, minPublishIntervalMs: 0 });
}

/** A deliberately naive book (maps and a full sort per message) to check the checksums independently. */
class NaiveBook {
  private readonly bids = new Map<string, string>();
  private readonly asks = new Map<string, string>();

  apply(m: BookMessage): void {
    if (m.action === 'snapshot') {
      this.bids.clear();
      this.asks.clear();
    }
    for (const [side, levels] of [
      [this.bids, m.bids],
      [this.asks, m.asks],
    ] as const) {
      for (const [px, sz] of levels) {
        if (Number(sz) === 0) side.delete(px);
        else side.set(px, sz);
      }
    }
  }

  /** Every level, best first. */
  levels(): { bids: PriceLevel[]; asks: PriceLevel[] } {
    const sorted = (side: Map<string, string>, dir: 1 | -1): PriceLevel[] => [...side.entries()].sort((a, b) => dir * (Number(a[0]) - Number(b[0])));
    return { bids: sorted(this.bids, -1), asks: sorted(this.asks, 1) };
  }

  top(): { bids: PriceLevel[]; asks: PriceLevel[] } {
    const { bids, asks } = this.levels();
    return { bids: bids.slice(0, OKX_CHECKSUM_DEPTH), asks: asks.slice(0, OKX_CHECKSUM_DEPTH) };
  }

  checksum(): number {
    const { bids, asks } = this.top();
    return okxChecksum(bids, asks);
  }
}

const NOTHING: BookSyncOutput = { publish: null, gap: null, resync: null, reason: null };

describe('okxChecksum', () => {
  it("reproduces the docs' worked example (check string 3366.1:7:3366.8:9:3366:6:3368:8)", () => {
    const [line] = lines('okx_spot/books_checksum_doc.jsonl');
    const book = JSON.parse(line as string) as { bids: string[][]; asks: string[][] };
    const levels = (side: string[][]): PriceLevel[] => side.map((l) => [l[0] as string, l[1] as string]);
    expect(okxChecksum(levels(book.bids), levels(book.asks))).toBe(-1881014294);
  });

  it("the documented snapshot's checksum is illustrative: its levels give -2102840145, not -855196043", () => {
    const [snapshot] = bookMessages(okxSpot, lines('okx_spot/books_ws_doc.jsonl'));
    expect(snapshot?.checksum).toBe(-855196043);
    expect(okxChecksum(snapshot?.bids ?? [], snapshot?.asks ?? [])).toBe(-2102840145);
  });

  it('skips a side once it has run out', () => {
    // bid:size:ask:size for the first level, then the remaining bids alone.
    const bids: PriceLevel[] = [
      ['3', '1'],
      ['2', '1'],
    ];
    const asks: PriceLevel[] = [['4', '1']];
    expect(okxChecksum(bids, asks)).toBe(crc32('3:1:4:1:2:1') | 0);
    expect(okxChecksum(asks, bids)).toBe(crc32('4:1:3:1:2:1') | 0);
  });

  for (const [venue, adapter, file, count] of [
    ['okx_spot', okxSpot, 'okx_spot/books_ws.jsonl', 69],
    ['okx_derivatives', derivatives, 'okx_derivatives/books_ws.jsonl', 65],
  ] as const) {
    it(`${venue}: matches the checksum of the snapshot and of every update of the capture (${count} messages)`, () => {
      const messages = bookMessages(adapter, lines(file));
      expect(messages).toHaveLength(count);
      const book = new NaiveBook();
      for (const m of messages) {
        book.apply(m);
        expect(m.checksum).not.toBe(0);
        expect(book.checksum()).toBe(m.checksum);
      }
    });
  }
});

describe('BookSync on the captured OKX books', () => {
  for (const [venue, adapter, file] of [
    ['okx_spot', okxSpot, 'okx_spot/books_ws.jsonl'],
    ['okx_derivatives', derivatives, 'okx_derivatives/books_ws.jsonl'],
  ] as const) {
    it(`${venue}: applies the whole capture with every checksum verified, never crossed`, () => {
      const messages = bookMessages(adapter, lines(file));
      const sync = newSync(adapter);
      const naive = new NaiveBook();
      const published = messages.map((m, i) => {
        const out = sync.onMessage(m, 1000 + i);
        naive.apply(m);
        expect(out.gap).toBeNull();
        expect(out.resync).toBeNull();
        return out.publish;
      });
      expect(sync.state).toBe('synced');
      expect(sync.stats).toMatchObject({ applied: messages.length - 1, resyncs: 0, gaps: 0 });
      const last = published.findLast((p) => p !== null);
      const top = naive.top();
      expect(last?.bids.slice(0, OKX_CHECKSUM_DEPTH)).toEqual(top.bids);
      expect(last?.asks.slice(0, OKX_CHECKSUM_DEPTH)).toEqual(top.asks);
      expect(Number(last?.bestBidPrice)).toBeLessThan(Number(last?.bestAskPrice));
    });
  }

  it('a tampered level in an update: checksum_mismatch gap, resubscribe, and recovery on the next snapshot', () => {
    const frames = lines('okx_spot/books_ws.jsonl');
    const messages = bookMessages(okxSpot, frames);
    const naive = new NaiveBook();
    naive.apply(messages[0] as BookMessage);
    // The first update that changes a level within the top 25 after it is applied.
    let at = -1;
    for (let i = 1; i < messages.length && at < 0; i++) {
      const m = messages[i] as BookMessage;
      naive.apply(m);
      const top = naive.top();
      const inTop = (levels: readonly PriceLevel[], side: readonly PriceLevel[]) => levels.some(([px, sz]) => Number(sz) !== 0 && side.some(([p]) => p === px));
      if (inTop(m.bids, top.bids) || inTop(m.asks, top.asks)) at = i;
    }
    expect(at).toBeGreaterThan(0);
    const truth = naive.levels();
    const target = messages[at] as BookMessage;
    const changed = (levels: readonly PriceLevel[]) => levels.map(([px, sz]): PriceLevel => [px, Number(sz) === 0 ? sz : `${sz}1`]);
    const tampered: BookMessage = { ...target, bids: changed(target.bids), asks: changed(target.asks) };

    const sync = newSync(okxSpot);
    for (let i = 0; i < at; i++) expect(sync.onMessage(messages[i] as BookMessage, i).gap).toBeNull();
    const out = sync.onMessage(tampered, at);
    expect(out.resync).toBe('resubscribe');
    expect(out.publish).toBeNull();
    expect(out.gap).toMatchObject({ dataType: 'orderbook_gap', reason: 'checksum_mismatch', venue: 'okx_spot', symbol: 'BTC-USDT', instrument: 'BTC-USDT' });
    expect(out.gap?.detail).toContain(String(target.checksum));
    expect(sync.state).toBe('awaiting_snapshot');
    expect(support(okxSpot).resubscribe?.('BTC-USDT')).toHaveLength(2);

    // Until the venue pushes the new snapshot, updates are not applied.
    expect(sync.onMessage(messages[at + 1] as BookMessage, at + 1)).toEqual(NOTHING);

    // The snapshot OKX pushes after resubscribing: the true book at that point, with its checksum.
    const snapshot: BookMessage = { ...target, action: 'snapshot', bids: truth.bids, asks: truth.asks, checksum: target.checksum };
    const resynced = sync.onMessage(snapshot, at + 2);
    expect(resynced.gap).toBeNull();
    expect(resynced.publish).not.toBeNull();
    expect(sync.state).toBe('synced');
    // The stream continues from there, every checksum verified again.
    for (let i = at + 1; i < messages.length; i++) {
      expect(sync.onMessage(messages[i] as BookMessage, i + 3)).toMatchObject({ gap: null, resync: null });
    }
    expect(sync.stats.gaps).toBe(1);
  });

  it('checksum 0 (OKX since 2026-06-23) is never a mismatch', () => {
    const [snapshot, ...updates] = bookMessages(okxSpot, lines('okx_spot/books_ws.jsonl'));
    const sync = newSync(okxSpot);
    const zeroed = (m: BookMessage): BookMessage => ({ ...m, checksum: 0, bids: m.bids.map(([px, sz]): PriceLevel => [px, Number(sz) === 0 ? sz : `${sz}1`]) });
    expect(sync.onMessage(zeroed(snapshot as BookMessage), 0).gap).toBeNull();
    for (const m of updates) expect(sync.onMessage(zeroed(m), 1).gap).toBeNull();
    expect(sync.state).toBe('synced');
  });
});

describe('OKX seqId rules', () => {
  // The documented snapshot (prevSeqId -1, seqId 123456); its illustrative checksum is replaced by 0 so
  // that only the sequence is under test.
  const [docFrame] = lines('okx_spot/books_ws_doc.jsonl');
  const docSnapshot = bookMessages(okxSpot, [(docFrame as string).replace('"checksum":-855196043', '"checksum":0')])[0] as BookMessage;
  const update = (prevSeqId: number, seqId: number, bids: PriceLevel[] = [], asks: PriceLevel[] = []): BookMessage => ({
    ...docSnapshot,
    action: 'update',
    prevUpdateId: prevSeqId,
    lastUpdateId: seqId,
    checksum: 0,
    bids,
    asks,
  });

  it('the documented snapshot opens the chain at its seqId', () => {
    expect(docSnapshot).toMatchObject({ action: 'snapshot', prevUpdateId: -1, lastUpdateId: 123456, checksum: 0 });
    const sync = newSync(okxSpot);
    expect(sync.onMessage(docSnapshot, 0).publish).toMatchObject({ lastUpdateId: 123456, bestBidPrice: '8476.97', bestAskPrice: '8476.98' });
  });

  it('verdicts: chained, keepalive, maintenance reset, repeat, gap', () => {
    const rules = okxSequenceRules;
    expect(rules.next(123456, update(123456, 123460))).toEqual({ kind: 'apply' });
    expect(rules.next(123460, update(123460, 123460))).toEqual({ kind: 'apply' });
    expect(rules.next(123460, update(123460, 5))).toEqual({ kind: 'apply' });
    expect(rules.next(123470, update(123470, 5))).toEqual({ kind: 'apply' });
    expect(rules.next(123460, update(123456, 123460))).toEqual({ kind: 'skip' });
    expect(rules.next(123460, update(123450, 123455))).toEqual({ kind: 'skip' });
    expect(rules.next(123460, update(123465, 123470))).toEqual({ kind: 'gap', detail: 'expected prevSeqId 123460, got prevSeqId 123465 (seqId 123470)' });
    expect(rules.next(123460, { ...update(0, 123470), prevUpdateId: null })).toMatchObject({ kind: 'gap' });
    // The 2022 captures carry no sequence at all.
    expect(rules.next(123460, { ...update(0, 0), lastUpdateId: null, prevUpdateId: null })).toEqual({ kind: 'apply' });
    // Stream books are positioned by the pushed snapshot: the first update chains like any other.
    expect(rules.firstAfterSnapshot(123456, update(123456, 123460))).toEqual({ kind: 'apply' });
    expect(rules.firstAfterSnapshot(123456, update(123458, 123460))).toMatchObject({ kind: 'gap' });
  });

  it('through BookSync: update, keepalive, repeat, maintenance reset, then a gap that resubscribes', () => {
    const sync = newSync(okxSpot);
    sync.onMessage(docSnapshot, 0);
    const changed = sync.onMessage(update(123456, 123460, [['8476.5', '3']]), 1);
    expect(changed.publish).toMatchObject({ lastUpdateId: 123460, bestBidPrice: '8476.97' });
    expect(changed.publish?.bids[1]).toEqual(['8476.5', '3']);
    // The keepalive changes nothing: applied, nothing new to publish.
    expect(sync.onMessage(update(123460, 123460), 2)).toEqual(NOTHING);
    // A repeat of an applied message is skipped.
    expect(sync.onMessage(update(123456, 123460, [['8476.5', '99']]), 3)).toEqual(NOTHING);
    expect(sync.stats).toMatchObject({ applied: 2, skipped: 1, lastUpdateId: 123460 });
    // Maintenance: the sequence restarts lower, and continues from there.
    expect(sync.onMessage(update(123460, 7, [], [['8477', '8']]), 4).publish).toMatchObject({ lastUpdateId: 7 });
    expect(sync.onMessage(update(7, 9, [], [['8477', '0']]), 5).publish).toMatchObject({ lastUpdateId: 9 });
    const gap = sync.onMessage(update(12, 15), 6);
    expect(gap.resync).toBe('resubscribe');
    expect(gap.gap).toMatchObject({ reason: 'sequence_gap', lastUpdateId: 9, detail: 'expected prevSeqId 9, got prevSeqId 12 (seqId 15)' });
    // The snapshot pushed after resubscribing restores the book.
    expect(sync.onMessage({ ...docSnapshot, lastUpdateId: 20 }, 7).publish).toMatchObject({ lastUpdateId: 20 });
    expect(sync.stats).toMatchObject({ gaps: 1, resyncs: 1 });
  });

  it('a crossed book is never published: crossed_book gap and resubscribe', () => {
    const sync = newSync(okxSpot);
    sync.onMessage(docSnapshot, 0);
    const out = sync.onMessage(update(123456, 123457, [['8480', '1']]), 1);
    expect(out.publish).toBeNull();
    expect(out.resync).toBe('resubscribe');
    expect(out.gap).toMatchObject({ reason: 'crossed_book', detail: 'best bid 8480 >= best ask 8476.98' });
    expect(sync.tick(10_000)).toBeNull();
  });

  it('a crossed real book: the captured snapshot with a bid above its best ask', () => {
    const [snapshot] = bookMessages(okxSpot, lines('okx_spot/books_ws.jsonl'));
    const sync = newSync(okxSpot);
    sync.onMessage(snapshot as BookMessage, 0);
    const crossing: BookMessage = { ...(snapshot as BookMessage), action: 'update', checksum: 0, bids: [['30250', '1']], asks: [] };
    const out = sync.onMessage(crossing, 1);
    expect(out).toMatchObject({ publish: null, resync: 'resubscribe', gap: { reason: 'crossed_book' } });
  });
});
