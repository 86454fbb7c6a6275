import { describe, expect, it } from 'vitest';
import { combinedFreshness } from '../../src/lib/feeds/freshness.js';

describe('combinedFreshness', () => {
  it('makes a continuous type stale as soon as one instrument is, and starting while one still is', () => {
    expect(combinedFreshness('trade', ['fresh', 'stale'])).toBe('stale');
    expect(combinedFreshness('orderbook', ['fresh', 'starting'])).toBe('starting');
    expect(combinedFreshness('funding_rate', ['stale', 'starting'])).toBe('stale');
    expect(combinedFreshness('volatility_index', ['fresh', 'fresh'])).toBe('fresh');
  });

  it('keeps liquidations fresh while any instrument is: a quiet symbol has nothing to liquidate', () => {
    expect(combinedFreshness('liquidation', ['fresh', 'stale'])).toBe('fresh');
    expect(combinedFreshness('liquidation', ['starting', 'stale'])).toBe('starting');
    expect(combinedFreshness('liquidation', ['stale', 'stale'])).toBe('stale');
  });

  it('is starting with no instrument to judge', () => {
    expect(combinedFreshness('trade', [])).toBe('starting');
  });
});
