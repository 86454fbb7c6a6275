import { Redis } from 'ioredis';
import { nanos } from 'nats';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionContext, JobOutcome } from '../../src/lib/brain/actions.js';
import { BrainStore } from '../../src/lib/brain/history.js';
import { withBackfillLock } from '../../src/lib/brain/history-init.js';
import { ensureBrainSchema } from '../../src/lib/brain/schema.js';
import { createRetentionAction } from '../../src/lib/brain/retention-action.js';
import { connectNats } from '../../src/lib/bus/connection.js';
import { ensureStreams, MARKET_DATA_STREAM, ORDERBOOK_STREAM } from '../../src/lib/bus/streams.js';
import { runRepair } from '../../src/lib/checks/repair.js';
import { runRetention, type RetentionReport } from '../../src/lib/checks/retention.js';
import type { Config } from '../../src/lib/config/schema.js';
import { postgresUrl } from '../../src/lib/infra/endpoints.js';
import { ensurePostgresDatabase } from '../../src/lib/infra/probe.js';
import type { FundingRateRecord, StreamHoleRecord } from '../../src/lib/records.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { partitionExtents } from '../../src/lib/store/retention.js';
import { ensureSchema, partitionOf, renderCreateTable, tableFor } from '../../src/lib/store/tables.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { tradeAt } from '../helpers/records.js';
import { setWatermark } from '../helpers/watermarks.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
let infra: TestInfra;
let hot: ClickHouseClient;
let cold: ClickHouseClient;
/** The hot and cold databases. */
let h: string;
let c: string;
const now = Date.now();
/** UTC day start `n` days before today. */
const dayAgo = (n: number) => Math.floor(now / DAY) * DAY - n * DAY;
const part = (n: number) => String(partitionOf(dayAgo(n)));

/** `count` trades spread over the day `n` days ago, ids prefixed by the day. */
const tradesOfDay = (n: number, count: number) =>
  Array.from({ length: count }, (_, i) => tradeAt(dayAgo(n) + (i + 1) * Math.floor(DAY / (count + 1)), `d${n}-${i}`));
const funding = (t: number): FundingRateRecord => ({
  dataType: 'funding_rate', venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT',
  eventTime: t, receiveTime: t + 1, fundingRate: '0.0001', nextFundingTime: 0, markPrice: null,
});
const oldHole: StreamHoleRecord = {
  dataType: 'stream_hole', venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT',
  eventTime: dayAgo(10) + HOUR, receiveTime: dayAgo(10) + HOUR, holeDataType: 'trade', holeId: 'binance_spot/trade/BTCUSDT/x/1',
  fromTime: dayAgo(10), toTime: dayAgo(10) + 1000, firstMissingId: '1', lastMissingId: '2', missingCount: 2,
  cause: 'collector_down', state: 'open', detail: 'collector was not running',
};

async function tradeIds(client: ClickHouseClient, database: string, n: number): Promise<string[]> {
  const rows = await selectRows<{ trade_id: string }>(
    client,
    `SELECT trade_id FROM ${database}.trades WHERE event_time >= ${dayAgo(n)} AND event_time < ${dayAgo(n) + DAY} ORDER BY trade_id`,
  );
  return rows.map((r) => r.trade_id);
}
async function partitions(client: ClickHouseClient, database: string, table: string): Promise<string[]> {
  const rows = await selectRows<{ p: string }>(
    client,
    `SELECT DISTINCT partition_id AS p FROM system.parts WHERE database = '${database}' AND table = '${table}' AND active ORDER BY p`,
  );
  return rows.map((r) => r.p);
}

const summary = (r: RetentionReport) => ({
  dropped: r.dropped.map((d) => [d.server, d.table, d.partition, d.done]),
  kept: r.kept.map((k) => [k.server, k.table, k.partition, k.reason]),
});

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['clickhouse-hot', 'clickhouse-cold', 'nats', 'postgres'],
    overrides: { retention: { hotDays: 3, coldDays: 30, jetstreamMaxAgeHours: 72 }, replication: { windowSeconds: 60 } },
  });
  hot = createClickHouse(infra.config.clickhouse.hot);
  cold = createClickHouse(infra.config.clickhouse.cold);
  h = infra.config.clickhouse.hot.database;
  c = infra.config.clickhouse.cold.database;
  await ensureSchema(hot, h, await detectDialect(hot));
  await ensureSchema(cold, c, await detectDialect(cold));

  // Day 5: complete in cold. Day 4: cold lacks one row. Day 1: young. Day 40: only in cold, past coldDays.
  const day5 = tradesOfDay(5, 20);
  const day4 = tradesOfDay(4, 20);
  const day1 = tradesOfDay(1, 5);
  await insertRecords(hot, h, [...day5, ...day4, ...day1], { skipExisting: false });
  await insertRecords(cold, c, [...day5, ...day4.slice(1), ...day1, ...tradesOfDay(40, 3)], { skipExisting: false });
  // Funding rates of day 5, fully in cold, but replication's watermark stops in the middle of the day.
  const rates = [funding(dayAgo(5) + HOUR), funding(dayAgo(5) + 20 * HOUR)];
  await insertRecords(hot, h, rates, { skipExisting: false });
  await insertRecords(cold, c, rates, { skipExisting: false });
  // A hole recorded ten days ago: hot keeps it (the completeness record).
  await insertRecords(hot, h, [oldHole], { skipExisting: false });
  await ensurePostgresDatabase(infra.config);
  unconnected.pool = new pg.Pool({ connectionString: postgresUrl(infra.config) });
  await ensureBrainSchema(unconnected.pool);
  await setWatermark(cold, c, 'trades', now - HOUR);
  await setWatermark(cold, c, 'funding_rates', dayAgo(5) + 12 * HOUR);
  await setWatermark(cold, c, 'stream_holes', now - HOUR);
}, 60_000);

afterAll(async () => {
  unconnected.redis.disconnect();
  await unconnected.pool?.end();
  await hot?.close();
  await cold?.close();
  await infra?.stop();
});

/** The retention action uses PostgreSQL (the backfills' lock, the brain's history) but not Redis. */
const unconnected = {
  pool: null as unknown as pg.Pool,
  redis: new Redis({ lazyConnect: true }),
};

function context(config: Config, params: Record<string, unknown>): ActionContext {
  const log = pino({ level: 'silent' });
  return { config, params, trigger: 'manual', signal: new AbortController().signal, log, progress: new BrainStore(unconnected.pool).progress };
}

describe('retention on 18.16', () => {
  const registry = new Registry();
  const deps = () => ({ config: infra.config, log: pino({ level: 'silent' }), metrics: registry, ...unconnected });
  const run = async (params: Record<string, unknown>): Promise<JobOutcome & { result: RetentionReport }> =>
    (await createRetentionAction(deps())(context(infra.config, params))) as JobOutcome & { result: RetentionReport };

  it('with dryRun plans the drops and drops nothing', async () => {
    const hotBefore = await partitions(hot, h, 'trades');
    const coldBefore = await partitions(cold, c, 'trades');
    const { result, problems } = await run({ dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(summary(result)).toEqual({
      dropped: [['hot', 'trades', part(5), false], ['cold', 'trades', part(40), false]],
      kept: [['hot', 'trades', part(4), 'cold_lacks_rows'], ['hot', 'funding_rates', part(5), 'not_replicated']],
    });
    expect(problems).toEqual([`hot trades partition ${part(4)} kept past retention: cold lacks 1 of its keys: run 'mprism repair'`]);
    expect(await partitions(hot, h, 'trades')).toEqual(hotBefore);
    expect(await partitions(cold, c, 'trades')).toEqual(coldBefore);
  });

  it('drops only the hot partition cold verifiably holds, keeps the one cold is behind on, and the ones replication has not passed', async () => {
    const { result } = await run({});
    expect(summary(result)).toEqual({
      dropped: [['hot', 'trades', part(5), true], ['cold', 'trades', part(40), true]],
      kept: [['hot', 'trades', part(4), 'cold_lacks_rows'], ['hot', 'funding_rates', part(5), 'not_replicated']],
    });
    expect(await tradeIds(hot, h, 5)).toEqual([]);
    expect(await tradeIds(cold, c, 5)).toEqual(tradesOfDay(5, 20).map((t) => t.tradeId).sort());
    expect(await tradeIds(hot, h, 4)).toHaveLength(20);
    expect(await tradeIds(hot, h, 1)).toHaveLength(5);
    expect(await tradeIds(cold, c, 40)).toEqual([]);
    expect(await partitions(hot, h, 'funding_rates')).toEqual([part(5)]);
    expect(await partitions(hot, h, 'stream_holes')).toEqual([String(partitionOf(oldHole.eventTime))]);
    const metric = await registry.getSingleMetric('mprism_brain_retention_dropped_partitions_total')!.get();
    expect(metric.values.map((v) => [v.labels.server, v.labels.table, v.value])).toEqual([['hot', 'trades', 1], ['cold', 'trades', 1]]);
  });

  it('keeps a partition a late row came back into while cold lacks it, and drops it once the row is one cold has', async () => {
    // A straggler cold lacks, after the drop: dropping would lose the only copy.
    const lost = tradeAt(dayAgo(5) + HOUR + 7, 'd5-straggler');
    await insertRecords(hot, h, [lost], { skipExisting: false });
    const kept = await run({});
    expect(summary(kept.result).kept).toContainEqual(['hot', 'trades', part(5), 'cold_lacks_rows']);
    expect(await tradeIds(hot, h, 5)).toEqual(['d5-straggler']);
    // Redelivered rows cold has: hot holds fewer keys than cold, every one of them in cold.
    await hot.command({ query: `ALTER TABLE ${h}.trades DROP PARTITION ID '${part(5)}'` });
    await insertRecords(hot, h, tradesOfDay(5, 20).slice(0, 2), { skipExisting: false });
    const dropped = await run({});
    expect(summary(dropped.result).dropped).toEqual([['hot', 'trades', part(5), true]]);
    expect(await tradeIds(hot, h, 5)).toEqual([]);
  });

  it('with copyMissing (repair) copies what cold lacks, then drops the partition; cold holds every key once', async () => {
    const r = await runRetention(infra.config, { dryRun: false, copyMissing: true });
    expect(r.copied).toEqual([{ table: 'trades', partition: part(4), rows: 1 }]);
    expect(summary(r)).toEqual({ dropped: [['hot', 'trades', part(4), true]], kept: [['hot', 'funding_rates', part(5), 'not_replicated']] });
    expect(await tradeIds(cold, c, 4)).toEqual(tradesOfDay(4, 20).map((t) => t.tradeId).sort());
    expect(await tradeIds(hot, h, 4)).toEqual([]);
    // Nothing left to do: a second run drops and copies nothing.
    const again = await runRetention(infra.config, { dryRun: false, copyMissing: true });
    expect(summary(again)).toEqual({ dropped: [], kept: [['hot', 'funding_rates', part(5), 'not_replicated']] });
    expect(again.copied).toEqual([]);
  });

  it('checks a partition again right before dropping it: a row written into it after the plan keeps it', async () => {
    const [day8, day7] = [tradesOfDay(8, 4), tradesOfDay(7, 4)];
    await insertRecords(hot, h, [...day8, ...day7], { skipExisting: false });
    await insertRecords(cold, c, [...day8, ...day7], { skipExisting: false });
    const backfilled = tradeAt(dayAgo(7) + 5 * HOUR + 3, 'd7-backfilled');
    // Day 8 is dropped first (oldest first); as it goes, a history backfill writes into day 7.
    const r = await runRetention(infra.config, {
      dryRun: false,
      onDropped: async (d) => {
        if (d.partition === part(8)) await insertRecords(hot, h, [backfilled], { skipExisting: false });
      },
    });
    expect(summary(r).dropped).toEqual([['hot', 'trades', part(8), true]]);
    expect(summary(r).kept).toContainEqual(['hot', 'trades', part(7), 'changed_while_checked']);
    expect(await tradeIds(hot, h, 7)).toEqual([...day7.map((t) => t.tradeId), 'd7-backfilled'].sort());
    const next = await runRetention(infra.config, { dryRun: false });
    expect(summary(next).kept).toContainEqual(['hot', 'trades', part(7), 'cold_lacks_rows']);
  });

  it('mprism repair runs retention: with --dry-run it only plans, without it copies what cold lacks and drops', async () => {
    const day9 = tradesOfDay(9, 3);
    await insertRecords(hot, h, day9, { skipExisting: false });
    await insertRecords(cold, c, day9, { skipExisting: false });
    const before = await partitions(hot, h, 'trades');
    expect(before).toEqual([part(9), part(7), part(1)].sort());

    const dry = await runRepair(infra.config, { dryRun: true, sinceMs: HOUR });
    expect(summary(dry.retention!)).toEqual({
      dropped: [['hot', 'trades', part(9), false]],
      kept: [['hot', 'trades', part(7), 'cold_lacks_rows'], ['hot', 'funding_rates', part(5), 'not_replicated']],
    });
    expect(await partitions(hot, h, 'trades')).toEqual(before);

    const real = await runRepair(infra.config, { dryRun: false, sinceMs: HOUR });
    expect(real.retention!.copied).toEqual([{ table: 'trades', partition: part(7), rows: 1 }]);
    expect(summary(real.retention!).dropped).toEqual([['hot', 'trades', part(9), true], ['hot', 'trades', part(7), true]]);
    expect(real.errors).toEqual([]);
    expect(await partitions(hot, h, 'trades')).toEqual([part(1)]);
    expect(await tradeIds(cold, c, 7)).toEqual([...tradesOfDay(7, 4).map((t) => t.tradeId), 'd7-backfilled'].sort());
  });

  it('reads partition extents from the rows whatever the partitioning (a monthly table made elsewhere)', async () => {
    const spec = tableFor('trade');
    const monthly = renderCreateTable(spec, 'legacy', await detectDialect(hot)).replace(/toYYYYMMDD\(/, 'toYYYYMM(');
    expect(monthly).toContain('PARTITION BY toYYYYMM(');
    await hot.command({ query: 'CREATE DATABASE IF NOT EXISTS legacy' });
    await hot.command({ query: monthly });
    const jan = [tradeAt(Date.UTC(2024, 0, 3), 'a'), tradeAt(Date.UTC(2024, 0, 30, 12), 'b')];
    const feb = [tradeAt(Date.UTC(2024, 1, 1), 'c')];
    await insertRecords(hot, 'legacy', [...jan, ...feb], { skipExisting: false });
    const extents = await partitionExtents(hot, 'legacy', spec, { olderThan: Date.UTC(2024, 1, 1) });
    // Both months are read (the ids name no day); the plan decides by each one's newest row.
    expect(extents.map((e) => [e.partitionId, e.minTime, e.maxTime, e.rows])).toEqual([
      ['202401', jan[0]!.eventTime, jan[1]!.eventTime, 2],
      ['202402', feb[0]!.eventTime, feb[0]!.eventTime, 1],
    ]);
    // Day partitions are taken by their id: day 1 ends after the bound and is left out.
    await insertRecords(hot, h, tradesOfDay(6, 2), { skipExisting: false });
    expect((await partitionExtents(hot, h, spec, { olderThan: dayAgo(2) })).map((e) => e.partitionId)).toEqual([part(6)]);
  });

  it('leaves every partition to its next run while a backfill holds the lock (it may be writing into them)', async () => {
    const hotBefore = await partitions(hot, h, 'trades');
    const outcome = await withBackfillLock(unconnected.pool, () => createRetentionAction(deps())(context(infra.config, {})));
    expect(outcome.problems).toEqual([]);
    expect(outcome.result).toMatchObject({ note: 'a backfill is writing history; partitions are left to the next run' });
    expect(await partitions(hot, h, 'trades')).toEqual(hotBefore);
  });

  it('refuses bad params, naming the field', async () => {
    await expect(run({ dryRun: 'yes' })).rejects.toThrow('params.dryRun: must be true or false, got "yes"');
  });
});

describe('JetStream max age', () => {
  it('is set from retention.jetstreamMaxAgeHours at creation and updated in place on existing streams, keeping their messages', async () => {
    const nc = await connectNats(infra.config, 'retention-test');
    try {
      const jsm = await nc.jetstreamManager();
      expect(await ensureStreams(jsm, infra.config)).toMatchObject({ created: [MARKET_DATA_STREAM, ORDERBOOK_STREAM] });
      expect((await jsm.streams.info(MARKET_DATA_STREAM)).config.max_age).toBe(nanos(72 * HOUR));
      expect((await jsm.streams.info(ORDERBOOK_STREAM)).config.max_age).toBe(nanos(24 * HOUR));
      await nc.jetstream().publish('trade.binance_spot.spot.BTC-USDT', new TextEncoder().encode('{}'));

      const shorter: Config = { ...infra.config, retention: { ...infra.config.retention, jetstreamMaxAgeHours: 6 } };
      expect(await ensureStreams(jsm, shorter)).toEqual({ created: [], updated: [MARKET_DATA_STREAM, ORDERBOOK_STREAM], unchanged: [] });
      const info = await jsm.streams.info(MARKET_DATA_STREAM);
      expect(info.config.max_age).toBe(nanos(6 * HOUR));
      expect(info.state.messages).toBe(1);
      expect((await jsm.streams.info(ORDERBOOK_STREAM)).config.max_age).toBe(nanos(6 * HOUR));
      expect(await ensureStreams(jsm, shorter)).toEqual({ created: [], updated: [], unchanged: [MARKET_DATA_STREAM, ORDERBOOK_STREAM] });

      // Shorter than the 120 s duplicate window: the server would refuse it, so the window shrinks to the age.
      const tiny: Config = { ...infra.config, retention: { ...infra.config.retention, jetstreamMaxAgeHours: 0.01 } };
      expect(await ensureStreams(jsm, tiny)).toMatchObject({ updated: [MARKET_DATA_STREAM, ORDERBOOK_STREAM] });
      const tinyInfo = await jsm.streams.info(MARKET_DATA_STREAM);
      expect([tinyInfo.config.max_age, tinyInfo.config.duplicate_window]).toEqual([nanos(36_000), nanos(36_000)]);
    } finally {
      await nc.close();
    }
  });
});
