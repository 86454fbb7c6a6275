import type { DataType } from '../config/schema.js';

export type Freshness = 'fresh' | 'stale' | 'starting';

/**
 * Seconds without a new record before a venue x data type counts as stale: the one table of these
 * thresholds (collector /health and `mprism health` alike). Trades and books flow continuously on the
 * configured majors; liquidations come in bursts; the polled types change at most every few hours
 * (funding every 8 h), so only a long silence means the poller is broken.
 */
export const STALE_AFTER_SECONDS: Readonly<Record<DataType, number>> = {
  trade: 60,
  orderbook: 60,
  liquidation: 3600,
  funding_rate: 8 * 3600,
  open_interest: 8 * 3600,
  lsr_top_position: 8 * 3600,
  lsr_all_account: 8 * 3600,
  volatility_index: 8 * 3600,
};

export function staleThresholdMs(dataType: DataType): number {
  return STALE_AFTER_SECONDS[dataType] * 1000;
}

/**
 * fresh/stale for a stream. Before its first record, a stream is `starting` during the grace
 * period after start-up (connect + subscribe + first record), and `stale` once that has passed: a
 * subscription the venue acknowledged but never serves shows as stale, whatever its socket does.
 */
export function freshness(input: { now: number; startedAt: number; lastSuccessAt: number | null; thresholdMs: number; graceMs: number }): Freshness {
  if (input.lastSuccessAt === null) return input.now - input.startedAt < input.graceMs ? 'starting' : 'stale';
  return input.now - input.lastSuccessAt < input.thresholdMs ? 'fresh' : 'stale';
}

/** Types a venue sends only when something happens: one quiet instrument is not a fault there. */
const EVENT_DRIVEN: ReadonlySet<DataType> = new Set<DataType>(['liquidation']);

/**
 * A venue x data type's status from those of its instruments: stale as soon as one instrument is
 * (a dead symbol must not hide behind a live one), except for event-driven types, which are fresh
 * while any instrument is.
 */
export function combinedFreshness(dataType: DataType, statuses: readonly Freshness[]): Freshness {
  const order: readonly Freshness[] = EVENT_DRIVEN.has(dataType) ? ['fresh', 'starting', 'stale'] : ['stale', 'starting', 'fresh'];
  return order.find((s) => statuses.includes(s)) ?? 'starting';
}
