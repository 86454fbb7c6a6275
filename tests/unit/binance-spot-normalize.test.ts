import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { binanceSpot, binanceSymbol } from '../../src/lib/exchanges/binance_spot.js';
import { MalformedFrameError, splitConcatenatedSymbol } from '../../src/lib/exchanges/types.js';
import { msgIdFor, subjectFor, type MarketRecord } from '../../src/lib/records.js';

const FIXTURES = '/work/shared/fixtures/exchanges/binance_spot';
const lines = (file: string) =>
  readFileSync(`${FIXTURES}/${file}`, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
const all = (frame: string, receiveTime = 1_700_000_000_000): MarketRecord[] => [...binanceSpot.normalize(frame, receiveTime)];

function malformed(frame: string): MalformedFrameError {
  try {
    all(frame);
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedFrameError);
    return err as MalformedFrameError;
  }
  throw new Error(`expected MalformedFrameError for ${frame}`);
}

describe('binance_spot trade normalization on captured frames', () => {
  it('maps the combined-stream capture (2019 format with b/a order ids)', () => {
    const [line] = lines('trade.jsonl');
    const records = all(line as string, 1554076801000);
    expect(records).toEqual([
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
    const r = records[0] as MarketRecord;
    expect(subjectFor(r)).toBe('trade.binance_spot.spot.BNB-BTC');
    expect(msgIdFor(r)).toBe('trade:binance_spot:BNB-BTC:40756030');
  });

  it('maps the bare documented event; m=true (buyer is maker) means the taker sold', () => {
    const [line] = lines('trade_doc.jsonl');
    const [r] = all(line as string);
    expect(r).toMatchObject({ symbol: 'BNB-BTC', tradeId: '12345', price: '0.001', quantity: '100', side: 'sell', eventTime: 1672515782136 });
  });

  it('keeps price and quantity as the exact strings sent', () => {
    const frame = '{"e":"trade","E":2,"s":"BTCUSDT","t":7,"p":"65000.10000000","q":"0.00001000","T":1,"m":false,"M":true}';
    expect(all(frame)[0]).toMatchObject({ price: '65000.10000000', quantity: '0.00001000' });
  });

  it('yields nothing for aggTrade frames: a different id space that would collide with trade ids', () => {
    for (const line of [...lines('agg_trade.jsonl'), ...lines('agg_trade_doc.jsonl')]) {
      expect(all(line)).toEqual([]);
      expect(binanceSpot.control(line)).toEqual({ kind: 'none' });
    }
  });

  it('yields nothing for depth frames (not collected by this adapter yet)', () => {
    for (const line of [...lines('depth_update.jsonl').slice(0, 3), ...lines('depth_update_doc.jsonl')]) expect(all(line)).toEqual([]);
  });
});

describe('binance_spot control frames', () => {
  it('treats a subscription ack as control: no records, no action', () => {
    expect(all('{"result":null,"id":1}')).toEqual([]);
    expect(binanceSpot.control('{"result":null,"id":1}')).toEqual({ kind: 'none' });
  });

  it('asks for a new connection on serverShutdown and on a refused request', () => {
    expect(all('{"e":"serverShutdown","E":1}')).toEqual([]);
    expect(binanceSpot.control('{"e":"serverShutdown","E":1}')).toEqual({ kind: 'reconnect', reason: 'serverShutdown' });
    const refused = '{"error":{"code":2,"msg":"Invalid request"},"id":1}';
    expect(all(refused)).toEqual([]);
    expect(binanceSpot.control(refused)).toMatchObject({ kind: 'reconnect' });
  });
});

describe('binance_spot malformed frames', () => {
  it('rejects non-JSON with code malformed_json', () => {
    expect(malformed('{"stream":"btcusdt@trade","data":{').code).toBe('malformed_json');
    expect(malformed('').code).toBe('malformed_json');
  });

  it('rejects wrong shapes with code unexpected_shape', () => {
    expect(malformed('[1,2]').code).toBe('unexpected_shape');
    expect(malformed('{"hello":1}').code).toBe('unexpected_shape');
    expect(malformed('{"stream":"btcusdt@trade","data":"x"}').code).toBe('unexpected_shape');
    expect(malformed('{"e":"mystery","E":1}').code).toBe('unexpected_shape');
  });

  it('rejects trade events with missing or mistyped fields, naming the data type', () => {
    const good = { e: 'trade', E: 2, s: 'BTCUSDT', t: 7, p: '1.5', q: '2', T: 1, m: false };
    for (const [k, v] of Object.entries({ t: 'not-a-number', p: 42, q: '-1', m: 'true', T: undefined, s: 5 })) {
      const err = malformed(JSON.stringify({ ...good, [k]: v }));
      expect(err.code).toBe('unexpected_shape');
      expect(err.dataType).toBe('trade');
    }
    expect(malformed(JSON.stringify({ ...good, p: '1e5' })).code).toBe('unexpected_shape');
  });

  it('rejects symbols with no known quote asset instead of guessing a split', () => {
    const err = malformed('{"e":"trade","E":2,"s":"FOOBAR","t":7,"p":"1","q":"1","T":1,"m":false}');
    expect(err.code).toBe('unknown_symbol');
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

describe('binance_spot subscriptions', () => {
  it('subscribes to <symbol>@trade on the combined endpoint', () => {
    const [spec, ...rest] = binanceSpot.connections('wss://stream.binance.com:9443/', ['BTCUSDT', 'ETHUSDT'], ['trade']);
    expect(rest).toEqual([]);
    expect(spec?.url).toBe('wss://stream.binance.com:9443/stream');
    expect(spec?.subscribeMessages.map((m) => JSON.parse(m) as unknown)).toEqual([{ method: 'SUBSCRIBE', params: ['btcusdt@trade', 'ethusdt@trade'], id: 1 }]);
    expect(spec?.maxConnectionAgeMs).toBeLessThan(24 * 3600_000);
  });

  it('splits beyond 1024 streams into several connections', () => {
    const symbols = Array.from({ length: 1500 }, (_, i) => `S${i}USDT`);
    const specs = binanceSpot.connections('ws://127.0.0.1:1', symbols, ['trade']);
    expect(specs.map((s) => (JSON.parse(s.subscribeMessages[0] as string) as { params: string[] }).params.length)).toEqual([1024, 476]);
    expect(new Set(specs.map((s) => s.id)).size).toBe(2);
  });

  it('refuses data types it cannot collect', () => {
    expect(() => binanceSpot.connections('ws://x', ['BTCUSDT'], ['funding_rate'])).toThrow(/funding_rate/);
  });
});
