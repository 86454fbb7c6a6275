import { describe, expect, it } from 'vitest';
import { deribitDerivatives, parseVolatilityIndex } from '../../src/lib/exchanges/deribit_derivatives.js';
import { MprismError } from '../../src/lib/errors.js';
import type { HistoryQuery, HistorySource, RestRequest } from '../../src/lib/exchanges/types.js';
import { msgIdFor } from '../../src/lib/records.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';
import { fixtureLines } from '../helpers/fixtures.js';

/*
 * Fixture consumed: deribit_derivatives/volatility_index_rest.jsonl, the documentation's answer
 * (continuation null). Neither a capture nor a documentation example of an answer with a non-null
 * continuation exists (tests/fixtures/exchanges/README.md), so the paging cases below build their
 * bodies inline, in the documented shape.
 */
const RECEIVE = 1_700_000_000_000;
const NO_KEY = { apiKey: null };
const BASE = 'http://127.0.0.1:9000/deribit_derivatives';
const [DOC_ANSWER] = fixtureLines('deribit_derivatives', 'volatility_index_rest.jsonl') as [string];
const DOC_TIMES = [1598019300000, 1598019360000, 1598019420000];

function source(): HistorySource {
  const s = deribitDerivatives.history.volatility_index;
  if (s === undefined) throw new Error('deribit_derivatives has no DVOL history');
  return s;
}

function query(fromMs: number, toMs: number, instrument = 'btc_usd'): HistoryQuery {
  return { instrument, fromMs, toMs, fromId: null, toId: null };
}

const answer = (data: unknown[][], continuation: unknown, usOut?: number) =>
  JSON.stringify({ jsonrpc: '2.0', result: { data, continuation }, ...(usOut === undefined ? {} : { usIn: usOut - 100, usOut }) });

/** One candle per minute from `from` to `to`, [ts, o, h, l, c] with the close telling the minute apart. */
const candles = (from: number, to: number) => {
  const out: number[][] = [];
  for (let ts = from; ts <= to; ts += 60_000) out.push([ts, 50, 51, 49, 50 + (ts / 60_000) % 7]);
  return out;
};

describe('deribit_derivatives DVOL history: requests', () => {
  it('is public, pages by time, and asks for the query range at the live poll resolution', () => {
    const s = source();
    expect(s.endpoint).toBe('GET /api/v2/public/get_volatility_index_data');
    expect(s.pagesBy).toBe('time');
    expect(s.blockedReason(NO_KEY)).toBeNull();
    const req = s.request(`${BASE}/`, query(DOC_TIMES[0]!, DOC_TIMES[2]!), NO_KEY, TEST_POLL_OPTIONS);
    const url = new URL(req.url);
    expect(url.pathname).toBe('/deribit_derivatives/api/v2/public/get_volatility_index_data');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      currency: 'BTC',
      start_timestamp: String(DOC_TIMES[0]),
      end_timestamp: String(DOC_TIMES[2]),
      resolution: '60',
    });
    const [poll] = deribitDerivatives.polls(BASE, ['BTC'], ['volatility_index'], TEST_POLL_OPTIONS);
    expect(url.searchParams.get('resolution')).toBe(new URL(poll!.url).searchParams.get('resolution'));
    expect(req.weight).toBe(1);
  });

  it('reads the currency from the index name records carry, or from a bare currency', () => {
    const currencyOf = (instrument: string) => new URL(source().request(BASE, query(0, 1, instrument), NO_KEY, TEST_POLL_OPTIONS).url).searchParams.get('currency');
    expect(currencyOf('btc_usd')).toBe('BTC');
    expect(currencyOf('eth_usd')).toBe('ETH');
    expect(currencyOf('ETH')).toBe('ETH');
  });
});

describe('deribit_derivatives DVOL history: pages', () => {
  const s = source();
  const first = (q: HistoryQuery) => s.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS);

  it('gives the same records as the live poll for the documented answer, and no next page', () => {
    const q = query(DOC_TIMES[0]!, DOC_TIMES[2]!);
    const page = s.parsePage(DOC_ANSWER, q, first(q), RECEIVE);
    expect(page.next).toBeNull();
    expect(page.records.map((r) => [r.eventTime, r.dataType === 'volatility_index' && r.indexValue])).toEqual([
      [1598019300000, '0.212860821'],
      [1598019360000, '0.212987527'],
      [1598019420000, '0.212992597'],
    ]);
    // The live poll leaves out the newest candle until a newer one exists; the rest are identical.
    const [poll] = deribitDerivatives.polls(BASE, ['BTC'], ['volatility_index'], TEST_POLL_OPTIONS);
    const live = poll!.parse(DOC_ANSWER, RECEIVE);
    expect(live).toEqual(parseVolatilityIndex(DOC_ANSWER, 'BTC', RECEIVE));
    expect(page.records.slice(0, live.length)).toEqual(live);
    expect(page.records.map(msgIdFor)).toEqual(DOC_TIMES.map((t) => `volatility_index:deribit_derivatives:BTC-USD:60:${t}`));
  });

  it('keeps only candles inside the query', () => {
    const q = query(DOC_TIMES[1]!, DOC_TIMES[1]! + 59_999);
    expect(s.parsePage(DOC_ANSWER, q, first(q), RECEIVE).records.map((r) => r.eventTime)).toEqual([DOC_TIMES[1]]);
    const before = query(0, DOC_TIMES[0]! - 1);
    expect(s.parsePage(DOC_ANSWER, before, first(before), RECEIVE).records).toEqual([]);
  });

  it("leaves out a newest candle that is still running by Deribit's clock (usOut), else by the receive time", () => {
    const t = 1_800_000_000_000;
    const body = (usOut?: number) => answer(candles(t, t + 120_000), null, usOut);
    const q = query(t, t + 120_000);
    const times = (b: string, receiveTime: number) => s.parsePage(b, q, first(q), receiveTime).records.map((r) => r.eventTime);
    // Deribit answered 30 s into the newest minute: that candle's close is not final yet.
    expect(times(body((t + 150_000) * 1000), t + 200_000)).toEqual([t, t + 60_000]);
    expect(times(body((t + 180_000) * 1000), t + 180_000)).toEqual([t, t + 60_000, t + 120_000]);
    expect(times(body(), t + 150_000)).toEqual([t, t + 60_000]);
    expect(times(body(), t + 180_000)).toEqual([t, t + 60_000, t + 120_000]);
  });

  it('asks for the next page with end_timestamp = continuation, keeping currency, start, resolution and base path', () => {
    const t = 1_800_000_000_000;
    const q = query(t, t + 2_000 * 60_000, 'eth_usd');
    const req = first(q);
    const page = s.parsePage(answer(candles(t + 1_001 * 60_000, t + 2_000 * 60_000), t + 1_001 * 60_000 - 1), q, req, RECEIVE + 1e12);
    expect(page.records).toHaveLength(1000);
    expect(page.records[0]).toMatchObject({ instrument: 'eth_usd', symbol: 'ETH-USD', eventTime: t + 1_001 * 60_000 });
    const next = page.next as RestRequest;
    const url = new URL(next.url);
    expect(url.pathname).toBe('/deribit_derivatives/api/v2/public/get_volatility_index_data');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      currency: 'ETH',
      start_timestamp: String(t),
      end_timestamp: String(t + 1_001 * 60_000 - 1),
      resolution: '60',
    });
    const last = s.parsePage(answer(candles(t, t + 1_000 * 60_000), null), q, next, RECEIVE + 1e12);
    expect(last.next).toBeNull();
    expect(last.records.map((r) => r.eventTime)).toEqual(candles(t, t + 1_000 * 60_000).map((c) => c[0]));
  });

  it('stops when the continuation falls before the range start, and also accepts a continuation equal to it', () => {
    const t = 1_800_000_000_000;
    const q = query(t, t + 600_000);
    expect(s.parsePage(answer(candles(t, t + 600_000), t - 1), q, first(q), RECEIVE + 1e12).next).toBeNull();
    expect(new URL(s.parsePage(answer(candles(t + 60_000, t + 600_000), t), q, first(q), RECEIVE + 1e12).next!.url).searchParams.get('end_timestamp')).toBe(String(t));
  });
});

describe('deribit_derivatives DVOL history: bodies that cannot be paged', () => {
  const s = source();
  const q = query(DOC_TIMES[0]!, DOC_TIMES[2]!);
  const req = s.request(BASE, q, NO_KEY, TEST_POLL_OPTIONS);
  const parse = (body: string) => () => s.parsePage(body, q, req, RECEIVE);

  it('reports JSON-RPC errors as venue_error and broken JSON as malformed_json', () => {
    const err = malformed(parse('{"jsonrpc":"2.0","error":{"message":"too_many_requests","code":10028},"usIn":1,"usOut":2}'));
    expect(err.reason).toBe('venue_error');
    expect(err.dataType).toBe('volatility_index');
    expect(err.message).toContain('10028');
    expect(malformed(parse(DOC_ANSWER.slice(0, 40))).reason).toBe('malformed_json');
  });

  it('rejects answers that are not the documented shape', () => {
    expect(malformed(parse('[]')).reason).toBe('unexpected_shape');
    expect(malformed(parse('{"jsonrpc":"2.0","result":{"continuation":null}}')).reason).toBe('unexpected_shape');
    expect(malformed(parse(answer([[DOC_TIMES[0]!, 1, 1, 1]], null))).reason).toBe('unexpected_shape');
    expect(malformed(parse(answer([[DOC_TIMES[0]!, 1, 1, 1, '1']], null))).reason).toBe('unexpected_shape');
  });

  it('rejects a continuation that is not an integer timestamp, or that does not page back in time', () => {
    for (const bad of ['1598019300000', 1598019300000.5, {}, true]) {
      expect(malformed(parse(answer(candles(DOC_TIMES[0]!, DOC_TIMES[2]!), bad))).reason).toBe('unexpected_shape');
    }
    const stuck = malformed(parse(answer(candles(DOC_TIMES[0]!, DOC_TIMES[2]!), DOC_TIMES[2])));
    expect(stuck.reason).toBe('unexpected_shape');
    expect(stuck.message).toContain('does not page back');
  });

  it('refuses a request it did not build', () => {
    expect(() => s.parsePage(DOC_ANSWER, q, { url: `${BASE}/api/v2/public/ticker?instrument_name=BTC-PERPETUAL`, weight: 1 }, RECEIVE)).toThrow(MprismError);
    expect(() => s.parsePage(DOC_ANSWER, q, { url: `${BASE}/api/v2/public/get_volatility_index_data?currency=BTC`, weight: 1 }, RECEIVE)).toThrow(
      'not a DVOL history request',
    );
  });
});
