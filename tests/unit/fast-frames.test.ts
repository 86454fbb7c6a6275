import { describe, expect, it } from 'vitest';
import { binanceEvent, isTradeEvent } from '../../src/lib/exchanges/binance.js';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { fastBinanceTrade, fastOkxTrades } from '../../src/lib/exchanges/fast-frames.js';
import { okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { isObject, normalizeAll } from '../../src/lib/exchanges/types.js';
import { seededRandom } from '../../src/lib/simulator/market.js';
import { fixtureLines } from '../helpers/fixtures.js';

/** Frames exactly as the simulator sends them (its templates), and as the venues do. */
const BINANCE_FRAMES = [
  '{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000123,"s":"BTCUSDT","t":170000000012300,"p":"65000.12000000","q":"0.01234000","T":1700000000120,"m":true,"M":true}}',
  '{"e":"trade","E":1700000000123,"s":"ETHUSDT","t":5,"p":"3500.00000000","q":"1.00000000","T":1700000000120,"m":false,"M":true}',
  '{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000123,"T":1700000000122,"s":"BTCUSDT","t":42,"p":"65000.12","q":"0.012","X":"MARKET","m":false}}',
  '{"stream":"ethusdt@trade","data":{"e":"trade","E":1596034530241,"T":1596034530235,"s":"ETHUSDT","t":73701056,"p":"2366.55","q":"0.070","X":"INSURANCE_FUND","m":true}}',
  '{"stream":"btcusdt@trade","data":{"e":"trade","E":1574381164089,"T":1574381164086,"s":"BTCUSDT","t":10934580,"p":"0.00","q":"0.044","m":false}}',
];
const OKX_FRAMES = [
  '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"170000000012300","px":"65000.12","sz":"0.01234","side":"sell","ts":"1700000000120","count":"1","seqId":170000000012300}]}',
  '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"9","px":"65000","sz":"3","side":"buy","ts":"1700000000120","count":"1","seqId":9},{"instId":"BTC-USDT-SWAP","tradeId":"10","px":"65000.5","sz":"1","side":"sell","ts":"1700000000121"}]}',
  '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[]}',
];

/** The general path: JSON.parse and the adapters' own checks. null where it would not yield a trade. */
function slowBinance(frame: string): Record<string, unknown> | null {
  try {
    const event = binanceEvent(frame);
    return event !== null && event.e === 'trade' && isTradeEvent(event) ? event : null;
  } catch {
    return null;
  }
}

const BINANCE_FIELDS = ['e', 'E', 'T', 's', 't', 'p', 'q', 'm', 'X'] as const;

function slowOkx(frame: string): Record<string, unknown>[] | null {
  let v: unknown;
  try {
    v = JSON.parse(frame);
  } catch {
    return null;
  }
  if (!isObject(v) || !isObject(v.arg) || v.arg.channel !== 'trades' || !Array.isArray(v.data)) return null;
  const items = v.data as unknown[];
  const ok = items.every(
    (d) =>
      isObject(d) &&
      typeof d.instId === 'string' &&
      typeof d.tradeId === 'string' &&
      d.tradeId !== '' &&
      typeof d.px === 'string' &&
      /^\d+(\.\d+)?$/.test(d.px) &&
      typeof d.sz === 'string' &&
      /^\d+(\.\d+)?$/.test(d.sz) &&
      (d.side === 'buy' || d.side === 'sell') &&
      typeof d.ts === 'string' &&
      /^\d{1,16}$/.test(d.ts),
  );
  return ok ? (items as Record<string, unknown>[]) : null;
}

const OKX_FIELDS = ['instId', 'tradeId', 'px', 'sz', 'side', 'ts'] as const;

/** Whatever the fast path accepts, the general path accepts with the same values. */
function expectAgreement(frame: string): boolean {
  const fast = fastBinanceTrade(frame);
  if (fast !== null) {
    const slow = slowBinance(frame);
    expect(slow, frame).not.toBeNull();
    for (const k of BINANCE_FIELDS) expect(fast[k], `${k} of ${frame}`).toEqual(slow?.[k]);
  }
  const fastItems = fastOkxTrades(frame);
  if (fastItems !== null) {
    const slow = slowOkx(frame);
    expect(slow, frame).not.toBeNull();
    expect(fastItems.length).toBe(slow?.length);
    fastItems.forEach((item, i) => {
      for (const k of OKX_FIELDS) expect(item[k], `${k} of ${frame}`).toEqual(slow?.[i]?.[k]);
    });
  }
  return fast !== null || fastItems !== null;
}

/** Single edits of a frame: deletions, insertions and replacements of characters that matter to JSON. */
function mutants(frame: string, n: number, seed: number): string[] {
  const random = seededRandom(seed);
  const chars = [' ', '"', '\\', '0', '1', '-', '.', 'e', 'E', ',', '}', '{', ']', ':', 'a', '\u0001', 'é', 'X', 't', 'n'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const at = Math.floor(random() * frame.length);
    const c = chars[Math.floor(random() * chars.length)] as string;
    const kind = Math.floor(random() * 4);
    if (kind === 0) out.push(frame.slice(0, at) + frame.slice(at + 1));
    else if (kind === 1) out.push(frame.slice(0, at) + c + frame.slice(at));
    else if (kind === 2) out.push(frame.slice(0, at) + c + frame.slice(at + 1));
    else {
      // A stretch repeated: duplicate keys, doubled values.
      const len = 1 + Math.floor(random() * 20);
      out.push(frame.slice(0, at + len) + frame.slice(at, at + len) + frame.slice(at + len));
    }
  }
  return out;
}

describe('fast trade frames', () => {
  it('reads the frames the simulator and the venues send', () => {
    for (const f of BINANCE_FRAMES) expect(expectAgreement(f), f).toBe(true);
    for (const f of OKX_FRAMES) expect(expectAgreement(f), f).toBe(true);
    const captured = [
      ...fixtureLines('binance_spot', 'trade.jsonl'),
      ...fixtureLines('binance_spot', 'trade_doc.jsonl'),
      ...fixtureLines('binance_derivatives', 'trade.jsonl'),
      ...fixtureLines('okx_spot', 'trades_ws.jsonl'),
      ...fixtureLines('okx_spot', 'trades_ws_doc.jsonl'),
      ...fixtureLines('okx_derivatives', 'trades_ws.jsonl'),
    ];
    for (const f of captured) expect(expectAgreement(f), f).toBe(true);
  });

  it('leaves every other frame to the general path', () => {
    const others = [
      ...fixtureLines('binance_spot', 'depth_update.jsonl'),
      ...fixtureLines('binance_derivatives', 'agg_trade.jsonl'),
      ...fixtureLines('okx_spot', 'books_ws.jsonl'),
      ...fixtureLines('okx_spot', 'trades_all_ws.jsonl'),
      '{"result":null,"id":1}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true,"result":null,"id":1}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true,"m":false}',
      '{"e":"trade","E":01,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1.5,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1,"s":"BTC\\u0055SDT","t":1,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade", "E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":-1,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":1234567890123456,"p":"1","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.","q":"1","T":1,"m":true}',
      '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1}',
      '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"","px":"1","sz":"1","side":"buy","ts":"1"}]}',
      '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"BUY","ts":"1"}]}',
      '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"}],"extra":1}',
    ];
    for (const f of others) {
      expect(fastBinanceTrade(f), f).toBeNull();
      expect(fastOkxTrades(f), f).toBeNull();
    }
  });

  it('accepts nothing the general path would refuse or read differently, under thousands of single edits', () => {
    let accepted = 0;
    [...BINANCE_FRAMES, ...OKX_FRAMES].forEach((frame, i) => {
      for (const m of mutants(frame, 3000, 1000 + i)) if (expectAgreement(m)) accepted++;
    });
    // Some edits keep a valid frame (another digit in a price): those must have been compared too.
    expect(accepted).toBeGreaterThan(100);
  });

  it('gives the adapters the records the general path gives', () => {
    const spot = normalizeAll(binanceSpot, BINANCE_FRAMES[0] as string, 5).records;
    expect(spot).toEqual([
      {
        dataType: 'trade',
        venue: 'binance_spot',
        marketType: 'spot',
        symbol: 'BTC-USDT',
        instrument: 'BTCUSDT',
        eventTime: 1700000000120,
        receiveTime: 5,
        tradeId: '170000000012300',
        price: '65000.12000000',
        quantity: '0.01234000',
        side: 'sell',
      },
    ]);
    // Key order too: the publisher serializes records as they are built.
    expect(JSON.stringify(spot[0])).toBe(JSON.stringify(normalizeAll(binanceSpot, BINANCE_FRAMES[0]?.replace('"M":true', '"M":true,"z":1') as string, 5).records[0]));
    // USD-M: market trades only, and no price-0 placeholders, either way.
    expect(normalizeAll(binanceDerivatives, BINANCE_FRAMES[2] as string, 5).records).toHaveLength(1);
    expect(normalizeAll(binanceDerivatives, BINANCE_FRAMES[3] as string, 5).records).toHaveLength(0);
    expect(normalizeAll(binanceDerivatives, BINANCE_FRAMES[4] as string, 5).records).toHaveLength(0);
    const okx = normalizeAll(okxSpot, OKX_FRAMES[0] as string, 5).records;
    // The same frame with a key the fast path does not know goes the general way.
    const general = normalizeAll(okxSpot, (OKX_FRAMES[0] as string).replace('"count":"1"', '"count":"1","source":"0"'), 5).records;
    expect(JSON.stringify(okx)).toBe(JSON.stringify(general));
    expect(normalizeAll(okxDerivatives(['BTC-USDT-SWAP']), OKX_FRAMES[1] as string, 5).records).toHaveLength(2);
  });
});
