import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { encodeTextFrames } from '../../src/lib/simulator/hub.js';
import { futuresLevels } from '../../src/lib/simulator/binance-derivatives.js';
import { spotLevels } from '../../src/lib/simulator/binance-spot.js';
import type { ModelLevel } from '../../src/lib/simulator/book-model.js';
import { PRICE_DECIMALS, QTY_DECIMALS, SymbolMarket, formatFixed, formatTrimmed, seededRandom, type SimTrade } from '../../src/lib/simulator/market.js';
import { okxLevels } from '../../src/lib/simulator/okx.js';
import { TradeHistory } from '../../src/lib/simulator/trade-history.js';

/** What ws.send writes for one text frame from a server (ws's own framing, unmasked). */
function wsFrame(text: string): Buffer {
  // ws exports its Sender at run time; its types leave it out.
  const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, o: object): Buffer[] } };
  const frame = Sender.frame(Buffer.from(text), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false });
  return Buffer.concat(frame);
}

describe('encodeTextFrames', () => {
  it('writes the bytes ws.send would, frame after frame, at every length form', () => {
    const texts = ['', 'x', 'a'.repeat(125), 'b'.repeat(126), 'c'.repeat(65_535), 'd'.repeat(65_536), 'e'.repeat(70_000), '{"s":"€üñ"}', '😀'.repeat(40)];
    expect(encodeTextFrames(texts).equals(Buffer.concat(texts.map(wsFrame)))).toBe(true);
    for (const t of texts) expect(encodeTextFrames([t]).equals(wsFrame(t))).toBe(true);
    expect(encodeTextFrames([]).length).toBe(0);
  });
});

describe('formatFixed', () => {
  it('prints as before: whole units, the fraction padded to its decimals, then zeros to the places asked', () => {
    const old = (units: number, decimals: number, places = 8) => {
      const scale = 10 ** decimals;
      const whole = Math.floor(units / scale);
      if (places === 0) return String(whole);
      return `${whole}.${String(units % scale).padStart(decimals, '0')}${'0'.repeat(places - decimals)}`;
    };
    for (const [u, d, p] of [[0, 2, 8], [1, 2, 8], [6500012, 2, 8], [1, 5, 8], [123456, 5, 8], [5, 3, 3], [100000, 5, 5], [42, 0, 0], [7, 7, 7], [12345678, 7, 16]] as const) {
      expect(formatFixed(u, d, p)).toBe(old(u, d, p));
    }
  });
});

describe('book levels JSON', () => {
  const random = seededRandom(11);
  const levels: ModelLevel[] = Array.from({ length: 300 }, () => [1 + Math.floor(random() * 10_000_000), 1 + Math.floor(random() ** 3 * 500_000)] as const);
  const trimmed = (units: number, decimals: number) => {
    const fixed = formatFixed(units, decimals, decimals);
    return decimals === 0 ? fixed : fixed.replace(/0+$/, '').replace(/\.$/, '');
  };

  it('prints trimmed numbers as the regular expressions did', () => {
    for (const [u, d] of [[0, 2], [100, 2], [120, 2], [123, 2], [6500000, 2], [1, 5], [100000, 5], [1200000, 5], [7, 0], [1000, 0]] as const) expect(formatTrimmed(u, d)).toBe(trimmed(u, d));
    for (const [p, q] of levels) {
      for (const d of [0, 2, 5]) {
        expect(formatTrimmed(q, d)).toBe(trimmed(q, d));
        expect(formatTrimmed(p, d)).toBe(trimmed(p, d));
      }
    }
  });

  it('is byte for byte what JSON.stringify of the string rows gave, on every venue', () => {
    for (const ls of [levels, levels.slice(0, 1), []]) {
      expect(spotLevels(ls)).toBe(JSON.stringify(ls.map(([p, q]) => [formatFixed(p, PRICE_DECIMALS), formatFixed(q, QTY_DECIMALS)])));
      expect(futuresLevels(ls)).toBe(JSON.stringify(ls.map(([p, q]) => [formatFixed(p, 2, 2), formatFixed(q, 3, 3)])));
      for (const sizeDecimals of [0, QTY_DECIMALS]) {
        expect(okxLevels(ls, sizeDecimals)).toBe(JSON.stringify(ls.map(([p, q]) => [trimmed(p, PRICE_DECIMALS), trimmed(q, sizeDecimals), '0', String(1 + (q % 5))])));
      }
    }
  });
});

describe('TradeHistory', () => {
  const tape = (n: number): SimTrade[] => {
    const market = new SymbolMarket('BTCUSDT', 7, 1_000);
    return Array.from({ length: n }, (_, i) => market.next(1_700_000_000_000 + Math.floor(i / 3)));
  };

  it('gives back the trades pushed, equal in every field, while growing and after wrapping', () => {
    const trades = tape(5000);
    const history = new TradeHistory(3000);
    trades.slice(0, 2000).forEach((t) => history.push(t));
    expect(history.newest(5)).toEqual(trades.slice(1995, 2000));
    expect(history.fromId(1_000, 3)).toEqual(trades.slice(0, 3));
    trades.slice(2000).forEach((t) => history.push(t));
    // The 3000 newest are kept: ids 3000..4999 of the tape.
    expect(history.length).toBe(3000);
    expect(history.firstId).toBe(trades[2000]?.id);
    expect(history.lastId).toBe(trades[4999]?.id);
    expect(history.fromId(0, 2)).toEqual(trades.slice(2000, 2002));
    expect(history.fromId(trades[4000]?.id as number, 10)).toEqual(trades.slice(4000, 4010));
    expect(history.beforeId(trades[4000]?.id as number, 4)).toEqual(trades.slice(3996, 4000));
    expect(history.newest(3)).toEqual(trades.slice(4997));
    const t = trades[3500] as SimTrade;
    expect(history.inTime(t.time, t.time, 10)).toEqual(trades.filter((x, i) => i >= 2000 && x.time === t.time));
    expect(history.inTimeNewestFirst(0, t.time, 2)).toEqual(trades.filter((x, i) => i >= 2000 && x.time <= t.time).slice(-2).reverse());
  });

  it('refuses a trade id that does not follow the last', () => {
    const [a, , c] = tape(3) as [SimTrade, SimTrade, SimTrade];
    const history = new TradeHistory(10);
    history.push(a);
    expect(() => history.push(c)).toThrow(RangeError);
  });
});
