import type { DataType } from '../config/schema.js';

export type Freshness = 'fresh' | 'stale' | 'starting';

/**
 * Seconds without a new record before a stream counts as stale. Trades flow continuously on the
 * configured majors; the polled and slow types added later get their own thresholds here.
 */
export const STALE_AFTER_SECONDS: Partial<Record<DataType, number>> = { trade: 60 };
const DEFAULT_STALE_AFTER_SECONDS = 300;

export function staleThresholdMs(dataType: DataType): number {
  return (STALE_AFTER_SECONDS[dataType] ?? DEFAULT_STALE_AFTER_SECONDS) * 1000;
}

/**
 * fresh/stale for a stream. Before its first record, a stream is `starting` during the grace
 * period after start-up (connect + subscribe + first trade), and `stale` once that has passed.
 */
export function freshness(input: { now: number; startedAt: number; lastSuccessAt: number | null; thresholdMs: number; graceMs: number }): Freshness {
  if (input.lastSuccessAt === null) return input.now - input.startedAt < input.graceMs ? 'starting' : 'stale';
  return input.now - input.lastSuccessAt < input.thresholdMs ? 'fresh' : 'stale';
}
