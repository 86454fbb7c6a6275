import type { ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureWatermarksTable, insertWatermark, readStoredWatermarks, WATERMARKS_TABLE } from '../../src/lib/store/watermarks.js';

/** The table's shared replication watermark in cold, as the replication daemons read it. */
export async function watermarkOf(cold: ClickHouseClient, database: string, table: string): Promise<number | null> {
  const w = (await readStoredWatermarks(cold, database, table)).get(table)?.watermark;
  return w === undefined || w === 0 ? null : w;
}

/**
 * Sets the table's watermark to `watermark`, also backwards, which replication itself never does (a
 * table's watermark is the max written): the test rewrites the watermarks table. Fences are kept, so
 * the lease fences stay above the recorded ones.
 */
export async function setWatermark(cold: ClickHouseClient, database: string, table: string, watermark: number): Promise<void> {
  const stored = await readStoredWatermarks(cold, database);
  await cold.command({ query: `DROP TABLE IF EXISTS ${database}.${WATERMARKS_TABLE}` });
  await ensureWatermarksTable(cold, database);
  for (const [t, w] of stored) if (t !== table) await insertWatermark(cold, database, { table: t, watermark: w.watermark, fence: w.fence, holder: 'test' });
  await insertWatermark(cold, database, { table, watermark, fence: stored.get(table)?.fence ?? 0, holder: 'test' });
}
