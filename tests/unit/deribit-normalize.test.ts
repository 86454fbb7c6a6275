import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deribitDerivatives, dvolUrl, dvolWindowMs, numberText, parseVolatilityIndex } from '../../src/lib/exchanges/deribit_derivatives.js';
import { normalizeAll } from '../../src/lib/exchanges/types.js';
import { ConfigError } from '../../src/lib/errors.js';
import { formatDecimal } from '../../src/lib/store/decimal.js';
import { msgIdFor, subjectFor } from '../../src/lib/records.js';
import { fixturePath } from '../helpers/fixtures.js';
import { malformed, TEST_POLL_OPTIONS } from '../helpers/adapters.js';

/*
 * Deribit fixtures consumed here: volatility_index_rest.jsonl (every line). Not consumed:
 * - volatility_index_ws.jsonl: DVOL is collected by polling REST (issue 3 lists it among the
 *   REST-polled types), so no WebSocket channel is subscribed and the live push never arrives.
 * - book_ws*, order_book_rest, trades_ws*, ticker_ws*, ticker_rest: books, trades, funding and open
 *   interest are not in Deribit's coverage (issue 3: deribit_derivatives collects volatility_index only).
 */
const FIXTURES = fixturePath('deribit_derivatives', '');
const lines = (file: string) =>
  readFileSync(`${FIXTURES}/${file}`, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);

const RECEIVE = 1_700_000_000_000;
const OPTIONS = TEST_POLL_OPTIONS;


describe('deribit_derivatives DVOL candles from public/get_volatility_index_data', () => {
  it('maps every documented response line to one record per finished candle', () => {
    const records = lines('volatility_index_rest.jsonl').map((line) => parseVolatilityIndex(line, 'BTC', RECEIVE));
    expect(records).toMatchSnapshot();
  });

  it('leaves out the newest candle, which may still be running, and keeps the exact closes', () => {
    const [line] = lines('volatility_index_rest.jsonl');
    const records = parseVolatilityIndex(line as string, 'BTC', RECEIVE);
    expect(records.map((r) => [r.eventTime, r.indexValue])).toEqual([
      [1598019300000, '0.212860821'],
      [1598019360000, '0.212987527'],
    ]);
    const [first] = records;
    expect(first).toMatchObject({ symbol: 'BTC-USD', instrument: 'btc_usd', marketType: 'index', resolution: '60', receiveTime: RECEIVE });
    expect(subjectFor(first!)).toBe('volatility_index.deribit_derivatives.index.BTC-USD');
    expect(msgIdFor(first!)).toBe('volatility_index:deribit_derivatives:BTC-USD:60:1598019300000');
  });

  it('finds the newest candle by timestamp, not by position', () => {
    const body = '{"jsonrpc":"2.0","result":{"data":[[180000,1,1,1,3],[60000,1,1,1,1],[120000,1,1,1,2]],"continuation":null}}';
    expect(parseVolatilityIndex(body, 'eth', RECEIVE).map((r) => [r.instrument, r.eventTime])).toEqual([
      ['eth_usd', 60000],
      ['eth_usd', 120000],
    ]);
  });

  it('yields nothing for an empty window', () => {
    expect(parseVolatilityIndex('{"jsonrpc":"2.0","result":{"data":[],"continuation":null}}', 'BTC', RECEIVE)).toEqual([]);
  });

  it('writes numbers without float noise, and exponent forms that formatDecimal accepts', () => {
    expect(numberText(JSON.parse('0.21') as number)).toBe('0.21');
    expect(numberText(JSON.parse('2.11e-05') as number)).toBe('0.0000211');
    expect(numberText(JSON.parse('1.5e-7') as number)).toBe('1.5e-7');
    expect(formatDecimal(numberText(1.5e-7), 18, 8)).toBe('0.00000015');
    expect(formatDecimal(numberText(JSON.parse('2.5E+21') as number), 38, 2)).toBe('2500000000000000000000');
  });

  it('reports a JSON-RPC error body as venue_error', () => {
    const err = malformed(() => parseVolatilityIndex('{"jsonrpc":"2.0","id":5,"error":{"code":10028,"message":"too_many_requests"}}', 'BTC', RECEIVE));
    expect(err.reason).toBe('venue_error');
    expect(err.message).toContain('10028');
  });

  it('rejects bodies that are not the documented shape', () => {
    expect(malformed(() => parseVolatilityIndex('{"jsonrpc":"2.0","result":{"data":[[1,"0.2",1,1,1]]}}', 'BTC', RECEIVE)).reason).toBe('unexpected_shape');
    expect(malformed(() => parseVolatilityIndex('{"jsonrpc":"2.0","result":{}}', 'BTC', RECEIVE)).reason).toBe('unexpected_shape');
    expect(malformed(() => parseVolatilityIndex('[]', 'BTC', RECEIVE)).reason).toBe('unexpected_shape');
    expect(malformed(() => parseVolatilityIndex('{"jsonrpc"', 'BTC', RECEIVE)).reason).toBe('malformed_json');
  });
});

describe('deribit_derivatives polls', () => {
  it('polls one DVOL index per currency at the configured interval', () => {
    const polls = deribitDerivatives.polls('http://127.0.0.1:9000/deribit_derivatives/', ['BTC', 'ETH'], ['volatility_index'], OPTIONS);
    expect(polls.map((p) => [p.id, p.dataType, p.instrument, p.intervalMs, p.weight])).toEqual([
      ['deribit_derivatives/volatility_index/btc_usd', 'volatility_index', 'btc_usd', 60_000, 1],
      ['deribit_derivatives/volatility_index/eth_usd', 'volatility_index', 'eth_usd', 60_000, 1],
    ]);
    const url = new URL(polls[0]!.url);
    expect(url.pathname).toBe('/deribit_derivatives/api/v2/public/get_volatility_index_data');
    expect(url.searchParams.get('currency')).toBe('BTC');
    expect(url.searchParams.get('resolution')).toBe('60');
    const end = Number(url.searchParams.get('end_timestamp'));
    expect(end - Number(url.searchParams.get('start_timestamp'))).toBe(dvolWindowMs(60_000));
    expect(Math.abs(end - Date.now())).toBeLessThan(60_000);
  });

  it('builds the window ending at the given time', () => {
    expect(dvolUrl('https://www.deribit.com', 'eth', 1_000_000, 300_000)).toBe(
      'https://www.deribit.com/api/v2/public/get_volatility_index_data?currency=ETH&start_timestamp=700000&end_timestamp=1000000&resolution=60',
    );
  });

  it('asks for a few poll intervals of candles, between 5 minutes and 12 hours', () => {
    expect(dvolWindowMs(10_000)).toBe(300_000);
    expect(dvolWindowMs(600_000)).toBe(1_800_000);
    expect(dvolWindowMs(8 * 3600_000)).toBe(12 * 3600_000);
  });

  it('parses the fixture through the poll it belongs to', () => {
    const [poll] = deribitDerivatives.polls('https://www.deribit.com', ['BTC'], ['volatility_index'], OPTIONS);
    const [line] = lines('volatility_index_rest.jsonl');
    expect(poll!.parse(line as string, RECEIVE)).toHaveLength(2);
  });
});

describe('deribit_derivatives WebSocket side', () => {
  it('needs no connection for its polled data type', () => {
    expect(deribitDerivatives.connections('wss://www.deribit.com', ['BTC'], [])).toEqual([]);
    expect(deribitDerivatives.connections('wss://www.deribit.com', ['BTC'], ['volatility_index'])).toEqual([]);
  });

  it('names the config path for a data type it does not collect', () => {
    expect(() => deribitDerivatives.connections('wss://www.deribit.com', ['BTC'], ['trade'])).toThrow(ConfigError);
    expect(() => deribitDerivatives.connections('wss://www.deribit.com', ['BTC'], ['trade'])).toThrow('collector.venues.deribit_derivatives.dataTypes');
    expect(() => deribitDerivatives.polls('https://www.deribit.com', ['BTC'], ['funding_rate'], OPTIONS)).toThrow(ConfigError);
  });

  it('answers a heartbeat test_request with public/test', () => {
    const action = deribitDerivatives.control('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}');
    expect(action.kind).toBe('send');
    expect(action.kind === 'send' && JSON.parse(action.message)).toMatchObject({ jsonrpc: '2.0', method: 'public/test' });
    expect(deribitDerivatives.control('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}')).toEqual({ kind: 'none' });
    expect(deribitDerivatives.control('not json')).toEqual({ kind: 'none' });
  });

  it('finds no records in JSON-RPC answers and heartbeats, and reports error answers', () => {
    expect(normalizeAll(deribitDerivatives, '{"jsonrpc":"2.0","id":1,"result":"ok"}', RECEIVE)).toEqual({ records: [], books: [] });
    expect(normalizeAll(deribitDerivatives, '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', RECEIVE).records).toEqual([]);
    expect(malformed(() => normalizeAll(deribitDerivatives, '{"jsonrpc":"2.0","id":1,"error":{"code":11050,"message":"bad_request"}}', RECEIVE)).reason).toBe('venue_error');
  });

  it('declares a conservative REST budget and no orderbooks', () => {
    expect(deribitDerivatives.rateLimit).toEqual({ weightPerWindow: 50, windowMs: 10_000, usedWeightHeader: null });
    expect(deribitDerivatives.book).toBeNull();
  });
});
