import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { deribitDerivatives } from '../../src/lib/exchanges/deribit_derivatives.js';
import { okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import type { VenueAdapter } from '../../src/lib/exchanges/types.js';
import { createCollectorMetrics } from '../../src/lib/feeds/collector-metrics.js';
import { VenueCollector, type VenueHealth } from '../../src/lib/feeds/venue-collector.js';
import type { MarketRecord, TradeRecord } from '../../src/lib/records.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });

const VENUES: ReadonlyArray<readonly [VenueAdapter, readonly string[]]> = [
  [binanceSpot, ['BTCUSDT', 'ETHUSDT']],
  [binanceDerivatives, ['BTCUSDT', 'ETHUSDT']],
  [okxSpot, ['BTC-USDT', 'ETH-USDT']],
  [okxDerivatives(['BTC-USDT-SWAP', 'ETH-USDT-SWAP']), ['BTC-USDT-SWAP', 'ETH-USDT-SWAP']],
  [deribitDerivatives, ['BTC', 'ETH']],
];


/**
 * The collector's real venue code (adapters, transport, book sync, polls) against the simulator with
 * the default venues and symbols: every venue x data type becomes fresh, and after every kind of
 * fault every book is valid again and no trade the simulator delivered is lost or duplicated.
 */
describe('collector venues against the simulator', () => {
  let sim: SimulatorHandle;
  let http: string;
  const records: MarketRecord[] = [];
  const collectors: VenueCollector[] = [];
  const ac = new AbortController();
  let running: Promise<void[]>;

  beforeAll(async () => {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT', 'ETHUSDT'], tradesPerSecond: 20, seed: 42, metrics: new Registry(), log });
    http = `http://127.0.0.1:${sim.port}`;
    const metrics = createCollectorMetrics(new Registry());
    const sink = { publishBatch: async (_subject: string, rs: readonly MarketRecord[]) => void records.push(...rs) };
    for (const [adapter, symbols] of VENUES) {
      collectors.push(
        new VenueCollector({
          adapter,
          wsBaseUrl: `ws://127.0.0.1:${sim.port}/${adapter.venue}`,
          restBaseUrl: `${http}/${adapter.venue}`,
          symbols,
          dataTypes: [...adapter.wsDataTypes, ...adapter.polledDataTypes],
          sink,
          metrics,
          log,
          staleAfterMs: 60_000,
          reconnect: { initialMs: 100, maxMs: 1000 },
          startupGraceMs: 1000,
          orderbook: { depth: 50, maxSnapshotsPerSecond: 10 },
          polls: { intervalMs: { funding_rate: 2000, open_interest: 2000, lsr_top_position: 2000, lsr_all_account: 2000, volatility_index: 2000 }, lsrPeriod: '5m' },
          capture: null,
        }),
      );
    }
    running = Promise.all(collectors.map((c) => c.run(ac.signal)));
  });

  afterAll(async () => {
    ac.abort();
    await running;
    await sim.close();
  });

  const health = (): VenueHealth[] => collectors.map((c) => c.health());
  const allFresh = () => health().every((h) => h.streams.every((s) => s.status === 'fresh'));
  const allSynced = () => health().every((h) => h.books.every((b) => b.state === 'synced'));
  const post = (path: string, body: unknown) => fetch(`${http}${path}`, { method: 'POST', body: JSON.stringify(body) });

  it('makes every enabled venue x data type fresh with synced books', async () => {
    await waitFor(() => allFresh() && allSynced());
    const streams = health().flatMap((h) => h.streams.map((s) => `${s.venue}/${s.dataType}`));
    expect(streams).toHaveLength(2 + 7 + 2 + 7 + 1);
  });

  it('recovers from every fault kind with valid books, gaps recorded, and no trade lost or duplicated', async () => {
    const gapsBefore = records.filter((r) => r.dataType === 'orderbook_gap').length;
    for (const fault of [
      { kind: 'gap' },
      { kind: 'bad_checksum', venue: 'okx_derivatives' },
      { kind: 'malformed' },
      { kind: 'http_429', venue: 'binance_derivatives', count: 3, retryAfterSeconds: 1 },
      { kind: 'disconnect' },
      { kind: 'stall', venue: 'okx_spot', seconds: 1 },
    ]) {
      expect((await post('/control/fault', fault)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 700));
      await waitFor(() => allSynced() && health().every((h) => h.connections.every((c) => c.state === 'open')));
    }
    // Gaps on every book of the four book venues (bad_checksum lands on OKX swaps too).
    expect(records.filter((r) => r.dataType === 'orderbook_gap').length - gapsBefore).toBeGreaterThanOrEqual(8);
    await waitFor(allFresh);

    await post('/control/pause', {});
    await new Promise((r) => setTimeout(r, 500));
    const venues = sim.stats().venues;
    for (const [adapter] of VENUES) {
      for (const [instrument, sent] of Object.entries(venues[adapter.venue].trades)) {
        const ids = records.filter((r): r is TradeRecord => r.dataType === 'trade' && r.venue === adapter.venue && r.instrument === instrument).map((r) => r.tradeId);
        expect(new Set(ids).size, `${adapter.venue} ${instrument}`).toBe(ids.length);
        expect(ids.length, `${adapter.venue} ${instrument}`).toBe(sent.sent);
      }
    }
    expect(Object.values(venues).reduce((n, v) => n + Object.values(v.faults).reduce((a, b) => a + b, 0), 0)).toBeGreaterThanOrEqual(6);
  });
});
