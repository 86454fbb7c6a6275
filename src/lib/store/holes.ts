import type { DataType, Venue } from '../config/schema.js';
import type { HoleCause, HoleExtent, HoleState, MarketType, StreamHoleRecord } from '../records.js';
import { selectRows, type ClickHouseClient } from './client.js';
import { qualified, str, uint } from './sql.js';
import { tableFor } from './tables.js';
import { insertRecords } from './writer.js';

/** A hole as its newest state row says. */
export interface Hole extends HoleExtent {
  holeId: string;
  venue: Venue;
  marketType: MarketType;
  symbol: string;
  instrument: string;
  dataType: DataType;
  state: HoleState;
  /** When the hole was first recorded, and when its state last changed; epoch ms. */
  recordedAt: number;
  updatedAt: number;
}

/** Later states win a tie in time: a hole repaired in the millisecond it was found is repaired. */
const STATE_RANK = `multiIf(state = 'open', 0, state = 'unrepairable', 1, 2)`;

/**
 * Every hole still open, and every hole whose state changed at or after `changedSince`. A hole's
 * state is its newest row's (rows are immutable, one per state reached).
 */
export async function listHoles(client: ClickHouseClient, database: string, opts: { changedSince: number }): Promise<Hole[]> {
  const table = qualified(database, tableFor('stream_hole').table);
  const rows = await selectRows<Record<string, string>>(
    client,
    [
      'SELECT hole_id, any(venue) AS venue, any(market_type) AS market_type, any(symbol) AS symbol, any(instrument) AS instrument,',
      'any(data_type) AS data_type, any(from_time) AS from_time, any(to_time) AS to_time, any(first_missing_id) AS first_missing_id,',
      'any(last_missing_id) AS last_missing_id, any(missing_count) AS missing_count, any(cause) AS cause,',
      // Newest row by time, then state rank: one number as the key (18.16 cannot compare tuples in argMax).
      `argMax(state, event_time * 4 + ${STATE_RANK}) AS current_state, argMax(detail, event_time * 4 + ${STATE_RANK}) AS current_detail,`,
      'min(event_time) AS recorded_at, max(event_time) AS updated_at',
      `FROM ${table} GROUP BY hole_id`,
      `HAVING current_state = 'open' OR updated_at >= ${uint(opts.changedSince)}`,
      'ORDER BY from_time, hole_id',
    ].join('\n'),
  );
  return rows.map((r) => ({
    holeId: r.hole_id as string,
    venue: r.venue as Venue,
    marketType: r.market_type as MarketType,
    symbol: r.symbol as string,
    instrument: r.instrument as string,
    dataType: r.data_type as DataType,
    fromTime: Number(r.from_time),
    toTime: Number(r.to_time),
    firstMissingId: r.first_missing_id === '' ? null : (r.first_missing_id as string),
    lastMissingId: r.last_missing_id === '' ? null : (r.last_missing_id as string),
    missingCount: Number(r.missing_count) < 0 ? null : Number(r.missing_count),
    cause: r.cause as HoleCause,
    state: r.current_state as HoleState,
    detail: r.current_detail as string,
    recordedAt: Number(r.recorded_at),
    updatedAt: Number(r.updated_at),
  }));
}

/** The row recording that `hole` reached `state` at `now`. */
export function holeStateRecord(hole: Hole, state: HoleState, detail: string, now: number): StreamHoleRecord {
  return {
    dataType: 'stream_hole',
    venue: hole.venue,
    marketType: hole.marketType,
    symbol: hole.symbol,
    instrument: hole.instrument,
    eventTime: now,
    receiveTime: now,
    holeDataType: hole.dataType,
    holeId: hole.holeId,
    fromTime: hole.fromTime,
    toTime: hole.toTime,
    firstMissingId: hole.firstMissingId,
    lastMissingId: hole.lastMissingId,
    missingCount: hole.missingCount,
    cause: hole.cause,
    state,
    detail,
  };
}

/** Records new hole states (and holes found by a scan) in hot; a state already recorded is not repeated. */
export async function recordHoleStates(client: ClickHouseClient, database: string, records: readonly StreamHoleRecord[]): Promise<void> {
  if (records.length > 0) await insertRecords(client, database, records, { skipExisting: true });
}

/** Newest event time per venue and instrument of one data type since `since`. */
export async function newestPerInstrument(
  client: ClickHouseClient,
  database: string,
  dataType: DataType,
  since: number,
): Promise<{ venue: string; instrument: string; newest: number }[]> {
  const table = qualified(database, tableFor(dataType).table);
  const rows = await selectRows<{ venue: string; instrument: string; newest: string }>(
    client,
    `SELECT venue, instrument, max(event_time) AS newest FROM ${table} WHERE event_time >= ${uint(since)} GROUP BY venue, instrument`,
  );
  return rows.map((r) => ({ venue: r.venue, instrument: r.instrument, newest: Number(r.newest) }));
}

/**
 * Trade ids as numbers: toUInt64OrZero, since 18.16 fails plain toUInt64 on a String column once a
 * condition on it is moved to PREWHERE ("Value of type String in memory is not of fixed size").
 */

/** One instrument's trades in one time bucket, by id: enough to tell whether its ids have holes. */
export interface TradeIdSpan {
  venue: string;
  marketType: string;
  symbol: string;
  instrument: string;
  /** Bucket start and end, epoch ms. */
  start: number;
  end: number;
  minId: string;
  maxId: string;
  distinctIds: number;
  /** Event times of the bucket's first and last trade. */
  minTime: number;
  maxTime: number;
}

/**
 * Per instrument of `venue` and bucket of `bucketMs` in [start, end): the smallest and largest
 * trade id and how many distinct ids there are. Where ids are contiguous, max - min + 1 > distinct
 * means a hole inside the bucket, and a next bucket's min above this one's max + 1 a hole between:
 * only those buckets' ids need reading, however long the range.
 */
export async function tradeIdSpans(
  client: ClickHouseClient,
  database: string,
  venue: Venue,
  range: { start: number; end: number },
  bucketMs: number,
): Promise<TradeIdSpan[]> {
  const table = qualified(database, tableFor('trade').table);
  const rows = await selectRows<{ market_type: string; symbol: string; instrument: string; bucket: string; min_id: string; max_id: string; n: string; min_t: string; max_t: string }>(
    client,
    [
      `SELECT any(market_type) AS market_type, symbol, instrument, intDiv(event_time, ${uint(bucketMs)}) * ${uint(bucketMs)} AS bucket,`,
      'toString(min(toUInt64OrZero(trade_id))) AS min_id, toString(max(toUInt64OrZero(trade_id))) AS max_id, uniqExact(trade_id) AS n,',
      'min(event_time) AS min_t, max(event_time) AS max_t',
      `FROM ${table} WHERE venue = ${str(venue)} AND event_time >= ${uint(range.start)} AND event_time < ${uint(range.end)}`,
      'GROUP BY symbol, instrument, bucket ORDER BY instrument, bucket',
    ].join('\n'),
  );
  return rows.map((r) => ({
    venue,
    marketType: r.market_type,
    symbol: r.symbol,
    instrument: r.instrument,
    start: Math.max(range.start, Number(r.bucket)),
    end: Math.min(range.end, Number(r.bucket) + bucketMs),
    minId: r.min_id,
    maxId: r.max_id,
    distinctIds: Number(r.n),
    minTime: Number(r.min_t),
    maxTime: Number(r.max_t),
  }));
}

/** A run of missing trade ids, with the event times of the trades on either side. */
export interface TradeIdGap {
  firstMissingId: string;
  lastMissingId: string;
  missing: number;
  fromTime: number;
  toTime: number;
}

/** Where one instrument's contiguous trade ids jump within [start, end): read in order, compared in the process. */
export async function tradeIdGaps(
  client: ClickHouseClient,
  database: string,
  stream: { venue: Venue; instrument: string },
  range: { start: number; end: number },
): Promise<TradeIdGap[]> {
  const table = qualified(database, tableFor('trade').table);
  const rows = await selectRows<{ id: string; t: string }>(
    client,
    [
      'SELECT toString(toUInt64OrZero(trade_id)) AS id, any(event_time) AS t',
      `FROM ${table} WHERE venue = ${str(stream.venue)} AND instrument = ${str(stream.instrument)}`,
      `AND event_time >= ${uint(range.start)} AND event_time < ${uint(range.end)}`,
      'GROUP BY trade_id ORDER BY toUInt64OrZero(trade_id)',
    ].join('\n'),
  );
  const gaps: TradeIdGap[] = [];
  for (let i = 1; i < rows.length; i++) {
    const prev = rows[i - 1] as { id: string; t: string };
    const cur = rows[i] as { id: string; t: string };
    const missing = BigInt(cur.id) - BigInt(prev.id) - 1n;
    if (missing <= 0n) continue;
    gaps.push({
      firstMissingId: String(BigInt(prev.id) + 1n),
      lastMissingId: String(BigInt(cur.id) - 1n),
      missing: Number(missing),
      fromTime: Number(prev.t),
      toTime: Number(cur.t),
    });
  }
  return gaps;
}

/**
 * The trade ids stored on either side of [fromTime, toTime] for one instrument: the newest at or
 * before `fromTime` and the oldest at or after `toTime`. A hole recorded by time alone gets its
 * ids from them (venues whose history pages by id need a first id).
 */
export async function tradeIdsAround(
  client: ClickHouseClient,
  database: string,
  stream: { venue: Venue; instrument: string },
  fromTime: number,
  toTime: number,
): Promise<{ before: string | null; after: string | null }> {
  const table = qualified(database, tableFor('trade').table);
  const where = `venue = ${str(stream.venue)} AND instrument = ${str(stream.instrument)}`;
  // Bounded look-back and look-ahead: the primary key (time first) keeps both reads small.
  const [row] = await selectRows<{ before: string; after: string }>(
    client,
    [
      `SELECT (SELECT toString(max(toUInt64OrZero(trade_id))) FROM ${table} WHERE ${where} AND event_time <= ${uint(fromTime)} AND event_time >= ${uint(Math.max(0, fromTime - 3_600_000))}) AS before,`,
      `(SELECT toString(min(toUInt64OrZero(trade_id))) FROM ${table} WHERE ${where} AND event_time >= ${uint(toTime)} AND event_time <= ${uint(toTime + 3_600_000)}) AS after`,
    ].join('\n'),
  );
  // An aggregate over no rows is 0 on every version.
  const id = (v: string | undefined) => (v === undefined || v === '0' ? null : v);
  return { before: id(row?.before), after: id(row?.after) };
}
