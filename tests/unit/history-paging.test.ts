import { describe, expect, it } from 'vitest';
import { HistoryPagingError, pageHistory, type HistoryGet } from '../../src/lib/exchanges/history-paging.js';
import { MalformedFrameError, type HistoryPage, type HistoryQuery, type HistorySource, type RestRequest } from '../../src/lib/exchanges/types.js';
import type { MarketRecord, TradeRecord, VolatilityIndexRecord } from '../../src/lib/records.js';
import { TEST_POLL_OPTIONS } from '../helpers/adapters.js';

const BASE = 'https://venue.invalid';
const NO_KEY = { apiKey: null };

function trade(tradeId: string, eventTime: number, instrument = 'BTCUSDT'): TradeRecord {
  return { dataType: 'trade', venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument, eventTime, receiveTime: 0, tradeId, price: '1', quantity: '1', side: 'buy' };
}

function dvol(eventTime: number, resolution = '60'): VolatilityIndexRecord {
  return { dataType: 'volatility_index', venue: 'deribit_derivatives', marketType: 'index', symbol: 'BTC-USD', instrument: 'btc_usd', eventTime, receiveTime: 0, resolution, indexValue: '50' };
}

function query(fromMs: number, toMs: number, fromId: string | null = null, toId: string | null = null): HistoryQuery {
  return { instrument: 'BTCUSDT', fromMs, toMs, fromId, toId };
}

/**
 * A venue whose answer to page n is pages[n] (the last page, for any n beyond), and a source that
 * reads it: the body is the page number asked for, `next` asks for the following one.
 */
function fakeVenue(pages: readonly MarketRecord[][], opts: { repeatForever?: boolean; blocked?: string } = {}) {
  const asked: string[] = [];
  const source: HistorySource = {
    endpoint: 'GET /fake/history',
    pagesBy: 'time',
    blockedReason: () => opts.blocked ?? null,
    request: (restBaseUrl: string): RestRequest => ({ url: `${restBaseUrl}/fake/history?page=0`, weight: 1 }),
    parsePage(body: string, _query: HistoryQuery, request: RestRequest): HistoryPage {
      const n = Number(body);
      const url = new URL(request.url);
      url.searchParams.set('page', String(opts.repeatForever === true ? n : n + 1));
      const more = opts.repeatForever === true || n + 1 < pages.length;
      return { records: pages[Math.min(n, pages.length - 1)] ?? [], next: more ? { url: url.toString(), weight: 1 } : null };
    },
  };
  const get: HistoryGet = async (req) => {
    asked.push(req.url);
    return { body: new URL(req.url).searchParams.get('page') ?? '', receiveTime: 0 };
  };
  return { source, get, asked };
}

async function collect(gen: AsyncGenerator<MarketRecord[]>): Promise<MarketRecord[][]> {
  const out: MarketRecord[][] = [];
  for await (const page of gen) out.push(page);
  return out;
}

async function failure(gen: AsyncGenerator<MarketRecord[]>): Promise<unknown> {
  try {
    await collect(gen);
  } catch (err) {
    return err;
  }
  throw new Error('expected paging to fail');
}

describe('pageHistory', () => {
  it('follows next until null and yields each page with only the records inside the query time range', async () => {
    const venue = fakeVenue([[trade('1', 90), trade('2', 100), trade('3', 150)], [trade('4', 200), trade('5', 201)], []]);
    const pages = await collect(pageHistory(venue.source, BASE, query(100, 200), NO_KEY, TEST_POLL_OPTIONS, venue.get));
    expect(venue.asked).toEqual([`${BASE}/fake/history?page=0`, `${BASE}/fake/history?page=1`, `${BASE}/fake/history?page=2`]);
    expect(pages.map((p) => p.map((r) => (r as TradeRecord).tradeId))).toEqual([['2', '3'], ['4']]);
  });

  it('holds trade ids against the hole as integers: beyond 2^53 and of different lengths', async () => {
    const big = (n: bigint) => String(2n ** 53n + n);
    const venue = fakeVenue([[trade(big(0n), 100), trade(big(1n), 100), trade(big(2n), 100), trade(big(3n), 100)], [trade('9', 100), trade('10', 100), trade('11', 100)]]);
    const records = (await collect(pageHistory(venue.source, BASE, query(0, 1000, big(1n), big(2n)), NO_KEY, TEST_POLL_OPTIONS, venue.get))).flat();
    expect(records.map((r) => (r as TradeRecord).tradeId)).toEqual([big(1n), big(2n)]);

    const small = fakeVenue([[trade('9', 100), trade('10', 100), trade('11', 100), trade('100', 100)]]);
    const fromTen = (await collect(pageHistory(small.source, BASE, query(0, 1000, '10', null), NO_KEY, TEST_POLL_OPTIONS, small.get))).flat();
    expect(fromTen.map((r) => (r as TradeRecord).tradeId)).toEqual(['10', '11', '100']);
    const upToTen = (await collect(pageHistory(small.source, BASE, query(0, 1000, null, '10'), NO_KEY, TEST_POLL_OPTIONS, small.get))).flat();
    expect(upToTen.map((r) => (r as TradeRecord).tradeId)).toEqual(['9', '10']);
  });

  it('applies the time range to trades with ids too, and ids only to trades', async () => {
    const venue = fakeVenue([[trade('5', 99), trade('6', 100), dvol(100)]]);
    const records = (await collect(pageHistory(venue.source, BASE, query(100, 200, '1', '9'), NO_KEY, TEST_POLL_OPTIONS, venue.get))).flat();
    expect(records).toEqual([trade('6', 100), dvol(100)]);
  });

  it('yields an observation once when pages overlap, and tells observations apart by type, instrument, time and own key', async () => {
    const first = [trade('1', 100), trade('2', 100), dvol(100), dvol(100, '3600')];
    const second = [trade('2', 100), trade('2', 100, 'ETHUSDT'), trade('3', 101), dvol(100), dvol(160)];
    const venue = fakeVenue([first, second, [...first, ...second]]);
    const pages = await collect(pageHistory(venue.source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get));
    expect(pages).toEqual([first, [trade('2', 100, 'ETHUSDT'), trade('3', 101), dvol(160)]]);
    expect(venue.asked).toHaveLength(3);
  });

  it('stops with an error when the venue answers the same page forever', async () => {
    const venue = fakeVenue([[trade('1', 100)]], { repeatForever: true });
    const err = await failure(pageHistory(venue.source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get, { maxPagesWithoutProgress: 3 }));
    expect(err).toBeInstanceOf(HistoryPagingError);
    expect((err as HistoryPagingError).reason).toBe('no_progress');
    expect((err as Error).message).toContain('GET /fake/history: 3 pages in a row brought nothing new for BTCUSDT');
    // The first page brought a record; the next three brought nothing.
    expect(venue.asked).toHaveLength(4);
  });

  it('lets a few pages with nothing new pass when records follow, and ends quietly on an empty last page', async () => {
    const venue = fakeVenue([[trade('1', 100)], [], [trade('1', 100)], [], [trade('2', 100)], []]);
    const pages = await collect(pageHistory(venue.source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get, { maxPagesWithoutProgress: 4 }));
    expect(pages).toEqual([[trade('1', 100)], [trade('2', 100)]]);
    expect(venue.asked).toHaveLength(6);
  });

  it('asks nothing of the venue when the credentials cannot read the source', async () => {
    const venue = fakeVenue([[trade('1', 100)]], { blocked: 'needs an API key (apiKey of binance_derivatives)' });
    const err = await failure(pageHistory(venue.source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get));
    expect(err).toMatchObject({ reason: 'blocked', message: 'GET /fake/history: needs an API key (apiKey of binance_derivatives)' });
    expect(venue.asked).toEqual([]);
  });

  it('refuses ids that are not decimal, in the query or in the records it must hold against them', async () => {
    const venue = fakeVenue([[trade('abc-1', 100)]]);
    expect(await failure(pageHistory(venue.source, BASE, query(0, 1000, '12a', null), NO_KEY, TEST_POLL_OPTIONS, venue.get))).toMatchObject({ reason: 'non_decimal_id' });
    expect(await failure(pageHistory(venue.source, BASE, query(0, 1000, '-1', null), NO_KEY, TEST_POLL_OPTIONS, venue.get))).toMatchObject({ reason: 'non_decimal_id' });
    expect(venue.asked).toEqual([]);
    expect(await failure(pageHistory(venue.source, BASE, query(0, 1000, '1', '9'), NO_KEY, TEST_POLL_OPTIONS, venue.get))).toMatchObject({ reason: 'non_decimal_id' });
    // Without ids in the query, any id is fine.
    expect((await collect(pageHistory(venue.source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get))).flat()).toEqual([trade('abc-1', 100)]);
  });

  it("passes the source's MalformedFrameError through, after the pages before it", async () => {
    const venue = fakeVenue([[trade('1', 100)], [trade('2', 100)]]);
    const source: HistorySource = {
      ...venue.source,
      parsePage(body, q, req, receiveTime) {
        if (body === '1') throw new MalformedFrameError('venue_error', 'Deribit error 10028: too_many_requests', 'trade');
        return venue.source.parsePage(body, q, req, receiveTime);
      },
    };
    const seen: MarketRecord[][] = [];
    let err: unknown = null;
    try {
      for await (const page of pageHistory(source, BASE, query(0, 1000), NO_KEY, TEST_POLL_OPTIONS, venue.get)) seen.push(page);
    } catch (e) {
      err = e;
    }
    expect(seen).toEqual([[trade('1', 100)]]);
    expect(err).toBeInstanceOf(MalformedFrameError);
  });
});
