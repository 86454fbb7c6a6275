import type { ClickHouseClient } from './client.js';
import { selectRows } from './client.js';
import { ident, qualified, uint } from './sql.js';
import type { TableSpec } from './tables.js';

/** Epoch ms range [start, end) on the table's time column. */
export interface TimeRange {
  start: number;
  end: number;
}

export function rangeCondition(spec: TableSpec, r: TimeRange): string {
  const t = ident(spec.timeColumn);
  return `${t} >= ${uint(r.start)} AND ${t} < ${uint(r.end)}`;
}

/** uniqExact over the key columns: rows counted once however many unmerged copies exist. */
export function distinctKeyExpression(spec: TableSpec): string {
  return `uniqExact(${spec.key.map(ident).join(', ')})`;
}

export async function countRange(
  client: ClickHouseClient,
  database: string,
  spec: TableSpec,
  r: TimeRange,
): Promise<{ rows: number; distinct: number }> {
  const [row] = await selectRows<{ rows: string; distinct: string }>(
    client,
    `SELECT count() AS rows, ${distinctKeyExpression(spec)} AS distinct FROM ${qualified(database, spec.table)} WHERE ${rangeCondition(spec, r)}`,
  );
  return { rows: Number(row?.rows ?? 0), distinct: Number(row?.distinct ?? 0) };
}

export interface BucketCount {
  /** Bucket start, epoch ms. */
  start: number;
  rows: number;
  distinct: number;
  maxTime: number;
  /** Rows received at or after `receivedSince`, when asked (else 0). */
  recent: number;
}

/**
 * Row and distinct-key counts per bucket of bucketMs within the range. The bucket is integer division
 * on epoch ms, which behaves the same on 18.16 (no toStartOfInterval) and on current servers.
 */
export async function countBuckets(
  client: ClickHouseClient,
  database: string,
  spec: TableSpec,
  r: TimeRange,
  bucketMs: number,
  receivedSince: number | null = null,
): Promise<BucketCount[]> {
  const t = ident(spec.timeColumn);
  const recent = receivedSince === null ? '0' : `countIf(receive_time >= ${uint(receivedSince)})`;
  const rows = await selectRows<{ bucket: string; rows: string; distinct: string; max_time: string; recent: string }>(
    client,
    [
      `SELECT intDiv(${t}, ${uint(bucketMs)}) * ${uint(bucketMs)} AS bucket, count() AS rows,`,
      `${distinctKeyExpression(spec)} AS distinct, max(${t}) AS max_time, ${recent} AS recent`,
      `FROM ${qualified(database, spec.table)} WHERE ${rangeCondition(spec, r)}`,
      'GROUP BY bucket ORDER BY bucket',
    ].join('\n'),
  );
  return rows.map((row) => ({
    start: Number(row.bucket),
    rows: Number(row.rows),
    distinct: Number(row.distinct),
    maxTime: Number(row.max_time),
    recent: Number(row.recent),
  }));
}

/** Smallest event time in the table, or null when it is empty. */
export async function earliestTime(client: ClickHouseClient, database: string, spec: TableSpec): Promise<number | null> {
  const [row] = await selectRows<{ rows: string; earliest: string }>(
    client,
    `SELECT count() AS rows, min(${ident(spec.timeColumn)}) AS earliest FROM ${qualified(database, spec.table)}`,
  );
  return row && Number(row.rows) > 0 ? Number(row.earliest) : null;
}
