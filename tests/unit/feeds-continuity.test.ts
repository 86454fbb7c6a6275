import { describe, expect, it } from 'vitest';
import { HOLE_TIME_MARGIN_MS, ID_RESET_AFTER_MS, StreamContinuity, TradeMarkRing, continuityPolicy, type StreamMark } from '../../src/lib/feeds/continuity.js';

const trade = (id: number | string, eventTime: number) => ({ eventTime, id: String(id) });
const at = (eventTime: number) => ({ eventTime, id: null });

describe('StreamContinuity: trades with contiguous ids', () => {
  const contiguous = () => new StreamContinuity({ kind: 'trade', contiguousIds: true });

  it('reports nothing while each id follows the last', () => {
    const c = contiguous();
    for (let i = 1; i <= 100; i++) expect(c.onRecord(trade(i, 1000 + i))).toBeNull();
  });

  it('reports a jump in ids as an id_gap hole with the missing ids and their count', () => {
    const c = contiguous();
    c.onRecord(trade(10, 1000));
    expect(c.onRecord(trade(15, 1500))).toEqual({ fromTime: 1000, toTime: 1500, firstMissingId: '11', lastMissingId: '14', missingCount: 4, cause: 'id_gap', detail: 'trade id 15 followed 10' });
    expect(c.onRecord(trade(16, 1600))).toBeNull();
  });

  it('ignores replays from an overlapping connection', () => {
    const c = contiguous();
    c.onRecord(trade(10, 1000));
    c.onRecord(trade(11, 1100));
    expect(c.onRecord(trade(10, 1000))).toBeNull();
    expect(c.onRecord(trade(12, 1200))).toBeNull();
  });

  it('names the break that caused a jump, and finds no hole when nothing was missed across it', () => {
    const c = contiguous();
    c.onRecord(trade(10, 1000));
    c.onBreak({ cause: 'disconnect', at: 1050, detail: 'connection x ended: closed' });
    expect(c.onRecord(trade(11, 2000))).toBeNull();
    c.onBreak({ cause: 'stall', at: 2100, detail: 'silent' });
    expect(c.onRecord(trade(20, 9000))).toMatchObject({ cause: 'stall', firstMissingId: '12', lastMissingId: '19', missingCount: 8, fromTime: 2000, toTime: 9000 });
  });

  it('keeps the first cause of an outage when more breaks follow before data returns', () => {
    const c = contiguous();
    c.onRecord(trade(1, 1000));
    c.onBreak({ cause: 'stall', at: 1100, detail: 'first' });
    c.onBreak({ cause: 'disconnect', at: 5000, detail: 'second' });
    expect(c.onRecord(trade(5, 6000))).toMatchObject({ cause: 'stall', detail: 'first' });
  });

  it('handles ids beyond 2^53 exactly', () => {
    const c = contiguous();
    c.onRecord(trade('9007199254740993', 1000));
    expect(c.onRecord(trade('9007199254740996', 1001))).toMatchObject({ firstMissingId: '9007199254740994', lastMissingId: '9007199254740995', missingCount: 2 });
  });

  it('restart: resumes from the last stored trade and reports the downtime as collector_down', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: true }, { last: trade(100, 5000), broken: { cause: 'collector_down', at: 5200, detail: 'collector was not running' } });
    expect(c.onRecord(trade(250, 9000))).toEqual({ fromTime: 5000, toTime: 9000, firstMissingId: '101', lastMissingId: '249', missingCount: 149, cause: 'collector_down', detail: 'collector was not running' });
  });

  it('restart that missed nothing (the venue was quiet) records no hole', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: true }, { last: trade(100, 5000), broken: { cause: 'collector_down', at: 5200, detail: '' } });
    expect(c.onRecord(trade(101, 9000))).toBeNull();
    expect(c.broken).toBeNull();
  });

  it('wrap: ids that start over much later are a new sequence, bounded by time across a break', () => {
    const c = contiguous();
    c.onRecord(trade(1_000_000, 1000));
    c.onBreak({ cause: 'disconnect', at: 1100, detail: 'x' });
    const later = 1000 + ID_RESET_AFTER_MS + 1;
    expect(c.onRecord(trade(5, later))).toEqual({ fromTime: 1000, toTime: later, firstMissingId: null, lastMissingId: null, missingCount: null, cause: 'disconnect', detail: 'x' });
    expect(c.onRecord(trade(6, later + 1))).toBeNull();
    expect(c.onRecord(trade(9, later + 2))).toMatchObject({ cause: 'id_gap', missingCount: 2 });
  });
});

describe('StreamContinuity: a break found after the fact', () => {
  it('frames lost on an open connection, noticed after newer trades arrived: the hole lies between the trades around the break', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000), 1010);
    c.onRecord(trade(11, 1100), 1110);
    // A stall from 1200 to 9000: trades 12..49 never arrived; 50 and 51 came before the book showed the gap.
    c.onRecord(trade(50, 9000), 9010);
    c.onRecord(trade(51, 9050), 9060);
    expect(c.onBreak({ cause: 'frames_lost', at: 1150, detail: 'book gap' })).toEqual({
      fromTime: 1100, toTime: 9000, firstMissingId: '12', lastMissingId: '49', missingCount: null, cause: 'frames_lost', detail: 'book gap',
    });
    expect(c.broken).toBeNull();
    expect(c.onRecord(trade(52, 9100), 9110)).toBeNull();
  });

  it('finds no hole when only the book lost an update: the trades around the break, and the next, follow on', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000), 1010);
    c.onRecord(trade(11, 1100), 1110);
    expect(c.onBreak({ cause: 'frames_lost', at: 1050, detail: 'x' })).toBeNull();
    expect(c.onRecord(trade(12, 1200), 1210)).toBeNull();
    expect(c.broken).toBeNull();
  });

  it('a loss noticed before any trade from after it arrived: the trades since the break are all older, the next one shows the jump', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000), 1010);
    // The book's last message before the stall came at 1050; trade 11 was received just after it.
    c.onRecord(trade(11, 1100), 1110);
    expect(c.onBreak({ cause: 'frames_lost', at: 1050, detail: 'stall' })).toBeNull();
    expect(c.onRecord(trade(60, 9000), 9010)).toMatchObject({ firstMissingId: '12', lastMissingId: '59', cause: 'frames_lost', fromTime: 1100, toTime: 9000 });
  });

  it('spans every jump among the trades since the break, where ids may also skip on their own', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000), 1010);
    c.onRecord(trade(13, 2000), 2010);
    c.onRecord(trade(14, 2100), 2110);
    c.onRecord(trade(40, 9000), 9010);
    expect(c.onBreak({ cause: 'frames_lost', at: 1050, detail: 'x' })).toMatchObject({ fromTime: 1000, toTime: 9000, firstMissingId: '11', lastMissingId: '39' });
  });

  it('a break after the newest trade waits for the next one', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000), 1010);
    expect(c.onBreak({ cause: 'frames_lost', at: 2000, detail: 'x' })).toBeNull();
    expect(c.onRecord(trade(20, 3000), 3010)).toMatchObject({ firstMissingId: '11', lastMissingId: '19', cause: 'frames_lost' });
  });
});

describe('StreamContinuity: loss downstream (the bus dropped what it acknowledged)', () => {
  it('trades received since the loss began become one hole bounded by their ids, though none was missed on the way in', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: true });
    c.onRecord(trade(10, 1000), 1010);
    c.onRecord(trade(11, 1100), 1110);
    c.onRecord(trade(12, 1200), 1210);
    // Received at 1110 and 1210, after the loss began at 1100: 11 and 12, between trade 10 and the newest.
    expect(c.onDownstreamLoss(1100, { cause: 'nats_lost', detail: 'x' })).toEqual({
      fromTime: 1000, toTime: 1200, firstMissingId: '11', lastMissingId: '12', missingCount: 2, cause: 'nats_lost', detail: 'x',
    });
    expect(c.onDownstreamLoss(5000, { cause: 'nats_lost', detail: 'x' })).toBeNull();
  });

  it('the window is bounded by time whatever the trade rate: thousands of trades since the loss began are one hole', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: true });
    for (let i = 0; i < 5000; i++) c.onRecord(trade(1000 + i, 10_000 + i), 10_000 + i);
    // 5000 trades in 5 s, more than are remembered one by one: the checkpoint at or before 11 000 bounds the hole.
    expect(c.onDownstreamLoss(11_000, { cause: 'nats_lost', detail: 'x' })).toMatchObject({ firstMissingId: '2001', lastMissingId: '5999', missingCount: 3999, fromTime: 11_000 });
  });

  it('books break until their next record; polled streams are left to their spacing', () => {
    const book = new StreamContinuity({ kind: 'book' });
    book.onRecord(at(1000));
    expect(book.onDownstreamLoss(900, { cause: 'nats_lost', detail: 'x' })).toBeNull();
    expect(book.onRecord(at(2000))).toMatchObject({ cause: 'nats_lost', toTime: 2000 });
    const polled = new StreamContinuity({ kind: 'polled', spacingMs: 60_000, grid: false });
    polled.onRecord(at(1000));
    expect(polled.onDownstreamLoss(900, { cause: 'nats_lost', detail: 'x' })).toBeNull();
    expect(polled.broken).toBeNull();
  });
});

describe('StreamContinuity: trades whose ids leave some out', () => {
  it('does not count id jumps as holes while the stream runs', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000));
    expect(c.onRecord(trade(13, 1100))).toBeNull();
  });

  it('bounds a break by the ids around it, count unknown', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false });
    c.onRecord(trade(10, 1000));
    c.onBreak({ cause: 'disconnect', at: 1200, detail: 'x' });
    expect(c.onRecord(trade(40, 3000))).toMatchObject({ firstMissingId: '11', lastMissingId: '39', missingCount: null, cause: 'disconnect' });
  });

  it('restart without any earlier trade: the hole starts at the break, less the margin', () => {
    const c = new StreamContinuity({ kind: 'trade', contiguousIds: false }, { last: null, broken: { cause: 'collector_down', at: 50_000, detail: 'd' } });
    expect(c.onRecord(trade(7, 60_000))).toMatchObject({ fromTime: 50_000 - HOLE_TIME_MARGIN_MS, toTime: 60_000, firstMissingId: null });
  });
});

describe('StreamContinuity: polled streams', () => {
  const polled = () => new StreamContinuity({ kind: 'polled', spacingMs: 60_000, grid: false });

  it('accepts observations up to twice the spacing apart', () => {
    const c = polled();
    c.onRecord(at(0));
    expect(c.onRecord(at(60_000))).toBeNull();
    expect(c.onRecord(at(180_000))).toBeNull();
  });

  it('ignores repeated and older observations (the same period polled again)', () => {
    const c = polled();
    c.onRecord(at(300_000));
    expect(c.onRecord(at(300_000))).toBeNull();
    expect(c.onRecord(at(240_000))).toBeNull();
    expect(c.last).toEqual(at(300_000));
  });

  it('reports observations further apart as a hole between them, naming failed polls', () => {
    const c = polled();
    c.onRecord(at(0));
    expect(c.onRecord(at(200_000))).toMatchObject({ fromTime: 0, toTime: 200_000, cause: 'poll_gap' });
    c.onBreak({ cause: 'poll_failed', at: 230_000, detail: 'poll failed: http_429' });
    expect(c.onRecord(at(500_000))).toMatchObject({ fromTime: 200_000, toTime: 500_000, cause: 'poll_failed', detail: 'poll failed: http_429' });
  });

  it('a failed poll that the next one makes up for leaves no hole', () => {
    const c = polled();
    c.onRecord(at(0));
    c.onBreak({ cause: 'poll_failed', at: 30_000, detail: 'x' });
    expect(c.onRecord(at(60_000))).toBeNull();
    expect(c.onRecord(at(240_000))).toMatchObject({ cause: 'poll_gap' });
  });

  it('restart shorter than the spacing leaves no hole; a longer one does', () => {
    const short = new StreamContinuity({ kind: 'polled', spacingMs: 60_000, grid: false }, { last: at(0), broken: { cause: 'collector_down', at: 10_000, detail: 'd' } });
    expect(short.onRecord(at(60_000))).toBeNull();
    const long = new StreamContinuity({ kind: 'polled', spacingMs: 60_000, grid: false }, { last: at(0), broken: { cause: 'collector_down', at: 10_000, detail: 'd' } });
    expect(long.onRecord(at(600_000))).toMatchObject({ cause: 'collector_down', fromTime: 0, toTime: 600_000 });
  });
});

describe('StreamContinuity: observations on a grid', () => {
  it('one missing period is a hole (long/short ratios polled at their period, two polls failed)', () => {
    const c = new StreamContinuity({ kind: 'polled', spacingMs: 300_000, grid: true });
    c.onRecord(at(0));
    expect(c.onRecord(at(300_000))).toBeNull();
    c.onBreak({ cause: 'poll_failed', at: 400_000, detail: 'poll failed: http_429' });
    expect(c.onRecord(at(900_000))).toMatchObject({ fromTime: 300_000, toTime: 900_000, cause: 'poll_failed' });
  });
});

describe('StreamContinuity: books and sporadic streams', () => {
  it('a sporadic stream the previous run left broken closes at its first record', () => {
    const c = new StreamContinuity({ kind: 'sporadic' }, { last: at(1000), broken: { cause: 'collector_down', at: 50_000, detail: 'd' } });
    expect(c.onRecord(at(80_000))).toMatchObject({ cause: 'collector_down', fromTime: 50_000 - HOLE_TIME_MARGIN_MS, toTime: 80_000 + HOLE_TIME_MARGIN_MS });
    expect(c.broken).toBeNull();
  });

  it('a book break is a hole until the next published book', () => {
    const c = new StreamContinuity({ kind: 'book' });
    c.onRecord(at(1000));
    c.onBreak({ cause: 'book_resync', at: 1100, detail: 'sequence_gap: expected U 5 got 7' });
    expect(c.onRecord(at(2500))).toMatchObject({ fromTime: 1000, toTime: 2500, cause: 'book_resync' });
    expect(c.onRecord(at(2600))).toBeNull();
  });

  it('a liquidation stream is broken for the outage of its connection, not until its next event', () => {
    const c = new StreamContinuity({ kind: 'sporadic' });
    c.onRecord(at(1000));
    c.onBreak({ cause: 'disconnect', at: 60_000, detail: 'x' });
    expect(c.onResume(65_000)).toMatchObject({ fromTime: 60_000 - HOLE_TIME_MARGIN_MS, toTime: 65_000 + HOLE_TIME_MARGIN_MS, cause: 'disconnect' });
    expect(c.onRecord(at(70_000))).toBeNull();
    expect(c.onResume(66_000)).toBeNull();
  });

  it('policies follow the data type', () => {
    expect(continuityPolicy('trade', { contiguousTradeIds: true, spacingMs: 0 })).toEqual({ kind: 'trade', contiguousIds: true });
    expect(continuityPolicy('orderbook', { contiguousTradeIds: true, spacingMs: 0 })).toEqual({ kind: 'book' });
    expect(continuityPolicy('liquidation', { contiguousTradeIds: true, spacingMs: 0 })).toEqual({ kind: 'sporadic' });
    expect(continuityPolicy('open_interest', { contiguousTradeIds: true, spacingMs: 5000 })).toEqual({ kind: 'polled', spacingMs: 5000, grid: false });
    expect(continuityPolicy('lsr_all_account', { contiguousTradeIds: true, spacingMs: 300_000 })).toEqual({ kind: 'polled', spacingMs: 300_000, grid: true });
  });
});

describe('TradeMarkRing', () => {
  const mark = (id: string | null, eventTime = 1000): StreamMark => ({ eventTime, id });

  it('keeps the newest marks up to its capacity, oldest first, across growth and wrapping', () => {
    const ring = new TradeMarkRing(40);
    for (let n = 1; n <= 100; n++) {
      ring.push(mark(String(n), 10 * n), 20 * n);
      const kept = Math.min(n, 40);
      expect(ring.length).toBe(kept);
      expect(ring.mark(0)).toEqual(mark(String(n - kept + 1), 10 * (n - kept + 1)));
      expect(ring.mark(kept - 1)).toEqual(mark(String(n), 10 * n));
      expect(ring.receivedAt(kept - 1)).toBe(20 * n);
    }
    expect(() => ring.mark(40)).toThrow(RangeError);
  });

  it('gives ids back exactly: numbers where they fit, the string where they do not', () => {
    const ids = ['0', '7', '9007199254740991', '9007199254740993', '00042', 'ETH-123', null, '12345678901234567890', '-5'];
    const ring = new TradeMarkRing(4);
    // Small capacity: strings and numbers reuse each other's slots as the ring wraps.
    for (const id of ids) {
      ring.push(mark(id), 1);
      expect(ring.mark(ring.length - 1).id).toBe(id);
    }
    expect(Array.from({ length: ring.length }, (_, k) => ring.mark(k).id)).toEqual(ids.slice(-4));
  });

  it('finds the newest mark received at or before a time', () => {
    const ring = new TradeMarkRing(8);
    expect(ring.lastReceivedBy(5)).toBe(-1);
    [10, 20, 20, 30].forEach((t, k) => ring.push(mark(String(k)), t));
    expect(ring.lastReceivedBy(5)).toBe(-1);
    expect(ring.lastReceivedBy(20)).toBe(2);
    expect(ring.lastReceivedBy(29)).toBe(2);
    expect(ring.lastReceivedBy(1000)).toBe(3);
  });
});
