import { describe, expect, it } from 'vitest';
import type { PolledDataType } from '../../src/lib/config/schema.js';
import { MprismError } from '../../src/lib/errors.js';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { normalizeAll, type HistoryDataType, type HistoryQuery, type HistorySource, type RestRequest, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import { msgIdFor } from '../../src/lib/records.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';
import { fixtureLines } from '../helpers/fixtures.js';

const RECEIVE_TIME = 1_700_000_000_000;
const SPOT_REST = 'https://api.binance.com';
const FAPI_REST = 'https://fapi.binance.com';
const NO_KEY = { apiKey: null };
const KEY = { apiKey: 'vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A' };

function historyOf(adapter: VenueAdapter, dataType: HistoryDataType): HistorySource {
  const source = adapter.history[dataType];
  if (source === undefined) throw new Error(`${adapter.venue} has no ${dataType} history`);
  return source;
}

const only = (venue: 'binance_spot' | 'binance_derivatives', file: string): string => {
  const [line, ...rest] = fixtureLines(venue, file);
  expect(rest).toEqual([]);
  return line as string;
};

function query(o: Partial<HistoryQuery> = {}): HistoryQuery {
  return { instrument: 'BTCUSDT', fromMs: 1_499_865_000_000, toMs: 1_499_866_000_000, fromId: '28457', toId: '90000', ...o };
}

/** The documented row, repeated with ids (and times) counting up from it: a full page for the paging rules. */
function tradePage(file: string, venue: 'binance_spot' | 'binance_derivatives', n: number, firstId: number, firstTime = 1_499_865_549_590): string {
  const [row] = JSON.parse(only(venue, file)) as Array<Record<string, unknown>>;
  return JSON.stringify(Array.from({ length: n }, (_, i) => ({ ...row, id: firstId + i, time: firstTime + i })));
}

const param = (request: RestRequest | null, name: string) => (request === null ? null : new URL(request.url).searchParams.get(name));

describe('binance history sources', () => {
  it('spot refills trades; USD-M trades, funding, open interest and both long/short ratios', () => {
    expect(Object.keys(binanceSpot.history)).toEqual(['trade']);
    expect(Object.keys(binanceDerivatives.history).sort()).toEqual(['funding_rate', 'lsr_all_account', 'lsr_top_position', 'open_interest', 'trade']);
    expect(Object.fromEntries(Object.entries(binanceDerivatives.history).map(([t, s]) => [t, [s.endpoint, s.pagesBy]]))).toEqual({
      trade: ['GET /fapi/v1/historicalTrades', 'id'],
      funding_rate: ['GET /fapi/v1/fundingRate', 'time'],
      open_interest: ['GET /futures/data/openInterestHist', 'time'],
      lsr_top_position: ['GET /futures/data/topLongShortPositionRatio', 'time'],
      lsr_all_account: ['GET /futures/data/globalLongShortAccountRatio', 'time'],
    });
  });
});

describe('binance_spot trade history (GET /api/v3/historicalTrades)', () => {
  const source = historyOf(binanceSpot, 'trade');
  const doc = only('binance_spot', 'historical_trades_rest_doc.jsonl');

  it('needs no API key and sends none: the endpoint is NONE since 2023-07-11', () => {
    expect(source.blockedReason(NO_KEY)).toBeNull();
    expect(source.blockedReason(KEY)).toBeNull();
    for (const credentials of [NO_KEY, KEY]) {
      expect(source.request(SPOT_REST, query({ instrument: 'BNBBTC' }), credentials, TEST_POLL_OPTIONS)).toEqual({
        url: 'https://api.binance.com/api/v3/historicalTrades?symbol=BNBBTC&fromId=28457&limit=1000',
        weight: 25,
      });
    }
  });

  it('turns the documented row into exactly the record the @trade stream makes of that trade', () => {
    const q = query({ instrument: 'BNBBTC' });
    const page = source.parsePage(doc, q, source.request(SPOT_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME);
    const frame = '{"e":"trade","E":1499865549591,"s":"BNBBTC","t":28457,"p":"4.00000100","q":"12.00000000","T":1499865549590,"m":true,"M":true}';
    const live = normalizeAll(binanceSpot, frame, RECEIVE_TIME).records;
    expect(page.records).toEqual(live);
    expect(page.records.map(msgIdFor)).toEqual(['trade:binance_spot:BNB-BTC:28457']);
    expect(page.records[0]).toMatchObject({ eventTime: 1499865549590, side: 'sell', price: '4.00000100', quantity: '12.00000000', instrument: 'BNBBTC', marketType: 'spot' });
    // One row where up to 1000 were allowed: the venue has nothing newer.
    expect(page.next).toBeNull();
  });

  it('pages by id from one past the last row until the last missing id, keeping URL, weight and headers', () => {
    const q = query({ fromId: '1000', toId: '2500' });
    const first = source.request(SPOT_REST, q, NO_KEY, TEST_POLL_OPTIONS);
    const page1 = source.parsePage(tradePage('historical_trades_rest_doc.jsonl', 'binance_spot', 1000, 1000), q, first, RECEIVE_TIME);
    expect(page1.records.map((r) => (r.dataType === 'trade' ? r.tradeId : ''))).toEqual(Array.from({ length: 1000 }, (_, i) => String(1000 + i)));
    expect(page1.next).toEqual({ ...first, url: 'https://api.binance.com/api/v3/historicalTrades?symbol=BTCUSDT&fromId=2000&limit=1000' });
    // The second page reaches id 2999, past toId 2500: the hole is covered (the caller drops the surplus).
    const page2 = source.parsePage(tradePage('historical_trades_rest_doc.jsonl', 'binance_spot', 1000, 2000), q, page1.next as RestRequest, RECEIVE_TIME);
    expect(page2.records).toHaveLength(1000);
    expect(page2.next).toBeNull();
  });

  it('without a last missing id, pages until a trade after toMs', () => {
    const q = query({ fromId: '1', toId: null, toMs: 1_499_865_549_590 + 1500 });
    const request = source.request(SPOT_REST, q, NO_KEY, TEST_POLL_OPTIONS);
    expect(param(source.parsePage(tradePage('historical_trades_rest_doc.jsonl', 'binance_spot', 1000, 1), q, request, RECEIVE_TIME).next, 'fromId')).toBe('1001');
    expect(source.parsePage(tradePage('historical_trades_rest_doc.jsonl', 'binance_spot', 1000, 1, 1_499_865_549_590 + 1000), q, request, RECEIVE_TIME).next).toBeNull();
  });

  it('stops on an empty page, and on a full page that ignored fromId', () => {
    const request = source.request(SPOT_REST, query({ fromId: '5000' }), NO_KEY, TEST_POLL_OPTIONS);
    expect(source.parsePage('[]', query({ fromId: '5000' }), request, RECEIVE_TIME)).toEqual({ records: [], next: null });
    expect(source.parsePage(tradePage('historical_trades_rest_doc.jsonl', 'binance_spot', 1000, 1), query({ fromId: '5000' }), request, RECEIVE_TIME).next).toBeNull();
  });

  it('refuses a query without a first missing id: trade ids are what it pages by', () => {
    expect(() => source.request(SPOT_REST, query({ fromId: null }), NO_KEY, TEST_POLL_OPTIONS)).toThrow(MprismError);
  });

  it.each([
    ['not JSON', '[{"id":28457,', 'malformed_json'],
    ['an error body', '{"code":-1121,"msg":"Invalid symbol."}', 'unexpected_shape'],
    ['a row without a price', '[{"id":28457,"qty":"12.00000000","time":1499865549590,"isBuyerMaker":true}]', 'unexpected_shape'],
    ['an id as a string', '[{"id":"28457","price":"4.00000100","qty":"12.00000000","time":1499865549590,"isBuyerMaker":true}]', 'unexpected_shape'],
    ['a price as a number', '[{"id":28457,"price":4.000001,"qty":"12.00000000","time":1499865549590,"isBuyerMaker":true}]', 'unexpected_shape'],
  ])('rejects %s as a malformed trade body', (_what, body, code) => {
    const q = query();
    const err = malformed(() => source.parsePage(body, q, source.request(SPOT_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME));
    expect(err.reason).toBe(code);
    expect(err.dataType).toBe('trade');
  });
});

describe('binance_derivatives trade history (GET /fapi/v1/historicalTrades)', () => {
  const source = historyOf(binanceDerivatives, 'trade');
  const doc = only('binance_derivatives', 'historical_trades_rest_doc.jsonl');

  it('is blocked without an API key, and sends the key as X-MBX-APIKEY', () => {
    expect(source.blockedReason(NO_KEY)).toBe('GET /fapi/v1/historicalTrades needs an API key: set collector.venues.binance_derivatives.apiKey');
    expect(source.blockedReason({ apiKey: '' })).not.toBeNull();
    expect(source.blockedReason(KEY)).toBeNull();
    expect(source.request(FAPI_REST, query(), KEY, TEST_POLL_OPTIONS)).toEqual({
      url: 'https://fapi.binance.com/fapi/v1/historicalTrades?symbol=BTCUSDT&fromId=28457&limit=500',
      weight: 20,
      headers: { 'X-MBX-APIKEY': KEY.apiKey },
    });
  });

  it('turns the documented row into exactly the record the @trade stream makes of that trade', () => {
    const request = source.request(FAPI_REST, query(), KEY, TEST_POLL_OPTIONS);
    const page = source.parsePage(doc, query(), request, RECEIVE_TIME);
    const frame = '{"e":"trade","E":1499865549600,"T":1499865549590,"s":"BTCUSDT","t":28457,"p":"4.00000100","q":"12.00000000","X":"MARKET","m":true}';
    expect(page.records).toEqual(normalizeAll(binanceDerivatives, frame, RECEIVE_TIME).records);
    expect(page.records[0]).toMatchObject({ venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', tradeId: '28457' });
    expect(page.next).toBeNull();
  });

  it('drops price-0 placeholders as the stream does, but pages past them', () => {
    const rows = JSON.parse(tradePage('historical_trades_rest_doc.jsonl', 'binance_derivatives', 500, 100)) as Array<Record<string, unknown>>;
    rows[3] = { ...rows[3], price: '0.00' };
    const q = query({ fromId: '100', toId: '900' });
    const request = source.request(FAPI_REST, q, KEY, TEST_POLL_OPTIONS);
    const page = source.parsePage(JSON.stringify(rows), q, request, RECEIVE_TIME);
    expect(page.records).toHaveLength(499);
    expect(page.records.some((r) => r.dataType === 'trade' && r.tradeId === '103')).toBe(false);
    expect(page.next).toEqual({ ...request, url: 'https://fapi.binance.com/fapi/v1/historicalTrades?symbol=BTCUSDT&fromId=600&limit=500' });
  });

  it('rejects the refusal Binance sends without a key as a malformed trade body', () => {
    const request = source.request(FAPI_REST, query(), NO_KEY, TEST_POLL_OPTIONS);
    expect(request.headers).toBeUndefined();
    expect(malformed(() => source.parsePage('{"code":-2014,"msg":"API-key format invalid."}', query(), request, RECEIVE_TIME)).reason).toBe('unexpected_shape');
  });
});

describe('binance_derivatives funding history (GET /fapi/v1/fundingRate)', () => {
  const source = historyOf(binanceDerivatives, 'funding_rate');
  const doc = only('binance_derivatives', 'funding_rate_history_rest_doc.jsonl');
  const q = query({ fromMs: 1_570_600_000_000, toMs: 1_570_700_000_000, fromId: null, toId: null });

  it('asks for the whole range, 1000 rates a page, with no key and no request weight', () => {
    expect(source.blockedReason(NO_KEY)).toBeNull();
    expect(source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS)).toEqual({
      url: 'https://fapi.binance.com/fapi/v1/fundingRate?symbol=BTCUSDT&startTime=1570600000000&endTime=1570700000000&limit=1000',
      weight: 0,
    });
  });

  it('makes each settled rate a record at its funding time, with its mark price and no next funding time', () => {
    const page = source.parsePage(doc, q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME);
    expect(page.records).toEqual([
      { dataType: 'funding_rate', venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT', eventTime: 1570608000000, receiveTime: RECEIVE_TIME, fundingRate: '-0.03750000', nextFundingTime: 0, markPrice: '34287.54619963' },
      { dataType: 'funding_rate', venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT', eventTime: 1570636800000, receiveTime: RECEIVE_TIME, fundingRate: '0.00010000', nextFundingTime: 0, markPrice: '34287.54619963' },
    ]);
    expect(page.records.map(msgIdFor)).toEqual(['funding_rate:binance_derivatives:BTC-USDT:1570608000000', 'funding_rate:binance_derivatives:BTC-USDT:1570636800000']);
    expect(page.next).toBeNull();
  });

  it('takes a missing or empty mark price as unknown', () => {
    const rows = (JSON.parse(doc) as Array<Record<string, unknown>>).map((r, i) => ({ ...r, markPrice: i === 0 ? '' : undefined }));
    const page = source.parsePage(JSON.stringify(rows), q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME);
    expect(page.records.map((r) => (r.dataType === 'funding_rate' ? r.markPrice : 'x'))).toEqual([null, null]);
  });

  it('continues after the last funding time of a full page until past toMs', () => {
    const [row] = JSON.parse(doc) as Array<Record<string, unknown>>;
    const full = (first: number) => JSON.stringify(Array.from({ length: 1000 }, (_, i) => ({ ...row, fundingTime: first + i * 3_600_000 })));
    const wide = { ...q, toMs: q.fromMs + 2000 * 3_600_000 };
    const request = source.request(FAPI_REST, wide, NO_KEY, TEST_POLL_OPTIONS);
    const page = source.parsePage(full(q.fromMs), wide, request, RECEIVE_TIME);
    expect(page.records).toHaveLength(1000);
    expect(page.next).toEqual({ ...request, url: request.url.replace('startTime=1570600000000', `startTime=${q.fromMs + 999 * 3_600_000 + 1}`) });
    // Still full, but its last rate is at toMs.
    expect(source.parsePage(full(q.fromMs + 1001 * 3_600_000), wide, page.next as RestRequest, RECEIVE_TIME).next).toBeNull();
  });

  it.each([
    ['an error body', '{"code":-1121,"msg":"Invalid symbol."}'],
    ['a rate that is not a decimal', '[{"symbol":"BTCUSDT","fundingRate":"-3.75e-2","fundingTime":1570608000000}]'],
    ['a funding time as a string', '[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingTime":"1570608000000"}]'],
    ['a mark price that is not a decimal', '[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingTime":1570608000000,"markPrice":"n/a"}]'],
  ])('rejects %s', (_what, body) => {
    const err = malformed(() => source.parsePage(body, q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME));
    expect([err.reason, err.dataType]).toEqual(['unexpected_shape', 'funding_rate']);
  });
});

describe('binance_derivatives open interest history (GET /futures/data/openInterestHist)', () => {
  const source = historyOf(binanceDerivatives, 'open_interest');
  const doc = only('binance_derivatives', 'open_interest_hist_rest_doc.jsonl');
  const FIVE_MIN = 300_000;

  it('asks for windows of at most 500 periods, so no row is cut whichever end the venue trims', () => {
    const q = query({ fromMs: 1_583_127_900_000, toMs: 1_583_127_900_000 + 1200 * FIVE_MIN, fromId: null, toId: null });
    const first = source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS);
    const windowEnd = 1_583_127_900_000 + 500 * FIVE_MIN - 1;
    expect(first).toEqual({
      url: `https://fapi.binance.com/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&startTime=1583127900000&endTime=${windowEnd}&limit=500`,
      weight: 0,
    });
    const page1 = source.parsePage(doc, q, first, RECEIVE_TIME);
    expect([param(page1.next, 'startTime'), param(page1.next, 'endTime')]).toEqual([String(windowEnd + 1), String(windowEnd + 500 * FIVE_MIN)]);
    // An empty window does not end the range; the last window is cut at toMs and ends it.
    const page2 = source.parsePage('[]', q, page1.next as RestRequest, RECEIVE_TIME);
    expect(param(page2.next, 'endTime')).toBe(String(q.toMs));
    expect(source.parsePage('[]', q, page2.next as RestRequest, RECEIVE_TIME).next).toBeNull();
  });

  it('makes each period a record at its start, with open interest in coins and its value', () => {
    const q = query({ fromMs: 1_583_127_900_000, toMs: 1_583_128_200_000, fromId: null, toId: null });
    const page = source.parsePage(doc, q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME);
    expect(page.records).toEqual([
      { dataType: 'open_interest', venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT', eventTime: 1583127900000, receiveTime: RECEIVE_TIME, openInterest: '20403.63700000', openInterestValue: '150570784.07809979' },
      { dataType: 'open_interest', venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT', eventTime: 1583128200000, receiveTime: RECEIVE_TIME, openInterest: '20401.36700000', openInterestValue: '149940752.14464448' },
    ]);
    expect(page.next).toBeNull();
  });

  it.each([
    ['an object instead of rows', '{"code":-1130,"msg":"Data sent for parameter \'period\' is not valid."}'],
    ['a timestamp with a fraction', '[{"symbol":"BTCUSDT","sumOpenInterest":"1.0","sumOpenInterestValue":"2.0","timestamp":"1583127900000.5"}]'],
    ['no value', '[{"symbol":"BTCUSDT","sumOpenInterest":"1.0","timestamp":1583127900000}]'],
  ])('rejects %s', (_what, body) => {
    const q = query({ fromId: null, toId: null });
    const err = malformed(() => source.parsePage(body, q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME));
    expect([err.reason, err.dataType]).toEqual(['unexpected_shape', 'open_interest']);
  });
});

describe.each([
  ['lsr_top_position', 'top_long_short_position_ratio_rest.jsonl', '/futures/data/topLongShortPositionRatio'],
  ['lsr_all_account', 'global_long_short_account_ratio_rest.jsonl', '/futures/data/globalLongShortAccountRatio'],
] as const)('binance_derivatives %s history', (dataType, file, route) => {
  const source = historyOf(binanceDerivatives, dataType);
  const body = only('binance_derivatives', file);
  const q = query({ fromMs: 1_583_139_600_000, toMs: 1_583_139_900_000, fromId: null, toId: null });

  it('asks the live poll endpoint for the range, in the configured period', () => {
    const options = { ...TEST_POLL_OPTIONS, lsrPeriod: '1h' };
    expect(source.request(FAPI_REST, q, NO_KEY, options)).toEqual({
      url: `https://fapi.binance.com${route}?symbol=BTCUSDT&period=1h&startTime=1583139600000&endTime=1583139900000&limit=500`,
      weight: 0,
    });
  });

  it('yields records identical to the live poll for the same rows', () => {
    const [poll] = binanceDerivatives.polls(FAPI_REST, ['BTCUSDT'], [dataType as PolledDataType], TEST_POLL_OPTIONS);
    const page = source.parsePage(body, q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME);
    expect(page.records).toHaveLength(2);
    expect(page.records).toEqual(poll?.parse(body, RECEIVE_TIME));
    expect(page.next).toBeNull();
  });

  it('rejects a refusal as malformed', () => {
    const err = malformed(() => source.parsePage('{"code":-1121,"msg":"Invalid symbol."}', q, source.request(FAPI_REST, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVE_TIME));
    expect([err.reason, err.dataType]).toEqual(['unexpected_shape', dataType]);
  });
});
