import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readWatermarks } from '../replication/watermarks.js';
import { alignDown } from '../replication/windows.js';
import { retentionHorizons } from './retention.js';
import { selectRows, type ClickHouseClient } from '../store/client.js';
import { openReadableReplica, syncReplica, type ReplicaReader } from '../store/replicas.js';
import { countBuckets, type BucketCount } from '../store/queries.js';
import { COLLECTOR_STOPPED_DETAIL } from '../records.js';
import { checkContinuity, type ContinuityReport } from './continuity.js';
import { qualified, str, uint } from '../store/sql.js';
import { engineFor, existingTables, TABLES, tableFor, type TableSpec } from '../store/tables.js';

/*
 * `mprism integrity --json` prints an IntegrityReport; its shape is a contract (the brain stores it,
 * scripts read it). Fields are only ever added.
 *
 * {
 *   "ok": false,                        // no short/excess closed window, no duplicate, no missing table
 *   "since": "2024-05-01T11:00:00.000Z", // start of the first window checked (aligned to windowSeconds)
 *   "comparedSince": "2024-05-01T11:00:00.000Z", // hot vs cold from here: since, or the retention horizon if later
 *   "now": "2024-05-01T12:00:03.120Z",
 *   "tables": [{
 *     "table": "trades",
 *     "hotRows": 7200, "coldRows": 7140,  // rows since `since`, duplicates included
 *     "hotDuplicates": 0, "coldDuplicates": 0,  // rows beyond one per key
 *     "freshnessSeconds": 1.2,            // now - newest event time in hot since `since`; null: none
 *     "replicationLagSeconds": 31.5,      // now - replication watermark; null: none recorded here
 *     "windows": [{ "start": "...", "end": "...", "hot": 120, "cold": 120, "status": "ok" }],  // ok|short|excess|pending
 *     "problems": ["2024-05-01T11:58:00.000Z..2024-05-01T11:59:00.000Z short: hot 120, cold 60"]
 *   }],
 *   "bookGaps": [{                      // orderbook resyncs since `since` (from hot orderbook_gaps), newest first
 *     "at": "...", "venue": "binance_spot", "symbol": "BTC-USDT", "reason": "sequence_gap",
 *     "lastUpdateId": 123, "detail": "expected U 124, got 130"
 *   }],
 *   "bookGapCount": 1,                  // all of them; bookGaps lists at most BOOK_GAPS_LISTED
 *   "readFrom": { "hot": "http://127.0.0.1:8123", "cold": "http://127.0.0.1:8124" },  // the replica each tier was read on
 *   "warnings": ["binance_spot BTC-USDT: 1 orderbook gap"],
 *   "problems": ["hole: trade binance_spot BTCUSDT ...: open, run 'mprism repair'"],  // beyond the tables'
 *   ...the continuity fields: holes, holeCounts, stoppedStreams, unrecordedGaps (see continuity.ts)
 * }
 *
 * Book gaps are warnings, not problems: the book stream has a hole there, and nothing can re-fetch a
 * past book, so failing (and alerting every run for an hour) would ask for a repair that cannot exist.
 *
 * Window counts are distinct keys, so duplicates never make a window short or excess; they are counted
 * per table instead. Windows with no row on either server are left out.
 *
 * A short window within replication.lateDataSeconds behind the watermark is `pending`: rows reached hot
 * after the window was copied (a late DVOL candle, a redelivered batch), and replication re-checks those
 * windows and copies the late rows itself. Only an older difference is a problem.
 *
 * Hot keeps retention.hotDays (and cold retention.coldDays): windows older than either horizon are not
 * compared, since their partitions may be gone from one side by design. "comparedSince" is where the
 * comparison starts; when it is later than "since", a warning says so.
 *
 * A replicated tier (clickhouse.*.replication) is read on one replica, the first that answers: every
 * replica holds every row, so each is counted once. Before a table is counted, that replica catches up
 * with what was written through the others (SYSTEM SYNC REPLICA, bounded); if it cannot (a peer is
 * down with parts nobody fetched yet), a warning says its counts may be behind.
 */

export interface IntegrityReport extends Omit<ContinuityReport, 'problems' | 'warnings'> {
  ok: boolean;
  since: string;
  /** Start of the hot-vs-cold comparison: `since`, or the retention horizon where that is later. */
  comparedSince: string;
  now: string;
  tables: TableIntegrity[];
  bookGaps: BookGap[];
  bookGapCount: number;
  /** The replica (address without credentials) each tier was read on: the first that answered. */
  readFrom: { hot: string; cold: string };
  warnings: string[];
  /** Problems beyond the tables': open holes, stopped streams, unrecorded id gaps. */
  problems: string[];
}

export interface BookGap {
  at: string;
  venue: string;
  symbol: string;
  reason: string;
  lastUpdateId: number;
  detail: string;
}

/** Enough to see a pattern; the count says how many there were in all. */
export const BOOK_GAPS_LISTED = 50;

export interface TableIntegrity {
  table: string;
  hotRows: number;
  coldRows: number;
  hotDuplicates: number;
  coldDuplicates: number;
  freshnessSeconds: number | null;
  replicationLagSeconds: number | null;
  windows: WindowIntegrity[];
  problems: string[];
}

export interface WindowIntegrity {
  start: string;
  end: string;
  /** Distinct keys in the window on each server. */
  hot: number;
  cold: number;
  /** pending: not due yet (see windowDue), or short with late rows replication will still copy; never a problem. */
  status: 'ok' | 'short' | 'excess' | 'pending';
}

/**
 * Replication copies a window once it is safetyLag old, on its next poll; this much more is allowed
 * before a window missing from cold counts as short rather than pending.
 */
export function replicationGraceMs(config: Config): number {
  return Math.max(60_000, 2 * config.replication.pollIntervalMs);
}

/**
 * A window is due when replication claims it (end at or before the watermark) or when it is older than
 * safetyLag + grace: a stuck replication then shows up as short windows, not as endless pending ones.
 */
export function windowDue(end: number, now: number, watermark: number | null, config: Config): boolean {
  if (watermark !== null && end <= watermark) return true;
  return end <= now - config.replication.safetyLagSeconds * 1000 - replicationGraceMs(config);
}

/**
 * Whether replication still re-checks the window for late rows (see Replicator.recopyLateWindows): it
 * compares [watermark - lateDataSeconds, watermark) on every cycle and copies the keys cold lacks.
 */
export function inLateDataWindow(start: number, watermark: number | null, config: Config): boolean {
  const lateMs = config.replication.lateDataSeconds * 1000;
  return watermark !== null && lateMs > 0 && start >= watermark - lateMs && start < watermark;
}

/**
 * A window's verdict. Hot ahead of cold is `pending`, not a problem, while whoever wrote the rows
 * late will still copy them: inside the late-data window (replication re-checks it every cycle), or
 * when no more rows are missing in cold than hot received in the last lateDataSeconds (`recentArrivals`:
 * history backfill and hole refills write behind the watermark, and copy what they wrote once
 * storage has stored it). Either way it turns `short` once the writer had its lateDataSeconds.
 */
export function classifyWindow(hot: number, cold: number, due: boolean, lateDataWindow = false, recentArrivals = 0): WindowIntegrity['status'] {
  if (!due) return 'pending';
  // Late rows make hot larger, never smaller: an excess window is a problem wherever it is.
  if (cold < hot) return lateDataWindow || hot - cold <= recentArrivals ? 'pending' : 'short';
  return cold > hot ? 'excess' : 'ok';
}

/**
 * Where the hot-vs-cold comparison starts: `from`, or the first window wholly inside both retention
 * horizons (a window straddling a horizon may have lost its older rows on one side by design).
 */
export function comparisonStart(from: number, now: number, config: Config): { start: number; clampedBy: 'hot' | 'cold' | null } {
  const windowMs = config.replication.windowSeconds * 1000;
  const h = retentionHorizons(now, config.retention);
  const alignUp = (t: number) => Math.ceil(t / windowMs) * windowMs;
  const hot = alignUp(h.hot);
  const cold = h.cold === null ? -Infinity : alignUp(h.cold);
  if (from >= hot && from >= cold) return { start: from, clampedBy: null };
  return hot >= cold ? { start: hot, clampedBy: 'hot' } : { start: cold, clampedBy: 'cold' };
}

function tableReport(
  spec: TableSpec,
  hot: readonly BucketCount[],
  cold: readonly BucketCount[],
  ctx: { now: number; windowMs: number; watermark: number | null; config: Config },
): TableIntegrity {
  const sum = (xs: readonly BucketCount[], f: (b: BucketCount) => number) => xs.reduce((n, b) => n + f(b), 0);
  const byStart = new Map<number, { hot: number; cold: number; recent: number }>();
  for (const b of hot) byStart.set(b.start, { hot: b.distinct, cold: 0, recent: b.recent });
  for (const b of cold) byStart.set(b.start, { hot: byStart.get(b.start)?.hot ?? 0, cold: b.distinct, recent: byStart.get(b.start)?.recent ?? 0 });
  const problems: string[] = [];
  const windows: WindowIntegrity[] = [...byStart]
    .sort(([a], [b]) => a - b)
    .map(([start, c]) => {
      const end = start + ctx.windowMs;
      const w: WindowIntegrity = {
        start: new Date(start).toISOString(),
        end: new Date(end).toISOString(),
        hot: c.hot,
        cold: c.cold,
        status: classifyWindow(c.hot, c.cold, windowDue(end, ctx.now, ctx.watermark, ctx.config), inLateDataWindow(start, ctx.watermark, ctx.config), c.recent),
      };
      if (w.status === 'short' || w.status === 'excess') problems.push(`${w.start}..${w.end} ${w.status}: hot ${w.hot}, cold ${w.cold}`);
      return w;
    });
  const hotDuplicates = sum(hot, (b) => b.rows - b.distinct);
  const coldDuplicates = sum(cold, (b) => b.rows - b.distinct);
  if (hotDuplicates > 0) problems.push(`hot has ${hotDuplicates} duplicate rows`);
  if (coldDuplicates > 0) problems.push(`cold has ${coldDuplicates} duplicate rows`);
  const newest = hot.length > 0 ? Math.max(...hot.map((b) => b.maxTime)) : null;
  return {
    table: spec.table,
    hotRows: sum(hot, (b) => b.rows),
    coldRows: sum(cold, (b) => b.rows),
    hotDuplicates,
    coldDuplicates,
    freshnessSeconds: newest === null ? null : Math.max(0, (ctx.now - newest) / 1000),
    replicationLagSeconds: ctx.watermark === null ? null : Math.max(0, (ctx.now - ctx.watermark) / 1000),
    windows,
    problems,
  };
}

async function bookGaps(
  client: ClickHouseClient,
  database: string,
  range: { start: number; end: number },
): Promise<{ listed: BookGap[]; count: number; perStream: { venue: string; symbol: string; n: number; reasons: string }[] }> {
  const table = qualified(database, tableFor('orderbook_gap').table);
  const where = `WHERE event_time >= ${uint(range.start)} AND event_time < ${uint(range.end)}`;
  const rows = await selectRows<{ event_time: string; venue: string; symbol: string; reason: string; last_update_id: string; detail: string }>(
    client,
    `SELECT event_time, venue, symbol, reason, last_update_id, detail FROM ${table} FINAL ${where} ORDER BY event_time DESC LIMIT ${BOOK_GAPS_LISTED}`,
  );
  const perStream = await selectRows<{ venue: string; symbol: string; n: string; reasons: string }>(
    client,
    // A planned stop is named as such: an operator should not go looking for a dropped connection.
    `SELECT venue, symbol, count() AS n, arrayStringConcat(groupUniqArray(if(detail = ${str(COLLECTOR_STOPPED_DETAIL)}, ${str(COLLECTOR_STOPPED_DETAIL)}, reason)), ', ') AS reasons FROM ${table} FINAL ${where} GROUP BY venue, symbol ORDER BY venue, symbol`,
  );
  return {
    listed: rows.map((r) => ({
      at: new Date(Number(r.event_time)).toISOString(),
      venue: r.venue,
      symbol: r.symbol,
      reason: r.reason,
      lastUpdateId: Number(r.last_update_id),
      detail: r.detail,
    })),
    count: perStream.reduce((n, g) => n + Number(g.n), 0),
    perStream: perStream.map((g) => ({ venue: g.venue, symbol: g.symbol, n: Number(g.n), reasons: g.reasons })),
  };
}

/** How long a replica may take to fetch what was written through its peers before a table is counted. */
export const REPLICA_SYNC_TIMEOUT_MS = 10_000;

function failoverNotes(tier: 'hot' | 'cold', reader: ReplicaReader): string[] {
  return reader.skipped.map((s) => `${tier}: replica ${s.address} did not answer (${s.error}); read replica ${reader.index} (${reader.address})`);
}

/** On a replicated tier, lets the replica being read fetch what was written through the others. */
async function catchUp(tier: 'hot' | 'cold', server: Config['clickhouse']['hot'], reader: ReplicaReader, table: string, notes: string[]): Promise<void> {
  if (engineFor(server) !== 'replicated') return;
  const problem = await syncReplica(reader.client, server.database, table, REPLICA_SYNC_TIMEOUT_MS);
  if (problem !== null) notes.push(`${tier}: replica ${reader.address} may lack rows of ${table} written through another replica (${problem})`);
}

/**
 * Hot vs cold per closed replication window over the last `sinceMs` milliseconds (a duration, e.g.
 * the integrity task's params.sinceSeconds), plus duplicates, freshness and replication lag per table.
 */
export async function runIntegrity(config: Config, opts: { sinceMs: number; now?: number; signal?: AbortSignal }): Promise<IntegrityReport> {
  const now = opts.now ?? Date.now();
  const windowMs = config.replication.windowSeconds * 1000;
  const from = alignDown(now - opts.sinceMs, windowMs);
  // Through the end of the current window: rows stamped slightly ahead of this clock still count.
  const range = { start: from, end: alignDown(now, windowMs) + windowMs };
  const compared = comparisonStart(from, now, config);
  const comparedRange = { start: compared.start, end: Math.max(compared.start, range.end) };
  const retentionNotes: string[] = [];
  if (compared.clampedBy !== null) {
    const days = compared.clampedBy === 'hot' ? config.retention.hotDays : config.retention.coldDays;
    retentionNotes.push(`hot and cold compared from ${new Date(compared.start).toISOString()}, not ${new Date(from).toISOString()}: ${compared.clampedBy} keeps ${days} days (retention.${compared.clampedBy}Days)`);
  }
  const readers = await Promise.allSettled([
    openReadableReplica(config.clickhouse.hot, 'clickhouse-hot'),
    openReadableReplica(config.clickhouse.cold, 'clickhouse-cold'),
  ]);
  const [hotReader, coldReader] = readers.map((r) => (r.status === 'fulfilled' ? r.value : null));
  if (hotReader == null || coldReader == null) {
    await Promise.all([hotReader?.client.close(), coldReader?.client.close()]);
    throw readers.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason;
  }
  const hot = hotReader.client;
  const cold = coldReader.client;
  const replicaNotes = [...failoverNotes('hot', hotReader), ...failoverNotes('cold', coldReader)];
  try {
    const watermarks = await readWatermarks(cold, config.clickhouse.cold.database);
    const [hotTables, coldTables] = await Promise.all([
      existingTables(hot, config.clickhouse.hot.database),
      existingTables(cold, config.clickhouse.cold.database),
    ]);
    // All tables at once: with a peer down, each table with unfetched parts waits the whole timeout.
    const ours = (present: readonly string[]) => TABLES.map((t) => t.table).filter((t) => present.includes(t));
    const syncNotes: string[] = [];
    await Promise.all([
      ...ours(hotTables).map((table) => catchUp('hot', config.clickhouse.hot, hotReader, table, syncNotes)),
      ...ours(coldTables).map((table) => catchUp('cold', config.clickhouse.cold, coldReader, table, syncNotes)),
    ]);
    replicaNotes.push(...syncNotes.sort());
    const tables: TableIntegrity[] = [];
    for (const spec of TABLES) {
      // The brain lost its lease or stops: a report cut short is no report.
      opts.signal?.throwIfAborted();
      const onHot = hotTables.includes(spec.table);
      const onCold = coldTables.includes(spec.table);
      const [hotCounts, coldCounts] = await Promise.all([
        onHot ? countBuckets(hot, config.clickhouse.hot.database, spec, comparedRange, windowMs, now - config.replication.lateDataSeconds * 1000) : [],
        onCold ? countBuckets(cold, config.clickhouse.cold.database, spec, comparedRange, windowMs) : [],
      ]);
      const t = tableReport(spec, hotCounts, coldCounts, { now, windowMs, watermark: watermarks.get(spec.table) ?? null, config });
      if (!onHot) t.problems.push(`table ${config.clickhouse.hot.database}.${spec.table} missing on hot (run 'mprism init')`);
      if (!onCold) t.problems.push(`table ${config.clickhouse.cold.database}.${spec.table} missing on cold (run 'mprism init')`);
      if (watermarks.error) t.problems.push(watermarks.error);
      tables.push(t);
    }
    const gaps = hotTables.includes(tableFor('orderbook_gap').table)
      ? await bookGaps(hot, config.clickhouse.hot.database, range)
      : { listed: [], count: 0, perStream: [] };
    const continuity = hotTables.includes(tableFor('stream_hole').table)
      ? await checkContinuity(config, hot, range, now, now - replicationGraceMs(config), retentionHorizons(now, config.retention).hot)
      : { holes: [], holeCounts: { open: 0, repaired: 0, unrepairable: 0 }, stoppedStreams: [], unrecordedGaps: [], problems: [], warnings: [] };
    const { problems, warnings, ...continuityFields } = continuity;
    return {
      ok: tables.every((t) => t.problems.length === 0) && problems.length === 0,
      since: new Date(from).toISOString(),
      comparedSince: new Date(compared.start).toISOString(),
      now: new Date(now).toISOString(),
      tables,
      bookGaps: gaps.listed,
      bookGapCount: gaps.count,
      readFrom: { hot: hotReader.address, cold: coldReader.address },
      ...continuityFields,
      warnings: [...retentionNotes, ...replicaNotes, ...gaps.perStream.map((g) => `${g.venue} ${g.symbol}: ${g.n} orderbook gap${g.n === 1 ? '' : 's'} (${g.reasons})`), ...warnings],
      problems,
    };
  } finally {
    await Promise.all([hot.close(), cold.close()]);
  }
}
