import type { PriceLevel } from '../records.js';

/** Every decimal spelling of zero ("0", "0.00000000", "0E-8") deletes a level. */
export function isZeroQuantity(quantity: string): boolean {
  return quantity === '0' || Number(quantity) === 0;
}

/** Changes in one message from which a side is merged rather than spliced level by level. */
const MERGE_AT = 32;

function sortKey(price: string, sign: 1 | -1): number {
  const key = sign * Number(price);
  if (Number.isNaN(key)) throw new RangeError(`orderbook price is not a number: ${JSON.stringify(price)}`);
  return key;
}

/**
 * One side of a book. Levels are ordered by numeric price but keep the strings exactly as the venue
 * sent them (OKX checksums hash the strings). Keys ascend and the best level sits at the END, because
 * most changes happen near the top of the book and splicing there moves few elements.
 *
 * A level is held in parallel arrays (its key, price and quantity), not as the tuple it arrived in:
 * a collector keeps hundreds of books of hundreds of levels, and the arrays take about 89 bytes a
 * level where the tuple took about 150 (the array object and its backing store, besides the
 * strings). `top()` makes tuples of the few levels it is asked for.
 */
class BookSide {
  /** sign * price, ascending. */
  private keys: number[] = [];
  private prices: string[] = [];
  private quantities: string[] = [];

  /** sign 1: bids (best = highest price = largest key); -1: asks (best = lowest price = largest key). */
  constructor(private readonly sign: 1 | -1) {}

  get size(): number {
    return this.keys.length;
  }

  get best(): PriceLevel | null {
    const n = this.keys.length;
    return n === 0 ? null : [this.prices[n - 1]!, this.quantities[n - 1]!];
  }

  /** Numeric price of the best level; NaN when the side is empty. */
  get bestPrice(): number {
    const n = this.keys.length;
    return n === 0 ? Number.NaN : this.sign * this.keys[n - 1]!;
  }

  clear(): void {
    this.keys = [];
    this.prices = [];
    this.quantities = [];
  }

  replace(levels: readonly PriceLevel[]): void {
    const entries: { key: number; level: PriceLevel }[] = [];
    for (const level of levels) {
      if (!isZeroQuantity(level[1])) entries.push({ key: sortKey(level[0], this.sign), level });
    }
    // Stable sort: of two levels at the same price, the later one wins, as it would in apply().
    entries.sort((a, b) => a.key - b.key);
    const kept = entries.filter((e, i) => i + 1 === entries.length || entries[i + 1]!.key !== e.key);
    // Sized exactly (map), not grown level by level: a snapshot is most of what a book holds.
    this.keys = kept.map((e) => e.key);
    this.prices = kept.map((e) => e.level[0]);
    this.quantities = kept.map((e) => e.level[1]);
  }

  /**
   * Applies changes in order, like set() on each. A large diff (the whole book moving) is merged
   * into new arrays in one pass instead: a splice per level moved the side's levels once each.
   */
  applyAll(levels: readonly PriceLevel[]): void {
    if (levels.length < MERGE_AT) {
      for (const level of levels) this.set(level);
      return;
    }
    const changes: { key: number; i: number }[] = new Array(levels.length);
    for (let i = 0; i < levels.length; i++) {
      const key = this.sign * Number((levels[i] as PriceLevel)[0]);
      // A price that is not a number: set() throws at it, after the changes before it, as always.
      if (Number.isNaN(key)) {
        for (const level of levels) this.set(level);
        return;
      }
      changes[i] = { key, i };
    }
    // By key, and of several changes to one price in order: the last one is what set() would leave.
    changes.sort((a, b) => a.key - b.key || a.i - b.i);
    const keys: number[] = [];
    const prices: string[] = [];
    const quantities: string[] = [];
    const oldKeys = this.keys;
    let k = 0;
    for (let c = 0; c < changes.length; c++) {
      const { key, i } = changes[c] as { key: number; i: number };
      if (c + 1 < changes.length && (changes[c + 1] as { key: number }).key === key) continue;
      while (k < oldKeys.length && (oldKeys[k] as number) < key) {
        keys.push(oldKeys[k] as number);
        prices.push(this.prices[k] as string);
        quantities.push(this.quantities[k] as string);
        k++;
      }
      // The level at this price, if any, is replaced or deleted.
      if (k < oldKeys.length && oldKeys[k] === key) k++;
      const [price, quantity] = levels[i] as PriceLevel;
      if (isZeroQuantity(quantity)) continue;
      keys.push(key);
      prices.push(price);
      quantities.push(quantity);
    }
    for (; k < oldKeys.length; k++) {
      keys.push(oldKeys[k] as number);
      prices.push(this.prices[k] as string);
      quantities.push(this.quantities[k] as string);
    }
    this.keys = keys;
    this.prices = prices;
    this.quantities = quantities;
  }

  set(level: PriceLevel): void {
    const key = sortKey(level[0], this.sign);
    const keys = this.keys;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    const exists = lo < keys.length && keys[lo] === key;
    if (isZeroQuantity(level[1])) {
      if (exists) {
        keys.splice(lo, 1);
        this.prices.splice(lo, 1);
        this.quantities.splice(lo, 1);
      }
    } else if (exists) {
      this.prices[lo] = level[0];
      this.quantities[lo] = level[1];
    } else {
      keys.splice(lo, 0, key);
      this.prices.splice(lo, 0, level[0]);
      this.quantities.splice(lo, 0, level[1]);
    }
  }

  /** The best `n` levels, best first. */
  top(n: number): PriceLevel[] {
    const last = this.keys.length - 1;
    const count = Math.min(n, last + 1);
    const out = new Array<PriceLevel>(count);
    for (let i = 0; i < count; i++) out[i] = [this.prices[last - i]!, this.quantities[last - i]!];
    return out;
  }
}

/**
 * One instrument's full L2 book. Level identity is the numeric price ("2000" and "2000.0" are one
 * level); the strings given back are the ones the venue sent with the level's newest change. Prices
 * must be decimal strings: the adapters reject anything else.
 */
export class LocalBook {
  private readonly bids = new BookSide(1);
  private readonly asks = new BookSide(-1);

  /** Replaces the whole book with a snapshot; zero-quantity levels are ignored. */
  replace(bids: readonly PriceLevel[], asks: readonly PriceLevel[]): void {
    this.bids.replace(bids);
    this.asks.replace(asks);
  }

  /** Applies absolute level changes in order; a zero quantity deletes the level. */
  apply(bids: readonly PriceLevel[], asks: readonly PriceLevel[]): void {
    this.bids.applyAll(bids);
    this.asks.applyAll(asks);
  }

  /** The best `n` levels of each side, best first. */
  top(n: number): { bids: PriceLevel[]; asks: PriceLevel[] } {
    return { bids: this.bids.top(n), asks: this.asks.top(n) };
  }

  get bestBid(): PriceLevel | null {
    return this.bids.best;
  }

  get bestAsk(): PriceLevel | null {
    return this.asks.best;
  }

  /** Best bid at or above best ask: the book has missed something. */
  isCrossed(): boolean {
    return this.bids.size > 0 && this.asks.size > 0 && this.bids.bestPrice >= this.asks.bestPrice;
  }

  get bidLevels(): number {
    return this.bids.size;
  }

  get askLevels(): number {
    return this.asks.size;
  }

  clear(): void {
    this.bids.clear();
    this.asks.clear();
  }
}
