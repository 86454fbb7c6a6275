import { describe, expect, it } from 'vitest';
import { collectorOverload, EVENT_LOOP_LAG_LIMIT_MS, EventLoopLag, STORAGE_BEHIND_MS, storageOverload } from '../../src/lib/overload.js';

describe('overload verdicts', () => {
  it('names the collector when its event loop is behind, before a backed-up publish', () => {
    expect(collectorOverload({ eventLoopLagMs: 5, publishBackedUp: false })).toBeNull();
    expect(collectorOverload({ eventLoopLagMs: EVENT_LOOP_LAG_LIMIT_MS, publishBackedUp: false })).toBeNull();
    expect(collectorOverload({ eventLoopLagMs: 5, publishBackedUp: true })).toBe('publish');
    expect(collectorOverload({ eventLoopLagMs: EVENT_LOOP_LAG_LIMIT_MS + 1, publishBackedUp: true })).toBe('collector');
  });

  it('names storage once its batches have all closed full for a while, or its loop is behind', () => {
    const now = 1_000_000;
    expect(storageOverload({ eventLoopLagMs: 5, fullBatchesSince: null, now })).toBeNull();
    expect(storageOverload({ eventLoopLagMs: 5, fullBatchesSince: now - STORAGE_BEHIND_MS + 1, now })).toBeNull();
    expect(storageOverload({ eventLoopLagMs: 5, fullBatchesSince: now - STORAGE_BEHIND_MS, now })).toBe('storage');
    expect(storageOverload({ eventLoopLagMs: EVENT_LOOP_LAG_LIMIT_MS + 1, fullBatchesSince: null, now })).toBe('storage');
  });
});

describe('EventLoopLag', () => {
  it('sees a blocked event loop at once', async () => {
    // A window longer than the test: the figure is the current window's.
    const lag = new EventLoopLag(60_000);
    try {
      await new Promise((r) => setTimeout(r, 50));
      const until = Date.now() + 2 * EVENT_LOOP_LAG_LIMIT_MS;
      while (Date.now() < until) {
        // Blocks the loop, as parsing a huge backlog in one go would.
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(lag.p99Ms()).toBeGreaterThan(EVENT_LOOP_LAG_LIMIT_MS);
    } finally {
      lag.stop();
    }
  });
});
