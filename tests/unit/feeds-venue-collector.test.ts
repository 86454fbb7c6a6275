import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { VenueCollector, createCollectorMetrics } from '../../src/lib/feeds/venue-collector.js';
import type { MarketRecord } from '../../src/lib/records.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';

const log = pino({ level: 'silent' });

const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('VenueCollector against the simulator', () => {
  let sim: SimulatorHandle | null = null;
  afterEach(async () => {
    await sim?.close();
    sim = null;
  });

  it('hands every trade the simulator sent to the sink, across a disconnect, and counts bad frames', async () => {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT', 'ETHUSDT'], tradesPerSecond: 300, seed: 1, metrics: new Registry(), log });
    const http = `http://127.0.0.1:${sim.port}`;
    const registry = new Registry();
    const metrics = createCollectorMetrics(registry);
    const published: MarketRecord[] = [];
    // An asynchronous sink, like the bus Publisher: resolves once the record is in flight.
    const sink = { publish: async (r: MarketRecord) => void published.push(r) };
    const vc = new VenueCollector({
      adapter: binanceSpot,
      baseUrl: `ws://127.0.0.1:${sim.port}`,
      symbols: ['BTCUSDT', 'ETHUSDT'],
      dataTypes: ['trade'],
      sink,
      metrics,
      log,
      staleAfterMs: 5000,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    expect(vc.health()[0]).toMatchObject({ venue: 'binance_spot', dataType: 'trade', status: 'starting', lastSuccessAt: null });
    const ac = new AbortController();
    const running = vc.run(ac.signal);

    await waitFor(() => published.length > 200);
    await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'malformed' }) });
    await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'disconnect' }) });
    const before = published.length;
    await waitFor(() => published.length > before + 200);
    await fetch(`${http}/control/pause`, { method: 'POST' });
    await new Promise((r) => setTimeout(r, 200));
    ac.abort();
    await running;

    const stats = sim.stats().trades;
    for (const [native, symbol] of [['BTCUSDT', 'BTC-USDT'], ['ETHUSDT', 'ETH-USDT']] as const) {
      const ids = published.filter((r) => r.symbol === symbol).map((r) => Number(r.tradeId));
      expect(ids.length).toBe(stats[native]?.sent);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids[0]).toBe(stats[native]?.firstId);
      expect(ids.at(-1)).toBe(stats[native]?.lastId);
    }
    const text = await registry.metrics();
    expect(text).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="unknown",code="malformed_json"\} 1/);
    expect(text).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="trade",code="unexpected_shape"\} 1/);
    expect(text).toMatch(/mprism_collector_reconnects_total\{venue="binance_spot"\} 1/);
    expect(text).toMatch(new RegExp(`mprism_collector_messages_total\\{venue="binance_spot",data_type="trade"\\} ${published.length}`));
    expect(text).toMatch(/mprism_collector_last_success_timestamp_seconds\{venue="binance_spot",data_type="trade"\} \d+/);
    const [h] = vc.health();
    expect(h).toMatchObject({ status: 'fresh', connections: [{ id: 'binance_spot/0', state: 'stopped', connects: 2, reconnects: 1 }] });
    expect(h?.ageSeconds).toBeLessThan(5);
  });

  it('loses nothing when the sink stalls: the socket is paused and resumed', async () => {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT'], tradesPerSecond: 10_000, seed: 2, metrics: new Registry(), log });
    const http = `http://127.0.0.1:${sim.port}`;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const published: MarketRecord[] = [];
    const sink = {
      publish: async (r: MarketRecord) => {
        await gate;
        published.push(r);
      },
    };
    const vc = new VenueCollector({
      adapter: binanceSpot,
      baseUrl: `ws://127.0.0.1:${sim.port}`,
      symbols: ['BTCUSDT'],
      dataTypes: ['trade'],
      sink,
      metrics: createCollectorMetrics(new Registry()),
      log,
      // Longer than the simulator pause below, shorter than the time the socket stays paused.
      staleAfterMs: 2500,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const ac = new AbortController();
    const running = vc.run(ac.signal);
    // The queue passes its 20k high-water mark after ~2 s; the socket then stays paused ~3 s,
    // past the stale threshold: neither the pause nor the watchdog may drop data.
    await waitFor(() => (sim?.stats().trades.BTCUSDT?.sent ?? 0) > 50_000, 20_000);
    await fetch(`${http}/control/pause`, { method: 'POST' });
    release();
    await new Promise((r) => setTimeout(r, 1500));
    ac.abort();
    await running;
    const stats = sim.stats().trades.BTCUSDT;
    expect(published.length).toBe(stats?.sent);
    expect(vc.health()[0]?.connections[0]).toMatchObject({ connects: 1, reconnects: 0, lastDisconnectReason: null });
  });
});
