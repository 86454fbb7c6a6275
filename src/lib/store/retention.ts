import type { ClickHouseServerConfig } from '../config/schema.js';
import { MprismError } from '../errors.js';
import { selectRows, type ClickHouseClient } from './client.js';
import { rangeCondition, type TimeRange } from './queries.js';
import { ident, qualified, str, uint } from './sql.js';
import type { TableSpec } from './tables.js';

/** One partition of a table as it stands: its id and the time range its rows actually cover. */
export interface PartitionExtent {
  table: string;
  /** system.parts.partition_id: what DROP PARTITION ID takes. */
  partitionId: string;
  /** Epoch ms of the oldest and newest row (time column); inclusive. */
  minTime: number;
  maxTime: number;
  /** Rows in the partition, unmerged duplicates included. */
  rows: number;
}

/** A part a concurrent merge removed between reading the data and system.parts: read again. */
class PartVanished extends MprismError {}

const DAY_MS = 86_400_000;

/**
 * The UTC day [start, end) a partition id names when the table is partitioned by day (yyyymmdd, as
 * every table mprism creates is); null for any other partitioning.
 */
export function dayOfPartition(partitionId: string): { start: number; end: number } | null {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(partitionId);
  if (m === null) return null;
  const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const d = new Date(start);
  if (d.getUTCFullYear() !== Number(m[1]) || d.getUTCMonth() + 1 !== Number(m[2]) || d.getUTCDate() !== Number(m[3])) return null;
  return { start, end: start + DAY_MS };
}

/**
 * The partitions of a table whose rows may all be older than `olderThan`, with the time range their
 * rows actually cover. The range is read from the rows (min/max of the time column per part, joined to
 * system.parts by part name), so it is exact whatever the table is partitioned by. A day partition
 * ending after `olderThan` is skipped unread, and the rows read are bounded by the newest candidate
 * day: retention reads only the old data it may drop, not the whole table.
 */
export async function partitionExtents(client: ClickHouseClient, database: string, spec: TableSpec, opts: { olderThan: number }): Promise<PartitionExtent[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await readExtents(client, database, spec, opts.olderThan);
    } catch (err) {
      if (!(err instanceof PartVanished) || attempt >= 2) throw err;
    }
  }
}

async function readExtents(client: ClickHouseClient, database: string, spec: TableSpec, olderThan: number): Promise<PartitionExtent[]> {
  // Inactive parts too: a part merged away after the scan keeps its name and partition there for a while.
  const parts = await selectRows<{ name: string; partition_id: string; active: number }>(
    client,
    `SELECT name, partition_id, active FROM system.parts WHERE database = ${str(database)} AND table = ${str(spec.table)}`,
  );
  const candidates = new Set(
    parts.filter((p) => Number(p.active) === 1 && !((dayOfPartition(p.partition_id)?.end ?? -Infinity) > olderThan)).map((p) => p.partition_id),
  );
  if (candidates.size === 0) return [];
  const days = [...candidates].map(dayOfPartition);
  const bound = days.every((d) => d !== null) ? Math.max(...days.map((d) => d!.end)) : null;
  const t = ident(spec.timeColumn);
  const perPart = await selectRows<{ part: string; min_time: string; max_time: string; rows: string }>(
    client,
    [
      `SELECT _part AS part, min(${t}) AS min_time, max(${t}) AS max_time, count() AS rows FROM ${qualified(database, spec.table)}`,
      // A day partition holds only its day's rows, so the bound cuts none of a candidate's.
      bound === null ? '' : `WHERE ${t} < ${uint(bound)}`,
      'GROUP BY part',
    ].join('\n'),
  );
  const partitionOfPart = new Map(parts.map((p) => [p.name, p.partition_id]));
  const byPartition = new Map<string, PartitionExtent>();
  for (const p of perPart) {
    const partitionId = partitionOfPart.get(p.part);
    if (partitionId === undefined) throw new PartVanished(`part ${p.part} of ${spec.table} vanished while reading partitions`);
    if (!candidates.has(partitionId)) continue;
    const e = byPartition.get(partitionId);
    const minTime = Number(p.min_time);
    const maxTime = Number(p.max_time);
    if (e === undefined) byPartition.set(partitionId, { table: spec.table, partitionId, minTime, maxTime, rows: Number(p.rows) });
    else Object.assign(e, { minTime: Math.min(e.minTime, minTime), maxTime: Math.max(e.maxTime, maxTime), rows: e.rows + Number(p.rows) });
  }
  return [...byPartition.values()].sort((a, b) => a.minTime - b.minTime);
}

/**
 * Drops one partition. On 18.16 the dropped parts linger on disk for `old_parts_lifetime` and come back
 * after a restart if the server stops before then (local servers set it to 1 s). Returns whether the
 * partition is gone from the active parts afterwards.
 */
export async function dropPartition(client: ClickHouseClient, database: string, table: string, partitionId: string): Promise<boolean> {
  await client.command({ query: `ALTER TABLE ${qualified(database, table)} DROP PARTITION ID ${str(partitionId)}` });
  const [left] = await selectRows<{ n: string }>(
    client,
    `SELECT count() AS n FROM system.parts WHERE database = ${str(database)} AND table = ${str(table)} AND partition_id = ${str(partitionId)} AND active`,
  );
  return Number(left?.n ?? 0) === 0;
}

/**
 * Keys of `source`'s table in the range that `target` lacks, counted on the target server, which reads
 * the source over remote() (as replication's copy does, see copySql). The key set of the target range is
 * held in memory: callers pass ranges of bounded size.
 */
export async function keysMissingIn(
  target: { client: ClickHouseClient; server: ClickHouseServerConfig },
  source: { server: ClickHouseServerConfig; address: string },
  spec: TableSpec,
  range: TimeRange,
): Promise<number> {
  const key = spec.key.map(ident).join(', ');
  const remote = `remote(${[str(source.address), ident(source.server.database), ident(spec.table), str(source.server.user), str(source.server.password)].join(', ')})`;
  const [row] = await selectRows<{ n: string }>(
    target.client,
    [
      `SELECT uniqExact(${key}) AS n FROM ${remote}`,
      `WHERE ${rangeCondition(spec, range)}`,
      `AND (${key}) GLOBAL NOT IN (SELECT ${key} FROM ${qualified(target.server.database, spec.table)} WHERE ${rangeCondition(spec, range)})`,
    ].join('\n'),
  );
  return Number(row?.n ?? 0);
}
