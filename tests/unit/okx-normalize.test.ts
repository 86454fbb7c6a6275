import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/lib/errors.js';
import {
  OKX_MAX_INSTRUMENTS_PER_CONNECTION,
  OKX_MAX_SUBSCRIBE_BYTES,
  OKX_SPOT_MARKET,
  OKX_SWAP_MARKET,
  okxBookMessage,
  okxRequests,
  okxRestData,
  okxTrade,
} from '../../src/lib/exchanges/okx.js';
import { okxDerivatives, okxFundingRates, okxOpenInterest } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { MalformedFrameError, normalizeAll, type RestPoll, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../../src/lib/records.js';
import { FIXTURES_DIR } from '../helpers/fixtures.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';

const FIXTURES = FIXTURES_DIR;
const RECEIVED = 1_700_000_000_000;
const lines = (venue: 'okx_spot' | 'okx_derivatives', file: string): string[] =>
  readFileSync(`${FIXTURES}/${venue}/${file}`, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
const only = (venue: 'okx_spot' | 'okx_derivatives', file: string): string => {
  const all = lines(venue, file);
  expect(all).toHaveLength(1);
  return all[0] as string;
};

/** The configured swaps of the tests, plus the instruments of the captured derivative fixtures. */
const derivatives = okxDerivatives(['BTC-USDT-SWAP', 'ETH-USDT-SWAP', 'UNI-USD-SWAP', 'IOST-USDT-SWAP']);

const OPTIONS = TEST_POLL_OPTIONS;


function normalizeLines(adapter: VenueAdapter, frames: readonly string[]): { records: MarketRecord[]; books: BookMessage[] } {
  const records: MarketRecord[] = [];
  const books: BookMessage[] = [];
  for (const frame of frames) {
    const out = normalizeAll(adapter, frame, RECEIVED);
    records.push(...out.records);
    books.push(...out.books);
  }
  return { records, books };
}

/** A 400-level snapshot is summarized (every level is checked against the frame separately). */
function bookForSnapshot(m: BookMessage): unknown {
  if (m.bids.length + m.asks.length <= 20) return m;
  return { ...m, bids: { count: m.bids.length, top: m.bids.slice(0, 5) }, asks: { count: m.asks.length, top: m.asks.slice(0, 5) } };
}

/** [px, sz] of every level of a books frame, in the order sent. */
function rawLevels(frame: string): { bids: string[][]; asks: string[][] } {
  const parsed = JSON.parse(frame) as { data: { bids: string[][]; asks: string[][] }[] };
  const [data] = parsed.data;
  if (data === undefined) throw new Error('books frame without data');
  return { bids: data.bids.map((l) => l.slice(0, 2)), asks: data.asks.map((l) => l.slice(0, 2)) };
}

function pollFor(adapter: VenueAdapter, dataType: RestPoll['dataType'], instId: string): RestPoll {
  const [poll] = adapter.polls('https://www.okx.com', [instId], [dataType], OPTIONS);
  if (poll === undefined) throw new Error(`no ${dataType} poll`);
  return poll;
}

describe('okx_spot: every captured and documented WebSocket frame', () => {
  it('books_ws.jsonl: one snapshot, then 68 updates, levels exactly as sent', () => {
    const frames = lines('okx_spot', 'books_ws.jsonl');
    const { records, books } = normalizeLines(okxSpot, frames);
    expect(records).toEqual([]);
    expect(books).toHaveLength(69);
    expect(books.map((m) => m.action)).toEqual(['snapshot', ...Array<string>(68).fill('update')]);
    books.forEach((m, i) => {
      const raw = rawLevels(frames[i] as string);
      expect(m.bids).toEqual(raw.bids);
      expect(m.asks).toEqual(raw.asks);
      // The 2022 capture predates seqId/prevSeqId; every message carries a checksum.
      expect(m).toMatchObject({ symbol: 'BTC-USDT', instrument: 'BTC-USDT', lastUpdateId: null, prevUpdateId: null, firstUpdateId: null });
      expect(Number.isInteger(m.checksum)).toBe(true);
    });
    expect(books[0]?.bids).toHaveLength(400);
    expect(books[0]?.asks).toHaveLength(400);
    expect(books.map(bookForSnapshot)).toMatchSnapshot();
  });

  it('books_ws_doc.jsonl: the documented snapshot carries prevSeqId -1 and seqId', () => {
    const { books } = normalizeAll(okxSpot, only('okx_spot', 'books_ws_doc.jsonl'), RECEIVED);
    expect(books).toHaveLength(1);
    expect(books[0]).toMatchObject({ action: 'snapshot', lastUpdateId: 123456, prevUpdateId: -1, checksum: -855196043, eventTime: 1597026383085 });
    expect(books).toMatchSnapshot();
  });

  it('trades_ws.jsonl and trades_ws_doc.jsonl: taker side, exact strings, ts as event time', () => {
    const { records, books } = normalizeLines(okxSpot, [...lines('okx_spot', 'trades_ws.jsonl'), only('okx_spot', 'trades_ws_doc.jsonl')]);
    expect(books).toEqual([]);
    expect(records).toHaveLength(16);
    expect(records[1]).toEqual({
      dataType: 'trade',
      venue: 'okx_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTC-USDT',
      eventTime: 1652459224818,
      receiveTime: RECEIVED,
      tradeId: '338476307',
      price: '30236',
      quantity: '0.0002',
      side: 'buy',
    });
    expect(subjectFor(records[1] as MarketRecord)).toBe('trade.okx_spot.spot.BTC-USDT');
    expect(msgIdFor(records[1] as MarketRecord)).toBe('trade:okx_spot:BTC-USDT:338476307');
    expect(records).toMatchSnapshot();
  });

  it('trades-all (business endpoint, not subscribed) is rejected by the adapter; its items are the trades format', () => {
    for (const frame of [only('okx_spot', 'trades_all_ws.jsonl'), only('okx_spot', 'trades_all_ws_doc.jsonl')]) {
      const err = malformed(() => normalizeAll(okxSpot, frame, RECEIVED));
      expect(err.reason).toBe('unexpected_shape');
      expect(err.message).toContain('channel trades-all is not collected for okx_spot');
      const data = (JSON.parse(frame) as { data: unknown[] }).data;
      expect(data.map((d) => okxTrade(OKX_SPOT_MARKET, d, RECEIVED))).toMatchSnapshot();
    }
  });

  it('books-l2-tbt (needs VIP login, not subscribed) is rejected by the adapter; its item is the books format', () => {
    const frame = only('okx_spot', 'books_l2_tbt_ws.jsonl');
    expect(malformed(() => normalizeAll(okxSpot, frame, RECEIVED)).message).toContain('channel books-l2-tbt is not collected');
    const parsed = JSON.parse(frame) as { action: string; data: unknown[] };
    expect(okxBookMessage(OKX_SPOT_MARKET, 'ETC-ETH', parsed.action, parsed.data[0], RECEIVED)).toMatchSnapshot();
  });

  it('books_rest.jsonl (market/books, not used: books are seeded by the stream snapshot) parses as a snapshot item', () => {
    const [data] = okxRestData(only('okx_spot', 'books_rest.jsonl'), 'orderbook');
    expect(okxBookMessage(OKX_SPOT_MARKET, 'BTC-USDT', 'snapshot', data, RECEIVED)).toMatchObject({
      bids: [['41006.3', '0.30178218']],
      asks: [['41006.8', '0.60038921']],
      eventTime: 1629966436396,
      lastUpdateId: null,
      checksum: null,
    });
  });

  it('books_checksum_doc.jsonl is a bare book state, not a frame: rejected (the orderbook tests use it)', () => {
    expect(malformed(() => normalizeAll(okxSpot, only('okx_spot', 'books_checksum_doc.jsonl'), RECEIVED)).reason).toBe('unexpected_shape');
  });
});

describe('okx_derivatives: every captured and documented frame and response', () => {
  it('books_ws.jsonl: UNI-USD-SWAP snapshot and 64 updates, sizes in contracts as sent', () => {
    const frames = lines('okx_derivatives', 'books_ws.jsonl');
    const { records, books } = normalizeLines(derivatives, frames);
    expect(records).toEqual([]);
    expect(books).toHaveLength(65);
    books.forEach((m, i) => {
      const raw = rawLevels(frames[i] as string);
      expect(m.bids).toEqual(raw.bids);
      expect(m.asks).toEqual(raw.asks);
      expect(m).toMatchObject({ venue: 'okx_derivatives', marketType: 'perpetual', symbol: 'UNI-USD', instrument: 'UNI-USD-SWAP' });
    });
    expect(books[0]).toMatchObject({ action: 'snapshot' });
    expect(books[0]?.bids).toHaveLength(121);
    expect(books[0]?.asks).toHaveLength(119);
    expect(books.map(bookForSnapshot)).toMatchSnapshot();
  });

  it('trades_ws.jsonl: swap trade, symbol without -SWAP', () => {
    const { records } = normalizeAll(derivatives, only('okx_derivatives', 'trades_ws.jsonl'), RECEIVED);
    expect(records).toEqual([
      {
        dataType: 'trade',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'UNI-USD',
        instrument: 'UNI-USD-SWAP',
        eventTime: 1652459215150,
        receiveTime: RECEIVED,
        tradeId: '12883020',
        price: '5.123',
        quantity: '100',
        side: 'sell',
      },
    ]);
    expect(subjectFor(records[0] as MarketRecord)).toBe('trade.okx_derivatives.perpetual.UNI-USD');
  });

  it('liquidation_orders_ws_doc.jsonl: one record per detail, a deterministic id, bkPx as price', () => {
    const frame = only('okx_derivatives', 'liquidation_orders_ws_doc.jsonl');
    const { records } = normalizeAll(derivatives, frame, RECEIVED);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      dataType: 'liquidation',
      symbol: 'IOST-USDT',
      instrument: 'IOST-USDT-SWAP',
      side: 'buy',
      price: '0.007831',
      quantity: '13',
      eventTime: 1692266434010,
    });
    expect(normalizeAll(derivatives, frame, RECEIVED + 5).records[0]).toMatchObject({ liquidationId: (records[0] as { liquidationId: string }).liquidationId });
    expect(records).toMatchSnapshot();
  });

  it('liquidations of instruments that are not configured are dropped (the channel pushes every swap)', () => {
    const frame = only('okx_derivatives', 'liquidation_orders_ws_doc.jsonl');
    expect(normalizeAll(okxDerivatives(['BTC-USDT-SWAP']), frame, RECEIVED).records).toEqual([]);
    // The only real capture is a dated FUTURES contract, which a swap subscription never receives: dropped.
    expect(normalizeAll(derivatives, only('okx_derivatives', 'liquidation_orders_ws.jsonl'), RECEIVED).records).toEqual([]);
  });

  it('a configured instrument that is not a swap is refused, not published under a wrong symbol', () => {
    const frame = only('okx_derivatives', 'liquidation_orders_ws.jsonl');
    expect(malformed(() => normalizeAll(okxDerivatives(['XRP-USD-230929']), frame, RECEIVED))).toMatchObject({ reason: 'unknown_symbol', dataType: 'liquidation' });
  });

  it('books-l2-tbt is rejected by the adapter; its item (with a deletion) is the books format', () => {
    const frame = only('okx_derivatives', 'books_l2_tbt_ws.jsonl');
    expect(malformed(() => normalizeAll(derivatives, frame, RECEIVED)).reason).toBe('unexpected_shape');
    const parsed = JSON.parse(frame) as { action: string; data: unknown[] };
    const m = okxBookMessage(OKX_SWAP_MARKET, 'REN-USDT-SWAP', parsed.action, parsed.data[0], RECEIVED);
    expect(m.bids).toEqual([
      ['0.65441', '1'],
      ['0.65418', '0'],
    ]);
    expect(m).toMatchSnapshot();
  });

  it('funding_rate_rest.jsonl through the funding poll: fundingRate, its settlement (fundingTime) as nextFundingTime, ts as event time', () => {
    const records = pollFor(derivatives, 'funding_rate', 'BTC-USDT-SWAP').parse(only('okx_derivatives', 'funding_rate_rest.jsonl'), RECEIVED);
    expect(records).toEqual([
      {
        dataType: 'funding_rate',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USDT',
        instrument: 'BTC-USDT-SWAP',
        eventTime: 1743588686291,
        receiveTime: RECEIVED,
        fundingRate: '0.0000182221218054',
        // fundingRate is the rate of the running interval, which settles at fundingTime (5.8 h after
        // ts); OKX's nextFundingTime is the settlement after that one.
        nextFundingTime: 1743609600000,
        markPrice: null,
      },
    ]);
    expect(msgIdFor(records[0] as MarketRecord)).toBe('funding_rate:okx_derivatives:BTC-USDT:1743588686291');
  });

  it('WS funding-rate frames are not subscribed (funding is polled): rejected; their items are checked by the REST parser', () => {
    const [old2021, xPerp] = lines('okx_derivatives', 'funding_rate_ws.jsonl') as [string, string];
    const doc = only('okx_derivatives', 'funding_rate_ws_doc.jsonl');
    for (const frame of [old2021, xPerp, doc]) {
      expect(malformed(() => normalizeAll(derivatives, frame, RECEIVED)).message).toContain('channel funding-rate is not collected');
    }
    const items = (frame: string) => (JSON.parse(frame) as { data: unknown[] }).data;
    // 2021 format: no fundingRate at all.
    expect(malformed(() => okxFundingRates(items(old2021), 'SOS-USDT-SWAP', RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'funding_rate' });
    // X-Perp is a FUTURES instrument, not a swap of this venue.
    expect(malformed(() => okxFundingRates(items(xPerp), 'BTC-USD_UM_XPERP-310404', RECEIVED))).toMatchObject({ reason: 'unknown_symbol' });
    expect(okxFundingRates(items(doc), 'BTC-USD-SWAP', RECEIVED)).toMatchSnapshot();
  });

  it('funding without ts falls back to fundingTime; an empty nextFundingTime (the settlement after next) is not needed', () => {
    const body = '{"code":"0","msg":"","data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","fundingRate":"-0.0001","fundingTime":"1743609600000","nextFundingTime":""}]}';
    expect(pollFor(derivatives, 'funding_rate', 'BTC-USDT-SWAP').parse(body, RECEIVED)[0]).toMatchObject({ eventTime: 1743609600000, nextFundingTime: 1743609600000, fundingRate: '-0.0001' });
  });

  it('open_interest_rest.jsonl through the open-interest poll: coins (oiCcy) and USD value', () => {
    const records = pollFor(derivatives, 'open_interest', 'BTC-USDT-SWAP').parse(only('okx_derivatives', 'open_interest_rest.jsonl'), RECEIVED);
    expect(records).toEqual([
      {
        dataType: 'open_interest',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USDT',
        instrument: 'BTC-USDT-SWAP',
        eventTime: 1597026383085,
        receiveTime: RECEIVED,
        openInterest: '555.55',
        openInterestValue: '50000',
      },
    ]);
  });

  it('WS open-interest frames are not subscribed (polled instead): rejected; their items are checked by the REST parser', () => {
    const future = only('okx_derivatives', 'open_interest_ws.jsonl');
    const doc = only('okx_derivatives', 'open_interest_ws_doc.jsonl');
    for (const frame of [future, doc]) expect(malformed(() => normalizeAll(derivatives, frame, RECEIVED)).reason).toBe('unexpected_shape');
    const items = (frame: string) => (JSON.parse(frame) as { data: unknown[] }).data;
    expect(malformed(() => okxOpenInterest(items(future), 'FIL-USDT-220325', RECEIVED))).toMatchObject({ reason: 'unknown_symbol', dataType: 'open_interest' });
    expect(okxOpenInterest(items(doc), 'BTC-USDT-SWAP', RECEIVED)).toMatchSnapshot();
  });

  it('open interest without oiUsd has a null value', () => {
    const body = '{"code":"0","msg":"","data":[{"instType":"SWAP","instId":"ETH-USDT-SWAP","oi":"10","oiCcy":"1","ts":"1597026383085"}]}';
    expect(pollFor(derivatives, 'open_interest', 'ETH-USDT-SWAP').parse(body, RECEIVED)[0]).toMatchObject({ openInterest: '1', openInterestValue: null });
  });

  it('a response about another instrument than the one asked for is refused', () => {
    const body = only('okx_derivatives', 'open_interest_rest.jsonl');
    expect(malformed(() => pollFor(derivatives, 'open_interest', 'ETH-USDT-SWAP').parse(body, RECEIVED)).message).toContain('asked for ETH-USDT-SWAP, got BTC-USDT-SWAP');
  });

  it('long/short ratio bodies: one record per distinct ts (the docs repeat one), ratio only, our period spelling', () => {
    const account = pollFor(derivatives, 'lsr_all_account', 'BTC-USDT-SWAP').parse(only('okx_derivatives', 'long_short_account_ratio_contract_rest.jsonl'), RECEIVED);
    const top = pollFor(derivatives, 'lsr_top_position', 'BTC-USDT-SWAP').parse(only('okx_derivatives', 'long_short_position_ratio_contract_top_trader_rest.jsonl'), RECEIVED);
    expect(account).toEqual([
      {
        dataType: 'lsr_all_account',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USDT',
        instrument: 'BTC-USDT-SWAP',
        eventTime: 1701417600000,
        receiveTime: RECEIVED,
        period: '5m',
        longShortRatio: '1.1739',
        longAccountPct: null,
        shortAccountPct: null,
      },
    ]);
    expect(top).toEqual([
      {
        dataType: 'lsr_top_position',
        venue: 'okx_derivatives',
        marketType: 'perpetual',
        symbol: 'BTC-USDT',
        instrument: 'BTC-USDT-SWAP',
        eventTime: 1701417600000,
        receiveTime: RECEIVED,
        period: '5m',
        longShortRatio: '1.1739',
        longPositionPct: null,
        shortPositionPct: null,
      },
    ]);
    expect(msgIdFor(top[0] as MarketRecord)).toBe('lsr_top_position:okx_derivatives:BTC-USDT:5m:1701417600000');
  });

  it('several distinct points in one body give one record each, newest first as sent', () => {
    const body = '{"code":"0","msg":"","data":[["1701418200000","1.2"],["1701417900000","1.1"]]}';
    const records = pollFor(derivatives, 'lsr_all_account', 'ETH-USDT-SWAP').parse(body, RECEIVED);
    expect(records.map((r) => [r.eventTime, 'longShortRatio' in r ? r.longShortRatio : null])).toEqual([
      [1701418200000, '1.2'],
      [1701417900000, '1.1'],
    ]);
  });
});

describe('malformed frames and error responses', () => {
  it('malformed JSON', () => {
    expect(malformed(() => normalizeAll(okxSpot, '{"arg":{"channel":"trades"', RECEIVED)).reason).toBe('malformed_json');
    expect(malformed(() => pollFor(derivatives, 'funding_rate', 'BTC-USDT-SWAP').parse('<html>502</html>', RECEIVED))).toMatchObject({ reason: 'malformed_json', dataType: 'funding_rate' });
  });

  it('an error envelope is a venue error of the polled data type', () => {
    const body = '{"code":"51001","msg":"Instrument ID does not exist","data":[]}';
    const err = malformed(() => pollFor(derivatives, 'open_interest', 'BTC-USDT-SWAP').parse(body, RECEIVED));
    expect(err).toMatchObject({ reason: 'venue_error', dataType: 'open_interest' });
    expect(err.message).toContain('51001');
  });

  it('wrong shapes name the data type', () => {
    const trade = '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":30236,"sz":"1","side":"buy","ts":"1"}]}';
    expect(malformed(() => normalizeAll(okxSpot, trade, RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'trade' });
    const side = trade.replace('30236', '"30236"').replace('"buy"', '"long"');
    expect(malformed(() => normalizeAll(okxSpot, side, RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'trade' });
    const level = '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["30243.5"]],"bids":[],"ts":"1"}]}';
    expect(malformed(() => normalizeAll(okxSpot, level, RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'orderbook' });
    const action = '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"partial","data":[{"asks":[],"bids":[],"ts":"1"}]}';
    expect(malformed(() => normalizeAll(okxSpot, action, RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'orderbook' });
    const detail = '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","details":[{"side":"sell","bkPx":"1","sz":"x","ts":"1"}]}]}';
    expect(malformed(() => normalizeAll(derivatives, detail, RECEIVED))).toMatchObject({ reason: 'unexpected_shape', dataType: 'liquidation' });
    expect(malformed(() => pollFor(derivatives, 'lsr_all_account', 'BTC-USDT-SWAP').parse('{"code":"0","msg":"","data":[{"ts":"1"}]}', RECEIVED))).toMatchObject({
      reason: 'unexpected_shape',
      dataType: 'lsr_all_account',
    });
    for (const frame of ['[1,2]', '"text"', '{"data":[]}']) expect(malformed(() => normalizeAll(okxSpot, frame, RECEIVED)).reason).toBe('unexpected_shape');
  });

  it('a frame with one bad item hands out nothing', () => {
    const frame = '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"},{"instId":"BTC-USDT","tradeId":"2"}]}';
    const seen: unknown[] = [];
    expect(() => okxSpot.normalize(frame, RECEIVED, { record: (r) => seen.push(r), book: (m) => seen.push(m) })).toThrow(MalformedFrameError);
    expect(seen).toEqual([]);
  });

  it('a swap on the spot venue (and a spot pair on the derivatives venue) is an unknown symbol', () => {
    const trade = (instId: string) => `{"arg":{"channel":"trades","instId":"${instId}"},"data":[{"instId":"${instId}","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"}]}`;
    expect(malformed(() => normalizeAll(okxSpot, trade('BTC-USDT-SWAP'), RECEIVED))).toMatchObject({ reason: 'unknown_symbol', dataType: 'trade' });
    expect(malformed(() => normalizeAll(derivatives, trade('BTC-USDT'), RECEIVED))).toMatchObject({ reason: 'unknown_symbol', dataType: 'trade' });
  });

  it('the spot venue does not take liquidation pushes', () => {
    expect(malformed(() => normalizeAll(okxSpot, only('okx_derivatives', 'liquidation_orders_ws_doc.jsonl'), RECEIVED)).reason).toBe('unexpected_shape');
  });
});

describe('control frames', () => {
  const ack = '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}';
  const refused = '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\"}","connId":"a4d3ae55"}';
  const upgrade = '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}';

  it('pong, acks, refusals and notices yield nothing', () => {
    for (const frame of ['pong', ack, refused, upgrade]) expect(normalizeAll(okxSpot, frame, RECEIVED)).toEqual({ records: [], books: [] });
  });

  it('a refused subscription and a service-upgrade notice reconnect; pong and acks do not', () => {
    expect(okxSpot.control('pong')).toEqual({ kind: 'none' });
    expect(okxSpot.control(ack)).toEqual({ kind: 'none' });
    expect(okxSpot.control(refused)).toEqual({ kind: 'reconnect', reason: 'OKX error 60012: Invalid request: {"op": "subscribe"}' });
    expect(derivatives.control(upgrade)).toMatchObject({ kind: 'reconnect', reason: expect.stringContaining('64008') as string });
    expect(okxSpot.control('{"event":"notice","code":"64099","msg":"other"}')).toEqual({ kind: 'none' });
    expect(okxSpot.control('not json')).toEqual({ kind: 'none' });
  });
});

describe('subscriptions', () => {
  it('one public connection per venue for BTC and ETH, books and trades, pinging after 20 s of silence', () => {
    const specs = okxSpot.connections('ws://127.0.0.1:9100/okx_spot/', ['BTC-USDT', 'ETH-USDT'], ['orderbook', 'trade']);
    expect(specs).toEqual([
      {
        id: 'okx_spot/public/0',
        url: 'ws://127.0.0.1:9100/okx_spot/ws/v5/public',
        dataTypes: ['orderbook', 'trade'],
        subscribeMessages: [
          '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"},{"channel":"books","instId":"ETH-USDT"},{"channel":"trades","instId":"ETH-USDT"}]}',
        ],
        maxConnectionAgeMs: Infinity,
        keepalive: { message: 'ping', afterSilenceMs: 20_000 },
        staleAfterMs: 45_000,
      },
    ]);
  });

  it('derivatives: liquidations on a connection of their own, subscribed by instType', () => {
    const specs = derivatives.connections('wss://ws.okx.com:8443', ['BTC-USDT-SWAP', 'ETH-USDT-SWAP'], ['orderbook', 'trade', 'liquidation']);
    expect(specs.map((s) => [s.id, s.url, s.dataTypes])).toEqual([
      ['okx_derivatives/public/0', 'wss://ws.okx.com:8443/ws/v5/public', ['orderbook', 'trade']],
      ['okx_derivatives/liquidation', 'wss://ws.okx.com:8443/ws/v5/public', ['liquidation']],
    ]);
    expect(specs[1]?.subscribeMessages).toEqual(['{"op":"subscribe","args":[{"channel":"liquidation-orders","instType":"SWAP"}]}']);
  });

  it('fewer than 30 books channels per connection, and every request under 64 KB', () => {
    const instIds = Array.from({ length: 45 }, (_, i) => `COIN${i}-USDT`);
    const specs = okxSpot.connections('wss://ws.okx.com:8443', instIds, ['orderbook', 'trade']);
    expect(specs).toHaveLength(Math.ceil(45 / OKX_MAX_INSTRUMENTS_PER_CONNECTION));
    const subscribed = specs.flatMap((s) => {
      const args = s.subscribeMessages.flatMap((m) => (JSON.parse(m) as { args: { channel: string; instId: string }[] }).args);
      expect(args.filter((a) => a.channel === 'books').length).toBeLessThan(30);
      return args.filter((a) => a.channel === 'books').map((a) => a.instId);
    });
    expect(subscribed).toEqual(instIds);
  });

  it('requests are split at 64 KB', () => {
    const args = Array.from({ length: 3000 }, (_, i) => ({ channel: 'books', instId: `COIN${i}-USDT` }));
    const frames = okxRequests('subscribe', args);
    expect(frames.length).toBeGreaterThan(1);
    for (const f of frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(OKX_MAX_SUBSCRIBE_BYTES);
    expect(frames.flatMap((f) => (JSON.parse(f) as { args: unknown[] }).args)).toEqual(args);
  });

  it('a data type the venue does not collect over WebSocket, or an instId of the wrong kind, is a config error', () => {
    expect(() => okxSpot.connections('wss://ws.okx.com:8443', ['BTC-USDT'], ['liquidation'])).toThrow(ConfigError);
    expect(() => okxSpot.connections('wss://ws.okx.com:8443', ['BTC-USDT'], ['liquidation'])).toThrow('collector.venues.okx_spot.dataTypes');
    expect(() => derivatives.connections('wss://ws.okx.com:8443', ['BTC-USDT-SWAP'], ['funding_rate'])).toThrow('collector.venues.okx_derivatives.dataTypes');
    expect(() => derivatives.connections('wss://ws.okx.com:8443', ['BTC-USDT'], ['trade'])).toThrow('collector.venues.okx_derivatives.symbols');
  });

  it('resubscribing a book is an unsubscribe and a subscribe of its books channel', () => {
    expect(okxSpot.book?.resubscribe?.('BTC-USDT')).toEqual([
      '{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
      '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
    ]);
    expect(okxSpot.book?.source).toBe('stream');
  });
});

describe('polls', () => {
  it('derivatives poll funding, open interest and both long/short ratios per instrument, weight 1 each', () => {
    const polls = derivatives.polls('http://127.0.0.1:9100/okx_derivatives/', ['BTC-USDT-SWAP'], ['funding_rate', 'open_interest', 'lsr_all_account', 'lsr_top_position'], {
      ...OPTIONS,
      lsrPeriod: '4h',
    });
    expect(polls.map((p) => [p.id, p.url, p.weight, p.intervalMs])).toEqual([
      ['okx_derivatives/funding_rate/BTC-USDT-SWAP', 'http://127.0.0.1:9100/okx_derivatives/api/v5/public/funding-rate?instId=BTC-USDT-SWAP', 1, 60_000],
      ['okx_derivatives/open_interest/BTC-USDT-SWAP', 'http://127.0.0.1:9100/okx_derivatives/api/v5/public/open-interest?instType=SWAP&instId=BTC-USDT-SWAP', 1, 30_000],
      [
        'okx_derivatives/lsr_all_account/BTC-USDT-SWAP',
        'http://127.0.0.1:9100/okx_derivatives/api/v5/rubik/stat/contracts/long-short-account-ratio-contract?instId=BTC-USDT-SWAP&period=4H&limit=2',
        1,
        300_000,
      ],
      [
        'okx_derivatives/lsr_top_position/BTC-USDT-SWAP',
        'http://127.0.0.1:9100/okx_derivatives/api/v5/rubik/stat/contracts/long-short-position-ratio-contract-top-trader?instId=BTC-USDT-SWAP&period=4H&limit=2',
        1,
        300_000,
      ],
    ]);
    expect(derivatives.rateLimit).toEqual({ weightPerWindow: 10, windowMs: 2000, usedWeightHeader: null });
  });

  it('OKX spells hours and days upper case', () => {
    const urls = (['5m', '15m', '30m', '1h', '2h', '4h', '6h', '12h', '1d'] as const).map(
      (lsrPeriod) => new URL(derivatives.polls('https://www.okx.com', ['BTC-USDT-SWAP'], ['lsr_top_position'], { ...OPTIONS, lsrPeriod })[0]?.url ?? '').searchParams.get('period'),
    );
    expect(urls).toEqual(['5m', '15m', '30m', '1H', '2H', '4H', '6H', '12H', '1D']);
  });

  it('a type the venue does not poll is a config error; okx_spot polls nothing', () => {
    expect(() => derivatives.polls('https://www.okx.com', ['BTC-USDT-SWAP'], ['volatility_index'], OPTIONS)).toThrow('collector.venues.okx_derivatives.dataTypes');
    expect(() => okxSpot.polls('https://www.okx.com', ['BTC-USDT'], ['funding_rate'], OPTIONS)).toThrow('collector.venues.okx_spot.dataTypes');
    expect(okxSpot.polls('https://www.okx.com', ['BTC-USDT'], [], OPTIONS)).toEqual([]);
    expect(okxSpot.polledDataTypes).toEqual([]);
  });
});
