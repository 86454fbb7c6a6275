import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replication } from '../../src/daemons/replication/run.js';
import type { HealthReport } from '../../src/lib/daemon-context.js';
import { copyWindow } from '../../src/lib/replication/copy.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema, TABLES, tableFor } from '../../src/lib/store/tables.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { JSONCodec } from 'nats';
import { connectNats } from '../../src/lib/bus/connection.js';
import { ensureDurableConsumer, oldestUnackedEventTime } from '../../src/lib/bus/consumer.js';
import { ensureStreams, MARKET_DATA_STREAM, storageDurable } from '../../src/lib/bus/streams.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { setWatermark, watermarkOf } from '../helpers/watermarks.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { watermarkFile } from '../../src/lib/replication/watermarks.js';

const MINUTE = 60_000;
let infra: TestInfra;
let hot: ClickHouseClient;
let cold: ClickHouseClient;
const trades = tableFor('trade');

async function counts(client: ClickHouseClient, db: string, start: number, end: number) {
  const [r] = await selectRows<{ n: string; u: string }>(
    client,
    `SELECT count() AS n, uniqExact(event_time, venue, symbol, trade_id) AS u FROM ${db}.trades WHERE event_time >= ${start} AND event_time < ${end}`,
  );
  return { rows: Number(r?.n), distinct: Number(r?.u) };
}

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['clickhouse-hot', 'clickhouse-cold', 'nats', 'redis'],
    overrides: { replication: { windowSeconds: 60, safetyLagSeconds: 5, pollIntervalMs: 200 } },
  });
  hot = createClickHouse(infra.config.clickhouse.hot);
  cold = createClickHouse(infra.config.clickhouse.cold);
  await ensureSchema(hot, infra.config.clickhouse.hot.database, await detectDialect(hot));
  await ensureSchema(cold, infra.config.clickhouse.cold.database, await detectDialect(cold));
});

afterAll(async () => {
  await hot?.close();
  await cold?.close();
  await infra?.stop();
});

describe('copyWindow between two 18.16 servers', () => {
  it('copies a window over remote(), and copying it again adds nothing', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    const w = { start: 1_000 * MINUTE, end: 1_001 * MINUTE };
    const inside = Array.from({ length: 50 }, (_, i) => tradeAt(w.start + i * 100, `w${i}`));
    const outside = [tradeAt(w.start - 1, 'before'), tradeAt(w.end, 'after')];
    await insertRecords(hot, hotCfg.database, [...inside, ...outside], { skipExisting: false });
    // Unmerged duplicates in hot (a second insert of the same rows) must still arrive once.
    await insertRecords(hot, hotCfg.database, inside.slice(0, 5), { skipExisting: false });

    const first = await copyWindow(hot, cold, infra.config, trades, w);
    expect(first).toEqual({ hotCount: 50, coldCount: 50, copied: 50, verified: true });
    const second = await copyWindow(hot, cold, infra.config, trades, w);
    expect(second).toEqual({ hotCount: 50, coldCount: 50, copied: 0, verified: true });
    expect(await counts(cold, coldCfg.database, 0, Number.MAX_SAFE_INTEGER)).toEqual({ rows: 50, distinct: 50 });

    // A row that reaches hot late is picked up by the next copy, still without duplicating the rest.
    await insertRecords(hot, hotCfg.database, [tradeAt(w.start + 99, 'late')], { skipExisting: false });
    expect(await copyWindow(hot, cold, infra.config, trades, w)).toEqual({ hotCount: 51, coldCount: 51, copied: 1, verified: true });
  });

  it('does not verify a window whose cold copy holds a duplicate', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    const w = { start: 2_000 * MINUTE, end: 2_001 * MINUTE };
    const rows = [tradeAt(w.start + 1, 'd1'), tradeAt(w.start + 2, 'd2')];
    await insertRecords(hot, hotCfg.database, rows, { skipExisting: false });
    await insertRecords(cold, coldCfg.database, rows, { skipExisting: false });
    await insertRecords(cold, coldCfg.database, rows.slice(0, 1), { skipExisting: false });
    expect(await copyWindow(hot, cold, infra.config, trades, w)).toEqual({ hotCount: 2, coldCount: 3, copied: 0, verified: false });
  });
});

describe('replication daemon', () => {
  it('replicates closed windows, advances watermarks, exports metrics and health, and stops on abort', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    const now = Date.now();
    const start = Math.floor(now / MINUTE) * MINUTE - 20 * MINUTE;
    const records = Array.from({ length: 400 }, (_, i) => tradeAt(start + i * 3_000, `live${i}`)); // 20 minutes of trades
    await insertRecords(hot, hotCfg.database, records, { skipExisting: false });
    // The watermark is set past the earlier tests' windows so only this data is due.
    await setWatermark(cold, infra.config.clickhouse.cold.database, 'trades', start);

    const controller = new AbortController();
    const metrics = new Registry();
    let health: (() => HealthReport | Promise<HealthReport>) | null = null;
    const run = replication(
      { signal: controller.signal, log: pino({ level: 'silent' }), metrics, setHealth: (h) => (health = h), simulate: false },
      infra.config,
    );
    const deadline = Date.now() + 30_000;
    const expectedEnd = Math.floor((Date.now() - 5_000) / MINUTE) * MINUTE;
    let watermark: number | null = null;
    while (Date.now() < deadline) {
      watermark = (await watermarkOf(cold, infra.config.clickhouse.cold.database, 'trades'));
      if (watermark !== null && watermark >= expectedEnd) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // While it runs, the only replication daemon holds every table's lease.
    const live = await health!();
    const liveMetrics = await metrics.metrics();
    controller.abort();
    await run;

    expect(live).toMatchObject({ ok: true, leases: { held: TABLES.map((t) => t.table), standby: [], error: null } });
    expect(liveMetrics).toMatch(/mprism_lease_held\{name="replication:trades"\} 1/);
    expect(watermark).not.toBeNull();
    expect(watermark! % MINUTE).toBe(0);
    expect(watermark!).toBeGreaterThanOrEqual(expectedEnd);
    const due = records.filter((r) => r.eventTime < watermark!).length;
    expect(await counts(cold, coldCfg.database, start, watermark!)).toEqual({ rows: due, distinct: due });
    // Nothing past the watermark was copied: windows still inside the safety lag wait.
    expect((await counts(cold, coldCfg.database, watermark!, Number.MAX_SAFE_INTEGER)).rows).toBe(0);
    // The tables with no data stay without a watermark.
    expect((await watermarkOf(cold, infra.config.clickhouse.cold.database, 'orderbooks'))).toBeNull();

    const text = await metrics.metrics();
    expect(text).toMatch(new RegExp(`mprism_replication_rows_copied_total\\{table="trades"\\} ${due}\\b`));
    expect(text).toMatch(/mprism_replication_windows_total\{table="trades",result="verified"\} \d+/);
    expect(text).toMatch(/mprism_replication_lag_seconds\{table="trades"\} \d/);
    const report = await health!();
    expect(report).toMatchObject({ ok: true, lastError: null, unverified: {} });
    expect((report.lagSeconds as Record<string, number | null>).trades).toBeGreaterThan(0);
  });

  it('copies rows that reached hot after their window was replicated (late data behind the watermark)', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    const watermark = Math.floor(Date.now() / MINUTE) * MINUTE - 2 * MINUTE;
    const w = { start: watermark - 3 * MINUTE, end: watermark - 2 * MINUTE };
    // The window was replicated (cold has its first rows), then more rows for it arrived in hot.
    const early = [tradeAt(w.start + 10, 'late-a'), tradeAt(w.start + 20, 'late-b')];
    await insertRecords(hot, hotCfg.database, early, { skipExisting: false });
    await insertRecords(cold, coldCfg.database, early, { skipExisting: false });
    await insertRecords(hot, hotCfg.database, [tradeAt(w.start + 30, 'late-c'), tradeAt(w.start + 40, 'late-d')], { skipExisting: false });
    await setWatermark(cold, infra.config.clickhouse.cold.database, 'trades', watermark);

    const controller = new AbortController();
    const metrics = new Registry();
    const run = replication(
      { signal: controller.signal, log: pino({ level: 'silent' }), metrics, setHealth: () => undefined, simulate: false },
      infra.config,
    );
    const deadline = Date.now() + 15_000;
    // The earlier test's trades share this time range; count only this test's rows.
    const lateRows = async () =>
      Number((await selectRows<{ n: string }>(cold, `SELECT count() AS n FROM ${coldCfg.database}.trades WHERE trade_id LIKE 'late-%'`))[0]?.n);
    while (Date.now() < deadline && (await lateRows()) < 4) {
      await new Promise((r) => setTimeout(r, 200));
    }
    controller.abort();
    await run;
    expect(await lateRows()).toBe(4);
    const hotWindow = await counts(hot, hotCfg.database, w.start, w.end);
    expect(await counts(cold, coldCfg.database, w.start, w.end)).toEqual(hotWindow);
    expect(await metrics.metrics()).toMatch(/mprism_replication_windows_total\{table="trades",result="late"\} [1-9]/);
  });

  it('never closes a window past the oldest message storage has not written yet', async () => {
    const { hot: hotCfg } = infra.config.clickhouse;
    const nc = await connectNats(infra.config, 'test');
    try {
      const jsm = await nc.jetstreamManager();
      await ensureStreams(jsm, infra.config);
      const durable = storageDurable(MARKET_DATA_STREAM);
      await ensureDurableConsumer(jsm, { stream: MARKET_DATA_STREAM, durable, ackWaitMs: 60_000, maxAckPending: 100 });
      const base = Math.floor(Date.now() / MINUTE) * MINUTE - 12 * MINUTE;
      // Hot holds rows up to now, but one message from 6 minutes into that span is still unwritten.
      await insertRecords(hot, hotCfg.database, Array.from({ length: 12 }, (_, i) => tradeAt(base + i * MINUTE + 1, `floor${i}`)), { skipExisting: false });
      const pending = tradeAt(base + 6 * MINUTE + 30_000, 'floor-pending');
      await nc.jetstream().publish('trade.binance_spot.spot.BTC-USDT', JSONCodec().encode(pending));
      expect(await oldestUnackedEventTime(jsm, MARKET_DATA_STREAM, durable)).toBe(pending.eventTime);
      await setWatermark(cold, infra.config.clickhouse.cold.database, 'trades', base);

      const runFor = async (ms: number) => {
        const controller = new AbortController();
        const run = replication(
          { signal: controller.signal, log: pino({ level: 'silent' }), metrics: new Registry(), setHealth: () => undefined, simulate: false },
          infra.config,
        );
        await new Promise((r) => setTimeout(r, ms));
        controller.abort();
        await run;
        return (await watermarkOf(cold, infra.config.clickhouse.cold.database, 'trades'))!;
      };
      const held = await runFor(2000);
      expect(held).toBeGreaterThan(base);
      expect(held).toBeLessThanOrEqual(pending.eventTime);

      // Storage writes and acks it: the floor lifts and replication catches up.
      await insertRecords(hot, hotCfg.database, [pending], { skipExisting: false });
      const consumer = await nc.jetstream().consumers.get(MARKET_DATA_STREAM, durable);
      const m = await consumer.next({ expires: 2000 });
      await m!.ackAck();
      expect(await oldestUnackedEventTime(jsm, MARKET_DATA_STREAM, durable)).toBeNull();
      expect(await runFor(2000)).toBeGreaterThan(pending.eventTime);
    } finally {
      await nc.close();
    }
  });

  it('with Redis unreachable copies nothing, reports why in /health, and still stops on abort', async () => {
    const closed = await freePort();
    const config = { ...infra.config, redis: { ...infra.config.redis, port: closed } };
    const before = await watermarkOf(cold, infra.config.clickhouse.cold.database, 'trades');
    const controller = new AbortController();
    let health: (() => HealthReport | Promise<HealthReport>) | null = null;
    const run = replication({ signal: controller.signal, log: pino({ level: 'silent' }), metrics: new Registry(), setHealth: (h) => (health = h), simulate: false }, config);
    const deadline = Date.now() + 10_000;
    let report: HealthReport | null = null;
    while (Date.now() < deadline) {
      report = health === null ? null : await (health as () => HealthReport | Promise<HealthReport>)();
      if ((report?.leases as { error: string | null } | undefined)?.error) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    controller.abort();
    await run;
    expect(report).toMatchObject({ ok: false, leases: { held: [], error: expect.stringMatching(new RegExp(`^cannot take or renew table leases at redis://127.0.0.1:${closed}: redis: `)) } });
    expect(await watermarkOf(cold, infra.config.clickhouse.cold.database, 'trades')).toBe(before);
  });

  it('refuses to start from a guess when the pre-lease watermark file is corrupt, saying which file', async () => {
    const file = watermarkFile(infra.config.home);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, '{"version":1,"tables":');
    const controller = new AbortController();
    let health: (() => HealthReport | Promise<HealthReport>) | null = null;
    const run = replication({ signal: controller.signal, log: pino({ level: 'silent' }), metrics: new Registry(), setHealth: (h) => (health = h), simulate: false }, infra.config);
    try {
      const deadline = Date.now() + 10_000;
      let report: HealthReport | null = null;
      while (Date.now() < deadline) {
        report = health === null ? null : await (health as () => HealthReport | Promise<HealthReport>)();
        if (report?.lastError) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(report).toMatchObject({ ok: false, lastError: { table: null, message: expect.stringContaining(`${file}: corrupt watermark file`) } });
    } finally {
      controller.abort();
      await run;
      rmSync(file);
    }
  });

  it('keeps retrying with backoff while cold is unreachable, reporting unhealthy, and still stops on abort', async () => {
    const closed = await freePort();
    const config = { ...infra.config, clickhouse: { ...infra.config.clickhouse, cold: { ...infra.config.clickhouse.cold, httpPort: closed } } };
    const controller = new AbortController();
    const metrics = new Registry();
    let health: (() => HealthReport | Promise<HealthReport>) | null = null;
    const run = replication(
      { signal: controller.signal, log: pino({ level: 'silent' }), metrics, setHealth: (h) => (health = h), simulate: false },
      config,
    );
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !/mprism_replication_errors_total\{table="schema"\} [1-9]/.test(await metrics.metrics())) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const report = await health!();
    const stopped = Date.now();
    controller.abort();
    await run;
    expect(Date.now() - stopped).toBeLessThan(2_000);
    expect(report.ok).toBe(false);
    expect(report.lastError).toMatchObject({ table: null, message: expect.stringMatching(/ECONNREFUSED|connect/) });
  });
});
