import type { MarketRecord, PriceLevel, RecordBase } from '../records.js';
import { EncodedRow, selectRows, type ClickHouseClient } from './client.js';
import { formatDecimal, InvalidValueError } from './decimal.js';
import { ident, qualified, uint } from './sql.js';
import { tableFor, type ColumnSpec, type TableSpec } from './tables.js';

/** A row as the table spec's column names to plain values; encodeRow turns it into JSONEachRow text. */
export type Cell = string | number | null | readonly string[];
export type Row = Readonly<Record<string, Cell>>;

type RecordOf<K extends MarketRecord['dataType']> = Extract<MarketRecord, { dataType: K }>;

/**
 * Record -> the columns of its own type (recordToRow adds the common ones), one entry per record type
 * in MarketRecord. Adding a record type to the union makes this object fail to compile until its
 * mapping is added; the table spec already has the columns.
 */
const ROW_MAPPERS: { [K in MarketRecord['dataType']]: (r: RecordOf<K>) => Record<string, Cell> } = {
  trade: (r) => ({ trade_id: r.tradeId, price: r.price, quantity: r.quantity, side: r.side }),
  orderbook: (r) => ({
    last_update_id: r.lastUpdateId,
    best_bid_price: r.bestBidPrice,
    best_ask_price: r.bestAskPrice,
    bid_prices: levelsColumn(r.bids, 0),
    bid_quantities: levelsColumn(r.bids, 1),
    ask_prices: levelsColumn(r.asks, 0),
    ask_quantities: levelsColumn(r.asks, 1),
  }),
  funding_rate: (r) => ({ funding_rate: r.fundingRate, next_funding_time: r.nextFundingTime, mark_price: r.markPrice }),
  open_interest: (r) => ({ open_interest: r.openInterest, open_interest_value: r.openInterestValue }),
  liquidation: (r) => ({ liquidation_id: r.liquidationId, side: r.side, price: r.price, quantity: r.quantity }),
  lsr_top_position: (r) => ({
    period: r.period,
    long_short_ratio: r.longShortRatio,
    long_position_pct: r.longPositionPct,
    short_position_pct: r.shortPositionPct,
  }),
  lsr_all_account: (r) => ({
    period: r.period,
    long_short_ratio: r.longShortRatio,
    long_account_pct: r.longAccountPct,
    short_account_pct: r.shortAccountPct,
  }),
  volatility_index: (r) => ({ resolution: r.resolution, index_value: r.indexValue }),
  orderbook_gap: (r) => ({ last_update_id: r.lastUpdateId, reason: r.reason, detail: r.detail }),
  stream_hole: (r) => ({
    hole_id: r.holeId,
    state: r.state,
    data_type: r.holeDataType,
    from_time: r.fromTime,
    to_time: r.toTime,
    first_missing_id: r.firstMissingId ?? '',
    last_missing_id: r.lastMissingId ?? '',
    missing_count: r.missingCount ?? -1,
    cause: r.cause,
    detail: r.detail,
  }),
};

function baseRow(r: RecordBase): Record<string, Cell> {
  return {
    venue: r.venue,
    market_type: r.marketType,
    symbol: r.symbol,
    instrument: r.instrument,
    event_time: r.eventTime,
    receive_time: r.receiveTime,
  };
}

/** Parallel-array column of a side's levels; a level that is not a pair surfaces as a missing value. */
function levelsColumn(levels: readonly PriceLevel[], index: 0 | 1): string[] {
  if (!Array.isArray(levels)) throw new InvalidValueError('orderbook side is not an array');
  return levels.map((l) => {
    const v: unknown = Array.isArray(l) ? l[index] : undefined;
    if (typeof v !== 'string') throw new InvalidValueError(`orderbook level is not a [price, quantity] pair of strings: ${JSON.stringify(l)}`);
    return v;
  });
}

export function recordToRow(record: MarketRecord): Row {
  const mapper = ROW_MAPPERS[record.dataType] as ((r: MarketRecord) => Record<string, Cell>) | undefined;
  // Data reaches here from the bus, where any subject of the streams may carry any payload.
  if (mapper === undefined) throw new InvalidValueError(`no table mapping for data type ${JSON.stringify(record.dataType)}`);
  // Assigned, not spread: `{ ...base, ... }` cost about 4 µs a row here (measured), twice the rest of prepareRow.
  return Object.assign(baseRow(record), mapper(record));
}

/**
 * A record made ready for its table once: validated and encoded. Storage prepares each delivered
 * record as it arrives (a record that cannot be prepared is invalid), and the insert, the
 * duplicate check and the key dedupe all reuse the result.
 */
export interface PreparedRow {
  readonly spec: TableSpec;
  /** Identity as comparable text (see keyOf). */
  readonly key: string;
  /** The time column's value: what the duplicate check asks the server for. */
  readonly time: number;
  /** The JSONEachRow line. */
  readonly line: string;
}

/** Throws InvalidValueError when the record cannot become a row of its table. */
export function prepareRow(record: MarketRecord): PreparedRow {
  const spec = tableFor(record.dataType);
  const row = recordToRow(record);
  return { spec, key: keyOf(spec, row), time: row[spec.timeColumn] as number, line: encodeRow(spec, row) };
}

function encodeCell(column: ColumnSpec, value: Cell | undefined): string {
  const where = `column ${column.name}`;
  if (value === undefined) throw new InvalidValueError(`${where}: missing`);
  const type = column.type;
  switch (type.kind) {
    case 'timeMs':
    case 'uint64':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new InvalidValueError(`${where}: not an unsigned integer: ${JSON.stringify(value)}`);
      }
      return String(value);
    case 'int64':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new InvalidValueError(`${where}: not an integer: ${JSON.stringify(value)}`);
      return String(value);
    case 'label':
    case 'text':
      if (typeof value !== 'string') throw new InvalidValueError(`${where}: not a string: ${JSON.stringify(value)}`);
      return JSON.stringify(value);
    case 'decimal':
      if (value === null && type.nullable) return 'null';
      if (typeof value !== 'string') throw new InvalidValueError(`${where}: not a decimal string: ${JSON.stringify(value)}`);
      return formatDecimal(value, type.precision, type.scale);
    case 'decimalArray':
      if (!Array.isArray(value)) throw new InvalidValueError(`${where}: not an array: ${JSON.stringify(value)}`);
      return `[${(value as readonly unknown[])
        .map((v) => {
          if (typeof v !== 'string') throw new InvalidValueError(`${where}: not a decimal string: ${JSON.stringify(v)}`);
          return formatDecimal(v, type.precision, type.scale);
        })
        .join(',')}]`;
  }
}

/** Per table, each column's `"name":` text, made once. */
const FIELD_PREFIXES = new WeakMap<TableSpec, readonly string[]>();

/** One JSONEachRow line (without newline), columns in spec order. */
export function encodeRow(spec: TableSpec, row: Row): string {
  let prefixes = FIELD_PREFIXES.get(spec);
  if (prefixes === undefined) FIELD_PREFIXES.set(spec, (prefixes = spec.columns.map((c) => `${JSON.stringify(c.name)}:`)));
  let line = '{';
  for (let i = 0; i < spec.columns.length; i++) {
    const c = spec.columns[i] as ColumnSpec;
    line += (i === 0 ? '' : ',') + (prefixes[i] as string) + encodeCell(c, row[c.name]);
  }
  return `${line}}`;
}

/** Identity of a row as comparable text: the key cells as strings (UInt64 comes back quoted from ClickHouse). */
function keyOf(spec: TableSpec, row: Readonly<Record<string, unknown>>): string {
  let key = '';
  for (const k of spec.key) key += `${JSON.stringify(String(row[k]))},`;
  return key;
}

/**
 * Event times per query. Plain numbers keep the query far below max_query_size (256 KiB by default
 * on every version), and the server parses them in a fraction of the time full key tuples took:
 * 10 ms against 27 ms per 500 rows on 18.16 (`npm run bench -- storage` measures the whole check).
 */
const EXISTING_TIMES_CHUNK = 2000;

/**
 * Keys already stored among `rows`: every stored row at one of their event times. The key starts
 * with the time column, so the primary key index finds those granules; the few other rows that share
 * a millisecond come back too, and simply match no key of the batch.
 */
async function existingKeys(client: ClickHouseClient, database: string, spec: TableSpec, rows: readonly PreparedRow[]): Promise<Set<string>> {
  const found = new Set<string>();
  const time = ident(spec.timeColumn);
  const times = [...new Set(rows.map((r) => r.time))].sort((a, b) => a - b);
  for (let i = 0; i < times.length; i += EXISTING_TIMES_CHUNK) {
    const chunk = times.slice(i, i + EXISTING_TIMES_CHUNK);
    const query = [
      `SELECT ${spec.key.map(ident).join(', ')} FROM ${qualified(database, spec.table)}`,
      `WHERE ${time} >= ${uint(chunk[0] as number)} AND ${time} <= ${uint(chunk.at(-1) as number)}`,
      `AND ${time} IN (${chunk.map(uint).join(', ')})`,
    ].join('\n');
    for (const r of await selectRows<Record<string, unknown>>(client, query)) found.add(keyOf(spec, r));
  }
  return found;
}

/**
 * Inserts records into their tables. Records repeated within the call are inserted once. With
 * skipExisting (JetStream re-deliveries), rows whose key is already stored are left out, so a crash
 * between insert and ack never duplicates rows; ReplacingMergeTree merges remain the second line of defence.
 * Every record is encoded before the server is asked anything: a malformed one fails the call without side effects.
 */
export async function insertRecords(
  client: ClickHouseClient,
  database: string,
  records: readonly MarketRecord[],
  opts: { skipExisting: boolean },
): Promise<{ inserted: number; skipped: number }> {
  return insertPrepared(client, database, records.map(prepareRow), opts);
}

/** insertRecords for rows prepared already (storage prepares each as it is delivered). */
export async function insertPrepared(
  client: ClickHouseClient,
  database: string,
  prepared: readonly PreparedRow[],
  opts: { skipExisting: boolean },
): Promise<{ inserted: number; skipped: number }> {
  const byTable = new Map<TableSpec, Map<string, PreparedRow>>();
  let skipped = 0;
  for (const row of prepared) {
    let rows = byTable.get(row.spec);
    if (!rows) byTable.set(row.spec, (rows = new Map()));
    if (rows.has(row.key)) skipped++;
    else rows.set(row.key, row);
  }
  let inserted = 0;
  for (const [spec, rowsByKey] of byTable) {
    let rows = [...rowsByKey.values()];
    if (opts.skipExisting) {
      const existing = await existingKeys(client, database, spec, rows);
      const before = rows.length;
      if (existing.size > 0) rows = rows.filter((r) => !existing.has(r.key));
      skipped += before - rows.length;
    }
    if (rows.length === 0) continue;
    await client.insert({
      table: qualified(database, spec.table),
      values: rows.map((r) => new EncodedRow(r.line)),
      format: 'JSONEachRow',
    });
    inserted += rows.length;
  }
  return { inserted, skipped };
}

/**
 * The records whose rows are not in their tables (yet): what a refill still waits for. Rows are
 * matched by key, so a record stored earlier by the live feed counts as present.
 */
export async function missingRecords<R extends MarketRecord>(client: ClickHouseClient, database: string, records: readonly R[]): Promise<R[]> {
  const byTable = new Map<TableSpec, { record: R; row: PreparedRow }[]>();
  for (const record of records) {
    const row = prepareRow(record);
    let list = byTable.get(row.spec);
    if (!list) byTable.set(row.spec, (list = []));
    list.push({ record, row });
  }
  const missing: R[] = [];
  for (const [spec, list] of byTable) {
    const stored = await existingKeys(client, database, spec, list.map((e) => e.row));
    for (const e of list) if (!stored.has(e.row.key)) missing.push(e.record);
  }
  return missing;
}
