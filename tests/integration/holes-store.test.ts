import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamHoleRecord } from '../../src/lib/records.js';
import { createClickHouse, detectDialect, type ClickHouseClient } from '../../src/lib/store/client.js';
import { holeStateRecord, listHoles, newestPerInstrument, recordHoleStates, tradeIdGaps, tradeIdSpans, tradeIdsAround } from '../../src/lib/store/holes.js';
import { ensureSchema } from '../../src/lib/store/tables.js';
import { insertRecords, missingRecords } from '../../src/lib/store/writer.js';
import { findUnrecordedGaps } from '../../src/lib/checks/continuity.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;
let hot: ClickHouseClient;
let db: string;

const T0 = 1_704_067_200_000;

function hole(overrides: Partial<StreamHoleRecord> = {}): StreamHoleRecord {
  return {
    dataType: 'stream_hole',
    venue: 'binance_spot',
    marketType: 'spot',
    symbol: 'BTC-USDT',
    instrument: 'BTCUSDT',
    eventTime: T0 + 10_000,
    receiveTime: T0 + 10_000,
    holeDataType: 'trade',
    holeId: 'binance_spot/trade/BTCUSDT/1704067200500/106',
    fromTime: T0 + 500,
    toTime: T0 + 900,
    firstMissingId: '106',
    lastMissingId: '108',
    missingCount: 3,
    cause: 'collector_down',
    state: 'open',
    detail: 'collector was not running',
    ...overrides,
  };
}

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['clickhouse-hot'] });
  hot = createClickHouse(infra.config.clickhouse.hot);
  db = infra.config.clickhouse.hot.database;
  await ensureSchema(hot, db, await detectDialect(hot));
  // Trades 100..120, with 106..108 missing.
  const trades = Array.from({ length: 21 }, (_, i) => 100 + i)
    .filter((id) => id < 106 || id > 108)
    .map((id) => tradeAt(T0 + (id - 100) * 100, String(id)));
  await insertRecords(hot, db, trades, { skipExisting: false });
}, 120_000);

afterAll(async () => {
  await hot?.close();
  await infra?.stop();
});

describe('hole rows and the trade-id scans on ClickHouse 18.16', () => {
  it('a hole is listed with its newest state; a state recorded twice is stored once', async () => {
    await recordHoleStates(hot, db, [hole()]);
    const [open] = await listHoles(hot, db, { changedSince: T0 + 20_000 });
    expect(open).toMatchObject({ holeId: hole().holeId, state: 'open', firstMissingId: '106', lastMissingId: '108', missingCount: 3, cause: 'collector_down', dataType: 'trade', recordedAt: T0 + 10_000 });

    const repaired = holeStateRecord(open!, 'repaired', 'refilled 3 trades', T0 + 20_000);
    await recordHoleStates(hot, db, [repaired]);
    await recordHoleStates(hot, db, [repaired]);
    // Repaired holes drop out of the list once their change is older than asked for; open ones never do.
    expect(await listHoles(hot, db, { changedSince: T0 + 30_000 })).toEqual([]);
    const [now] = await listHoles(hot, db, { changedSince: T0 });
    expect(now).toMatchObject({ state: 'repaired', detail: 'refilled 3 trades', updatedAt: T0 + 20_000 });
  });

  it('a later state wins a tie in time, and unknown ids and counts come back as null', async () => {
    const h = hole({ holeId: 'okx_spot/trade/BTC-USDT/1', venue: 'okx_spot', instrument: 'BTC-USDT', firstMissingId: null, lastMissingId: null, missingCount: null });
    await recordHoleStates(hot, db, [h, { ...h, state: 'unrepairable', detail: 'no history' }]);
    const listed = (await listHoles(hot, db, { changedSince: T0 })).find((x) => x.holeId === h.holeId);
    expect(listed).toMatchObject({ state: 'unrepairable', detail: 'no history', firstMissingId: null, lastMissingId: null, missingCount: null });
  });

  it('finds where contiguous trade ids jump, with the times around the gap', async () => {
    const range = { start: T0, end: T0 + 60_000 };
    expect(await tradeIdSpans(hot, db, 'binance_spot', range, 60_000)).toEqual([
      { venue: 'binance_spot', marketType: 'spot', symbol: 'BTC-USDT', instrument: 'BTCUSDT', start: T0, end: T0 + 60_000, minId: '100', maxId: '120', distinctIds: 18, minTime: T0, maxTime: T0 + 2000 },
    ]);
    // Buckets of 1 s: the gap falls between the two buckets, which each look whole.
    const buckets = await tradeIdSpans(hot, db, 'binance_spot', range, 1000);
    expect(buckets.map((b) => [b.start, b.minId, b.maxId, b.distinctIds])).toEqual([
      [T0, '100', '109', 7],
      [T0 + 1000, '110', '119', 10],
      [T0 + 2000, '120', '120', 1],
    ]);
    expect(await tradeIdGaps(hot, db, { venue: 'binance_spot', instrument: 'BTCUSDT' }, range)).toEqual([
      { firstMissingId: '106', lastMissingId: '108', missing: 3, fromTime: T0 + 500, toTime: T0 + 900 },
    ]);
  });

  it('integrity finds id gaps inside a scan bucket and between two, and leaves out those a hole explains', async () => {
    // ETHUSDT: 500..502 just before a 10-minute boundary, 510..511 just after it.
    const boundary = T0 + 600_000;
    await insertRecords(hot, db, [500, 501, 502].map((id) => tradeAt(boundary - 1000 + id - 500, String(id), { symbol: 'ETH-USDT', instrument: 'ETHUSDT' })), { skipExisting: false });
    await insertRecords(hot, db, [510, 511].map((id) => tradeAt(boundary + 1000 + id - 510, String(id), { symbol: 'ETH-USDT', instrument: 'ETHUSDT' })), { skipExisting: false });
    const range = { start: T0, end: T0 + 1_200_000 };
    const found = await findUnrecordedGaps(infra.config, hot, [], range);
    expect(found.map((f) => [f.span.instrument, f.gap.firstMissingId, f.gap.lastMissingId, f.gap.missing])).toEqual([
      ['BTCUSDT', '106', '108', 3],
      ['ETHUSDT', '503', '509', 7],
    ]);
    // An open hole with these ids is reported as the hole, not again as a gap.
    const holes = await listHoles(hot, db, { changedSince: 0 });
    const open = { ...holes[0]!, instrument: 'ETHUSDT', state: 'open' as const, firstMissingId: '503', lastMissingId: '509' };
    expect((await findUnrecordedGaps(infra.config, hot, [open], range)).map((f) => f.span.instrument)).toEqual(['BTCUSDT']);
  });

  it('tells the trade ids stored around a time range, or null where there are none', async () => {
    expect(await tradeIdsAround(hot, db, { venue: 'binance_spot', instrument: 'BTCUSDT' }, T0 + 550, T0 + 850)).toEqual({ before: '105', after: '109' });
    expect(await tradeIdsAround(hot, db, { venue: 'binance_spot', instrument: 'SOLUSDT' }, T0 + 550, T0 + 850)).toEqual({ before: null, after: null });
  });

  it('missingRecords returns exactly the records whose rows are not stored', async () => {
    const stored = tradeAt(T0 + 500, '105');
    const absent = tradeAt(T0 + 600, '106');
    expect(await missingRecords(hot, db, [stored, absent])).toEqual([absent]);
  });

  it('newest event time per instrument', async () => {
    const newest = await newestPerInstrument(hot, db, 'trade', T0);
    expect(newest.find((n) => n.instrument === 'BTCUSDT')).toEqual({ venue: 'binance_spot', instrument: 'BTCUSDT', newest: T0 + 2000 });
  });
});
