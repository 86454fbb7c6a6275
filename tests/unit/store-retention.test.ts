import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STREAM_SPECS, streamMaxAgeHours } from '../../src/lib/bus/streams.js';
import { holeExpiredInHot } from '../../src/lib/checks/continuity.js';
import { classifyWindow, comparisonStart, inLateDataWindow } from '../../src/lib/checks/integrity.js';
import { planRetention, retentionHorizons, retentionProblems, type ExpiredHotPartition, type RetentionReport } from '../../src/lib/checks/retention.js';
import { loadConfig } from '../../src/lib/config/load.js';
import type { Config } from '../../src/lib/config/schema.js';
import { dayOfPartition, type PartitionExtent } from '../../src/lib/store/retention.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MINUTE = 60_000;
const NOW = Date.UTC(2024, 4, 10, 12, 0, 0);
const base = loadConfig({ env: { MPRISM_HOME: mkdtempSync(join(tmpdir(), 'mprism-retention-')) } });
const withConfig = (patch: { retention?: Partial<Config['retention']>; replication?: Partial<Config['replication']> }): Config =>
  ({ ...base, retention: { ...base.retention, ...patch.retention }, replication: { ...base.replication, ...patch.replication } }) as Config;

/** A daily partition of `table` holding rows from day start + 1 min to day end - 1 min. */
const day = (table: string, dayStart: number): PartitionExtent => ({
  table,
  partitionId: new Date(dayStart).toISOString().slice(0, 10).replace(/-/g, ''),
  minTime: dayStart + MINUTE,
  maxTime: dayStart + DAY - MINUTE,
  rows: 100,
});
const dayStart = (daysAgo: number) => Math.floor(NOW / DAY) * DAY - daysAgo * DAY;

describe('planRetention', () => {
  const horizons = retentionHorizons(NOW, { hotDays: 3, coldDays: null });
  const expired = (o: Partial<ExpiredHotPartition> & { extent: PartitionExtent }): ExpiredHotPartition => ({ watermark: NOW - HOUR, missingInCold: 0, ...o });

  it('drops a hot partition past hotDays only when the watermark is past it and cold has every key', () => {
    const old = day('trades', dayStart(4));
    const plan = planRetention({ horizons, hot: [expired({ extent: old })], cold: [] });
    expect(plan).toEqual([{ action: 'drop', server: 'hot', extent: old, verifiedInCold: true, detail: 'replicated, every key is in cold' }]);
  });

  it('keeps it when cold lacks keys, when the watermark is before its newest row, or with no watermark at all', () => {
    const old = day('trades', dayStart(4));
    const lacking = planRetention({ horizons, hot: [expired({ extent: old, missingInCold: 3 })], cold: [] });
    expect(lacking).toEqual([{ action: 'keep', server: 'hot', extent: old, reason: 'cold_lacks_rows', detail: "cold lacks 3 of its keys: run 'mprism repair'" }]);
    // Watermark exactly at the newest row: the window holding that row ends after it, so it is not verified.
    const behind = planRetention({ horizons, hot: [expired({ extent: old, watermark: old.maxTime, missingInCold: null })], cold: [] });
    expect(behind).toMatchObject([{ action: 'keep', reason: 'not_replicated', detail: `replication watermark ${new Date(old.maxTime).toISOString()}, newest row ${new Date(old.maxTime).toISOString()}` }]);
    const never = planRetention({ horizons, hot: [expired({ extent: old, watermark: null, missingInCold: null })], cold: [] });
    expect(never).toMatchObject([{ action: 'keep', reason: 'not_replicated' }]);
    const unreadable = planRetention({ horizons, hot: [expired({ extent: old, watermark: undefined, missingInCold: null })], cold: [] });
    expect(unreadable).toMatchObject([{ action: 'keep', reason: 'watermark_unreadable' }]);
    // Replication claims it, but cold was never measured (its table is missing): kept.
    const unmeasured = planRetention({ horizons, hot: [expired({ extent: old, missingInCold: null })], cold: [] });
    expect(unmeasured).toMatchObject([{ action: 'keep', reason: 'cold_lacks_rows' }]);
  });

  it('never touches a partition whose newest row is inside the horizon, nor stream_holes', () => {
    const straddling = { ...day('trades', dayStart(3)), maxTime: horizons.hot };
    const holes = day('stream_holes', dayStart(10));
    expect(planRetention({ horizons, hot: [expired({ extent: straddling }), expired({ extent: holes })], cold: [] })).toEqual([]);
    expect(planRetention({ horizons, hot: [expired({ extent: { ...straddling, maxTime: horizons.hot - 1 } })], cold: [] })).toMatchObject([{ action: 'drop' }]);
  });

  it('drops cold partitions past coldDays, and nothing from cold when coldDays is null', () => {
    const cold = [day('trades', dayStart(40)), day('trades', dayStart(29)), day('stream_holes', dayStart(31))];
    expect(planRetention({ horizons, hot: [], cold })).toEqual([]);
    const thirty = retentionHorizons(NOW, { hotDays: 3, coldDays: 30 });
    expect(planRetention({ horizons: thirty, hot: [], cold }).map((d) => [d.action, d.server, d.extent.table, d.extent.partitionId])).toEqual([
      ['drop', 'cold', 'trades', cold[0]!.partitionId],
      ['drop', 'cold', 'stream_holes', cold[2]!.partitionId],
    ]);
  });

  it('drops a hot partition past cold retention too, whatever cold holds', () => {
    const h = retentionHorizons(NOW, { hotDays: 5, coldDays: 2 });
    const old = day('trades', dayStart(6));
    expect(planRetention({ horizons: h, hot: [expired({ extent: old, watermark: null, missingInCold: null })], cold: [] })).toMatchObject([
      { action: 'drop', server: 'hot', verifiedInCold: false, detail: 'past cold retention too' },
    ]);
  });

  it('turns errors, failed drops and partitions held for cold into problems, and nothing else', () => {
    const r: RetentionReport = {
      dryRun: false, hotHorizon: '', coldHorizon: null, copied: [], errors: ['trades: boom'],
      dropped: [
        { server: 'hot', table: 'trades', partition: '20240501', from: '', to: '', rows: 1, done: true, detail: 'ok' },
        { server: 'hot', table: 'trades', partition: '20240502', from: '', to: '', rows: 1, done: false, detail: 'replicated; drop failed: x' },
      ],
      kept: [
        { server: 'hot', table: 'trades', partition: '20240503', reason: 'not_replicated', detail: 'w' },
        { server: 'hot', table: 'trades', partition: '20240504', reason: 'cold_lacks_rows', detail: 'cold lacks 1 of its keys' },
      ],
    };
    expect(retentionProblems(r)).toEqual([
      'trades: boom',
      'hot trades partition 20240502 not dropped: replicated; drop failed: x',
      'hot trades partition 20240504 kept past retention: cold lacks 1 of its keys',
    ]);
    expect(retentionProblems({ ...r, dryRun: true, errors: [], kept: [] })).toEqual([]);
  });
});

describe('integrity: late data is pending, expired windows are not compared', () => {
  const config = withConfig({ replication: { windowSeconds: 60, lateDataSeconds: 900 } });
  const watermark = Date.UTC(2024, 4, 10, 11, 30, 0);

  it('a short window within lateDataSeconds behind the watermark is pending; older, or past the watermark, it is short', () => {
    const start = (minutesBehind: number) => watermark - minutesBehind * MINUTE;
    expect(inLateDataWindow(start(1), watermark, config)).toBe(true);
    expect(inLateDataWindow(start(15), watermark, config)).toBe(true);
    expect(inLateDataWindow(start(16), watermark, config)).toBe(false);
    expect(inLateDataWindow(watermark, watermark, config)).toBe(false);
    expect(inLateDataWindow(start(1), null, config)).toBe(false);
    expect(inLateDataWindow(start(1), watermark, withConfig({ replication: { lateDataSeconds: 0 } }))).toBe(false);

    expect(classifyWindow(3, 2, true, inLateDataWindow(start(1), watermark, config))).toBe('pending');
    expect(classifyWindow(3, 2, true, inLateDataWindow(start(16), watermark, config))).toBe('short');
    // Late rows only ever add to hot: cold holding more is a problem even in the late-data window.
    expect(classifyWindow(2, 3, true, true)).toBe('excess');
    expect(classifyWindow(3, 3, true, true)).toBe('ok');
    expect(classifyWindow(3, 2, false, false)).toBe('pending');
  });

  it('a short window far behind the watermark is pending while no more is missing than hot received lately (backfill, refills)', () => {
    // 5 backfilled rows received in the last lateDataSeconds, not copied yet: pending.
    expect(classifyWindow(8, 3, true, false, 5)).toBe('pending');
    // One more missing than arrived lately: an old row is missing in cold.
    expect(classifyWindow(9, 3, true, false, 5)).toBe('short');
    expect(classifyWindow(8, 3, true, false, 0)).toBe('short');
    expect(classifyWindow(3, 8, true, false, 5)).toBe('excess');
  });

  it('compares only windows wholly inside the retention horizons, and says which one clamped', () => {
    const c = withConfig({ retention: { hotDays: 3, coldDays: null }, replication: { windowSeconds: 60 } });
    expect(comparisonStart(NOW - HOUR, NOW, c)).toEqual({ start: NOW - HOUR, clampedBy: null });
    const hotHorizon = NOW - 3 * DAY + 30_000;
    expect(comparisonStart(NOW - 7 * DAY, hotHorizon + 3 * DAY, c)).toEqual({ start: hotHorizon + 30_000, clampedBy: 'hot' });
    const coldShorter = withConfig({ retention: { hotDays: 3, coldDays: 2 }, replication: { windowSeconds: 60 } });
    expect(comparisonStart(NOW - 7 * DAY, NOW, coldShorter)).toEqual({ start: NOW - 2 * DAY, clampedBy: 'cold' });
  });

  it('a hole is past the hot horizon only when it ended before it', () => {
    const horizon = retentionHorizons(NOW, { hotDays: 3, coldDays: null }).hot;
    expect(holeExpiredInHot({ toTime: horizon - 1 }, horizon)).toBe(true);
    expect(holeExpiredInHot({ toTime: horizon }, horizon)).toBe(false);
  });
});

describe('JetStream max age', () => {
  it('follows retention.jetstreamMaxAgeHours, the orderbook stream capped at a day', () => {
    const age = (hours: number) => STREAM_SPECS.map((s) => [s.name, streamMaxAgeHours(s, withConfig({ retention: { jetstreamMaxAgeHours: hours } }))]);
    expect(age(72)).toEqual([['MARKET_DATA', 72], ['ORDERBOOK_SNAP', 24]]);
    expect(age(6)).toEqual([['MARKET_DATA', 6], ['ORDERBOOK_SNAP', 6]]);
  });
});

describe('dayOfPartition', () => {
  it('reads the UTC day of a yyyymmdd partition id, and nothing else', () => {
    expect(dayOfPartition('20240229')).toEqual({ start: Date.UTC(2024, 1, 29), end: Date.UTC(2024, 2, 1) });
    expect(dayOfPartition('20230229')).toBeNull();
    expect(dayOfPartition('202402')).toBeNull();
    expect(dayOfPartition('all')).toBeNull();
  });
});
