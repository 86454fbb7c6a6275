/** mulberry32: small, fast, seedable; plenty for a market model that must replay identically. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, to give each symbol its own stream of randomness derived from the one seed. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A reproducible number in [0, 1) for (seed, key, n): REST observations that must read the same
 * on every request (history entries, funding of one interval) derive from it instead of a stream.
 */
export function noise(seed: number, key: string, n: number): number {
  return seededRandom((seed ^ hashString(`${key}:${n}`)) >>> 0)();
}

export interface SimTrade {
  /** Native id, e.g. BTCUSDT. */
  symbol: string;
  id: number;
  /** Decimal strings with 8 places, as Binance spot prints them. */
  price: string;
  quantity: string;
  /** The same price in whole ticks of 10^-PRICE_DECIMALS, and quantity in lots of 10^-QTY_DECIMALS, for other venues' formats. */
  priceTicks: number;
  qtyLots: number;
  buyerIsMaker: boolean;
  time: number;
}

const START_PRICE: Readonly<Record<string, number>> = { BTC: 65_000, ETH: 3_500, BNB: 600, SOL: 150 };
/** Model prices are whole ticks of 10^-2, quantities whole lots of 10^-5. */
export const PRICE_DECIMALS = 2;
export const QTY_DECIMALS = 5;
const PRINT_DECIMALS = 8;

/** Starting price of an instrument in ticks, from the base asset its id starts with. */
export function startTicks(instrument: string): number {
  const base = Object.keys(START_PRICE).find((b) => instrument.toUpperCase().startsWith(b));
  return Math.round((base === undefined ? 100 : (START_PRICE[base] ?? 100)) * 10 ** PRICE_DECIMALS);
}

/** '0'.repeat(n) for the paddings formatFixed needs, made once: it runs several times per trade. */
const ZEROS = Array.from({ length: 17 }, (_, n) => '0'.repeat(n));
const zeros = (n: number) => (n <= 0 ? '' : (ZEROS[n] ?? '0'.repeat(n)));

/** Integer `units` of 10^-decimals printed with `places` decimals (>= decimals), without float rounding. */
export function formatFixed(units: number, decimals: number, places = PRINT_DECIMALS): string {
  const scale = 10 ** decimals;
  const whole = Math.floor(units / scale);
  if (places === 0) return String(whole);
  const frac = String(units % scale);
  return `${whole}.${zeros(decimals - frac.length)}${frac}${zeros(places - decimals)}`;
}

/** Integer `units` of 10^-decimals printed as OKX does: no trailing zeros, no trailing point. */
export function formatTrimmed(units: number, decimals: number): string {
  const fixed = formatFixed(units, decimals, decimals);
  if (decimals === 0) return fixed;
  // Trailing zeros, then a trailing point; the point stops the zeros (decimals > 0 prints one).
  let end = fixed.length;
  while (fixed.charCodeAt(end - 1) === 48) end--;
  if (fixed.charCodeAt(end - 1) === 46) end--;
  return end === fixed.length ? fixed : fixed.slice(0, end);
}

/**
 * `[[...],[...]]` of book levels, each row's inner JSON from `row`: what JSON.stringify gives for
 * the rows as arrays of strings, without building them (thousands of levels a second). The
 * strings are printed numbers, with nothing to escape.
 */
export function levelRowsJson(levels: readonly (readonly [number, number])[], row: (ticks: number, lots: number) => string): string {
  let out = '[';
  for (let i = 0; i < levels.length; i++) {
    const [ticks, lots] = levels[i] as readonly [number, number];
    out += `${i === 0 ? '[' : ',['}${row(ticks, lots)}]`;
  }
  return `${out}]`;
}

/**
 * One symbol's trade tape: a seeded random walk in whole price ticks, so prices never drift into
 * float noise, and trade ids that only ever go up.
 */
export class SymbolMarket {
  private readonly random: () => number;
  private ticks: number;
  private nextId: number;

  /**
   * @param firstId Trade ids continue from here. Callers derive it from the wall clock so a
   * restarted simulator never reuses ids the storage layer has already seen.
   */
  constructor(
    readonly symbol: string,
    seed: number,
    firstId: number,
  ) {
    this.random = seededRandom((seed ^ hashString(symbol)) >>> 0);
    this.ticks = startTicks(symbol);
    this.nextId = firstId;
  }

  /** The last trade price in ticks: the centre the book model quotes around. */
  get priceTicks(): number {
    return this.ticks;
  }

  next(time: number): SimTrade {
    // Steps of up to ±0.05 % keep the walk plausible at any trade rate; never below one tick.
    const step = Math.round((this.random() - 0.5) * this.ticks * 0.001);
    this.ticks = Math.max(1, this.ticks + step);
    const qtyUnits = 1 + Math.floor(this.random() ** 3 * 200_000);
    return simTrade(this.symbol, this.nextId++, this.ticks, qtyUnits, this.random() < 0.5, time);
  }
}

/** A trade from its model values; the printed price and quantity follow from the ticks and lots. */
export function simTrade(symbol: string, id: number, priceTicks: number, qtyLots: number, buyerIsMaker: boolean, time: number): SimTrade {
  return {
    symbol,
    id,
    price: formatFixed(priceTicks, PRICE_DECIMALS),
    quantity: formatFixed(qtyLots, QTY_DECIMALS),
    priceTicks,
    qtyLots,
    buyerIsMaker,
    time,
  };
}

/**
 * How many trades are owed at a fixed rate. Timers fire late and coarsely, so each tick emits
 * everything due since the last one; after a long stall at most `maxCatchUpMs` worth is owed,
 * the rest is skipped rather than burst out.
 */
export class RateClock {
  private startedAt: number;
  private emitted = 0;

  constructor(
    private readonly perSecond: number,
    now: number,
    private readonly maxCatchUpMs = 1000,
  ) {
    this.startedAt = now;
  }

  due(now: number): number {
    const owed = Math.floor(((now - this.startedAt) * this.perSecond) / 1000) - this.emitted;
    const cap = Math.max(1, Math.ceil((this.maxCatchUpMs * this.perSecond) / 1000));
    if (owed > cap) {
      this.restart(now);
      return cap;
    }
    this.emitted += Math.max(0, owed);
    return Math.max(0, owed);
  }

  /** Forget the past (after a pause): nothing is owed for time spent stopped. */
  restart(now: number): void {
    this.startedAt = now;
    this.emitted = 0;
  }
}
