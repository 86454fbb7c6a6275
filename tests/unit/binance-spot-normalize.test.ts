import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { binanceSymbol } from '../../src/lib/exchanges/binance.js';
import { binanceSpot, binanceSpotSequence } from '../../src/lib/exchanges/binance_spot.js';
import { MalformedFrameError, normalizeAll, splitConcatenatedSymbol } from '../../src/lib/exchanges/types.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { FIXTURES_DIR, fixtureLines } from '../helpers/fixtures.js';
import { malformed } from '../helpers/adapters.js';

const RECEIVE_TIME = 1_700_000_000_000;
const lines = (file: string) => fixtureLines('binance_spot', file);
const normalize = (frame: string, receiveTime = RECEIVE_TIME) => normalizeAll(binanceSpot, frame, receiveTime);
const records = (frame: string, receiveTime = RECEIVE_TIME): MarketRecord[] => normalize(frame, receiveTime).records;
const snapshotOf = (body: string, instrument: string): BookMessage => {
  const parse = binanceSpot.book?.parseSnapshot;
  if (parse === undefined) throw new Error('binance_spot has no REST snapshot parser');
  return parse(body, instrument, RECEIVE_TIME);
};

const malformedFrame = (frame: string) => malformed(() => normalize(frame));

/** Fixture files and what their lines are: WebSocket frames, or REST depth bodies for these instruments. */
const WS_FILES = ['trade.jsonl', 'trade_doc.jsonl', 'depth_update.jsonl', 'depth_update_doc.jsonl'];
const SILENT_WS_FILES = ['agg_trade.jsonl', 'agg_trade_doc.jsonl'];
const SNAPSHOT_FILES: Record<string, string[]> = {
  'depth_snapshot_rest.jsonl': ['NKNUSDT', 'LRCBTC'],
  'depth_snapshot_rest_doc.jsonl': ['BNBBTC'],
};
/** REST history bodies; binance-history.test.ts parses them. */
const HISTORY_FILES = ['historical_trades_rest_doc.jsonl'];

describe('binance_spot on every fixture line', () => {
  it('covers every fixture file of the venue', () => {
    const covered = [...WS_FILES, ...SILENT_WS_FILES, ...Object.keys(SNAPSHOT_FILES), ...HISTORY_FILES].sort();
    expect(readdirSync(join(FIXTURES_DIR, 'binance_spot')).sort()).toEqual(covered);
  });

  it.each(WS_FILES)('%s: each frame yields exactly one record or book message', (file) => {
    const out = lines(file).map((line) => normalize(line));
    for (const { records: r, books } of out) expect(r.length + books.length).toBe(1);
    expect(out).toMatchSnapshot();
  });

  it.each(SILENT_WS_FILES)('%s: aggTrade yields nothing, since its id space would collide with trade ids', (file) => {
    for (const line of lines(file)) {
      expect(normalize(line)).toEqual({ records: [], books: [] });
      expect(binanceSpot.control(line)).toEqual({ kind: 'none' });
    }
  });

  it.each(Object.entries(SNAPSHOT_FILES))('%s: REST bodies become snapshots with every level as sent', (file, instruments) => {
    const bodies = lines(file);
    expect(bodies).toHaveLength(instruments.length);
    const summaries = bodies.map((body, i) => {
      const instrument = instruments[i] as string;
      const snap = snapshotOf(body, instrument);
      const raw = JSON.parse(body) as { bids: unknown; asks: unknown };
      expect(snap.bids).toEqual(raw.bids);
      expect(snap.asks).toEqual(raw.asks);
      // 1000 levels a side would swamp the snapshot file; the exact levels are asserted above.
      return { ...snap, bids: snap.bids.slice(0, 3), asks: snap.asks.slice(0, 3), bidLevels: snap.bids.length, askLevels: snap.asks.length };
    });
    expect(summaries).toMatchSnapshot();
  });
});

describe('binance_spot trades', () => {
  it('maps the combined-stream capture (2019 format with b/a order ids)', () => {
    const [line] = lines('trade.jsonl');
    const out = records(line as string, 1554076801000);
    expect(out).toEqual([
      {
        dataType: 'trade',
        venue: 'binance_spot',
        marketType: 'spot',
        symbol: 'BNB-BTC',
        instrument: 'BNBBTC',
        eventTime: 1554076800940,
        receiveTime: 1554076801000,
        tradeId: '40756030',
        price: '0.00426990',
        quantity: '33.82000000',
        side: 'buy',
      },
    ]);
    const r = out[0] as MarketRecord;
    expect(subjectFor(r)).toBe('trade.binance_spot.spot.BNB-BTC');
    expect(msgIdFor(r)).toBe('trade:binance_spot:BNB-BTC:40756030');
  });

  it('maps the bare documented event; m=true (buyer is maker) means the taker sold', () => {
    const [line] = lines('trade_doc.jsonl');
    expect(records(line as string)[0]).toMatchObject({ symbol: 'BNB-BTC', tradeId: '12345', price: '0.001', quantity: '100', side: 'sell', eventTime: 1672515782136 });
  });

  it('keeps price and quantity as the exact strings sent', () => {
    const frame = '{"e":"trade","E":2,"s":"BTCUSDT","t":7,"p":"65000.10000000","q":"0.00001000","T":1,"m":false,"M":true}';
    expect(records(frame)[0]).toMatchObject({ price: '65000.10000000', quantity: '0.00001000' });
  });
});

describe('binance_spot depth updates', () => {
  it('hands each diff to the book with U, u, no pu and the event time', () => {
    const [line] = lines('depth_update.jsonl');
    const { records: r, books } = normalize(line as string);
    expect(r).toEqual([]);
    expect(books).toEqual([
      {
        venue: 'binance_spot',
        marketType: 'spot',
        symbol: 'NKN-USDT',
        instrument: 'NKNUSDT',
        action: 'update',
        firstUpdateId: 499869750,
        lastUpdateId: 499869752,
        prevUpdateId: null,
        checksum: null,
        bids: [
          ['0.35130000', '6195.00000000'],
          ['0.34750000', '5548.00000000'],
          ['0.34640000', '6222.00000000'],
        ],
        asks: [],
        eventTime: 1633998512068,
        receiveTime: RECEIVE_TIME,
      },
    ]);
  });

  it('takes the symbol of a REST snapshot from the instrument it was requested for', () => {
    const [body] = lines('depth_snapshot_rest.jsonl');
    expect(snapshotOf(body as string, 'NKNUSDT')).toMatchObject({
      symbol: 'NKN-USDT',
      instrument: 'NKNUSDT',
      action: 'snapshot',
      lastUpdateId: 499869752,
      firstUpdateId: null,
      prevUpdateId: null,
      // The spot body carries no time.
      eventTime: RECEIVE_TIME,
    });
  });
});

describe('binance_spot sequence rules', () => {
  const update = (U: number, u: number) => ({ firstUpdateId: U, lastUpdateId: u }) as BookMessage;

  it('after a snapshot: skips what it holds, applies the straddling event, flags one that starts beyond it', () => {
    expect(binanceSpotSequence.firstAfterSnapshot(100, update(95, 100))).toEqual({ kind: 'skip' });
    expect(binanceSpotSequence.firstAfterSnapshot(100, update(95, 103))).toEqual({ kind: 'apply' });
    expect(binanceSpotSequence.firstAfterSnapshot(100, update(101, 101))).toEqual({ kind: 'apply' });
    expect(binanceSpotSequence.firstAfterSnapshot(100, update(102, 104))).toMatchObject({ kind: 'gap' });
  });

  it('then: U must be the previous u + 1; a repeat is skipped; anything else is a gap', () => {
    expect(binanceSpotSequence.next(100, update(101, 105))).toEqual({ kind: 'apply' });
    expect(binanceSpotSequence.next(100, update(98, 100))).toEqual({ kind: 'skip' });
    expect(binanceSpotSequence.next(100, update(103, 105))).toEqual({ kind: 'gap', detail: 'expected U 101 got 103' });
    expect(binanceSpotSequence.next(100, update(99, 105))).toMatchObject({ kind: 'gap' });
  });
});

describe('binance_spot control frames', () => {
  it('treats a subscription ack as control: nothing handed out, no action', () => {
    expect(normalize('{"result":null,"id":1}')).toEqual({ records: [], books: [] });
    expect(binanceSpot.control('{"result":null,"id":1}')).toEqual({ kind: 'none' });
  });

  it('asks for a new connection on serverShutdown and on a refused request', () => {
    expect(normalize('{"e":"serverShutdown","E":1}')).toEqual({ records: [], books: [] });
    expect(binanceSpot.control('{"e":"serverShutdown","E":1}')).toEqual({ kind: 'reconnect', reason: 'serverShutdown' });
    const refused = '{"error":{"code":2,"msg":"Invalid request"},"id":1}';
    expect(normalize(refused)).toEqual({ records: [], books: [] });
    expect(binanceSpot.control(refused)).toEqual({ kind: 'reconnect', reason: 'request 1 refused: 2 Invalid request' });
  });
});

describe('binance_spot malformed frames', () => {
  it('rejects non-JSON with code malformed_json, naming the data type its stream name shows', () => {
    expect(malformedFrame('{"stream":"btcusdt@trade","data":{')).toMatchObject({ reason: 'malformed_json', dataType: 'trade' });
    expect(malformedFrame('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpd')).toMatchObject({ reason: 'malformed_json', dataType: 'orderbook' });
    expect(malformedFrame('')).toMatchObject({ reason: 'malformed_json', dataType: null });
  });

  it('rejects wrong shapes with code unexpected_shape', () => {
    expect(malformedFrame('[1,2]').reason).toBe('unexpected_shape');
    expect(malformedFrame('{"hello":1}').reason).toBe('unexpected_shape');
    expect(malformedFrame('{"stream":"btcusdt@trade","data":"x"}')).toMatchObject({ reason: 'unexpected_shape', dataType: 'trade' });
    expect(malformedFrame('{"e":"mystery","E":1}').reason).toBe('unexpected_shape');
  });

  it('rejects trade events with missing or mistyped fields, naming the data type', () => {
    const good = { e: 'trade', E: 2, s: 'BTCUSDT', t: 7, p: '1.5', q: '2', T: 1, m: false };
    for (const [k, v] of Object.entries({ t: 'not-a-number', p: 42, q: '-1', m: 'true', T: undefined, s: 5 })) {
      expect(malformedFrame(JSON.stringify({ ...good, [k]: v }))).toMatchObject({ reason: 'unexpected_shape', dataType: 'trade' });
    }
    expect(malformedFrame(JSON.stringify({ ...good, p: '1e5' })).reason).toBe('unexpected_shape');
  });

  it('rejects depth events with missing ids or malformed levels, naming the orderbook', () => {
    const [line] = lines('depth_update_doc.jsonl');
    const good = JSON.parse(line as string) as Record<string, unknown>;
    const broken = [{ U: undefined }, { u: '160' }, { U: 161 }, { b: [['0.0024']] }, { a: [['0.0026', 100]] }, { b: {} }, { E: -1 }];
    for (const change of broken) {
      expect(malformedFrame(JSON.stringify({ ...good, ...change }))).toMatchObject({ reason: 'unexpected_shape', dataType: 'orderbook' });
    }
  });

  it('rejects REST snapshots that are not JSON or lack ids and levels', () => {
    expect(malformed(() => snapshotOf('<html>', 'BTCUSDT'))).toMatchObject({ reason: 'malformed_json', dataType: 'orderbook' });
    expect(malformed(() => snapshotOf('{"code":-1121,"msg":"Invalid symbol."}', 'BTCUSDT'))).toMatchObject({ reason: 'unexpected_shape', dataType: 'orderbook' });
    expect(malformed(() => snapshotOf('{"lastUpdateId":1,"bids":[["1","x"]],"asks":[]}', 'BTCUSDT')).reason).toBe('unexpected_shape');
  });

  it('rejects symbols with no known quote asset instead of guessing a split', () => {
    expect(malformedFrame('{"e":"trade","E":2,"s":"FOOBAR","t":7,"p":"1","q":"1","T":1,"m":false}')).toMatchObject({ reason: 'unknown_symbol', dataType: 'trade' });
    expect(malformedFrame('{"e":"depthUpdate","E":2,"s":"FOOBAR","U":1,"u":1,"b":[],"a":[]}')).toMatchObject({ reason: 'unknown_symbol', dataType: 'orderbook' });
    expect(malformed(() => snapshotOf('{"lastUpdateId":1,"bids":[],"asks":[]}', 'FOOBAR')).reason).toBe('unknown_symbol');
  });
});

describe('symbol mapping', () => {
  it('splits on the longest known quote suffix', () => {
    expect(splitConcatenatedSymbol('BTCUSDT')).toBe('BTC-USDT');
    expect(splitConcatenatedSymbol('ETHBTC')).toBe('ETH-BTC');
    expect(splitConcatenatedSymbol('BTCFDUSD')).toBe('BTC-FDUSD');
    expect(splitConcatenatedSymbol('BTCTUSD')).toBe('BTC-TUSD');
    expect(splitConcatenatedSymbol('LRCBTC')).toBe('LRC-BTC');
    expect(splitConcatenatedSymbol('nknusdt')).toBe('NKN-USDT');
  });

  it('refuses ids that are only a quote asset or have no known quote', () => {
    expect(splitConcatenatedSymbol('USDT')).toBeNull();
    expect(splitConcatenatedSymbol('FOOBAR')).toBeNull();
    expect(() => binanceSymbol('XYZ', 'trade')).toThrow(MalformedFrameError);
    expect(binanceSymbol('ETHUSDT', 'trade')).toBe('ETH-USDT');
  });
});

describe('binance_spot subscriptions, snapshots and limits', () => {
  it('subscribes to <symbol>@trade and <symbol>@depth@100ms with one request on the combined endpoint', () => {
    const specs = binanceSpot.connections('wss://stream.binance.com:9443/', ['BTCUSDT', 'ETHUSDT'], ['trade', 'orderbook']);
    expect(specs).toEqual([
      {
        id: 'binance_spot/0',
        url: 'wss://stream.binance.com:9443/stream',
        dataTypes: ['trade', 'orderbook'],
        subscribeMessages: [
          JSON.stringify({ method: 'SUBSCRIBE', params: ['btcusdt@trade', 'ethusdt@trade', 'btcusdt@depth@100ms', 'ethusdt@depth@100ms'], id: 1 }),
        ],
        maxConnectionAgeMs: 23 * 3600_000,
        keepalive: null,
        staleAfterMs: 60_000,
      },
    ]);
  });

  it('keeps the path prefix of the base (simulate mode serves the venue under /binance_spot)', () => {
    const [spec] = binanceSpot.connections('ws://127.0.0.1:8090/binance_spot', ['BTCUSDT'], ['trade']);
    expect(spec?.url).toBe('ws://127.0.0.1:8090/binance_spot/stream');
    expect(binanceSpot.book?.snapshotRequest?.('http://127.0.0.1:8090/binance_spot/', 'BTCUSDT')).toEqual({
      url: 'http://127.0.0.1:8090/binance_spot/api/v3/depth?symbol=BTCUSDT&limit=1000',
      weight: 50,
    });
  });

  it('splits beyond 1024 streams into several connections', () => {
    const symbols = Array.from({ length: 1500 }, (_, i) => `S${i}USDT`);
    const specs = binanceSpot.connections('ws://127.0.0.1:1', symbols, ['trade']);
    expect(specs.map((s) => (JSON.parse(s.subscribeMessages[0] as string) as { params: string[] }).params.length)).toEqual([1024, 476]);
    expect(specs.map((s) => s.id)).toEqual(['binance_spot/0', 'binance_spot/1']);
  });

  it('refuses data types it does not collect, naming the config path; polls nothing', () => {
    expect(() => binanceSpot.connections('ws://x', ['BTCUSDT'], ['funding_rate'])).toThrow(/collector\.venues\.binance_spot\.dataTypes: .*funding_rate/);
    const options = { intervalMs: { funding_rate: 1, open_interest: 1, lsr_top_position: 1, lsr_all_account: 1, volatility_index: 1 }, lsrPeriod: '5m' };
    expect(() => binanceSpot.polls('http://x', ['BTCUSDT'], ['open_interest'], options)).toThrow(/collector\.venues\.binance_spot\.dataTypes: .*open_interest/);
    expect(binanceSpot.polls('http://x', ['BTCUSDT'], [], options)).toEqual([]);
  });

  it('budgets REST weight against 6000 per minute with the used-weight header', () => {
    expect(binanceSpot.rateLimit).toEqual({ weightPerWindow: 6000, windowMs: 60_000, usedWeightHeader: 'x-mbx-used-weight-1m' });
    expect(binanceSpot.book).toMatchObject({ source: 'rest' });
  });
});
