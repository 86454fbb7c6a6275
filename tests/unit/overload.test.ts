import { describe, expect, it } from 'vitest';
import { nextSnapshotRate, RESTORE_SNAPSHOTS_UNDER_LAG_MS, THIN_SNAPSHOTS_AT_LAG_MS } from '../../src/lib/feeds/snapshot-pacing.js';
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

describe('book snapshot pacing', () => {
  const limits = { max: 10, min: 1 };
  const calm = { eventLoopLagMs: 1, publishBackedUp: false };
  const behind = { eventLoopLagMs: THIN_SNAPSHOTS_AT_LAG_MS + 1, publishBackedUp: false };

  it('halves every book rate while the collector is behind, down to the configured minimum', () => {
    const rates = [10];
    for (let i = 0; i < 6; i++) rates.push(nextSnapshotRate(rates.at(-1) as number, behind, limits));
    expect(rates).toEqual([10, 5, 2.5, 1.25, 1, 1, 1]);
    expect(nextSnapshotRate(10, { eventLoopLagMs: 0, publishBackedUp: true }, limits)).toBe(5);
  });

  it('climbs back a tenth of the maximum per step with headroom, and holds in between', () => {
    expect(nextSnapshotRate(1, calm, limits)).toBe(2);
    expect(nextSnapshotRate(9.5, calm, limits)).toBe(10);
    expect(nextSnapshotRate(10, calm, limits)).toBe(10);
    const between = { eventLoopLagMs: (RESTORE_SNAPSHOTS_UNDER_LAG_MS + THIN_SNAPSHOTS_AT_LAG_MS) / 2, publishBackedUp: false };
    expect(nextSnapshotRate(3, between, limits)).toBe(3);
  });

  it('thins before health calls the collector overloaded', () => {
    expect(THIN_SNAPSHOTS_AT_LAG_MS).toBeLessThan(EVENT_LOOP_LAG_LIMIT_MS);
    expect(collectorOverload(behind)).toBeNull();
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
      expect(lag.delayMs()).toBeGreaterThan(EVENT_LOOP_LAG_LIMIT_MS);
    } finally {
      lag.stop();
    }
  });
});

describe('EventLoopLag of an idle loop', () => {
  it('reads about zero, not the sampling interval', async () => {
    const lag = new EventLoopLag(60_000, 50);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(lag.delayMs()).toBeLessThan(10);
    } finally {
      lag.stop();
    }
  });
});
