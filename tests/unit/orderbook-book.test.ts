import { describe, expect, it } from 'vitest';
import { isZeroQuantity, LocalBook } from '../../src/lib/orderbook/book.js';
import type { PriceLevel } from '../../src/lib/records.js';

function book(bids: PriceLevel[], asks: PriceLevel[]): LocalBook {
  const b = new LocalBook();
  b.replace(bids, asks);
  return b;
}

describe('LocalBook', () => {
  it('orders bids descending and asks ascending by numeric price, whatever the input order', () => {
    const b = book(
      [['99.5', '1'], ['100', '2'], ['9.75', '3'], ['99.25', '4']],
      [['101', '1'], ['100.5', '2'], ['1000', '3'], ['100.75', '4']],
    );
    expect(b.top(10)).toEqual({
      bids: [['100', '2'], ['99.5', '1'], ['99.25', '4'], ['9.75', '3']],
      asks: [['100.5', '2'], ['100.75', '4'], ['101', '1'], ['1000', '3']],
    });
    expect(b.bestBid).toEqual(['100', '2']);
    expect(b.bestAsk).toEqual(['100.5', '2']);
    expect([b.bidLevels, b.askLevels]).toEqual([4, 4]);
  });

  it('keeps price and quantity strings exactly as received, matching levels by numeric price', () => {
    const b = book([['2000.0', '1.50000000']], [['2001.10', '3e-2']]);
    expect(b.top(1)).toEqual({ bids: [['2000.0', '1.50000000']], asks: [['2001.10', '3e-2']] });
    b.apply([['2000', '2.0']], [['2001.1', '0.04']]);
    expect(b.top(5)).toEqual({ bids: [['2000', '2.0']], asks: [['2001.1', '0.04']] });
  });

  it('gives back spellings no number rebuilds exactly as they were sent', () => {
    const odd: PriceLevel[] = [
      ['64000.123456789012345678', '1'], // more digits than a double holds
      ['63999', '+2'], // a sign
      ['63998.5', '1E-8'], // an exponent
      ['.5', '0.25'], // no leading digit
      ['0.00000001', '12345678901234567890'], // a quantity past 2^53
      ['1e3', '7'],
    ];
    const b = book(odd, []);
    const byPrice = [...odd].sort((x, y) => Number(y[0]) - Number(x[0]));
    expect(b.top(10).bids).toEqual(byPrice);
    expect(b.bestBid).toEqual(['64000.123456789012345678', '1']);
    // A later change of such a level may be spelled plainly again, and is given back that way.
    b.apply([['63999.0', '2.500']], []);
    expect(b.top(2).bids[1]).toEqual(['63999.0', '2.500']);
  });

  it('ignores zero-quantity levels in a snapshot and lets the later of two equal prices win', () => {
    const b = book([['10', '0.000'], ['9', '1'], ['9.0', '2']], [['11', '0'], ['12', '1']]);
    expect(b.top(5)).toEqual({ bids: [['9.0', '2']], asks: [['12', '1']] });
  });

  it('inserts, replaces and deletes levels, any spelling of zero deleting', () => {
    const b = book([['10', '1'], ['9', '1'], ['8', '1']], [['11', '1'], ['12', '1']]);
    b.apply(
      [['9.5', '5'], ['8', '0.00000000'], ['10', '7'], ['7', '0']],
      [['11', '0E-8'], ['13', '2'], ['11.5', '1']],
    );
    expect(b.top(10)).toEqual({
      bids: [['10', '7'], ['9.5', '5'], ['9', '1']],
      asks: [['11.5', '1'], ['12', '1'], ['13', '2']],
    });
  });

  it('applies changes in message order, so a level set and deleted in one message is gone', () => {
    const b = book([], []);
    b.apply([['5', '1'], ['5', '0'], ['4', '1'], ['4.0', '2']], []);
    expect(b.top(5).bids).toEqual([['4.0', '2']]);
  });

  it('returns at most n levels per side, best first', () => {
    const bids: PriceLevel[] = [];
    const asks: PriceLevel[] = [];
    for (let i = 1; i <= 100; i++) {
      bids.push([String(100 - i), '1']);
      asks.push([String(100 + i), '1']);
    }
    const b = book(bids, asks);
    const top = b.top(3);
    expect(top.bids.map((l) => l[0])).toEqual(['99', '98', '97']);
    expect(top.asks.map((l) => l[0])).toEqual(['101', '102', '103']);
    expect(b.top(0)).toEqual({ bids: [], asks: [] });
  });

  it('reports a crossed book when the best bid reaches the best ask', () => {
    const b = book([['10', '1']], [['11', '1']]);
    expect(b.isCrossed()).toBe(false);
    b.apply([['11', '1']], []);
    expect(b.isCrossed()).toBe(true);
    b.apply([['11', '0']], [['10.5', '1']]);
    expect(b.isCrossed()).toBe(false);
    b.apply([], [['9', '1']]);
    expect(b.isCrossed()).toBe(true);
  });

  it('is never crossed with an empty side, and clear() empties both', () => {
    const b = book([['10', '1']], []);
    expect(b.isCrossed()).toBe(false);
    expect(b.bestAsk).toBeNull();
    b.clear();
    expect([b.bidLevels, b.askLevels, b.bestBid, b.bestAsk]).toEqual([0, 0, null, null]);
  });

  it('rejects a price that is not a number instead of misordering the book', () => {
    expect(() => book([['abc', '1']], [])).toThrow(RangeError);
  });

  it('agrees with a naive map-based book on a long random sequence of changes', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const b = new LocalBook();
    const naive = new Map<number, PriceLevel>();
    for (let step = 0; step < 2000; step++) {
      const price = (1000 + rand(200)) / 10;
      const quantities = ['0.000', String(rand(50) + 1), `${rand(50)}.${rand(1000)}`, `${rand(9) + 1}e-${rand(9)}`, (rand(5000) / 1000).toFixed(8)];
      const level: PriceLevel = [rand(10) === 0 ? `${price}e0` : price.toFixed(rand(3) + 1), quantities[rand(quantities.length)] as string];
      b.apply([level], []);
      if (isZeroQuantity(level[1])) naive.delete(price);
      else naive.set(price, level);
    }
    const expected = [...naive.entries()].sort((x, y) => y[0] - x[0]).map(([, level]) => level);
    expect(b.top(1000).bids).toEqual(expected);
  });
});

describe('isZeroQuantity', () => {
  it('recognizes the decimal spellings of zero and nothing else', () => {
    for (const zero of ['0', '0.0', '0.00000000', '0E-8', '-0']) expect(isZeroQuantity(zero)).toBe(true);
    for (const positive of ['1', '0.00000001', '1e-8', '10']) expect(isZeroQuantity(positive)).toBe(false);
  });
});

describe('LocalBook with large diffs (merged, not spliced level by level)', () => {
  /** The rule, level by level: a Map by numeric price, the newest change's strings, zero deletes. */
  function reference(side: Map<number, PriceLevel>, levels: readonly PriceLevel[]): void {
    for (const level of levels) {
      const key = Number(level[0]);
      if (isZeroQuantity(level[1])) side.delete(key);
      else side.set(key, level);
    }
  }
  const sorted = (side: Map<number, PriceLevel>, dir: 1 | -1): PriceLevel[] => [...side].sort((a, b) => dir * (a[0] - b[0])).map(([, l]) => l);

  it('ends where applying every change in order ends, for diffs of every size, with repeats, deletions and other spellings', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const b = new LocalBook();
    const bids = new Map<number, PriceLevel>();
    const asks = new Map<number, PriceLevel>();
    const level = (lo: number): PriceLevel => {
      const ticks = lo + Math.floor(random() * 600);
      // The same price spelled two ways is one level; a zero (in any spelling) deletes it.
      const price = random() < 0.1 ? `${ticks}.0` : String(ticks);
      const quantity = random() < 0.25 ? (random() < 0.5 ? '0' : '0.000') : `${1 + Math.floor(random() * 9)}.${Math.floor(random() * 10)}`;
      return [price, quantity];
    };
    for (let step = 0; step < 200; step++) {
      const n = [0, 1, 5, 31, 32, 33, 100, 800][step % 8] as number;
      const db = Array.from({ length: n }, () => level(1000));
      const da = Array.from({ length: n }, () => level(1700));
      b.apply(db, da);
      reference(bids, db);
      reference(asks, da);
      expect(b.top(10_000)).toEqual({ bids: sorted(bids, -1), asks: sorted(asks, 1) });
    }
  });

  it('throws at a price that is not a number after applying the changes before it, as level by level', () => {
    const b = book([], []);
    const diff: PriceLevel[] = Array.from({ length: 40 }, (_, i) => [String(100 + i), '1']);
    diff[20] = ['abc', '1'];
    expect(() => b.apply(diff, [])).toThrow(RangeError);
    expect(b.bidLevels).toBe(20);
  });
});
