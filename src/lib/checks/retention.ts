import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { withColdWriteLock } from '../replication/cold-writers.js';
import { copyWindow, remoteAddress } from '../replication/copy.js';
import { readWatermarks } from '../replication/watermarks.js';
import { createClickHouse, ensureReachable, type ClickHouseClient } from '../store/client.js';
import { countBuckets } from '../store/queries.js';
import type { TimeRange } from '../store/queries.js';
import { dayOfPartition, dropPartition, keysMissingIn, partitionExtents, type PartitionExtent } from '../store/retention.js';
import { existingTables, TABLES, tableFor, type TableSpec } from '../store/tables.js';

/*
 * Retention (`retention` brain task, and the last step of `mprism repair`). Its result is a contract
 * (stored in job_runs, printed by `mprism repair --json` under "retention"); fields are only ever added.
 *
 * {
 *   "dryRun": false,
 *   "hotHorizon": "2024-05-01T12:00:00.000Z",   // now - hotDays: hot partitions wholly older may go
 *   "coldHorizon": null,                        // now - coldDays, null: cold keeps everything
 *   "dropped": [{ "server": "hot", "table": "trades", "partition": "20240427",
 *                 "from": "...", "to": "...", "rows": 7200, "done": true, "detail": "every key is in cold" }],
 *   "kept": [{ "server": "hot", "table": "trades", "partition": "20240428", "reason": "cold_lacks_rows",
 *              "detail": "cold lacks 12 of its keys: run 'mprism repair'" }],
 *   "copied": [{ "table": "trades", "partition": "20240428", "rows": 12 }],   // repair only
 *   "errors": ["trades: ..."]
 * }
 *
 * "kept" lists only partitions past their horizon that stay, and why. Young partitions are not listed.
 */

const DAY_MS = 86_400_000;

/**
 * Hot keeps stream_holes whatever its age: the holes are the completeness record integrity and
 * repair read (an open hole recorded a week ago must still fail integrity), and the table is tiny.
 */
export const HOT_RETENTION_EXEMPT: ReadonlySet<string> = new Set([tableFor('stream_hole').table]);

/**
 * The hot-vs-cold check reads one bounded span at a time: the cold key set of a span travels to hot
 * as a set (see keysMissingIn), like replication's copy.
 */
const VERIFY_SPAN_MS = 15 * 60_000;

export type KeepReason =
  /** Replication's watermark is not past the partition's newest row: some window in it is not verified. */
  | 'not_replicated'
  /** Some key of the hot partition is not in cold: dropping it would lose the only copy. */
  | 'cold_lacks_rows'
  /** The watermarks cannot be read: nothing is known to be verified. */
  | 'watermark_unreadable'
  /** Rows reached the partition between the plan and the drop (history backfill): checked again next run. */
  | 'changed_while_checked';

export interface PartitionDrop {
  server: 'hot' | 'cold';
  table: string;
  partition: string;
  from: string;
  to: string;
  rows: number;
  done: boolean;
  detail: string;
}

export interface KeptPartition {
  server: 'hot' | 'cold';
  table: string;
  partition: string;
  reason: KeepReason;
  detail: string;
}

export interface RetentionReport {
  dryRun: boolean;
  hotHorizon: string;
  coldHorizon: string | null;
  dropped: PartitionDrop[];
  kept: KeptPartition[];
  copied: { table: string; partition: string; rows: number }[];
  errors: string[];
}

export interface RetentionHorizons {
  /** Epoch ms: hot partitions whose newest row is older may be dropped. */
  hot: number;
  /** null: cold keeps everything. */
  cold: number | null;
}

export function retentionHorizons(now: number, retention: { hotDays: number; coldDays: number | null }): RetentionHorizons {
  return { hot: now - retention.hotDays * DAY_MS, cold: retention.coldDays === null ? null : now - retention.coldDays * DAY_MS };
}

/** What is known about one hot partition past the hot horizon. */
export interface ExpiredHotPartition {
  extent: PartitionExtent;
  /** The table's replication watermark; undefined: the watermarks could not be read. */
  watermark: number | null | undefined;
  /** Keys of the partition cold lacks; null: not measured (only measured once the watermark is past). */
  missingInCold: number | null;
}

/** A partition is past its horizon when its newest row is. */
export function pastHorizon(extent: PartitionExtent, horizon: number): boolean {
  return extent.maxTime < horizon;
}

/** Whether the cold side is worth measuring: only a partition replication claims to have verified. */
export function worthVerifying(p: Pick<ExpiredHotPartition, 'extent' | 'watermark'>): boolean {
  return typeof p.watermark === 'number' && p.watermark > p.extent.maxTime;
}

export type RetentionDecision =
  /** verifiedInCold: dropped because cold holds every key, which is checked again right before the drop. */
  | { action: 'drop'; server: 'hot' | 'cold'; extent: PartitionExtent; verifiedInCold: boolean; detail: string }
  | { action: 'keep'; server: 'hot'; extent: PartitionExtent; reason: KeepReason; detail: string };

const iso = (t: number) => new Date(t).toISOString();

/**
 * What retention does, from facts measured beforehand. A hot partition goes only when replication's
 * watermark is past its newest row AND every one of its keys is in cold (never the only copy), or when
 * it is also past cold's horizon (cold would drop it anyway). A cold partition goes once wholly past
 * cold's horizon.
 */
export function planRetention(input: {
  horizons: RetentionHorizons;
  hot: readonly ExpiredHotPartition[];
  cold: readonly PartitionExtent[];
}): RetentionDecision[] {
  const { horizons } = input;
  const out: RetentionDecision[] = [];
  for (const p of input.hot) {
    const e = p.extent;
    if (!pastHorizon(e, horizons.hot) || HOT_RETENTION_EXEMPT.has(e.table)) continue;
    if (horizons.cold !== null && pastHorizon(e, horizons.cold)) {
      out.push({ action: 'drop', server: 'hot', extent: e, verifiedInCold: false, detail: 'past cold retention too' });
    } else if (p.watermark === undefined) {
      out.push({ action: 'keep', server: 'hot', extent: e, reason: 'watermark_unreadable', detail: 'replication watermarks cannot be read' });
    } else if (!worthVerifying(p)) {
      const where = p.watermark === null ? 'no replication watermark yet' : `replication watermark ${iso(p.watermark)}`;
      out.push({ action: 'keep', server: 'hot', extent: e, reason: 'not_replicated', detail: `${where}, newest row ${iso(e.maxTime)}` });
    } else if (p.missingInCold === null || p.missingInCold > 0) {
      const what = p.missingInCold === null ? 'not compared with cold' : `cold lacks ${p.missingInCold} of its keys`;
      out.push({ action: 'keep', server: 'hot', extent: e, reason: 'cold_lacks_rows', detail: `${what}: run 'mprism repair'` });
    } else {
      out.push({ action: 'drop', server: 'hot', extent: e, verifiedInCold: true, detail: 'replicated, every key is in cold' });
    }
  }
  const coldHorizon = horizons.cold;
  if (coldHorizon !== null) {
    for (const e of input.cold) {
      if (pastHorizon(e, coldHorizon)) out.push({ action: 'drop', server: 'cold', extent: e, verifiedInCold: false, detail: 'past cold retention' });
    }
  }
  return out;
}

interface Servers {
  hot: ClickHouseClient;
  cold: ClickHouseClient;
}

/**
 * The time the partition may hold: its whole day for a day partition (a row arriving anywhere in it is
 * seen), else the range its rows cover.
 */
function partitionRange(e: PartitionExtent): TimeRange {
  return dayOfPartition(e.partitionId) ?? { start: e.minTime, end: e.maxTime + 1 };
}

/** The bounded spans of the partition's range that hold rows in hot. */
async function spansWithRows(config: Config, servers: Servers, spec: TableSpec, e: PartitionExtent): Promise<TimeRange[]> {
  const range = partitionRange(e);
  const buckets = await countBuckets(servers.hot, config.clickhouse.hot.database, spec, range, VERIFY_SPAN_MS);
  return buckets.map((b) => ({ start: Math.max(range.start, b.start), end: Math.min(range.end, b.start + VERIFY_SPAN_MS) }));
}

/** Keys of the hot partition cold lacks, span by span. */
async function missingInCold(config: Config, servers: Servers, spec: TableSpec, e: PartitionExtent): Promise<number> {
  let missing = 0;
  for (const span of await spansWithRows(config, servers, spec, e)) {
    // Counted on cold, reading hot over remote(): hot's keys that cold lacks.
    missing += await keysMissingIn(
      { client: servers.cold, server: config.clickhouse.cold },
      { server: config.clickhouse.hot, address: remoteAddress(config.clickhouse.hot) },
      spec,
      span,
    );
  }
  return missing;
}

/** Copies what cold lacks of a hot partition, span by span (replication's idempotent copy). */
async function copyToCold(config: Config, servers: Servers, spec: TableSpec, e: PartitionExtent): Promise<number> {
  let copied = 0;
  for (const span of await spansWithRows(config, servers, spec, e)) {
    copied += Math.max(0, (await copyWindow(servers.hot, servers.cold, config, spec, span)).copied);
  }
  return copied;
}

/**
 * Right before a drop: the partition is as it was measured and cold still holds every key. Narrows the
 * time in which a row written into an old partition (history backfill) could be dropped unreplicated
 * to the moment between this check and the DROP. Returns why not, or null.
 */
async function changedSinceVerified(config: Config, servers: Servers, spec: TableSpec, e: PartitionExtent, horizon: number): Promise<string | null> {
  const fresh = (await partitionExtents(servers.hot, config.clickhouse.hot.database, spec, { olderThan: horizon })).find((x) => x.partitionId === e.partitionId);
  if (fresh === undefined || fresh.minTime !== e.minTime || fresh.maxTime !== e.maxTime || fresh.rows !== e.rows) return 'its rows changed since they were verified';
  const missing = await missingInCold(config, servers, spec, e);
  return missing === 0 ? null : `cold lacks ${missing} of its keys`;
}

async function measure(config: Config, servers: Servers, horizons: RetentionHorizons) {
  const errors: string[] = [];
  const watermarks = await readWatermarks(servers.cold, config.clickhouse.cold.database);
  if (watermarks.error !== null) errors.push(watermarks.error);
  const [hotTables, coldTables] = await Promise.all([
    existingTables(servers.hot, config.clickhouse.hot.database),
    existingTables(servers.cold, config.clickhouse.cold.database),
  ]);
  const hot: ExpiredHotPartition[] = [];
  const cold: PartitionExtent[] = [];
  for (const spec of TABLES) {
    try {
      if (hotTables.includes(spec.table) && !HOT_RETENTION_EXEMPT.has(spec.table)) {
        for (const extent of await partitionExtents(servers.hot, config.clickhouse.hot.database, spec, { olderThan: horizons.hot })) {
          if (!pastHorizon(extent, horizons.hot)) continue;
          const p: ExpiredHotPartition = { extent, watermark: watermarks.get(spec.table), missingInCold: null };
          if (worthVerifying(p) && coldTables.includes(spec.table)) p.missingInCold = await missingInCold(config, servers, spec, extent);
          hot.push(p);
        }
      }
      if (horizons.cold !== null && coldTables.includes(spec.table)) cold.push(...(await partitionExtents(servers.cold, config.clickhouse.cold.database, spec, { olderThan: horizons.cold })));
    } catch (err) {
      errors.push(`${spec.table}: ${errorMessage(err)}`);
    }
  }
  return { hot, cold, errors };
}

export interface RetentionOptions {
  dryRun: boolean;
  now?: number;
  /** Copy to cold what it lacks of expired, replicated hot partitions before planning (repair does). */
  copyMissing?: boolean;
  signal?: AbortSignal;
  /** Called, and awaited, for each partition actually dropped, before the next is considered. */
  onDropped?: (d: PartitionDrop) => void | Promise<void>;
}

/**
 * Measures, plans and (unless dryRun) drops. Every drop is re-checked against the server: done only
 * when the partition is no longer among the active parts.
 */
export async function runRetention(config: Config, opts: RetentionOptions): Promise<RetentionReport> {
  const now = opts.now ?? Date.now();
  const horizons = retentionHorizons(now, config.retention);
  const report: RetentionReport = {
    dryRun: opts.dryRun,
    hotHorizon: iso(horizons.hot),
    coldHorizon: horizons.cold === null ? null : iso(horizons.cold),
    dropped: [],
    kept: [],
    copied: [],
    errors: [],
  };
  const servers: Servers = { hot: createClickHouse(config.clickhouse.hot), cold: createClickHouse(config.clickhouse.cold) };
  try {
    await Promise.all([
      ensureReachable(servers.hot, 'clickhouse-hot', config.clickhouse.hot),
      ensureReachable(servers.cold, 'clickhouse-cold', config.clickhouse.cold),
    ]);
    let facts = await measure(config, servers, horizons);
    if (opts.copyMissing === true && !opts.dryRun) {
      const lacking = facts.hot.filter((p) => worthVerifying(p) && (p.missingInCold ?? 0) > 0);
      for (const p of lacking) {
        const spec = TABLES.find((s) => s.table === p.extent.table);
        if (opts.signal?.aborted || spec === undefined) break;
        try {
          const rows = await withColdWriteLock(config, () => copyToCold(config, servers, spec, p.extent));
          report.copied.push({ table: p.extent.table, partition: p.extent.partitionId, rows });
        } catch (err) {
          report.errors.push(`${p.extent.table}: copy of partition ${p.extent.partitionId} to cold: ${errorMessage(err)}`);
        }
      }
      // Measured again: only what cold now verifiably holds is dropped.
      if (lacking.length > 0) facts = await measure(config, servers, horizons);
    }
    report.errors.push(...facts.errors);
    for (const d of planRetention({ horizons, hot: facts.hot, cold: facts.cold })) {
      const e = d.extent;
      if (d.action === 'keep') {
        report.kept.push({ server: d.server, table: e.table, partition: e.partitionId, reason: d.reason, detail: d.detail });
        continue;
      }
      const drop: PartitionDrop = { server: d.server, table: e.table, partition: e.partitionId, from: iso(e.minTime), to: iso(e.maxTime), rows: e.rows, done: false, detail: d.detail };
      if (opts.dryRun) {
        report.dropped.push(drop);
        continue;
      }
      if (opts.signal?.aborted) {
        report.dropped.push({ ...drop, detail: `${drop.detail}; not dropped: stopping` });
        continue;
      }
      try {
        const spec = TABLES.find((x) => x.table === e.table);
        const changed = d.verifiedInCold && spec !== undefined ? await changedSinceVerified(config, servers, spec, e, horizons.hot) : null;
        if (changed !== null) {
          report.kept.push({ server: 'hot', table: e.table, partition: e.partitionId, reason: 'changed_while_checked', detail: `${changed}: checked again next run` });
          continue;
        }
        drop.done = await dropPartition(servers[d.server], config.clickhouse[d.server].database, e.table, e.partitionId);
        if (drop.done) await opts.onDropped?.(drop);
        else drop.detail += '; still present after DROP PARTITION';
      } catch (err) {
        drop.detail += `; drop failed: ${errorMessage(err)}`;
      }
      report.dropped.push(drop);
    }
  } finally {
    await Promise.all([servers.hot.close(), servers.cold.close()]);
  }
  return report;
}

/** Lines worth an alert: errors, drops that did not happen, and partitions kept because cold lacks rows. */
export function retentionProblems(r: RetentionReport): string[] {
  return [
    ...r.errors,
    ...r.dropped.filter((d) => !d.done && !r.dryRun).map((d) => `${d.server} ${d.table} partition ${d.partition} not dropped: ${d.detail}`),
    ...r.kept.filter((k) => k.reason === 'cold_lacks_rows').map((k) => `${k.server} ${k.table} partition ${k.partition} kept past retention: ${k.detail}`),
  ];
}
