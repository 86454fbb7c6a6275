import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyWindow } from '../../src/lib/replication/copy.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema, tableFor } from '../../src/lib/store/tables.js';
import { ensureWatermarksTable, insertWatermark, readStoredWatermarks } from '../../src/lib/store/watermarks.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

const MINUTE = 60_000;
const trades = tableFor('trade');
let infra: TestInfra;
let hot: ClickHouseClient;
let cold: ClickHouseClient;

beforeAll(async () => {
  infra = await startTestInfra({ servers: ['clickhouse-hot', 'clickhouse-cold'] });
  hot = createClickHouse(infra.config.clickhouse.hot);
  cold = createClickHouse(infra.config.clickhouse.cold);
  await ensureSchema(hot, infra.config.clickhouse.hot.database, await detectDialect(hot));
  await ensureSchema(cold, infra.config.clickhouse.cold.database, await detectDialect(cold));
  await ensureWatermarksTable(cold, infra.config.clickhouse.cold.database);
});

afterAll(async () => {
  await hot?.close();
  await cold?.close();
  await infra?.stop();
});

describe('fenced copies on 18.16', () => {
  it('a copy under an older fence than the recorded one inserts nothing; under the newest it copies', async () => {
    const db = infra.config.clickhouse.cold.database;
    const w = { start: 3_000 * MINUTE, end: 3_001 * MINUTE };
    await insertRecords(hot, infra.config.clickhouse.hot.database, [tradeAt(w.start + 1, 'f1'), tradeAt(w.start + 2, 'f2')], { skipExisting: false });
    // No watermark row yet: any fence may copy.
    expect((await readStoredWatermarks(cold, db)).size).toBe(0);
    await insertWatermark(cold, db, { table: 'trades', watermark: w.start, fence: 5, holder: 'b' });
    const stale = await copyWindow(hot, cold, infra.config, trades, w, 4);
    expect(stale).toMatchObject({ hotCount: 2, coldCount: 0, copied: 0, verified: false });
    const current = await copyWindow(hot, cold, infra.config, trades, w, 5);
    expect(current).toEqual({ hotCount: 2, coldCount: 2, copied: 2, verified: true });
    const [r] = await selectRows<{ n: string }>(cold, `SELECT count() AS n FROM ${db}.trades`);
    expect(Number(r!.n)).toBe(2);
    expect(await readStoredWatermarks(cold, db)).toEqual(new Map([['trades', { watermark: w.start, fence: 5 }]]));
  });
});
