import { EVENT_LOOP_LAG_LIMIT_MS } from '../overload.js';

/**
 * Book snapshots per instrument per second, set from the collector's load. Snapshots are the
 * collector's heaviest records (a 50-level book costs as much to build, encode and store as ten
 * trades) and the only ones that can be thinned without a hole: each is a whole book, so a later
 * one supersedes an earlier. Under overload every book's rate falls together, halving each
 * step down to the configured minimum, instead of some books starving while others publish at
 * full rate; with headroom it climbs back a tenth of the maximum per step.
 */
export interface SnapshotRateLimits {
  /** collector.orderbook.maxSnapshotsPerSecond: the rate with headroom. */
  max: number;
  /** collector.orderbook.minSnapshotsPerSecond: the floor under any load. */
  min: number;
}

export interface CollectorLoad {
  /** Event-loop delay, p90 over the last second (a single GC pause does not count). */
  eventLoopLagMs: number;
  /** A venue's record queue is full and its sockets are paused (JetStream behind). */
  publishBackedUp: boolean;
}

/** Lag past which snapshots are thinned: half the overload limit, so thinning comes before overload. */
export const THIN_SNAPSHOTS_AT_LAG_MS = EVENT_LOOP_LAG_LIMIT_MS / 2;
/** Lag under which snapshots may come back. Between the two the rate holds, so it does not oscillate. */
export const RESTORE_SNAPSHOTS_UNDER_LAG_MS = EVENT_LOOP_LAG_LIMIT_MS / 4;
/** How often the collector re-decides the rate. */
export const SNAPSHOT_PACING_INTERVAL_MS = 1000;

/** The limits a config gives: the floor defaults to 1 a second, or the maximum where that is lower. */
export function snapshotRateLimits(orderbook: { maxSnapshotsPerSecond: number; minSnapshotsPerSecond?: number | undefined }): SnapshotRateLimits {
  const max = orderbook.maxSnapshotsPerSecond;
  return { max, min: orderbook.minSnapshotsPerSecond ?? Math.min(1, max) };
}

export function nextSnapshotRate(current: number, load: CollectorLoad, limits: SnapshotRateLimits): number {
  if (load.publishBackedUp || load.eventLoopLagMs > THIN_SNAPSHOTS_AT_LAG_MS) return Math.max(limits.min, current / 2);
  if (load.eventLoopLagMs < RESTORE_SNAPSHOTS_UNDER_LAG_MS) return Math.min(limits.max, current + limits.max / 10);
  return current;
}
