import { simTrade, type SimTrade } from './market.js';

/** Trades kept per instrument for the history endpoints (about 2.7 h at 20 trades/s). */
export const DEFAULT_TRADE_HISTORY = 200_000;

/**
 * Every trade an instrument's tape produced, whether or not a subscriber got it: what the venue's
 * REST history would return. The tape's ids count up by one, so an id finds its trade directly.
 * Bounded: the oldest trades are forgotten first, as a venue's history has a horizon too.
 *
 * Kept as columns of numbers, not trade objects: hundreds of thousands of retained objects with
 * their strings made the garbage collector the simulator's largest cost at high rates. A trade is
 * rebuilt from its model values when a history endpoint asks for it.
 */
export class TradeHistory {
  private priceTicks: Float64Array;
  private qtyLots: Float64Array;
  private times: Float64Array;
  private buyerIsMaker: Uint8Array;
  private symbol = '';
  /** Id of the oldest trade kept. */
  private oldestId = 0;
  private start = 0;
  private size = 0;

  constructor(readonly capacity = DEFAULT_TRADE_HISTORY) {
    // Columns grow as trades come, so a quiet instrument holds little.
    const initial = Math.min(capacity, 1024);
    this.priceTicks = new Float64Array(initial);
    this.qtyLots = new Float64Array(initial);
    this.times = new Float64Array(initial);
    this.buyerIsMaker = new Uint8Array(initial);
  }

  /** Doubles the columns (up to capacity); only before the ring first wraps, so slots keep their index. */
  private grow(): void {
    const n = Math.min(this.capacity, this.times.length * 2);
    const grown = <T extends Float64Array | Uint8Array>(old: T, next: T): T => {
      next.set(old);
      return next;
    };
    this.priceTicks = grown(this.priceTicks, new Float64Array(n));
    this.qtyLots = grown(this.qtyLots, new Float64Array(n));
    this.times = grown(this.times, new Float64Array(n));
    this.buyerIsMaker = grown(this.buyerIsMaker, new Uint8Array(n));
  }

  push(trade: SimTrade): void {
    if (this.size === 0) {
      this.symbol = trade.symbol;
      this.oldestId = trade.id;
    } else if (trade.id !== this.oldestId + this.size) {
      throw new RangeError(`trade ids must count up by one: ${this.oldestId + this.size - 1} then ${trade.id}`);
    }
    let slot: number;
    if (this.size < this.capacity) {
      if (this.size === this.times.length) this.grow();
      slot = this.size;
      this.size++;
    } else {
      slot = this.start;
      this.start = (this.start + 1) % this.capacity;
      this.oldestId++;
    }
    this.priceTicks[slot] = trade.priceTicks;
    this.qtyLots[slot] = trade.qtyLots;
    this.times[slot] = trade.time;
    this.buyerIsMaker[slot] = trade.buyerIsMaker ? 1 : 0;
  }

  get length(): number {
    return this.size;
  }

  /** The oldest and newest id kept; null when empty. */
  get firstId(): number | null {
    return this.size === 0 ? null : this.oldestId;
  }

  get lastId(): number | null {
    return this.size === 0 ? null : this.oldestId + this.size - 1;
  }

  /** Up to `limit` trades from id `fromId` on, oldest first (from the oldest kept when fromId is older). */
  fromId(fromId: number, limit: number): SimTrade[] {
    const first = this.firstId;
    if (first === null) return [];
    return this.slice(Math.max(0, fromId - first), limit);
  }

  /** Up to `limit` trades before id `beforeId` (exclusive), oldest first: the newest ones below it. */
  beforeId(beforeId: number, limit: number): SimTrade[] {
    const first = this.firstId;
    if (first === null) return [];
    const end = Math.min(this.size, beforeId - first);
    return end <= 0 ? [] : this.slice(Math.max(0, end - limit), end - Math.max(0, end - limit));
  }

  /** The newest `limit` trades, oldest first. */
  newest(limit: number): SimTrade[] {
    return this.slice(Math.max(0, this.size - limit), limit);
  }

  /** Up to `limit` trades with fromMs <= time <= toMs, oldest first. */
  inTime(fromMs: number, toMs: number, limit: number): SimTrade[] {
    const out: SimTrade[] = [];
    for (let k = this.lowerBound(fromMs); k < this.size && out.length < limit; k++) {
      if (this.timeAt(k) > toMs) break;
      out.push(this.at(k));
    }
    return out;
  }

  /** Up to `limit` trades with fromMs <= time <= toMs, newest first (venues that page backwards in time). */
  inTimeNewestFirst(fromMs: number, toMs: number, limit: number): SimTrade[] {
    const out: SimTrade[] = [];
    for (let k = this.lowerBound(toMs + 1) - 1; k >= 0 && out.length < limit; k--) {
      if (this.timeAt(k) < fromMs) break;
      out.push(this.at(k));
    }
    return out;
  }

  /** Index of the first trade at or after `time` (times never go down along the tape). */
  private lowerBound(time: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timeAt(mid) < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private timeAt(index: number): number {
    return this.times[(this.start + index) % this.capacity] as number;
  }

  /** The trade at `index` (0: oldest kept), which must be within the kept ones. */
  private at(index: number): SimTrade {
    const slot = (this.start + index) % this.capacity;
    return simTrade(this.symbol, this.oldestId + index, this.priceTicks[slot] as number, this.qtyLots[slot] as number, this.buyerIsMaker[slot] === 1, this.times[slot] as number);
  }

  private slice(from: number, limit: number): SimTrade[] {
    const out: SimTrade[] = [];
    for (let k = from; k < this.size && out.length < limit; k++) out.push(this.at(k));
    return out;
  }
}
