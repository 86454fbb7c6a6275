import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repairData } from '../../src/lib/checks/data-repair.js';
import { repairHoles } from '../../src/lib/checks/hole-repair.js';
import { runIntegrity, type IntegrityReport } from '../../src/lib/checks/integrity.js';
import { copyWindow } from '../../src/lib/replication/copy.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema, TABLES, tableFor } from '../../src/lib/store/tables.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { COLLECTOR_STOPPED_DETAIL, type OrderbookGapRecord, type StreamHoleRecord } from '../../src/lib/records.js';
import { recordHoleStates } from '../../src/lib/store/holes.js';
import { tradeAt } from '../helpers/records.js';
import { setWatermark, watermarkOf } from '../helpers/watermarks.js';
import { WATERMARKS_TABLE } from '../../src/lib/store/watermarks.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

const MINUTE = 60_000;
let infra: TestInfra;
let hot: ClickHouseClient;
let cold: ClickHouseClient;
let now: number;
let base: number;
const windowStart = (i: number) => base + i * MINUTE;
const iso = (t: number) => new Date(t).toISOString();

// A venue and symbol of their own, so nothing else in these tables is counted with them.
const trade = (t: number, id: string) =>
  tradeAt(t, id, { venue: 'okx_spot', symbol: 'ETH-USDT', instrument: 'ETH-USDT', receiveTime: t + 1, price: '2300.01', quantity: '1.5', side: 'buy' });

const trades = (r: IntegrityReport) => r.tables.find((t) => t.table === 'trades')!;

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['clickhouse-hot', 'clickhouse-cold'],
    // Late rows are re-checked 5 minutes behind the watermark: window 3's late rows below are older (short).
    overrides: { replication: { windowSeconds: 60, safetyLagSeconds: 5, pollIntervalMs: 200, lateDataSeconds: 300 } },
  });
  hot = createClickHouse(infra.config.clickhouse.hot);
  cold = createClickHouse(infra.config.clickhouse.cold);
  const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
  await ensureSchema(hot, hotCfg.database, await detectDialect(hot));
  await ensureSchema(cold, coldCfg.database, await detectDialect(cold));

  now = Date.now();
  base = Math.floor(now / MINUTE) * MINUTE - 30 * MINUTE;
  // Ten replicated windows of five trades each.
  const rows = Array.from({ length: 50 }, (_, i) => trade(windowStart(Math.floor(i / 5)) + (i % 5) * 1000, `t${i}`));
  await insertRecords(hot, hotCfg.database, rows, { skipExisting: false });
  for (let i = 0; i < 10; i++) {
    const r = await copyWindow(hot, cold, infra.config, tableFor('trade'), { start: windowStart(i), end: windowStart(i + 1) });
    expect(r.verified).toBe(true);
  }
  await setWatermark(cold, coldCfg.database, 'trades', windowStart(10));

  // Damage: window 3 gets rows in hot after its copy (short), window 5 a duplicate in cold, window 7 a
  // row only cold has (excess), and a row that is still inside the safety lag (pending). Cold merges are
  // paused, or ReplacingMergeTree would remove the duplicate by itself within seconds.
  await cold.command({ query: `SYSTEM STOP MERGES ${coldCfg.database}.trades` });
  await insertRecords(hot, hotCfg.database, [trade(windowStart(3) + 30_000, 'late1'), trade(windowStart(3) + 31_000, 'late2')], { skipExisting: false });
  await insertRecords(cold, coldCfg.database, [rows[25]!], { skipExisting: false });
  await insertRecords(cold, coldCfg.database, [trade(windowStart(7) + 45_000, 'cold-only')], { skipExisting: false });
  await insertRecords(hot, hotCfg.database, [trade(now - 1_000, 'fresh')], { skipExisting: false });
});

afterAll(async () => {
  await hot?.close();
  await cold?.close();
  await infra?.stop();
});

describe('integrity and data repair on 18.16', () => {
  it('reports a short window, an excess window, a cold duplicate and a pending window', async () => {
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(report.ok).toBe(false);
    expect(report.now).toBe(iso(now));
    expect(report.since).toBe(iso(Math.floor((now - 60 * MINUTE) / MINUTE) * MINUTE));
    expect(report.comparedSince).toBe(report.since);
    expect(report.tables.map((t) => t.table)).toEqual(TABLES.map((t) => t.table));

    const t = trades(report);
    expect(t).toMatchObject({ hotRows: 53, coldRows: 52, hotDuplicates: 0, coldDuplicates: 1 });
    expect(t.freshnessSeconds).toBeCloseTo(1, 0);
    expect(t.replicationLagSeconds).toBeCloseTo((now - windowStart(10)) / 1000, 3);
    const byStart = new Map(t.windows.map((w) => [w.start, w]));
    expect(byStart.get(iso(windowStart(3)))).toEqual({ start: iso(windowStart(3)), end: iso(windowStart(4)), hot: 7, cold: 5, status: 'short' });
    expect(byStart.get(iso(windowStart(5)))).toMatchObject({ hot: 5, cold: 5, status: 'ok' });
    expect(byStart.get(iso(windowStart(7)))).toMatchObject({ hot: 5, cold: 6, status: 'excess' });
    expect(t.windows.at(-1)).toMatchObject({ hot: 1, cold: 0, status: 'pending' });
    expect(t.windows.filter((w) => w.status === 'ok')).toHaveLength(8);
    expect(t.problems).toEqual([
      `${iso(windowStart(3))}..${iso(windowStart(4))} short: hot 7, cold 5`,
      `${iso(windowStart(7))}..${iso(windowStart(8))} excess: hot 5, cold 6`,
      'cold has 1 duplicate rows',
    ]);
    // Tables without data are reported, without problems.
    for (const other of report.tables.filter((x) => x.table !== 'trades')) {
      expect(other).toMatchObject({ hotRows: 0, coldRows: 0, windows: [], problems: [], freshnessSeconds: null, replicationLagSeconds: null });
    }
  });

  it('with dryRun says what it would do and changes nothing', async () => {
    const before = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    const actions = await repairData(infra.config, before, { dryRun: true });
    expect(actions.map((a) => [a.kind, a.server, a.window?.start ?? null, a.done])).toEqual([
      ['dedupe-table', 'cold', null, false],
      ['recopy-window', 'cold', iso(windowStart(3)), false],
      ['recopy-window', 'hot', iso(windowStart(7)), false],
    ]);
    expect(await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now })).toEqual(before);
  });

  it('repairs all of it, after which integrity is ok and a second repair has nothing to do', async () => {
    const before = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    const actions = await repairData(infra.config, before, { dryRun: false });
    expect(actions.map((a) => [a.kind, a.server, a.done])).toEqual([
      ['dedupe-table', 'cold', false],
      ['recopy-window', 'cold', true],
      ['recopy-window', 'hot', true],
    ]);
    // Merges are still paused: the server refuses OPTIMIZE, and the action says so instead of claiming success.
    expect(actions[0]!.detail).toMatch(/^failed: .*Cancelled merging parts/);
    expect(actions[1]!.detail).toBe('copied 2 rows to cold; hot 7 keys, cold 7 rows');
    expect(actions[2]!.detail).toBe('restored 1 rows into hot; copied 0 rows to cold; hot 6 keys, cold 6 rows');

    await cold.command({ query: `SYSTEM START MERGES ${infra.config.clickhouse.cold.database}.trades` });
    const middle = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(trades(middle).windows.filter((w) => w.status === 'short' || w.status === 'excess')).toEqual([]);
    for (const a of await repairData(infra.config, middle, { dryRun: false })) {
      expect(a.kind).toBe('dedupe-table');
      expect(a.done, a.detail).toBe(true);
    }

    const after = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(trades(after).problems).toEqual([]);
    expect(after.ok).toBe(true);
    expect(trades(after)).toMatchObject({ hotRows: 54, coldRows: 53, hotDuplicates: 0, coldDuplicates: 0 });
    // The row only cold had is kept there and now also in hot.
    const [kept] = await selectRows<{ n: string }>(hot, `SELECT count() AS n FROM ${infra.config.clickhouse.hot.database}.trades WHERE trade_id = 'cold-only'`);
    expect(kept?.n).toBe('1');
    expect(await repairData(infra.config, after, { dryRun: false })).toEqual([]);
  });

  it('reports watermarks that cannot be read from cold as a problem instead of guessing the lag', async () => {
    const db = infra.config.clickhouse.cold.database;
    const saved = await watermarkOf(cold, db, 'trades');
    // A watermarks table of the wrong shape: reading it fails (unlike a missing table, which means none yet).
    await cold.command({ query: `DROP TABLE ${db}.${WATERMARKS_TABLE}` });
    await cold.command({ query: `CREATE TABLE ${db}.${WATERMARKS_TABLE} (x UInt8) ENGINE = MergeTree ORDER BY x` });
    try {
      const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
      expect(report.ok).toBe(false);
      expect(trades(report).replicationLagSeconds).toBeNull();
      expect(trades(report).problems.join('\n')).toMatch(/cannot read replication watermarks from cold: /);
    } finally {
      await cold.command({ query: `DROP TABLE ${db}.${WATERMARKS_TABLE}` });
      await setWatermark(cold, db, 'trades', saved!);
    }
  });

  it('lists orderbook gap markers as warnings that do not fail the check', async () => {
    const gap = (t: number, symbol: string, reason: OrderbookGapRecord['reason'], lastUpdateId: number): OrderbookGapRecord => ({
      dataType: 'orderbook_gap', venue: 'binance_spot', marketType: 'spot', symbol, instrument: symbol.replace('-', ''),
      eventTime: t, receiveTime: t + 2, reason, lastUpdateId, detail: `after ${lastUpdateId}`,
    });
    const stopped = { ...gap(windowStart(2) + 950, 'SOL-USDT', 'disconnect', 40), detail: COLLECTOR_STOPPED_DETAIL };
    const gaps = [gap(windowStart(1) + 500, 'BTC-USDT', 'sequence_gap', 10), gap(windowStart(2) + 500, 'BTC-USDT', 'crossed_book', 20), gap(windowStart(2) + 900, 'ETH-USDT', 'disconnect', 30), stopped];
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    await insertRecords(hot, hotCfg.database, gaps, { skipExisting: true });
    await insertRecords(cold, coldCfg.database, gaps, { skipExisting: true });
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(report.ok).toBe(true);
    expect(report.bookGapCount).toBe(4);
    expect(report.bookGaps.map((g) => [g.at, g.symbol, g.reason, g.lastUpdateId])).toEqual([
      [iso(windowStart(2) + 950), 'SOL-USDT', 'disconnect', 40],
      [iso(windowStart(2) + 900), 'ETH-USDT', 'disconnect', 30],
      [iso(windowStart(2) + 500), 'BTC-USDT', 'crossed_book', 20],
      [iso(windowStart(1) + 500), 'BTC-USDT', 'sequence_gap', 10],
    ]);
    // The other warnings are the configured streams this test never fed (no data in hot).
    const gapWarnings = report.warnings.filter((w) => / orderbook gaps? \(/.test(w));
    expect(gapWarnings).toHaveLength(3);
    expect(gapWarnings[0]).toMatch(/^binance_spot BTC-USDT: 2 orderbook gaps \((sequence_gap, crossed_book|crossed_book, sequence_gap)\)$/);
    expect(gapWarnings[1]).toBe('binance_spot ETH-USDT: 1 orderbook gap (disconnect)');
    // A planned stop says so, not "disconnect".
    expect(gapWarnings[2]).toBe('binance_spot SOL-USDT: 1 orderbook gap (collector stopped)');
    expect(report.warnings.filter((w) => !gapWarnings.includes(w)).every((w) => /^stream stopped: .*: no data in hot$/.test(w))).toBe(true);
  });

  it('fails on an open hole, naming its size, and on a stream that stopped; a repaired hole no longer fails it', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    // binance_spot BTCUSDT (configured by default) last traded 5 minutes ago: stopped, threshold 60 s.
    const last = tradeAt(now - 5 * MINUTE, '900');
    await insertRecords(hot, hotCfg.database, [last], { skipExisting: true });
    await insertRecords(cold, coldCfg.database, [last], { skipExisting: true });
    const hole: StreamHoleRecord = {
      dataType: 'stream_hole', venue: 'binance_spot', marketType: 'spot', symbol: 'ETH-USDT', instrument: 'ETHUSDT',
      eventTime: now - 2 * MINUTE, receiveTime: now - 2 * MINUTE, holeDataType: 'trade', holeId: 'binance_spot/trade/ETHUSDT/1/101',
      fromTime: now - 3 * MINUTE, toTime: now - 3 * MINUTE + 1600, firstMissingId: '101', lastMissingId: '366', missingCount: 266,
      cause: 'collector_down', state: 'open', detail: 'collector was not running',
    };
    await recordHoleStates(hot, hotCfg.database, [hole]);
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(report.ok).toBe(false);
    expect(report.holeCounts).toEqual({ open: 1, repaired: 0, unrepairable: 0 });
    expect(report.problems).toContain(`hole: trade binance_spot ETHUSDT ${iso(hole.fromTime)}..${iso(hole.toTime)} (1.6 s, 266 missing, ids 101..366) collector_down: open, run 'mprism repair'`);
    expect(report.problems).toContain(`stream stopped: trade binance_spot BTCUSDT: newest record ${iso(last.eventTime)} (threshold 60 s)`);
    expect(report.stoppedStreams.find((x) => x.instrument === 'BTCUSDT' && x.venue === 'binance_spot' && x.dataType === 'trade')).toMatchObject({ newest: iso(last.eventTime), thresholdSeconds: 60 });

    await recordHoleStates(hot, hotCfg.database, [{ ...hole, eventTime: now - MINUTE, receiveTime: now - MINUTE, state: 'repaired', detail: 'refilled 266 trades' }]);
    const after = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(after.holeCounts).toEqual({ open: 0, repaired: 1, unrepairable: 0 });
    expect(after.problems.filter((p) => p.startsWith('hole:'))).toEqual([]);
  });

  it('reports rows that reached hot after their window was copied as pending within the late-data window, short beyond it', async () => {
    const { hot: hotCfg } = infra.config.clickhouse;
    const spec = tableFor('trade');
    // Watermark at window 10, late-data window 5 minutes: window 8 is re-checked by replication, window 2 no longer.
    await insertRecords(hot, hotCfg.database, [trade(windowStart(8) + 10_000, 'late-recent'), trade(windowStart(2) + 10_000, 'late-old')], { skipExisting: false });
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    const byStart = new Map(trades(report).windows.map((w) => [w.start, w]));
    expect(byStart.get(iso(windowStart(8)))).toMatchObject({ hot: 6, cold: 5, status: 'pending' });
    expect(byStart.get(iso(windowStart(2)))).toMatchObject({ hot: 6, cold: 5, status: 'short' });
    expect(trades(report).problems).toEqual([`${iso(windowStart(2))}..${iso(windowStart(3))} short: hot 6, cold 5`]);

    // Replication's late-row copy (the same copy) settles the pending window; repair the short one.
    expect((await copyWindow(hot, cold, infra.config, spec, { start: windowStart(8), end: windowStart(9) })).verified).toBe(true);
    expect((await copyWindow(hot, cold, infra.config, spec, { start: windowStart(2), end: windowStart(3) })).verified).toBe(true);
    const after = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(trades(after).windows.filter((w) => w.start === iso(windowStart(8)) || w.start === iso(windowStart(2))).map((w) => w.status)).toEqual(['ok', 'ok']);
    expect(trades(after).problems).toEqual([]);
  });

  it('a row backfilled far behind the watermark is pending while it arrived within lateDataSeconds, short once it is older', async () => {
    const { hot: hotCfg } = infra.config.clickhouse;
    const spec = tableFor('trade');
    // Window 0 is far outside the late-data window; the row was received just now (a history backfill).
    await insertRecords(hot, hotCfg.database, [{ ...trade(windowStart(0) + 20_000, 'backfilled'), receiveTime: now }], { skipExisting: false });
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(trades(report).windows.find((w) => w.start === iso(windowStart(0)))).toMatchObject({ hot: 6, cold: 5, status: 'pending' });
    expect(trades(report).problems).toEqual([]);
    // Six minutes on (lateDataSeconds 300), nobody copied it: short.
    const later = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now: now + 6 * MINUTE });
    expect(trades(later).windows.find((w) => w.start === iso(windowStart(0)))).toMatchObject({ hot: 6, cold: 5, status: 'short' });
    expect((await copyWindow(hot, cold, infra.config, spec, { start: windowStart(0), end: windowStart(1) })).verified).toBe(true);
  });

  it('does not compare windows older than hot keeps, and an open hole that ended before that is a warning, not a problem', async () => {
    const { hot: hotCfg } = infra.config.clickhouse;
    // Three days on, hot's horizon falls at window 5: windows 0..4 may have left hot by design.
    const later = windowStart(5) + 3 * 86_400_000;
    // Cold lost a row of window 1 and hot one of window 6: only the second is visible.
    await cold.command({ query: `ALTER TABLE ${infra.config.clickhouse.cold.database}.trades DELETE WHERE trade_id = 't5'` });
    await hot.command({ query: `ALTER TABLE ${hotCfg.database}.trades DELETE WHERE trade_id = 't30'` });
    await waitForMutations();
    const hole: StreamHoleRecord = {
      dataType: 'stream_hole', venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT',
      eventTime: windowStart(2), receiveTime: windowStart(2), holeDataType: 'trade', holeId: 'binance_spot/trade/BTCUSDT/old/1',
      fromTime: windowStart(1), toTime: windowStart(1) + 5000, firstMissingId: '1', lastMissingId: '9', missingCount: 9,
      cause: 'collector_down', state: 'open', detail: 'collector was not running',
    };
    await recordHoleStates(hot, hotCfg.database, [hole]);

    const report = await runIntegrity(infra.config, { sinceMs: 4 * 86_400_000, now: later });
    expect(report.comparedSince).toBe(iso(windowStart(5)));
    expect(report.warnings).toContain(`hot and cold compared from ${iso(windowStart(5))}, not ${report.since}: hot keeps 3 days (retention.hotDays)`);
    const t = trades(report);
    expect(t.windows[0]!.start).toBe(iso(windowStart(5)));
    // (Rows written after the watermark, never replicated, are short three days on: not asserted here.)
    expect(t.problems.filter((p) => p < iso(windowStart(10)))).toEqual([`${iso(windowStart(6))}..${iso(windowStart(7))} excess: hot 4, cold 5`]);
    expect(report.problems.filter((p) => p.includes(hole.holeId) || p.includes('BTCUSDT ' + iso(hole.fromTime)))).toEqual([]);
    expect(report.warnings.filter((w) => w.includes(iso(hole.fromTime)))).toEqual([
      `hole: trade binance_spot BTCUSDT ${iso(hole.fromTime)}..${iso(hole.toTime)} (5.0 s, 9 missing, ids 1..9) collector_down: open, older than hot keeps (retention.hotDays 3): no longer refillable`,
    ]);
    // Today the same hole is an open problem.
    const today = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    expect(today.problems.some((p) => p.includes(iso(hole.fromTime)) && p.endsWith("open, run 'mprism repair'"))).toBe(true);

    // Repair does not refill it into hot (which no longer keeps that time): it is recorded unrepairable.
    const actions = await repairHoles(infra.config, { dryRun: false, sinceMs: 4 * 86_400_000, simulate: true, now: () => later });
    expect(actions.map((a) => [a.hole.holeId, a.outcome, a.records, a.detail])).toEqual([
      [hole.holeId, 'unrepairable', 0, "ended before hot's retention horizon (retention.hotDays 3)"],
    ]);
    const settled = await runIntegrity(infra.config, { sinceMs: 4 * 86_400_000, now: later });
    expect(settled.holes.find((x) => x.holeId === hole.holeId)?.state).toBe('unrepairable');
  });

  it('stops when its signal aborts (a brain that lost its lease), instead of reporting on part of the tables', async () => {
    const controller = new AbortController();
    controller.abort(new Error('lease lost'));
    await expect(runIntegrity(infra.config, { sinceMs: 60 * MINUTE, signal: controller.signal })).rejects.toThrow('lease lost');
  });
});

async function waitForMutations(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const rows = await Promise.all([hot, cold].map((c) => selectRows<{ n: string }>(c, 'SELECT count() AS n FROM system.mutations WHERE is_done = 0')));
    if (rows.every((r) => r[0]?.n === '0')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('mutations did not finish in 10 s');
}
