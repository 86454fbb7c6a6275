import type { SimTrade } from './market.js';

/** Trades kept per instrument for the history endpoints (about 2.7 h at 20 trades/s). */
export const DEFAULT_TRADE_HISTORY = 200_000;

/**
 * Every trade an instrument's tape produced, whether or not a subscriber got it: what the venue's
 * REST history would return. The tape's ids count up by one, so an id finds its trade directly.
 * Bounded: the oldest trades are forgotten first, as a venue's history has a horizon too.
 */
export class TradeHistory {
  private readonly ring: (SimTrade | undefined)[];
  private start = 0;
  private size = 0;

  constructor(readonly capacity = DEFAULT_TRADE_HISTORY) {
    this.ring = new Array<SimTrade | undefined>(capacity);
  }

  push(trade: SimTrade): void {
    const last = this.at(this.size - 1);
    if (last !== undefined && trade.id !== last.id + 1) throw new RangeError(`trade ids must count up by one: ${last.id} then ${trade.id}`);
    if (this.size < this.capacity) {
      this.ring[(this.start + this.size) % this.capacity] = trade;
      this.size++;
    } else {
      this.ring[this.start] = trade;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  get length(): number {
    return this.size;
  }

  /** The oldest and newest id kept; null when empty. */
  get firstId(): number | null {
    return this.at(0)?.id ?? null;
  }

  get lastId(): number | null {
    return this.at(this.size - 1)?.id ?? null;
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
    const i = this.lowerBound(fromMs);
    const out: SimTrade[] = [];
    for (let k = i; k < this.size && out.length < limit; k++) {
      const t = this.at(k) as SimTrade;
      if (t.time > toMs) break;
      out.push(t);
    }
    return out;
  }

  /** Up to `limit` trades with fromMs <= time <= toMs, newest first (venues that page backwards in time). */
  inTimeNewestFirst(fromMs: number, toMs: number, limit: number): SimTrade[] {
    const out: SimTrade[] = [];
    for (let k = this.lowerBound(toMs + 1) - 1; k >= 0 && out.length < limit; k--) {
      const t = this.at(k) as SimTrade;
      if (t.time < fromMs) break;
      out.push(t);
    }
    return out;
  }

  /** Index of the first trade at or after `time` (times never go down along the tape). */
  private lowerBound(time: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.at(mid) as SimTrade).time < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private at(index: number): SimTrade | undefined {
    if (index < 0 || index >= this.size) return undefined;
    return this.ring[(this.start + index) % this.capacity];
  }

  private slice(from: number, limit: number): SimTrade[] {
    const out: SimTrade[] = [];
    for (let k = from; k < this.size && out.length < limit; k++) out.push(this.at(k) as SimTrade);
    return out;
  }
}
