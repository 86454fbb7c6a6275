/** [price in ticks, quantity in lots]; quantity 0 in a diff deletes the level. */
export type ModelLevel = readonly [ticks: number, lots: number];

/** What one step changed, best first per side. */
export interface BookDiff {
  bids: ModelLevel[];
  asks: ModelLevel[];
}

/** Levels per side the model keeps: OKX's full snapshot size, more than any top-N the collector keeps. */
export const MODEL_DEPTH = 400;

/**
 * A seeded orderbook quoting around a moving centre price, on a grid of prices. Each step re-centres
 * (levels that would cross or fall out of range are deleted), changes a few quantities near the top,
 * deletes some levels and refills the holes left by earlier steps. Bids stay below the centre and
 * asks at or above it, so the book is never crossed.
 */
export class BookModel {
  private readonly bids = new Map<number, number>();
  private readonly asks = new Map<number, number>();

  constructor(
    private readonly random: () => number,
    /** Distance between levels, in ticks. */
    private readonly grid: number,
    /** Largest quantity of one level, in lots. */
    private readonly maxLots: number,
    centreTicks: number,
    private readonly depth = MODEL_DEPTH,
  ) {
    this.step(centreTicks);
  }

  /** Moves the book to a new centre price and returns every level that changed. */
  step(centreTicks: number): BookDiff {
    const bidTop = Math.floor((centreTicks - 1) / this.grid) * this.grid;
    const askBottom = bidTop + this.grid;
    const bidFloor = bidTop - (this.depth - 1) * this.grid;
    const askCeiling = askBottom + (this.depth - 1) * this.grid;
    const bids = new Map<number, number>();
    const asks = new Map<number, number>();
    const set = (side: Map<number, number>, changes: Map<number, number>, price: number, lots: number) => {
      if (lots === 0) side.delete(price);
      else side.set(price, lots);
      changes.set(price, lots);
    };
    for (const price of this.bids.keys()) if (price > bidTop || price < bidFloor) set(this.bids, bids, price, 0);
    for (const price of this.asks.keys()) if (price < askBottom || price > askCeiling) set(this.asks, asks, price, 0);
    // Holes first, so a level deleted below stays deleted until the next step.
    for (let k = 0; k < this.depth; k++) {
      const bid = bidTop - k * this.grid;
      const ask = askBottom + k * this.grid;
      if (!this.bids.has(bid)) set(this.bids, bids, bid, this.lots());
      if (!this.asks.has(ask)) set(this.asks, asks, ask, this.lots());
    }
    for (const [side, changes, top, dir] of [
      [this.bids, bids, bidTop, -1],
      [this.asks, asks, askBottom, 1],
    ] as const) {
      const n = 1 + Math.floor(this.random() * 8);
      for (let i = 0; i < n; i++) {
        // Squaring favours the top of the book, where real books change most.
        const price = top + dir * Math.floor(this.random() ** 2 * this.depth) * this.grid;
        // Never empty the best level, so the book always has a top on both sides.
        const remove = price !== top && this.random() < 0.2;
        set(side, changes, price, remove ? 0 : this.lots());
      }
    }
    return { bids: sorted(bids, -1), asks: sorted(asks, 1) };
  }

  /** Best `limit` levels of each side, best first. */
  levels(limit = this.depth): BookDiff {
    return { bids: sorted(this.bids, -1).slice(0, limit), asks: sorted(this.asks, 1).slice(0, limit) };
  }

  private lots(): number {
    return 1 + Math.floor(this.random() ** 3 * this.maxLots);
  }
}

function sorted(levels: ReadonlyMap<number, number>, dir: 1 | -1): ModelLevel[] {
  return [...levels].sort((a, b) => dir * (a[0] - b[0]));
}

/** Grid of a book around a price: about 0.001 % of it, at least one tick. */
export function gridFor(centreTicks: number): number {
  return Math.max(1, Math.round(centreTicks * 0.00001));
}
