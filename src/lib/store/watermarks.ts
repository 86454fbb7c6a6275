import { clickHouseErrorCode, selectRows, type ClickHouseClient } from './client.js';
import { ident, qualified, str, uint } from './sql.js';
import { engineName, zookeeperPath, type TableEngine } from './tables.js';

/**
 * Replication watermarks live in cold ClickHouse, next to the data they describe: every replication
 * daemon on every host reads the same ones, and a cold server that is replaced or wiped takes its
 * watermarks with it (replication then copies again what cold lacks, instead of trusting a local
 * file that says it is there).
 *
 * One row per write, never updated: (table, watermark, fence of the lease it was written under). A
 * table's watermark is the max over its rows and its fence the max fence: both only grow, whoever
 * writes in whatever order. The engine folds the rows of one (table, fence) into the one with the
 * largest watermark, so the table keeps about one row per lease term.
 */
export const WATERMARKS_TABLE = 'replication_watermarks';

/** ClickHouse's UNKNOWN_TABLE. */
const UNKNOWN_TABLE = 60;

/**
 * On a replicated cold the watermarks are replicated like the data, so integrity reading another
 * replica (the first one down) still finds them.
 */
export function createWatermarksTableSql(database: string, engine: TableEngine = 'single'): string {
  const name = engineName(engine);
  const params = engine === 'replicated' ? `${str(zookeeperPath(database, WATERMARKS_TABLE))}, ${str('{replica}')}, watermark_ms` : 'watermark_ms';
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified(database, WATERMARKS_TABLE)}`,
    '(',
    '    table_name String,',
    '    watermark_ms UInt64,',
    '    fence UInt64,',
    '    holder String,',
    '    written_at DateTime DEFAULT now()',
    ')',
    `ENGINE = ${name}(${params})`,
    'ORDER BY (table_name, fence)',
  ].join('\n');
}

export async function ensureWatermarksTable(client: ClickHouseClient, database: string, engine: TableEngine = 'single'): Promise<void> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${ident(database)}` });
  await client.command({ query: createWatermarksTableSql(database, engine) });
}

export interface StoredWatermark {
  /** Epoch ms: every window ending at or before it is in cold and was verified. */
  watermark: number;
  /** The newest lease fence a watermark of this table was written under (0: migrated, no lease). */
  fence: number;
}

/** Each table's watermark and fence; empty when replication has not begun (no table yet). */
export async function readStoredWatermarks(client: ClickHouseClient, database: string, table?: string): Promise<Map<string, StoredWatermark>> {
  let rows: { t: string; w: string; f: string }[];
  try {
    rows = await selectRows(
      client,
      `SELECT table_name AS t, max(watermark_ms) AS w, max(fence) AS f FROM ${qualified(database, WATERMARKS_TABLE)}` +
        (table === undefined ? '' : ` WHERE table_name = ${str(table)}`) +
        ' GROUP BY table_name',
    );
  } catch (err) {
    if (clickHouseErrorCode(err) === UNKNOWN_TABLE) return new Map();
    throw err;
  }
  return new Map(rows.map((r) => [r.t, { watermark: Number(r.w), fence: Number(r.f) }]));
}

export async function insertWatermark(
  client: ClickHouseClient,
  database: string,
  row: { table: string; watermark: number; fence: number; holder: string },
): Promise<void> {
  await client.command({
    query:
      `INSERT INTO ${qualified(database, WATERMARKS_TABLE)} (table_name, watermark_ms, fence, holder) VALUES ` +
      `(${str(row.table)}, ${uint(row.watermark)}, ${uint(row.fence)}, ${str(row.holder)})`,
  });
}

/**
 * A condition for a copy statement that runs on the cold server: true only while no watermark of
 * `table` was written under a fence newer than `fence`. GLOBAL: it is evaluated on cold when the
 * statement starts, and travels to the hot server (where the copy's WHERE runs) as a set.
 */
export function fenceCondition(database: string, table: string, fence: number): string {
  return `1 GLOBAL IN (SELECT toUInt8(max(fence) <= ${uint(fence)}) FROM ${qualified(database, WATERMARKS_TABLE)} WHERE table_name = ${str(table)})`;
}

/** How many statements whose query id starts with `prefix` run on the server now. */
export async function runningQueries(client: ClickHouseClient, prefix: string): Promise<number> {
  const [row] = await selectRows<{ n: string }>(client, `SELECT count() AS n FROM system.processes WHERE substring(query_id, 1, ${uint(Buffer.byteLength(prefix))}) = ${str(prefix)}`);
  return Number(row?.n ?? 0);
}
