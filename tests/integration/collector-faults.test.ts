import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collector } from '../../src/daemons/collector/run.js';
import { simulator } from '../../src/daemons/simulator/run.js';
import { storage } from '../../src/daemons/storage/run.js';
import { ensureStreams } from '../../src/lib/bus/streams.js';
import type { Venue } from '../../src/lib/config/schema.js';
import type { BookHealth } from '../../src/lib/feeds/book-keeper.js';
import { natsUrl } from '../../src/lib/infra/endpoints.js';
import { COLLECTOR_STOPPED_DETAIL } from '../../src/lib/records.js';
import type { SimulatorStats } from '../../src/lib/simulator/server.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema } from '../../src/lib/store/tables.js';
import { runDaemon, stopDaemon } from '../helpers/daemons.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** The venues under test and their one instrument. */
const BOOKS: readonly { venue: Venue; instrument: string }[] = [
  { venue: 'binance_spot', instrument: 'BTCUSDT' },
  { venue: 'binance_derivatives', instrument: 'BTCUSDT' },
  { venue: 'okx_spot', instrument: 'BTC-USDT' },
];

describe('collector against injected simulator faults, through JetStream into ClickHouse', () => {
  let infra: TestInfra;
  let nc: NatsConnection;
  let ch: ClickHouseClient;
  let db: string;

  beforeAll(async () => {
    infra = await startTestInfra({
      servers: ['nats', 'clickhouse-hot'],
      overrides: {
        simulator: { tradesPerSecond: 40, symbols: ['BTCUSDT'] },
        storage: { flushIntervalMs: 200 },
        collector: {
          reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
          venues: {
            binance_spot: { symbols: ['BTCUSDT'], dataTypes: ['orderbook', 'trade'] },
            binance_derivatives: { symbols: ['BTCUSDT'], dataTypes: ['orderbook', 'trade'] },
            okx_spot: { symbols: ['BTC-USDT'], dataTypes: ['orderbook', 'trade'] },
            okx_derivatives: { enabled: false },
            deribit_derivatives: { enabled: false },
          },
        },
      },
    });
    nc = await connect({ servers: natsUrl(infra.config) });
    await ensureStreams(await nc.jetstreamManager(), infra.config);
    ch = createClickHouse(infra.config.clickhouse.hot);
    db = infra.config.clickhouse.hot.database;
    await ensureSchema(ch, db, await detectDialect(ch));
  }, 120_000);

  afterAll(async () => {
    await ch?.close();
    await nc?.close();
    await infra?.stop();
  });

  it('ends every fault with a valid book again, records the gaps, and stores each trade exactly once across a disconnect', async () => {
    const http = `http://127.0.0.1:${infra.config.simulator.port}`;
    const sim = runDaemon(simulator, infra.config);
    await waitFor('simulator', async () => (await fetch(`${http}/health`).catch(() => null))?.ok === true);
    const store = runDaemon(storage, infra.config);
    const col = runDaemon(collector, infra.config);

    const books = async () => ((await col.health()).books ?? []) as BookHealth[];
    const book = async (venue: Venue) => (await books()).find((b) => b.venue === venue);
    const metrics = () => col.ctx.metrics.metrics();
    const fault = async (body: Record<string, unknown>) => {
      const res = await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(200);
    };
    /** The book lost sync at least `gaps` times in all, is synced again and has moved on. */
    const recovered = async (venue: Venue, gaps: number) => {
      const before = (await book(venue))?.lastUpdateId ?? 0;
      await waitFor(`${venue} book to resync`, async () => {
        const b = await book(venue);
        return b !== undefined && b.gaps >= gaps && b.state === 'synced' && (b.lastUpdateId ?? 0) > before;
      });
    };

    await waitFor('every book synced', async () => {
      const all = await books();
      return BOOKS.every(({ venue }) => all.some((b) => b.venue === venue && b.state === 'synced'));
    });

    await fault({ kind: 'gap', venue: 'binance_spot', instrument: 'BTCUSDT' });
    await recovered('binance_spot', 1);

    await fault({ kind: 'gap', venue: 'binance_derivatives', instrument: 'BTCUSDT' });
    await recovered('binance_derivatives', 1);

    await fault({ kind: 'bad_checksum', venue: 'okx_spot', instrument: 'BTC-USDT' });
    await recovered('okx_spot', 1);

    await fault({ kind: 'malformed', venue: 'binance_derivatives' });
    await waitFor('malformed frame counted', async () => /mprism_collector_errors_total\{venue="binance_derivatives",data_type="[a-z_]+",code="(malformed_json|unexpected_shape)"\} [1-9]/.test(await metrics()));

    // The snapshot after the next gap is refused with 429 + Retry-After: it is asked again later.
    await fault({ kind: 'http_429', venue: 'binance_spot', count: 1, retryAfterSeconds: 1 });
    await fault({ kind: 'gap', venue: 'binance_spot', instrument: 'BTCUSDT' });
    await recovered('binance_spot', 2);
    expect(await metrics()).toMatch(/mprism_collector_errors_total\{venue="binance_spot",data_type="orderbook",code="http_429"\} 1/);

    // A silent stall drops frames at the venue: the first update after it does not chain.
    await fault({ kind: 'stall', venue: 'okx_spot', seconds: 2 });
    await recovered('okx_spot', 2);

    await fault({ kind: 'disconnect' });
    for (const { venue } of BOOKS) await recovered(venue, venue === 'binance_derivatives' ? 2 : 3);
    const afterFaults = Date.now();
    await waitFor('books published after the last fault', async () => {
      const rows = await selectRows<{ venue: string; n: string }>(ch, `SELECT venue, count() AS n FROM ${db}.orderbooks WHERE receive_time > ${afterFaults} GROUP BY venue`);
      return rows.length === BOOKS.length;
    });

    // Wind down: no more trades, let the collector publish what it has and storage store it.
    await fetch(`${http}/control/pause`, { method: 'POST' });
    await new Promise((r) => setTimeout(r, 500));
    await stopDaemon(col);
    const final = (await (await fetch(`${http}/stats`)).json()) as SimulatorStats;
    const sent = BOOKS.reduce((n, { venue, instrument }) => n + (final.venues[venue].trades[instrument]?.sent ?? 0), 0);
    await waitFor('storage to store every trade', async () => Number((await selectRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.trades`))[0]?.n) >= sent);
    const stopMarkers = `SELECT count() AS n FROM ${db}.orderbook_gaps WHERE detail = '${COLLECTOR_STOPPED_DETAIL}'`;
    await waitFor('the stop marker of each book', async () => Number((await selectRows<{ n: string }>(ch, stopMarkers))[0]?.n) >= BOOKS.length);
    await stopDaemon(store);
    await stopDaemon(sim);

    for (const { venue, instrument } of BOOKS) {
      const s = final.venues[venue].trades[instrument];
      const ids = (await selectRows<{ id: string }>(ch, `SELECT trade_id AS id FROM ${db}.trades WHERE venue = '${venue}' AND instrument = '${instrument}'`)).map((r) => Number(r.id)).sort((a, b) => a - b);
      expect(ids.length, venue).toBe(s?.sent);
      expect(new Set(ids).size, venue).toBe(ids.length);
      expect(ids[0], venue).toBe(s?.firstId);
      expect(ids.at(-1), venue).toBe(s?.lastId);
    }

    const crossed = await selectRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.orderbooks WHERE toFloat64(best_bid_price) >= toFloat64(best_ask_price)`);
    expect(Number(crossed[0]?.n)).toBe(0);
    const gaps = await selectRows<{ venue: string; reason: string; detail: string }>(ch, `SELECT venue, reason, detail FROM ${db}.orderbook_gaps ORDER BY receive_time`);
    const reasons = (venue: Venue) => gaps.filter((g) => g.venue === venue).map((g) => (g.detail === COLLECTOR_STOPPED_DETAIL ? 'stopped' : g.reason));
    // The last marker of each book is the one stopping the collector leaves.
    expect(reasons('binance_spot')).toEqual(['sequence_gap', 'sequence_gap', 'disconnect', 'stopped']);
    expect(reasons('binance_derivatives')).toEqual(['sequence_gap', 'disconnect', 'stopped']);
    expect(reasons('okx_spot')).toEqual(['checksum_mismatch', 'sequence_gap', 'disconnect', 'stopped']);
  }, 240_000);
});
