import type { Config, DataType } from '../config/schema.js';
import { adapterFor, configuredStreams, enabledVenues } from '../exchanges/registry.js';
import { staleThresholdMs } from '../feeds/freshness.js';
import type { HoleState } from '../records.js';
import { describeHole, type HoleReport } from './hole-report.js';
import type { ClickHouseClient } from '../store/client.js';
import { listHoles, newestPerInstrument, tradeIdGaps, tradeIdSpans, type Hole, type TradeIdGap, type TradeIdSpan } from '../store/holes.js';

/*
 * The continuity part of `mprism integrity --json` (fields of IntegrityReport, only ever added):
 *
 *   "holes": [{                          // every open hole, and every hole whose state changed since `since`
 *     "holeId": "binance_spot/trade/BTCUSDT/1714564800000/101",
 *     "venue": "binance_spot", "dataType": "trade", "symbol": "BTC-USDT", "instrument": "BTCUSDT",
 *     "from": "...", "to": "...", "seconds": 1.6,
 *     "firstMissingId": "101", "lastMissingId": "366", "missing": 266,   // null where unknown
 *     "cause": "collector_down", "state": "open", "detail": "collector was not running"
 *   }],
 *   "holeCounts": { "open": 1, "repaired": 0, "unrepairable": 4 },
 *   "stoppedStreams": [{ "venue": "okx_spot", "dataType": "trade", "instrument": "BTC-USDT",
 *                        "newest": "..." | null, "thresholdSeconds": 60 }],
 *   "unrecordedGaps": [{ "venue": "binance_spot", "instrument": "BTCUSDT", "firstMissingId": "5",
 *                        "lastMissingId": "9", "missing": 5, "from": "...", "to": "..." }]
 *
 * Open holes, stopped streams and id gaps that no hole explains are problems (exit 1); repaired and
 * unrepairable holes are listed, unrepairable ones as warnings. An open hole that ended before hot's
 * retention horizon is a warning: what it lacks could only be refilled into hot, which no longer keeps
 * that time (repair records it unrepairable). Ids are scanned only within the horizon, where hot still
 * holds every partition.
 */

export interface StoppedStream {
  venue: string;
  dataType: DataType;
  instrument: string;
  /** Newest event time in hot; null: none in the lookback. */
  newest: string | null;
  thresholdSeconds: number;
}

export interface UnrecordedGap {
  venue: string;
  instrument: string;
  firstMissingId: string;
  lastMissingId: string;
  missing: number;
  from: string;
  to: string;
}

export interface ContinuityReport {
  holes: HoleReport[];
  holeCounts: Record<HoleState, number>;
  stoppedStreams: StoppedStream[];
  unrecordedGaps: UnrecordedGap[];
  problems: string[];
  warnings: string[];
}

const iso = (t: number) => new Date(t).toISOString();

export function holeReport(h: Hole): HoleReport {
  return {
    holeId: h.holeId,
    venue: h.venue,
    dataType: h.dataType,
    symbol: h.symbol,
    instrument: h.instrument,
    from: iso(h.fromTime),
    to: iso(h.toTime),
    seconds: Math.max(0, (h.toTime - h.fromTime) / 1000),
    firstMissingId: h.firstMissingId,
    lastMissingId: h.lastMissingId,
    missing: h.missingCount,
    cause: h.cause,
    state: h.state,
    detail: h.detail,
  };
}

/** Whether an id gap lies inside a recorded hole of the same stream. */
function explainedBy(gap: TradeIdGap, holes: readonly Hole[]): Hole | undefined {
  const first = BigInt(gap.firstMissingId);
  const last = BigInt(gap.lastMissingId);
  return holes.find((h) => h.firstMissingId !== null && h.lastMissingId !== null && BigInt(h.firstMissingId) <= first && last <= BigInt(h.lastMissingId));
}

/** Trade ids are checked in buckets this long: only a bucket with a gap has its ids read. */
const ID_SCAN_BUCKET_MS = 10 * 60_000;

/** A run of missing ids in hot that no open or unrepairable hole explains (`hole`: a repaired one that does). */
export interface UnexplainedGap {
  span: TradeIdSpan;
  gap: TradeIdGap;
  hole: Hole | undefined;
}

/**
 * Id gaps in hot within `range`, on venues whose trade ids are contiguous, that no open or
 * unrepairable hole explains: data the collector's own record missed, or a repair that did not hold.
 */
export async function findUnrecordedGaps(config: Config, hot: ClickHouseClient, holes: readonly Hole[], range: { start: number; end: number }): Promise<UnexplainedGap[]> {
  const out: UnexplainedGap[] = [];
  if (range.end <= range.start) return out;
  const database = config.clickhouse.hot.database;
  for (const venue of enabledVenues(config)) {
    const v = config.collector.venues[venue];
    if (!v.dataTypes.includes('trade') || adapterFor(venue, v.symbols).tradeIds !== 'contiguous') continue;
    const spans = await tradeIdSpans(hot, database, venue, range, ID_SCAN_BUCKET_MS);
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i] as TradeIdSpan;
      const next = spans[i + 1];
      const gaps: TradeIdGap[] = [];
      if (BigInt(span.maxId) - BigInt(span.minId) + 1n !== BigInt(span.distinctIds)) {
        gaps.push(...(await tradeIdGaps(hot, database, { venue, instrument: span.instrument }, { start: span.start, end: span.end })));
      }
      if (next !== undefined && next.instrument === span.instrument && BigInt(next.minId) > BigInt(span.maxId) + 1n) {
        const missing = BigInt(next.minId) - BigInt(span.maxId) - 1n;
        gaps.push({ firstMissingId: String(BigInt(span.maxId) + 1n), lastMissingId: String(BigInt(next.minId) - 1n), missing: Number(missing), fromTime: span.maxTime, toTime: next.minTime });
      }
      const streamHoles = holes.filter((h) => h.venue === venue && h.instrument === span.instrument && h.dataType === 'trade');
      for (const gap of gaps) {
        const hole = explainedBy(gap, streamHoles);
        // Open holes are reported as such; an unrepairable one is why the ids stay missing.
        if (hole?.state === 'open' || hole?.state === 'unrepairable') continue;
        out.push({ span, gap, hole });
      }
    }
  }
  return out;
}

/** Whether a hole ended before hot's retention horizon: hot no longer keeps its time. */
export function holeExpiredInHot(hole: { toTime: number }, hotHorizon: number): boolean {
  return hole.toTime < hotHorizon;
}

/**
 * Holes, stopped streams, and (where a venue's trade ids are contiguous) id gaps in hot that no
 * recorded hole explains. `scanEnd` bounds the id scan: the newest trades may still be on their way
 * to hot out of order. `hotHorizon` (now - retention.hotDays) bounds it from below.
 */
export async function checkContinuity(
  config: Config,
  hot: ClickHouseClient,
  range: { start: number; end: number },
  now: number,
  scanEnd: number,
  hotHorizon: number,
): Promise<ContinuityReport> {
  const holes = await listHoles(hot, config.clickhouse.hot.database, { changedSince: range.start });
  const problems: string[] = [];
  const warnings: string[] = [];
  const reports = holes.map(holeReport);
  for (const [i, h] of reports.entries()) {
    if (h.state === 'open' && holeExpiredInHot(holes[i] as Hole, hotHorizon)) {
      warnings.push(`hole: ${describeHole(h)}: open, older than hot keeps (retention.hotDays ${config.retention.hotDays}): no longer refillable`);
    } else if (h.state === 'open') problems.push(`hole: ${describeHole(h)}: open, run 'mprism repair'`);
    else if (h.state === 'unrepairable') warnings.push(`hole: ${describeHole(h)}: unrepairable (${h.detail})`);
  }

  const stoppedStreams = await stopped(config, hot, now);
  for (const s of stoppedStreams) {
    const what = `${s.dataType} ${s.venue} ${s.instrument}`;
    const line = s.newest === null ? `stream stopped: ${what}: no data in hot` : `stream stopped: ${what}: newest record ${s.newest} (threshold ${s.thresholdSeconds} s)`;
    // A quiet symbol may have no liquidations for hours, and a stream just configured has no data
    // yet: health tells those apart; integrity fails on streams that were flowing and stopped.
    if (s.dataType === 'liquidation' || s.newest === null) warnings.push(line);
    else problems.push(line);
  }

  const unrecordedGaps: UnrecordedGap[] = [];
  for (const { gap, hole, span } of await findUnrecordedGaps(config, hot, holes, { start: Math.max(range.start, hotHorizon), end: Math.min(range.end, scanEnd) })) {
    const g: UnrecordedGap = { venue: span.venue, instrument: span.instrument, ...gap, from: iso(gap.fromTime), to: iso(gap.toTime) };
    unrecordedGaps.push(g);
    const what = `trade ${span.venue} ${span.instrument} ids ${gap.firstMissingId}..${gap.lastMissingId} (${gap.missing} missing, ${g.from}..${g.to})`;
    problems.push(hole === undefined ? `unrecorded hole: ${what}: run 'mprism repair'` : `hole ${hole.holeId} is marked repaired but ${what} are not in hot`);
  }
  const holeCounts: Record<HoleState, number> = { open: 0, repaired: 0, unrepairable: 0 };
  for (const h of holes) holeCounts[h.state]++;
  return { holes: reports, holeCounts, stoppedStreams, unrecordedGaps, problems, warnings };
}

/** How far back a stream's newest record is looked for before it counts as never received. */
const STOPPED_LOOKBACK_MS = 30 * 86_400_000;

/** Configured streams whose newest record in hot is older than their freshness threshold. */
async function stopped(config: Config, hot: ClickHouseClient, now: number): Promise<StoppedStream[]> {
  const streams = configuredStreams(config);
  const dataTypes = [...new Set(streams.map((s) => s.dataType))];
  const newest = new Map<string, number>();
  const key = (venue: string, dataType: string, instrument: string) => `${venue}/${dataType}/${instrument}`;
  for (const dataType of dataTypes) {
    // A short look back first (the primary key makes it cheap); only where a stream has nothing
    // there, a long one, to tell a stream that stopped hours or days ago from one never seen.
    const database = config.clickhouse.hot.database;
    for (const r of await newestPerInstrument(hot, database, dataType, now - 2 * staleThresholdMs(dataType))) newest.set(key(r.venue, dataType, r.instrument), r.newest);
    if (streams.every((s) => s.dataType !== dataType || newest.has(key(s.venue, dataType, s.instrument)))) continue;
    for (const r of await newestPerInstrument(hot, database, dataType, now - STOPPED_LOOKBACK_MS)) {
      if (!newest.has(key(r.venue, dataType, r.instrument))) newest.set(key(r.venue, dataType, r.instrument), r.newest);
    }
  }
  const out: StoppedStream[] = [];
  for (const s of streams) {
    const threshold = staleThresholdMs(s.dataType);
    const t = newest.get(key(s.venue, s.dataType, s.instrument)) ?? null;
    if (t !== null && now - t < threshold) continue;
    out.push({ venue: s.venue, dataType: s.dataType, instrument: s.instrument, newest: t === null ? null : iso(t), thresholdSeconds: threshold / 1000 });
  }
  return out;
}
