import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PolledDataType } from '../../src/lib/config/schema.js';
import { binanceDerivatives, binanceFuturesSequence, liquidationDigest } from '../../src/lib/exchanges/binance_derivatives.js';
import { normalizeAll, type RestPoll } from '../../src/lib/exchanges/types.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { FIXTURES_DIR, fixtureLines } from '../helpers/fixtures.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';

const RECEIVE_TIME = 1_700_000_000_000;
const REST = 'https://fapi.binance.com';
const lines = (file: string) => fixtureLines('binance_derivatives', file);
const normalize = (frame: string) => normalizeAll(binanceDerivatives, frame, RECEIVE_TIME);
const records = (frame: string): MarketRecord[] => normalize(frame).records;
const OPTIONS = TEST_POLL_OPTIONS;

function pollFor(dataType: PolledDataType, instrument = 'BTCUSDT'): RestPoll {
  const [poll, ...rest] = binanceDerivatives.polls(REST, [instrument], [dataType], OPTIONS);
  expect(rest).toEqual([]);
  if (poll === undefined) throw new Error(`no ${dataType} poll`);
  return poll;
}
const snapshotOf = (body: string, instrument: string): BookMessage => {
  const parse = binanceDerivatives.book?.parseSnapshot;
  if (parse === undefined) throw new Error('binance_derivatives has no REST snapshot parser');
  return parse(body, instrument, RECEIVE_TIME);
};

const malformedFrame = (frame: string) => malformed(() => normalize(frame));

/** WebSocket fixture files and how many of their lines are expected to hand something out. */
const WS_FILES: Record<string, number> = {
  'depth_update.jsonl': 60,
  'depth_update_doc.jsonl': 1,
  // Line 2 is an insurance-fund fill.
  'trade.jsonl': 1,
  'force_order.jsonl': 2,
  'force_order_doc.jsonl': 1,
};
/** aggTrade: a different id space (trades come from @trade); markPrice: funding is polled. */
const SILENT_WS_FILES = ['agg_trade.jsonl', 'agg_trade_doc.jsonl', 'mark_price.jsonl', 'mark_price_doc.jsonl'];
const POLL_FILES: Record<string, PolledDataType> = {
  'premium_index_rest.jsonl': 'funding_rate',
  'open_interest_rest.jsonl': 'open_interest',
  'top_long_short_position_ratio_rest.jsonl': 'lsr_top_position',
  'global_long_short_account_ratio_rest.jsonl': 'lsr_all_account',
};
const SNAPSHOT_FILES: Record<string, string[]> = {
  'depth_snapshot_rest.jsonl': ['SUSHIUSDT', 'AKROUSDT', 'KEEPUSDT'],
  'depth_snapshot_rest_doc.jsonl': ['BTCUSDT'],
};
/** REST history bodies; binance-history.test.ts parses them. */
const HISTORY_FILES = ['historical_trades_rest_doc.jsonl', 'funding_rate_history_rest_doc.jsonl', 'open_interest_hist_rest_doc.jsonl'];

describe('binance_derivatives on every fixture line', () => {
  it('covers every fixture file of the venue', () => {
    const covered = [...Object.keys(WS_FILES), ...SILENT_WS_FILES, ...Object.keys(POLL_FILES), ...Object.keys(SNAPSHOT_FILES), ...HISTORY_FILES].sort();
    expect(readdirSync(join(FIXTURES_DIR, 'binance_derivatives')).sort()).toEqual(covered);
  });

  it.each(Object.entries(WS_FILES))('%s: frames become records and book messages (%i of them)', (file, expected) => {
    const out = lines(file).map((line) => normalize(line));
    for (const { records: r, books } of out) expect(r.length + books.length).toBeLessThanOrEqual(1);
    expect(out.reduce((n, { records: r, books }) => n + r.length + books.length, 0)).toBe(expected);
    expect(out).toMatchSnapshot();
  });

  it.each(SILENT_WS_FILES)('%s: yields nothing and needs no action', (file) => {
    for (const line of lines(file)) {
      expect(normalize(line)).toEqual({ records: [], books: [] });
      expect(binanceDerivatives.control(line)).toEqual({ kind: 'none' });
    }
  });

  it.each(Object.entries(POLL_FILES))('%s: parsed by the %s poll', (file, dataType) => {
    const poll = pollFor(dataType);
    const out = lines(file).map((body) => poll.parse(body, RECEIVE_TIME));
    for (const batch of out) for (const r of batch) expect(r.dataType).toBe(dataType);
    expect(out).toMatchSnapshot();
  });

  it.each(Object.entries(SNAPSHOT_FILES))('%s: REST bodies become snapshots with every level as sent', (file, instruments) => {
    const bodies = lines(file);
    expect(bodies).toHaveLength(instruments.length);
    const summaries = bodies.map((body, i) => {
      const snap = snapshotOf(body, instruments[i] as string);
      const raw = JSON.parse(body) as { bids: unknown; asks: unknown };
      expect(snap.bids).toEqual(raw.bids);
      expect(snap.asks).toEqual(raw.asks);
      // 1000 levels a side would swamp the snapshot file; the exact levels are asserted above.
      return { ...snap, bids: snap.bids.slice(0, 3), asks: snap.asks.slice(0, 3), bidLevels: snap.bids.length, askLevels: snap.asks.length };
    });
    expect(summaries).toMatchSnapshot();
  });
});

describe('binance_derivatives trades', () => {
  it('maps a 2019 frame without X as a market trade of the perpetual', () => {
    const [line] = lines('trade.jsonl');
    const [r] = records(line as string);
    expect(r).toEqual({
      dataType: 'trade',
      venue: 'binance_derivatives',
      marketType: 'perpetual',
      symbol: 'BTC-USDT',
      instrument: 'BTCUSDT',
      eventTime: 1574381164086,
      receiveTime: RECEIVE_TIME,
      tradeId: '10934580',
      price: '7627.60',
      quantity: '0.044',
      side: 'buy',
    });
    expect(subjectFor(r as MarketRecord)).toBe('trade.binance_derivatives.perpetual.BTC-USDT');
  });

  it('drops insurance-fund and ADL fills and price-0 frames without calling them malformed', () => {
    const [, insuranceFund] = lines('trade.jsonl');
    expect(normalize(insuranceFund as string)).toEqual({ records: [], books: [] });
    const market = { e: 'trade', E: 2, T: 1, s: 'ETHUSDT', t: 9, p: '2366.55', q: '0.070', X: 'MARKET', m: true };
    expect(records(JSON.stringify(market))).toHaveLength(1);
    expect(records(JSON.stringify({ ...market, X: 'ADL' }))).toEqual([]);
    expect(records(JSON.stringify({ ...market, p: '0' }))).toEqual([]);
    expect(records(JSON.stringify({ ...market, p: '0.00' }))).toEqual([]);
  });
});

describe('binance_derivatives liquidations', () => {
  it('maps forceOrder: side of the liquidation order, average price, filled quantity, trade time', () => {
    const [line] = lines('force_order.jsonl');
    const [r] = records(line as string);
    expect(r).toEqual({
      dataType: 'liquidation',
      venue: 'binance_derivatives',
      marketType: 'perpetual',
      symbol: 'BTC-USDT',
      instrument: 'BTCUSDT',
      eventTime: 1584059031421,
      receiveTime: RECEIVE_TIME,
      liquidationId: liquidationDigest('BTCUSDT', 1584059031421, 'BUY', '0.014', '4706.04'),
      side: 'buy',
      price: '4706.04',
      quantity: '0.014',
    });
    expect(msgIdFor(r as MarketRecord)).toMatch(/^liquidation:binance_derivatives:BTC-USDT:[0-9a-f]{24}$/);
  });

  it('falls back to the order price and quantity before any fill', () => {
    const frame = '{"e":"forceOrder","E":2,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.5","p":"9910.10","ap":"0.00","X":"NEW","l":"0","z":"0","T":1}}';
    expect(records(frame)[0]).toMatchObject({ side: 'sell', price: '9910.10', quantity: '0.5' });
  });

  it('gives the same event the same id, and events that differ in any identifying field different ones', () => {
    const [, line] = lines('force_order.jsonl');
    const first = records(line as string)[0];
    expect(records(line as string)[0]).toEqual(first);
    const ids = new Set([
      liquidationDigest('BTCUSDT', 1, 'SELL', '0.288', '39021.00'),
      liquidationDigest('ETHUSDT', 1, 'SELL', '0.288', '39021.00'),
      liquidationDigest('BTCUSDT', 2, 'SELL', '0.288', '39021.00'),
      liquidationDigest('BTCUSDT', 1, 'BUY', '0.288', '39021.00'),
      liquidationDigest('BTCUSDT', 1, 'SELL', '0.289', '39021.00'),
      liquidationDigest('BTCUSDT', 1, 'SELL', '0.288', '39021.01'),
    ]);
    expect(ids.size).toBe(6);
  });
});

describe('binance_derivatives depth updates', () => {
  it('hands each diff to the book with U, u, pu and the event time', () => {
    const [line] = lines('depth_update.jsonl');
    expect(normalize(line as string).books).toEqual([
      {
        venue: 'binance_derivatives',
        marketType: 'perpetual',
        symbol: 'SUSHI-USDT',
        instrument: 'SUSHIUSDT',
        action: 'update',
        firstUpdateId: 600859599090,
        lastUpdateId: 600859600917,
        prevUpdateId: 600859598061,
        checksum: null,
        bids: [
          ['7.5040', '813'],
          ['7.6090', '0'],
          ['7.6110', '2'],
        ],
        asks: [
          ['7.6150', '1563'],
          ['7.6220', '3284'],
        ],
        eventTime: 1626992741037,
        receiveTime: RECEIVE_TIME,
      },
    ]);
  });

  it('takes the snapshot time from E and the symbol from the requested instrument', () => {
    const [body] = lines('depth_snapshot_rest.jsonl');
    expect(snapshotOf(body as string, 'SUSHIUSDT')).toMatchObject({ symbol: 'SUSHI-USDT', lastUpdateId: 600859605926, eventTime: 1626992741264 });
  });
});

describe('binance_derivatives sequence rules', () => {
  const update = (U: number, u: number, pu: number) => ({ firstUpdateId: U, lastUpdateId: u, prevUpdateId: pu }) as BookMessage;

  it('after a snapshot: skips u < id, applies the event with U <= id <= u, flags one that starts beyond it', () => {
    expect(binanceFuturesSequence.firstAfterSnapshot(100, update(90, 99, 80))).toEqual({ kind: 'skip' });
    expect(binanceFuturesSequence.firstAfterSnapshot(100, update(90, 100, 80))).toEqual({ kind: 'apply' });
    expect(binanceFuturesSequence.firstAfterSnapshot(100, update(100, 120, 99))).toEqual({ kind: 'apply' });
    expect(binanceFuturesSequence.firstAfterSnapshot(100, update(101, 120, 99))).toMatchObject({ kind: 'gap' });
  });

  it('after a snapshot taken exactly at an event boundary, applies the event whose pu is the snapshot id', () => {
    expect(binanceFuturesSequence.firstAfterSnapshot(100, update(105, 120, 100))).toEqual({ kind: 'apply' });
  });

  it('then: pu must be the previous u (U need not be u + 1); a repeat is skipped; anything else is a gap', () => {
    expect(binanceFuturesSequence.next(100, update(130, 140, 100))).toEqual({ kind: 'apply' });
    expect(binanceFuturesSequence.next(100, update(95, 100, 90))).toEqual({ kind: 'skip' });
    expect(binanceFuturesSequence.next(100, update(130, 140, 120))).toEqual({ kind: 'gap', detail: 'expected pu 100 got 120' });
  });
});

describe('binance_derivatives polls', () => {
  it('reads funding from premiumIndex at the exchange time, with mark price and next funding', () => {
    const [body] = lines('premium_index_rest.jsonl');
    expect(pollFor('funding_rate').parse(body as string, RECEIVE_TIME)).toEqual([
      {
        dataType: 'funding_rate',
        venue: 'binance_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USDT',
        instrument: 'BTCUSDT',
        eventTime: 1597370495002,
        receiveTime: RECEIVE_TIME,
        fundingRate: '0.00038246',
        nextFundingTime: 1597392000000,
        markPrice: '11793.63104562',
      },
    ]);
    const negative = (body as string).replace('"0.00038246"', '"-0.00012000"');
    expect(pollFor('funding_rate').parse(negative, RECEIVE_TIME)[0]).toMatchObject({ fundingRate: '-0.00012000' });
  });

  it('reads open interest in base units, with no value in quote currency', () => {
    const [body] = lines('open_interest_rest.jsonl');
    expect(pollFor('open_interest').parse(body as string, RECEIVE_TIME)).toEqual([
      expect.objectContaining({ eventTime: 1589437530011, openInterest: '10659.509', openInterestValue: null }),
    ]);
  });

  it('reads the top-trader POSITION ratio into position shares, one record per period, string timestamps as numbers', () => {
    const [body] = lines('top_long_short_position_ratio_rest.jsonl');
    const out = pollFor('lsr_top_position').parse(body as string, RECEIVE_TIME);
    expect(out).toEqual([
      expect.objectContaining({ eventTime: 1583139600000, period: '5m', longShortRatio: '1.4342', longPositionPct: '0.5891', shortPositionPct: '0.4108' }),
      expect.objectContaining({ eventTime: 1583139900000, period: '5m', longShortRatio: '1.4337', longPositionPct: '0.3583', shortPositionPct: '0.6417' }),
    ]);
    expect(out.map(msgIdFor)).toEqual(['lsr_top_position:binance_derivatives:BTC-USDT:5m:1583139600000', 'lsr_top_position:binance_derivatives:BTC-USDT:5m:1583139900000']);
  });

  it('reads the global ACCOUNT ratio into account shares; numeric timestamps work too', () => {
    const [body] = lines('global_long_short_account_ratio_rest.jsonl');
    const numeric = (body as string).replaceAll(/"timestamp":"(\d+)"/g, '"timestamp":$1');
    for (const variant of [body as string, numeric]) {
      expect(pollFor('lsr_all_account').parse(variant, RECEIVE_TIME)[0]).toMatchObject({
        dataType: 'lsr_all_account',
        eventTime: 1583139600000,
        longAccountPct: '0.6622',
        shortAccountPct: '0.3378',
      });
    }
  });

  it('asks the documented endpoints, with their weights and the configured intervals and period', () => {
    const polls = binanceDerivatives.polls(`${REST}/`, ['BTCUSDT', 'ETHUSDT'], ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'], OPTIONS);
    expect(polls.map(({ id, url, weight, intervalMs, instrument }) => ({ id, url, weight, intervalMs, instrument }))).toEqual([
      { id: 'binance_derivatives/funding_rate/BTCUSDT', url: `${REST}/fapi/v1/premiumIndex?symbol=BTCUSDT`, weight: 1, intervalMs: 60_000, instrument: 'BTCUSDT' },
      { id: 'binance_derivatives/funding_rate/ETHUSDT', url: `${REST}/fapi/v1/premiumIndex?symbol=ETHUSDT`, weight: 1, intervalMs: 60_000, instrument: 'ETHUSDT' },
      { id: 'binance_derivatives/open_interest/BTCUSDT', url: `${REST}/fapi/v1/openInterest?symbol=BTCUSDT`, weight: 1, intervalMs: 30_000, instrument: 'BTCUSDT' },
      { id: 'binance_derivatives/open_interest/ETHUSDT', url: `${REST}/fapi/v1/openInterest?symbol=ETHUSDT`, weight: 1, intervalMs: 30_000, instrument: 'ETHUSDT' },
      {
        id: 'binance_derivatives/lsr_top_position/BTCUSDT',
        url: `${REST}/futures/data/topLongShortPositionRatio?symbol=BTCUSDT&period=5m&limit=2`,
        weight: 0,
        intervalMs: 300_000,
        instrument: 'BTCUSDT',
      },
      {
        id: 'binance_derivatives/lsr_top_position/ETHUSDT',
        url: `${REST}/futures/data/topLongShortPositionRatio?symbol=ETHUSDT&period=5m&limit=2`,
        weight: 0,
        intervalMs: 300_000,
        instrument: 'ETHUSDT',
      },
      {
        id: 'binance_derivatives/lsr_all_account/BTCUSDT',
        url: `${REST}/futures/data/globalLongShortAccountRatio?symbol=BTCUSDT&period=5m&limit=2`,
        weight: 0,
        intervalMs: 300_000,
        instrument: 'BTCUSDT',
      },
      {
        id: 'binance_derivatives/lsr_all_account/ETHUSDT',
        url: `${REST}/futures/data/globalLongShortAccountRatio?symbol=ETHUSDT&period=5m&limit=2`,
        weight: 0,
        intervalMs: 300_000,
        instrument: 'ETHUSDT',
      },
    ]);
    expect(polls.map((p) => p.dataType)).toEqual(['funding_rate', 'funding_rate', 'open_interest', 'open_interest', 'lsr_top_position', 'lsr_top_position', 'lsr_all_account', 'lsr_all_account']);
  });

  it('rejects error bodies and mistyped fields, naming the data type', () => {
    const error = '{"code":-1121,"msg":"Invalid symbol."}';
    for (const dataType of ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'] as const) {
      expect(malformed(() => pollFor(dataType).parse(error, RECEIVE_TIME))).toMatchObject({ reason: 'unexpected_shape', dataType });
      expect(malformed(() => pollFor(dataType).parse('<html>', RECEIVE_TIME))).toMatchObject({ reason: 'malformed_json', dataType });
    }
    const [premium] = lines('premium_index_rest.jsonl');
    const delivery = (premium as string).replace('"0.00038246"', '""');
    expect(malformed(() => pollFor('funding_rate').parse(delivery, RECEIVE_TIME)).reason).toBe('unexpected_shape');
    const [ratios] = lines('top_long_short_position_ratio_rest.jsonl');
    const badTime = (ratios as string).replace('"1583139900000"', '"soon"');
    expect(malformed(() => pollFor('lsr_top_position').parse(badTime, RECEIVE_TIME)).reason).toBe('unexpected_shape');
    const unknownQuote = '{"openInterest":"1","symbol":"FOOBAR","time":1}';
    expect(malformed(() => pollFor('open_interest').parse(unknownQuote, RECEIVE_TIME))).toMatchObject({ reason: 'unknown_symbol', dataType: 'open_interest' });
  });
});

describe('binance_derivatives malformed frames', () => {
  it('rejects non-JSON with code malformed_json, naming the data type its stream name shows', () => {
    expect(malformedFrame('{"stream":"btcusdt@forceOrder","data":{"e":"forc')).toMatchObject({ reason: 'malformed_json', dataType: 'liquidation' });
    expect(malformedFrame('{"e":"depthUpdate","E":1,')).toMatchObject({ reason: 'malformed_json', dataType: 'orderbook' });
  });

  it('rejects depth events without pu (a spot event on a futures stream)', () => {
    const spotLine = fixtureLines('binance_spot', 'depth_update_doc.jsonl')[0] as string;
    expect(malformedFrame(spotLine)).toMatchObject({ reason: 'unexpected_shape', dataType: 'orderbook' });
  });

  it('rejects forceOrder events with missing or mistyped fields', () => {
    const [line] = lines('force_order_doc.jsonl');
    const good = JSON.parse(line as string) as { e: string; E: number; o: Record<string, unknown> };
    for (const change of [{ S: 'LONG' }, { ap: 9910 }, { z: undefined }, { T: '1' }, { s: null }]) {
      expect(malformedFrame(JSON.stringify({ ...good, o: { ...good.o, ...change } }))).toMatchObject({ reason: 'unexpected_shape', dataType: 'liquidation' });
    }
    expect(malformedFrame('{"e":"forceOrder","E":1}').dataType).toBe('liquidation');
    const unknownQuote = JSON.stringify({ ...good, o: { ...good.o, s: 'FOOBAR' } });
    expect(malformedFrame(unknownQuote)).toMatchObject({ reason: 'unknown_symbol', dataType: 'liquidation' });
  });

  it('treats acks as control and refusals as a reason to reconnect', () => {
    expect(normalize('{"result":null,"id":1}')).toEqual({ records: [], books: [] });
    expect(binanceDerivatives.control('{"result":null,"id":1}')).toEqual({ kind: 'none' });
    expect(binanceDerivatives.control('{"error":{"code":1,"msg":"Invalid value"},"id":1}')).toMatchObject({ kind: 'reconnect' });
  });
});

describe('binance_derivatives subscriptions', () => {
  const params = (message: string | undefined) => (JSON.parse(message as string) as { params: string[] }).params;

  it('routes depth and trade to /public and forceOrder to /market, one SUBSCRIBE each', () => {
    const specs = binanceDerivatives.connections('wss://fstream.binance.com', ['BTCUSDT', 'ETHUSDT'], ['orderbook', 'trade', 'liquidation']);
    expect(specs.map(({ subscribeMessages, ...rest }) => ({ ...rest, params: params(subscribeMessages[0]), messages: subscribeMessages.length }))).toEqual([
      {
        id: 'binance_derivatives/public/0',
        url: 'wss://fstream.binance.com/public/stream',
        dataTypes: ['orderbook', 'trade'],
        params: ['btcusdt@depth@100ms', 'ethusdt@depth@100ms', 'btcusdt@trade', 'ethusdt@trade'],
        messages: 1,
        maxConnectionAgeMs: 23 * 3600_000,
        keepalive: null,
        staleAfterMs: 60_000,
      },
      {
        id: 'binance_derivatives/market/0',
        url: 'wss://fstream.binance.com/market/stream',
        dataTypes: ['liquidation'],
        params: ['btcusdt@forceOrder', 'ethusdt@forceOrder'],
        messages: 1,
        maxConnectionAgeMs: 23 * 3600_000,
        keepalive: null,
        // forceOrder can be silent for long; the server pings only every 3 minutes.
        staleAfterMs: 8 * 60_000,
      },
    ]);
  });

  it('opens only the routes the data types need; a trade-only /public waits for pings like /market', () => {
    const specs = binanceDerivatives.connections('ws://127.0.0.1:8090/binance_derivatives/', ['BTCUSDT'], ['trade']);
    expect(specs.map((s) => [s.id, s.url, s.staleAfterMs])).toEqual([
      ['binance_derivatives/public/0', 'ws://127.0.0.1:8090/binance_derivatives/public/stream', 8 * 60_000],
    ]);
  });

  it('splits beyond 1024 streams per route', () => {
    const symbols = Array.from({ length: 600 }, (_, i) => `S${i}USDT`);
    const specs = binanceDerivatives.connections('ws://x', symbols, ['orderbook', 'trade', 'liquidation']);
    expect(specs.map((s) => [s.id, params(s.subscribeMessages[0]).length])).toEqual([
      ['binance_derivatives/public/0', 1024],
      ['binance_derivatives/public/1', 176],
      ['binance_derivatives/market/0', 600],
    ]);
  });

  it('refuses polled types on WebSocket and WebSocket types in polls, naming the config path', () => {
    expect(() => binanceDerivatives.connections('ws://x', ['BTCUSDT'], ['funding_rate'])).toThrow(/collector\.venues\.binance_derivatives\.dataTypes: .*funding_rate/);
    expect(() => binanceDerivatives.polls(REST, ['BTCUSDT'], ['volatility_index'], OPTIONS)).toThrow(/collector\.venues\.binance_derivatives\.dataTypes: .*volatility_index/);
    expect(binanceDerivatives.wsDataTypes.filter((t) => (binanceDerivatives.polledDataTypes as readonly string[]).includes(t))).toEqual([]);
  });

  it('snapshots from /fapi/v1/depth at weight 20, budgeted against 2400 per minute', () => {
    expect(binanceDerivatives.book?.snapshotRequest?.(REST, 'BTCUSDT')).toEqual({ url: `${REST}/fapi/v1/depth?symbol=BTCUSDT&limit=1000`, weight: 20 });
    expect(binanceDerivatives.rateLimit).toEqual({ weightPerWindow: 2400, windowMs: 60_000, usedWeightHeader: 'x-mbx-used-weight-1m' });
  });
});
