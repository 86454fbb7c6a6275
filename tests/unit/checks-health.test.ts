import { describe, expect, it } from 'vitest';
import { staleDetail } from '../../src/lib/checks/health.js';
import type { StreamHealth } from '../../src/lib/feeds/stream-health.js';

const stream = (o: Partial<StreamHealth>): StreamHealth => ({
  venue: 'okx_spot',
  dataType: 'trade',
  source: 'ws',
  status: 'stale',
  lastSuccessAt: null,
  ageSeconds: null,
  lastError: null,
  instruments: [],
  ...o,
});

describe('staleDetail', () => {
  it('names each stale instrument, its silence and its last poll error, not the live ones', () => {
    const st = stream({
      ageSeconds: 0.4,
      instruments: [
        { instrument: 'BTC-USDT', status: 'fresh', lastSuccessAt: '2026-11-22T06:00:00.000Z', ageSeconds: 0.4, lastError: null },
        { instrument: 'ETH-USDT', status: 'stale', lastSuccessAt: '2026-11-22T05:58:00.000Z', ageSeconds: 120.4, lastError: null },
        { instrument: 'SOL-USDT', status: 'stale', lastSuccessAt: null, ageSeconds: null, lastError: 'http_400' },
      ],
    });
    expect(staleDetail(st)).toBe('stale (ETH-USDT: last 120s ago; SOL-USDT: nothing received since start, last error http_400)');
  });

  it('adds the last poll error, and judges the stream as a whole when a collector reports no instruments', () => {
    const old = { ...stream({ dataType: 'funding_rate', source: 'rest', ageSeconds: 40000, lastError: 'http_429' }), instruments: undefined } as unknown as StreamHealth;
    expect(staleDetail(old)).toBe('stale (last 40000s ago, last error http_429)');
  });
});
