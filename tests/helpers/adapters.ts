import { expect } from 'vitest';
import { MalformedFrameError, type HistoryDataType, type HistorySource, type PollOptions, type VenueAdapter } from '../../src/lib/exchanges/types.js';

/** The MalformedFrameError `run` throws; fails the test when it throws nothing or something else. */
export function malformed(run: () => unknown): MalformedFrameError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedFrameError);
    return err as MalformedFrameError;
  }
  throw new Error('expected a MalformedFrameError');
}

/** Poll intervals and LSR period as the default config has them (open interest faster, to tell intervals apart). */
export const TEST_POLL_OPTIONS: PollOptions = {
  intervalMs: { funding_rate: 60_000, open_interest: 30_000, lsr_top_position: 300_000, lsr_all_account: 300_000, volatility_index: 60_000 },
  lsrPeriod: '5m',
};

/** The adapter's history source for a data type; fails the test when the venue has none. */
export function historyOf(adapter: VenueAdapter, dataType: HistoryDataType): HistorySource {
  const source = adapter.history[dataType];
  if (source === undefined) throw new Error(`${adapter.venue} has no ${dataType} history`);
  return source;
}
