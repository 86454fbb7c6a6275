import { describe, expect, it } from 'vitest';
import { OKX_SPOT_MARKET, okxTradeHistory } from '../../src/lib/exchanges/okx.js';
import { okxDerivatives, okxOpenInterest } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { normalizeAll, type HistoryQuery, type HistorySource, type RestRequest } from '../../src/lib/exchanges/types.js';
import type { MarketRecord } from '../../src/lib/records.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';
import { fixtureLines } from '../helpers/fixtures.js';

const BASE = 'https://www.okx.com';
const RECEIVED = 1_700_000_000_000;
const NO_KEY = { apiKey: null };
const derivatives = okxDerivatives(['BTC-USDT-SWAP']);
const EMPTY = '{"code":"0","msg":"","data":[]}';

const only = (venue: 'okx_spot' | 'okx_derivatives', file: string): string => {
  const lines = fixtureLines(venue, file);
  expect(lines).toHaveLength(1);
  return lines[0] as string;
};

function query(over: Partial<HistoryQuery>): HistoryQuery {
  return { instrument: 'BTC-USDT', fromMs: 0, toMs: 2_000_000_000_000, fromId: null, toId: null, ...over };
}

function source(adapter: { history: Readonly<Partial<Record<string, HistorySource>>> }, dataType: string): HistorySource {
  const s = adapter.history[dataType];
  if (s === undefined) throw new Error(`no ${dataType} history`);
  return s;
}

const params = (r: RestRequest | null) => Object.fromEntries(new URL(r?.url ?? 'http://none/').searchParams);

/** The records the `trades` WebSocket channel yields for these REST items, as one push. */
function asPush(instId: string, items: unknown[]): MarketRecord[] {
  const frame = JSON.stringify({ arg: { channel: 'trades', instId }, data: items });
  const adapter = instId.endsWith('-SWAP') ? okxDerivatives([instId]) : okxSpot;
  return normalizeAll(adapter, frame, RECEIVED).records;
}

describe('okx history: which data types refill, and how', () => {
  it('spot refills trades only; swaps refill trades and every polled type; none needs a key', () => {
    expect(Object.keys(okxSpot.history)).toEqual(['trade']);
    expect(Object.keys(derivatives.history).sort()).toEqual(['funding_rate', 'lsr_all_account', 'lsr_top_position', 'open_interest', 'trade']);
    for (const s of [...Object.values(okxSpot.history), ...Object.values(derivatives.history)]) {
      expect(s?.blockedReason(NO_KEY)).toBeNull();
      expect(s?.endpoint).toMatch(/^GET \/api\/v5\//);
      // Times suffice for every OKX history; trade ids only narrow a hole when known.
      expect(s?.pagesBy).toBe('time');
    }
  });
});

describe('okx history-trades', () => {
  const trades = source(okxSpot, 'trade');
  const doc = only('okx_spot', 'history_trades_rest_doc.jsonl');
  const docItems = (JSON.parse(doc) as { data: unknown[] }).data;

  it('asks by time for a hole known by time, and just above the last missing id for one known by ids', () => {
    const byTime = trades.request(`${BASE}/okx_spot`, query({ fromMs: 10, toMs: 1654161646974 }), NO_KEY, TEST_POLL_OPTIONS);
    expect(byTime).toEqual({ url: `${BASE}/okx_spot/api/v5/market/history-trades?instId=BTC-USDT&type=2&after=1654161646975&limit=100`, weight: 1 });
    // Beyond 2^53: ids are counted exactly.
    const byId = trades.request(BASE, query({ fromId: '9007199254740990', toId: '9007199254740993' }), NO_KEY, TEST_POLL_OPTIONS);
    expect(params(byId)).toEqual({ instId: 'BTC-USDT', type: '1', after: '9007199254740994', limit: '100' });
  });

  it('yields the records the trades channel yields for the same trades (documented page and captured trades)', () => {
    const q = query({});
    const page = trades.parsePage(doc, q, trades.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED);
    // Oldest first, like the stream.
    expect(page.records).toEqual(asPush('BTC-USDT', [...docItems].reverse()));
    expect(page.records[0]).toEqual({
      dataType: 'trade',
      venue: 'okx_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTC-USDT',
      eventTime: 1654161641568,
      receiveTime: RECEIVED,
      tradeId: '242720719',
      price: '29964.1',
      quantity: '0.00001',
      side: 'sell',
    });

    // Real trades from the WebSocket capture, listed the way history-trades lists them (newest first).
    const captured = fixtureLines('okx_spot', 'trades_ws.jsonl').slice(1);
    const items = captured.flatMap((f) => (JSON.parse(f) as { data: unknown[] }).data);
    const live = captured.flatMap((f) => normalizeAll(okxSpot, f, RECEIVED).records);
    const body = JSON.stringify({ code: '0', msg: '', data: [...items].reverse() });
    expect(trades.parsePage(body, q, trades.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).records).toEqual(live);
  });

  it('swap trades stay in contracts with the swap symbol, as live', () => {
    const swapTrades = source(okxDerivatives(['UNI-USD-SWAP']), 'trade');
    const frame = only('okx_derivatives', 'trades_ws.jsonl');
    const items = (JSON.parse(frame) as { data: unknown[] }).data;
    const q = query({ instrument: 'UNI-USD-SWAP' });
    const page = swapTrades.parsePage(JSON.stringify({ code: '0', msg: '', data: items }), q, swapTrades.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED);
    expect(page.records).toEqual(normalizeAll(okxDerivatives(['UNI-USD-SWAP']), frame, RECEIVED).records);
    expect(page.records[0]).toMatchObject({ venue: 'okx_derivatives', marketType: 'perpetual', symbol: 'UNI-USD', quantity: '100' });
  });

  it('keeps only the hole: by time, or by id when the ids are known', () => {
    const byTime = query({ fromMs: 1654161641569, toMs: 1654161646974 });
    expect(trades.parsePage(doc, byTime, trades.request(BASE, byTime, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).records.map((r) => r.eventTime)).toEqual([1654161646974]);
    const byId = query({ fromId: '242720700', toId: '242720719' });
    expect(trades.parsePage(doc, byId, trades.request(BASE, byId, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).records.map((r) => r.eventTime)).toEqual([1654161641568]);
  });

  it('pages back by trade id until a page reaches below the hole, comes back empty, or does not move', () => {
    // The oldest trade is at the hole's first millisecond: older trades of that millisecond may follow.
    const atStart = query({ fromMs: 1654161641568, toMs: 1654161646974 });
    const first = trades.request(`${BASE}/okx_spot`, atStart, NO_KEY, TEST_POLL_OPTIONS);
    const page = trades.parsePage(doc, atStart, first, RECEIVED);
    expect(page.next).toEqual({ url: `${BASE}/okx_spot/api/v5/market/history-trades?instId=BTC-USDT&type=1&after=242720719&limit=100`, weight: 1 });
    expect(trades.parsePage(EMPTY, atStart, page.next as RestRequest, RECEIVED)).toEqual({ records: [], next: null });

    // A trade older than the hole was listed: covered.
    const covered = query({ fromMs: 1654161641569, toMs: 1654161646974 });
    expect(trades.parsePage(doc, covered, first, RECEIVED).next).toBeNull();

    // By id: covered once the hole's first id is listed; not before.
    const ids = query({ fromId: '242720719', toId: '242720720' });
    expect(trades.parsePage(doc, ids, trades.request(BASE, ids, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).next).toBeNull();
    const deeper = query({ fromId: '242720001', toId: '242720720' });
    expect(params(trades.parsePage(doc, deeper, trades.request(BASE, deeper, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).next)).toMatchObject({ type: '1', after: '242720719' });

    // The venue answered the same page again: asking once more would loop.
    const again = { url: `${BASE}/api/v5/market/history-trades?instId=BTC-USDT&type=1&after=242720719&limit=100`, weight: 1 };
    expect(trades.parsePage(doc, deeper, again, RECEIVED).next).toBeNull();
  });

  it('rejects bodies that are not a page of this instrument’s trades', () => {
    const q = query({});
    const req = trades.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS);
    expect(malformed(() => trades.parsePage('{"code":"0","data":[', q, req, RECEIVED)).reason).toBe('malformed_json');
    const refused = malformed(() => trades.parsePage('{"code":"51000","msg":"Parameter after error","data":[]}', q, req, RECEIVED));
    expect([refused.reason, refused.dataType, refused.message]).toEqual(['venue_error', 'trade', 'OKX error 51000: Parameter after error']);
    expect(malformed(() => trades.parsePage('{"code":"0","msg":"","data":{}}', q, req, RECEIVED)).reason).toBe('unexpected_shape');
    expect(malformed(() => trades.parsePage(doc, query({ instrument: 'ETH-USDT' }), req, RECEIVED)).reason).toBe('unexpected_shape');
    const item = docItems[0] as Record<string, unknown>;
    expect(malformed(() => trades.parsePage(JSON.stringify({ code: '0', msg: '', data: [{ ...item, px: '' }] }), q, req, RECEIVED)).reason).toBe('unexpected_shape');
    expect(malformed(() => trades.parsePage(JSON.stringify({ code: '0', msg: '', data: [{ ...item, tradeId: 'a1' }] }), q, req, RECEIVED)).reason).toBe('unexpected_shape');
    // A spot trade on the swap market's history.
    const swap = source(derivatives, 'trade');
    expect(malformed(() => swap.parsePage(doc, q, req, RECEIVED)).reason).toBe('unknown_symbol');
    expect(okxTradeHistory(OKX_SPOT_MARKET).endpoint).toBe('GET /api/v5/market/history-trades');
  });
});

describe('okx funding-rate-history', () => {
  const funding = source(derivatives, 'funding_rate');
  const doc = only('okx_derivatives', 'funding_rate_history_rest_doc.jsonl');
  const q = query({ instrument: 'BTC-USD-SWAP', fromMs: 1703030400000, toMs: 1703059200000 });

  it('asks between the hole’s bounds, 400 a page', () => {
    expect(funding.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS)).toEqual({
      url: `${BASE}/api/v5/public/funding-rate-history?instId=BTC-USD-SWAP&before=1703030399999&after=1703059200001&limit=400`,
      weight: 1,
    });
  });

  it('yields each settlement with its settled rate at its funding time', () => {
    const page = funding.parsePage(doc, q, funding.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED);
    expect(page.records).toEqual([
      {
        dataType: 'funding_rate',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USD',
        instrument: 'BTC-USD-SWAP',
        eventTime: 1703030400000,
        receiveTime: RECEIVED,
        fundingRate: '0.0002279755647389',
        nextFundingTime: 0,
        markPrice: null,
      },
      expect.objectContaining({ eventTime: 1703059200000, fundingRate: '0.0000746572360545' }),
    ]);
    // The oldest settlement is the hole's start: covered.
    expect(page.next).toBeNull();
    // Where the settled rate is missing, the predicted one stands in.
    const items = (JSON.parse(doc) as { data: Record<string, unknown>[] }).data.map(({ realizedRate: _, ...rest }) => rest);
    expect(funding.parsePage(JSON.stringify({ code: '0', msg: '', data: items }), q, funding.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED).records.map((r) => r.dataType === 'funding_rate' && r.fundingRate)).toEqual(['0.000227985782722', '0.0000746604960499']);
  });

  it('pages back below the oldest settlement until the hole’s start, keeping only the hole', () => {
    const longer = { ...q, fromMs: 1700000000000, toMs: 1703040000000 };
    const page = funding.parsePage(doc, longer, funding.request(`${BASE}/okx_derivatives`, longer, NO_KEY, TEST_POLL_OPTIONS), RECEIVED);
    expect(page.records.map((r) => r.eventTime)).toEqual([1703030400000]);
    expect(page.next?.url).toBe(`${BASE}/okx_derivatives/api/v5/public/funding-rate-history?instId=BTC-USD-SWAP&before=1699999999999&after=1703030400000&limit=400`);
    expect(funding.parsePage(EMPTY, longer, page.next as RestRequest, RECEIVED).next).toBeNull();
    // No progress: the venue ignored `after`.
    expect(funding.parsePage(doc, longer, page.next as RestRequest, RECEIVED).next).toBeNull();
  });

  it('rejects malformed pages', () => {
    const req = funding.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS);
    expect(malformed(() => funding.parsePage('nope', q, req, RECEIVED)).reason).toBe('malformed_json');
    expect(malformed(() => funding.parsePage('{"code":"51001","msg":"Instrument ID does not exist","data":[]}', q, req, RECEIVED)).reason).toBe('venue_error');
    expect(malformed(() => funding.parsePage(doc, { ...q, instrument: 'BTC-USDT-SWAP' }, req, RECEIVED)).reason).toBe('unexpected_shape');
    expect(malformed(() => funding.parsePage('{"code":"0","msg":"","data":[{"instId":"BTC-USD-SWAP","fundingTime":"1","fundingRate":""}]}', q, req, RECEIVED)).dataType).toBe('funding_rate');
  });
});

describe('okx open-interest-history', () => {
  const oi = source(derivatives, 'open_interest');
  const doc = only('okx_derivatives', 'open_interest_history_rest_doc.jsonl');
  const q = query({ instrument: 'BTC-USDT-SWAP', fromMs: 1701417000000, toMs: 1701417600000 });

  it('asks for 5-minute bars between the hole’s bounds', () => {
    expect(params(oi.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS))).toEqual({ instId: 'BTC-USDT-SWAP', period: '5m', begin: '1701416999999', end: '1701417600001', limit: '100' });
  });

  it('yields what the live poll yields for the same values: coins from oiCcy, USD from oiUsd', () => {
    const page = oi.parsePage(doc, q, oi.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS), RECEIVED);
    const live = okxOpenInterest(
      [1701417500000, 1701417600000].map((ts) => ({ instId: 'BTC-USDT-SWAP', instType: 'SWAP', oi: '731377.57500501', oiCcy: '111', oiUsd: '8888888', ts: String(ts) })),
      'BTC-USDT-SWAP',
      RECEIVED,
    );
    expect(page.records).toEqual(live);
    expect(page.records[0]).toMatchObject({ eventTime: 1701417500000, openInterest: '111', openInterestValue: '8888888', symbol: 'BTC-USDT' });
    expect(params(page.next)).toMatchObject({ end: '1701417500000', begin: '1701416999999' });
  });

  it('rejects rows that are not [ts, oi, oiCcy, oiUsd]', () => {
    const req = oi.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS);
    expect(malformed(() => oi.parsePage('{"code":"0","msg":"","data":[["1701417600000","1","2"]]}', q, req, RECEIVED)).reason).toBe('unexpected_shape');
    expect(malformed(() => oi.parsePage('{"code":"0","msg":"","data":[["1701417600000","1","x","3"]]}', q, req, RECEIVED)).dataType).toBe('open_interest');
  });
});

describe('okx long/short ratio history', () => {
  it.each([
    ['lsr_all_account', 'long_short_account_ratio_contract_rest.jsonl', 'long-short-account-ratio-contract'],
    ['lsr_top_position', 'long_short_position_ratio_contract_top_trader_rest.jsonl', 'long-short-position-ratio-contract-top-trader'],
  ] as const)('%s: the poll’s endpoint with begin/end, and the poll’s records for the same rows', (dataType, file, path) => {
    const lsr = source(derivatives, dataType);
    const body = only('okx_derivatives', file);
    const q = query({ instrument: 'BTC-USDT-SWAP', fromMs: 1701417600000, toMs: 1701417600000 });
    for (const [ours, okx] of [
      ['5m', '5m'],
      ['1h', '1H'],
    ] as const) {
      const options = { ...TEST_POLL_OPTIONS, lsrPeriod: ours };
      const req = lsr.request(BASE, q, NO_KEY, options);
      expect(req.url).toBe(`${BASE}/api/v5/rubik/stat/contracts/${path}?instId=BTC-USDT-SWAP&period=${okx}&begin=1701417599999&end=1701417600001&limit=100`);
      const [poll] = derivatives.polls(BASE, ['BTC-USDT-SWAP'], [dataType], options);
      const page = lsr.parsePage(body, q, req, RECEIVED);
      // The documented page repeats a timestamp: one record, as the poll keeps.
      expect(page.records).toEqual(poll?.parse(body, RECEIVED));
      expect(page.records).toMatchObject([{ dataType, period: ours, eventTime: 1701417600000, longShortRatio: '1.1739' }]);
      expect(page.next).toBeNull();
    }
  });

  it('pages back with end and keeps only the hole; malformed rows are rejected', () => {
    const lsr = source(derivatives, 'lsr_all_account');
    const q = query({ instrument: 'BTC-USDT-SWAP', fromMs: 1701416700000, toMs: 1701417300000 });
    const req = lsr.request(`${BASE}/okx_derivatives`, q, NO_KEY, TEST_POLL_OPTIONS);
    const body = '{"code":"0","msg":"","data":[["1701417600000","1.2"],["1701417300000","1.1"],["1701417000000","0.9"]]}';
    const page = lsr.parsePage(body, q, req, RECEIVED);
    expect(page.records.map((r) => r.eventTime)).toEqual([1701417000000, 1701417300000]);
    expect(params(page.next)).toMatchObject({ end: '1701417000000', begin: '1701416699999', period: '5m' });
    expect(malformed(() => lsr.parsePage('{"code":"0","msg":"","data":[["1701417600000"]]}', q, req, RECEIVED)).reason).toBe('unexpected_shape');
    const unknownPeriod = { url: req.url.replace('period=5m', 'period=7m'), weight: 1 };
    expect(malformed(() => lsr.parsePage(body, q, unknownPeriod, RECEIVED)).reason).toBe('unexpected_shape');
  });
});
