import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TradeRecord } from '../../src/lib/records.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema, TABLES, tableFor } from '../../src/lib/store/tables.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { oneOfEachKind, tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

let infra: TestInfra;
let hot: ClickHouseClient;
let db: string;

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['clickhouse-hot'] });
  hot = createClickHouse(infra.config.clickhouse.hot);
  db = infra.config.clickhouse.hot.database;
});

afterAll(async () => {
  await hot?.close();
  await infra?.stop();
});

function trade(i: number, overrides: Partial<TradeRecord> = {}): TradeRecord {
  const t = 1_704_067_200_000 + i * 10;
  return tradeAt(t, String(1000 + i), { receiveTime: t + 5, price: '42000.123456789012345678', quantity: '0.0001', side: i % 2 === 0 ? 'buy' : 'sell', ...overrides });
}

const countTrades = async () => Number((await selectRows<{ n: string }>(hot, `SELECT count() AS n FROM ${db}.trades`))[0]?.n);

describe('ClickHouse store on 18.16', () => {
  it('detects the legacy dialect and creates every table once', async () => {
    const dialect = await detectDialect(hot);
    expect(dialect).toMatchObject({ major: 18, minor: 16, legacy: true });
    const first = await ensureSchema(hot, db, dialect);
    expect(first.created.sort()).toEqual(TABLES.map((t) => t.table).sort());
    expect(first.existing).toEqual([]);
    const second = await ensureSchema(hot, db, dialect);
    expect(second.created).toEqual([]);
    expect(second.existing.sort()).toEqual(TABLES.map((t) => t.table).sort());
  });

  it('stores trades with every decimal digit', async () => {
    const result = await insertRecords(hot, db, [trade(0), trade(1, { price: '1e-7', quantity: '123.0000000000000000005' })], { skipExisting: false });
    expect(result).toEqual({ inserted: 2, skipped: 0 });
    const rows = await selectRows<{ trade_id: string; p: string; q: string; event_time: string }>(
      hot,
      `SELECT trade_id, toString(price) AS p, toString(quantity) AS q, event_time FROM ${db}.trades ORDER BY trade_id`,
    );
    expect(rows).toEqual([
      { trade_id: '1000', p: '42000.123456789012345678', q: '0.000100000000000000', event_time: '1704067200000' },
      { trade_id: '1001', p: '0.000000100000000000', q: '123.000000000000000001', event_time: '1704067200010' },
    ]);
  });

  it('with skipExisting never duplicates a re-delivered batch, and inserts only the new records of a mixed one', async () => {
    const batch = Array.from({ length: 1200 }, (_, i) => trade(100 + i));
    expect(await insertRecords(hot, db, batch, { skipExisting: true })).toEqual({ inserted: 1200, skipped: 0 });
    // A crash between insert and ack: the same messages come again, some new ones with them.
    const redelivered = [...batch, ...batch.slice(0, 10), trade(5000), trade(5001)];
    expect(await insertRecords(hot, db, redelivered, { skipExisting: true })).toEqual({ inserted: 2, skipped: 1210 });
    expect(await insertRecords(hot, db, batch.slice(0, 700), { skipExisting: true })).toEqual({ inserted: 0, skipped: 700 });
    expect(await countTrades()).toBe(2 + 1200 + 2);
    const [dup] = await selectRows<{ n: string; u: string }>(hot, `SELECT count() AS n, uniqExact(venue, symbol, trade_id) AS u FROM ${db}.trades`);
    expect(dup?.n).toBe(dup?.u);
  });

  it("checks keys by time range: rows stored between a batch's times are not taken for its own, and sparse batches take several queries", async () => {
    const at = (ms: number, id: string, symbol = 'XRP-USDT') => tradeAt(1_706_000_000_000 + ms, id, { symbol, instrument: symbol.replace('-', '') });
    // Stored: a row at every odd millisecond of 0..40, and one at the batch's own times under another symbol.
    const neighbours = [...Array.from({ length: 20 }, (_, i) => at(2 * i + 1, `n${i}`)), at(0, 'a0', 'ADA-USDT'), at(2, 'a1', 'ADA-USDT')];
    expect(await insertRecords(hot, db, neighbours, { skipExisting: true })).toEqual({ inserted: 22, skipped: 0 });
    const dense = Array.from({ length: 20 }, (_, i) => at(2 * i, `d${i}`));
    expect(await insertRecords(hot, db, dense, { skipExisting: true })).toEqual({ inserted: 20, skipped: 0 });
    // 450 times a second apart: one range each, more than one query's worth.
    const sparse = Array.from({ length: 450 }, (_, i) => at(60_000 + i * 1000, `s${i}`));
    expect(await insertRecords(hot, db, sparse, { skipExisting: true })).toEqual({ inserted: 450, skipped: 0 });
    // A re-delivery of rows of two streams, and a new row of a third that shares a time and an id with a stored one.
    const again = [...sparse, ...dense, ...neighbours.slice(-2), at(60_500, 'new'), at(0, 'a0', 'BNB-USDT')];
    expect(await insertRecords(hot, db, again, { skipExisting: true })).toEqual({ inserted: 2, skipped: 472 });
    const [dup] = await selectRows<{ n: string; u: string }>(hot, `SELECT count() AS n, uniqExact(venue, symbol, trade_id) AS u FROM ${db}.trades WHERE symbol IN ('XRP-USDT', 'ADA-USDT', 'BNB-USDT')`);
    expect(dup).toEqual({ n: String(22 + 20 + 450 + 2), u: String(22 + 20 + 450 + 2) });
  });

  it('stores strings exactly, whatever characters they hold (TabSeparated escapes)', async () => {
    const odd = 'A\tB\nC\\D\rE\0F\bG\fH "I\' J';
    const records = [trade(20_000, { tradeId: odd }), trade(20_001, { tradeId: `${odd}2`, symbol: odd })];
    expect(await insertRecords(hot, db, records, { skipExisting: true })).toEqual({ inserted: 2, skipped: 0 });
    const rows = await selectRows<{ trade_id: string; symbol: string }>(hot, `SELECT trade_id, symbol FROM ${db}.trades WHERE trade_id LIKE 'A%' ORDER BY trade_id`);
    expect(rows).toEqual([
      { trade_id: odd, symbol: 'BTC-USDT' },
      { trade_id: `${odd}2`, symbol: odd },
    ]);
    // Their keys read back match: a re-delivery is skipped, not stored twice.
    expect(await insertRecords(hot, db, records, { skipExisting: true })).toEqual({ inserted: 0, skipped: 2 });
  });

  it('rejects a malformed record before writing anything of the batch', async () => {
    const before = await countTrades();
    await expect(insertRecords(hot, db, [trade(9000), trade(9001, { price: 'abc' })], { skipExisting: false })).rejects.toThrow(/not a decimal/);
    expect(await countTrades()).toBe(before);
  });

  it('treats the same trade id on another symbol as a different row', async () => {
    const r = await insertRecords(hot, db, [trade(100, { symbol: 'ETH-USDT', instrument: 'ETHUSDT' })], { skipExisting: true });
    expect(r).toEqual({ inserted: 1, skipped: 0 });
  });

  it('stores one record of every kind in its table, null decimals and level arrays included', async () => {
    const t = 1_704_153_600_000;
    const records = oneOfEachKind(t);
    expect(new Set(records.map((r) => r.dataType)).size).toBe(TABLES.length);
    expect(await insertRecords(hot, db, records, { skipExisting: true })).toEqual({ inserted: TABLES.length, skipped: 0 });
    expect(await insertRecords(hot, db, records, { skipExisting: true })).toEqual({ inserted: 0, skipped: TABLES.length });
    for (const r of records) {
      const [row] = await selectRows<Record<string, unknown>>(hot, `SELECT * FROM ${db}.${tableFor(r.dataType).table} WHERE event_time = ${t}`);
      expect(row, r.dataType).toMatchObject({ venue: r.venue, symbol: r.symbol, event_time: String(t) });
    }
    const [book] = await selectRows<{ b: string[]; aq: string[]; bb: string }>(
      hot,
      `SELECT arrayMap(x -> toString(x), bid_prices) AS b, arrayMap(x -> toString(x), ask_quantities) AS aq, toString(best_bid_price) AS bb FROM ${db}.orderbooks WHERE event_time = ${t}`,
    );
    expect(book).toEqual({ b: ['42000.100000000000000000', '42000.000000000000000000'], aq: ['3.000000000000000000', '2.250000000000000000'], bb: '42000.100000000000000000' });
    const [lsr] = await selectRows<{ l: string | null }>(hot, `SELECT long_account_pct AS l FROM ${db}.lsr_all_accounts WHERE event_time = ${t}`);
    expect(lsr?.l).toBeNull();
  });

  it('migrates a table created before a column became Nullable, keeping its rows', async () => {
    const dialect = await detectDialect(hot);
    const legacyDb = `${db}_legacy`;
    await hot.command({ query: `CREATE DATABASE IF NOT EXISTS ${legacyDb}` });
    // The lsr_all_accounts table as the walking skeleton created it: shares not nullable.
    await hot.command({
      query: `CREATE TABLE ${legacyDb}.lsr_all_accounts (venue String, market_type String, symbol String, instrument String, event_time UInt64, receive_time UInt64, period String, long_short_ratio Decimal(38, 18), long_account_pct Decimal(38, 18), short_account_pct Decimal(38, 18)) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(event_time, 1000), 'UTC')) ORDER BY (event_time, venue, symbol, period)`,
    });
    await hot.command({ query: `INSERT INTO ${legacyDb}.lsr_all_accounts VALUES ('binance_derivatives', 'perpetual', 'BTC-USDT', 'BTCUSDT', 1, 2, '5m', 1.5, 0.6, 0.4)` });
    const r = await ensureSchema(hot, legacyDb, dialect);
    expect(r.migrated).toEqual(['lsr_all_accounts']);
    expect((await ensureSchema(hot, legacyDb, dialect)).migrated).toEqual([]);
    const [row] = await selectRows<{ n: string; t: string }>(hot, `SELECT count() AS n, any(toTypeName(long_account_pct)) AS t FROM ${legacyDb}.lsr_all_accounts`);
    expect(row).toEqual({ n: '1', t: 'Nullable(Decimal(38, 18))' });
  });
});
