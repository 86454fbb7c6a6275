import { Readable } from 'node:stream';
import type { MarketRecord, PriceLevel, RecordBase } from '../records.js';
import { selectRows, type ClickHouseClient } from './client.js';
import { formatDecimal, InvalidValueError } from './decimal.js';
import { ident, qualified, str, uint } from './sql.js';
import { TABLES, type ColumnSpec, type TableSpec } from './tables.js';

type RecordOf<K extends MarketRecord['dataType']> = Extract<MarketRecord, { dataType: K }>;

/** Where a column's value comes from in a record (not validated yet: records come off the bus). */
type Source<R> = (r: R) => unknown;

/** Columns of RecordBase, in every table. */
const BASE_SOURCES: Readonly<Record<string, Source<RecordBase>>> = {
  venue: (r) => r.venue,
  market_type: (r) => r.marketType,
  symbol: (r) => r.symbol,
  instrument: (r) => r.instrument,
  event_time: (r) => r.eventTime,
  receive_time: (r) => r.receiveTime,
};

/**
 * Each table's own columns, one entry per record type in MarketRecord. Adding a record type to the
 * union makes this object fail to compile until its columns are added; a column of the table spec
 * with no source here fails at start (see RowEncoder).
 */
const SOURCES: { [K in MarketRecord['dataType']]: Readonly<Record<string, Source<RecordOf<K>>>> } = {
  trade: { trade_id: (r) => r.tradeId, price: (r) => r.price, quantity: (r) => r.quantity, side: (r) => r.side },
  orderbook: {
    last_update_id: (r) => r.lastUpdateId,
    best_bid_price: (r) => r.bestBidPrice,
    best_ask_price: (r) => r.bestAskPrice,
    bid_prices: (r) => levelsColumn(r.bids, 0),
    bid_quantities: (r) => levelsColumn(r.bids, 1),
    ask_prices: (r) => levelsColumn(r.asks, 0),
    ask_quantities: (r) => levelsColumn(r.asks, 1),
  },
  funding_rate: { funding_rate: (r) => r.fundingRate, next_funding_time: (r) => r.nextFundingTime, mark_price: (r) => r.markPrice },
  open_interest: { open_interest: (r) => r.openInterest, open_interest_value: (r) => r.openInterestValue },
  liquidation: { liquidation_id: (r) => r.liquidationId, side: (r) => r.side, price: (r) => r.price, quantity: (r) => r.quantity },
  lsr_top_position: {
    period: (r) => r.period,
    long_short_ratio: (r) => r.longShortRatio,
    long_position_pct: (r) => r.longPositionPct,
    short_position_pct: (r) => r.shortPositionPct,
  },
  lsr_all_account: {
    period: (r) => r.period,
    long_short_ratio: (r) => r.longShortRatio,
    long_account_pct: (r) => r.longAccountPct,
    short_account_pct: (r) => r.shortAccountPct,
  },
  volatility_index: { resolution: (r) => r.resolution, index_value: (r) => r.indexValue },
  orderbook_gap: { last_update_id: (r) => r.lastUpdateId, reason: (r) => r.reason, detail: (r) => r.detail },
  stream_hole: {
    hole_id: (r) => r.holeId,
    state: (r) => r.state,
    data_type: (r) => r.holeDataType,
    from_time: (r) => r.fromTime,
    to_time: (r) => r.toTime,
    first_missing_id: (r) => r.firstMissingId ?? '',
    last_missing_id: (r) => r.lastMissingId ?? '',
    missing_count: (r) => r.missingCount ?? -1,
    cause: (r) => r.cause,
    detail: (r) => r.detail,
  },
};

/** Parallel-array column of a side's levels; a level that is not a pair surfaces as a missing value. */
function levelsColumn(levels: readonly PriceLevel[], index: 0 | 1): string[] {
  if (!Array.isArray(levels)) throw new InvalidValueError('orderbook side is not an array');
  return levels.map((l) => {
    const v: unknown = Array.isArray(l) ? l[index] : undefined;
    if (typeof v !== 'string') throw new InvalidValueError(`orderbook level is not a [price, quantity] pair of strings: ${JSON.stringify(l)}`);
    return v;
  });
}

/**
 * Key columns that name a row's stream, in every table's key (tables.ts). The key check asks for
 * the batch's streams only: a refill of one stream must not read back every other stream's rows
 * of the same seconds (at tens of thousands of trades a second, hundreds of thousands of rows).
 */
const STREAM_COLUMNS = ['venue', 'symbol'] as const;

/**
 * Rows go to ClickHouse as TabSeparated: a line of cells in the table's column order (the insert
 * names the columns), no field names. 18.16 parsed it in about two thirds of the server CPU
 * JSONEachRow took (1.7 against 2.65 µs a trade, inserts of 20,000 trades), and it is shorter to write.
 */
const INSERT_FORMAT = 'TabSeparated';

/** Characters a TabSeparated string cell escapes (ClickHouse reads each back). */
const TSV_SPECIAL = /[\\\t\n\r\0\b\f]/;
const TSV_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0', '\b': '\\b', '\f': '\\f' };

/** A string as a TabSeparated cell: a raw tab or newline never occurs in one. */
export function tsvString(value: string): string {
  return TSV_SPECIAL.test(value) ? value.replace(/[\\\t\n\r\0\b\f]/g, (c) => TSV_ESCAPES[c] as string) : value;
}

/** A column's value -> its TabSeparated text; throws InvalidValueError when the value does not fit the column. */
type CellEncoder = (value: unknown) => string;

function cellEncoder(column: ColumnSpec): CellEncoder {
  const where = `column ${column.name}`;
  const missing = () => new InvalidValueError(`${where}: missing`);
  const type = column.type;
  switch (type.kind) {
    case 'timeMs':
    case 'uint64':
      return (value) => {
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
          throw value === undefined ? missing() : new InvalidValueError(`${where}: not an unsigned integer: ${JSON.stringify(value)}`);
        }
        return String(value);
      };
    case 'int64':
      return (value) => {
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw value === undefined ? missing() : new InvalidValueError(`${where}: not an integer: ${JSON.stringify(value)}`);
        return String(value);
      };
    case 'label':
    case 'text':
      return (value) => {
        if (typeof value !== 'string') throw value === undefined ? missing() : new InvalidValueError(`${where}: not a string: ${JSON.stringify(value)}`);
        return tsvString(value);
      };
    case 'decimal': {
      const { precision, scale, nullable } = type;
      return (value) => {
        if (typeof value === 'string') return formatDecimal(value, precision, scale);
        if (value === null && nullable) return '\\N';
        throw value === undefined ? missing() : new InvalidValueError(`${where}: not a decimal string: ${JSON.stringify(value)}`);
      };
    }
    case 'decimalArray': {
      const { precision, scale } = type;
      return (value) => {
        if (!Array.isArray(value)) throw value === undefined ? missing() : new InvalidValueError(`${where}: not an array: ${JSON.stringify(value)}`);
        let text = '[';
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          if (typeof v !== 'string') throw new InvalidValueError(`${where}: not a decimal string: ${JSON.stringify(v)}`);
          text += (i === 0 ? '' : ',') + formatDecimal(v, precision, scale);
        }
        return `${text}]`;
      };
    }
  }
}

/**
 * A key cell as the key check compares it: the cell's TabSeparated text, which storage has in hand
 * anyway. Key columns are integers or strings; a stored row's come back as strings (ClickHouse
 * quotes UInt64 in JSON), so they are re-encoded by kind here to match.
 */
function storedKeyCell(column: ColumnSpec): (value: unknown) => string {
  switch (column.type.kind) {
    case 'timeMs':
    case 'uint64':
    case 'int64':
      return (value) => String(value);
    case 'label':
    case 'text':
      return (value) => tsvString(String(value));
    default:
      throw new RangeError(`key column ${column.name} is of kind ${column.type.kind}: only integers and strings can be compared as text`);
  }
}

/**
 * Encoded rows of one table, in arrival order: the TabSeparated line of each, its key as comparable
 * text (the key cells' text joined by tabs, which no cell holds raw) and its event time (what the
 * key check asks the server for). Parallel arrays, not an object per row: storage holds thousands
 * of rows per batch, and fewer, flat objects are what keeps its garbage collection cheap.
 */
export class TableRows {
  readonly lines: string[] = [];
  readonly keys: string[] = [];
  readonly times: number[] = [];
  /** The streams the rows are of, each once: their stream cells' text -> the stream columns' values (see RowEncoder). */
  readonly streams = new Map<string, readonly string[]>();
  constructor(readonly encoder: RowEncoder) {}
  get spec(): TableSpec {
    return this.encoder.spec;
  }
  get size(): number {
    return this.lines.length;
  }
  /** Encodes one record of this table and adds its row; throws InvalidValueError (and adds nothing) when it cannot be one. */
  add(record: object): void {
    this.encoder.encode(record, this);
  }
}

/**
 * Record -> row of one table, made once per table: the column sources and cell encoders are looked
 * up when it is built, not per row.
 */
export class RowEncoder {
  private readonly sources: Source<object>[];
  private readonly cells: CellEncoder[];
  /** A row's cells, in column order: joined by tabs into its line at once. */
  private readonly parts: string[];
  /** Column indexes of the key columns, in column order; their cells joined make the key. */
  private readonly keyColumns: number[];
  private readonly keyParts: string[];
  private readonly timeColumn: number;
  private readonly storedKeyCells: { name: string; encode: (value: unknown) => string }[];
  /** Column indexes of the stream columns (STREAM_COLUMNS in the key), whose cells name a row's stream. */
  private readonly streamColumns: number[];

  constructor(readonly spec: TableSpec) {
    const own = SOURCES[spec.dataType as MarketRecord['dataType']] as Readonly<Record<string, Source<object>>> | undefined;
    this.sources = spec.columns.map((c) => {
      const source = BASE_SOURCES[c.name] ?? own?.[c.name];
      if (source === undefined) throw new RangeError(`no source for column ${spec.table}.${c.name}`);
      return source as Source<object>;
    });
    this.cells = spec.columns.map(cellEncoder);
    this.parts = spec.columns.map(() => '');
    this.keyColumns = spec.columns.flatMap((c, i) => (spec.key.includes(c.name) ? [i] : []));
    this.keyParts = this.keyColumns.map(() => '');
    this.timeColumn = spec.columns.findIndex((c) => c.name === spec.timeColumn);
    this.streamColumns = STREAM_COLUMNS.map((name) => {
      const i = spec.columns.findIndex((c) => c.name === name);
      const kind = spec.columns[i]?.type.kind;
      if (!spec.key.includes(name) || (kind !== 'label' && kind !== 'text')) throw new RangeError(`${spec.table}.${name} is not a string column of the key`);
      return i;
    });
    this.storedKeyCells = this.keyColumns.map((i) => {
      const column = spec.columns[i] as ColumnSpec;
      return { name: column.name, encode: storedKeyCell(column) };
    });
  }

  /** Appends the record's row to `out`; throws InvalidValueError, appending nothing, when it cannot be a row. */
  encode(record: object, out: TableRows): void {
    const { sources, cells, parts } = this;
    for (let i = 0; i < cells.length; i++) parts[i] = (cells[i] as CellEncoder)((sources[i] as Source<object>)(record));
    for (let k = 0; k < this.keyColumns.length; k++) this.keyParts[k] = parts[this.keyColumns[k] as number] as string;
    out.lines.push(parts.join('\t'));
    out.keys.push(this.keyParts.join('\t'));
    let stream = '';
    for (let k = 0; k < this.streamColumns.length; k++) stream += (k === 0 ? '' : '\t') + (parts[this.streamColumns[k] as number] as string);
    if (!out.streams.has(stream)) out.streams.set(stream, this.streamColumns.map((i) => (sources[i] as Source<object>)(record) as string));
    out.times.push((sources[this.timeColumn] as Source<object>)(record) as number);
  }

  /** The key of a row as the server returns it (JSONEachRow of the key columns). */
  storedKey(row: Readonly<Record<string, unknown>>): string {
    let key = '';
    for (let k = 0; k < this.storedKeyCells.length; k++) {
      const cell = this.storedKeyCells[k] as { name: string; encode: (value: unknown) => string };
      key += (k === 0 ? '' : '\t') + cell.encode(row[cell.name]);
    }
    return key;
  }
}

const ENCODERS = new Map<unknown, RowEncoder>(TABLES.map((spec) => [spec.dataType, new RowEncoder(spec)]));

/** The encoder of a record's table; throws InvalidValueError for what is not a record of a known type. */
export function encoderFor(record: unknown): RowEncoder {
  // Data reaches here from the bus, where any subject of the streams may carry any payload.
  const dataType = typeof record === 'object' && record !== null ? (record as { dataType?: unknown }).dataType : undefined;
  const encoder = ENCODERS.get(dataType);
  if (encoder === undefined) {
    const what = record === null ? 'null' : Array.isArray(record) ? 'an array' : typeof record;
    throw new InvalidValueError(what === 'object' ? `no table mapping for data type ${JSON.stringify(dataType)}` : `not a record: ${what}`);
  }
  return encoder;
}

/**
 * Rows of any tables, grouped by table in arrival order: what storage inserts per batch. Each
 * delivered record is encoded once, as it arrives; the key dedupe, the key check and the insert
 * body all reuse the result.
 */
export class RowBatch {
  private readonly tables = new Map<RowEncoder, TableRows>();
  /** The table of the record added last: a message's records are all of one subject, so nearly always the next one's too. */
  private last: TableRows | null = null;
  private rows = 0;

  /** Encodes a record (from the bus: any value) and adds its row; throws InvalidValueError, adding nothing, when it cannot be one. */
  add(record: unknown): void {
    const encoder = encoderFor(record);
    let table = this.last;
    if (table === null || table.encoder !== encoder) {
      table = this.tables.get(encoder) ?? null;
      if (table === null) this.tables.set(encoder, (table = new TableRows(encoder)));
      this.last = table;
    }
    table.add(record as object);
    this.rows++;
  }

  get size(): number {
    return this.rows;
  }

  byTable(): IterableIterator<TableRows> {
    return this.tables.values();
  }
}

/** A batch of the records, encoded; throws InvalidValueError at the first that cannot be a row. */
export function batchOf(records: readonly unknown[]): RowBatch {
  const batch = new RowBatch();
  for (const r of records) batch.add(r);
  return batch;
}

/**
 * Times closer than this join one range of the key check. A batch's event times are dense (at
 * 50,000 trades/s a batch of 20,000 spans about 400 ms, nearly every millisecond of it), so they
 * make one range or a few; the rows stored inside a range's gaps that come back with it match no key.
 */
const RANGE_JOIN_MS = 10;
/** Time ranges per query: keeps a sparse batch's query (a refill's records hours apart) far below max_query_size. */
const RANGES_PER_QUERY = 200;
/** Above this many streams in a batch the check asks for all of them (the ranges still bound it). */
const MAX_STREAMS_IN_QUERY = 1000;

/**
 * Keys already stored among `rows`: every stored row of their streams within the ranges their
 * event times make. The key starts with the time column, so the primary key index finds those
 * granules. The ranges replace a list of every distinct time (`IN (...)`), which 18.16 took longer
 * to parse and set up than to insert the batch itself: 58 against 28 ms per batch of 5000
 * (`npm run bench -- storage`).
 */
async function existingKeys(client: ClickHouseClient, database: string, rows: TableRows): Promise<Set<string>> {
  const { spec, encoder } = rows;
  const found = new Set<string>();
  const time = ident(spec.timeColumn);
  const ranges = timeRanges(distinctSorted(rows.times), RANGE_JOIN_MS);
  const streams =
    rows.streams.size > MAX_STREAMS_IN_QUERY
      ? ''
      : `AND (${STREAM_COLUMNS.map(ident).join(', ')}) IN (${[...rows.streams.values()].map((values) => `(${values.map(str).join(', ')})`).join(', ')})`;
  for (let i = 0; i < ranges.length; i += RANGES_PER_QUERY) {
    const chunk = ranges.slice(i, i + RANGES_PER_QUERY);
    const query = [
      `SELECT ${spec.key.map(ident).join(', ')} FROM ${qualified(database, spec.table)}`,
      `WHERE (${chunk.map(([from, to]) => (from === to ? `${time} = ${uint(from)}` : `(${time} >= ${uint(from)} AND ${time} <= ${uint(to)})`)).join(' OR ')})`,
      streams,
    ].join('\n');
    for (const r of await selectRows<Record<string, unknown>>(client, query)) found.add(encoder.storedKey(r));
  }
  return found;
}

/** Ascending distinct times as [from, to] ranges (inclusive); times at most joinMs apart share one. */
export function timeRanges(sortedTimes: readonly number[], joinMs: number): [number, number][] {
  const ranges: [number, number][] = [];
  let current: [number, number] | null = null;
  for (const t of sortedTimes) {
    if (current !== null && t - current[1] <= joinMs) current[1] = t;
    else ranges.push((current = [t, t]));
  }
  return ranges;
}

/** The distinct values, ascending. */
export function distinctSorted(values: readonly number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  const out: number[] = [];
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) out.push(sorted[i] as number);
  return out;
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
  return insertRows(client, database, batchOf(records), opts);
}

/**
 * insertRecords for rows encoded already (storage encodes each record as it is delivered). Each
 * table's rows go as one request, its body the rows' lines in chunks (see insertBody): the client
 * encodes no row.
 */
export async function insertRows(
  client: ClickHouseClient,
  database: string,
  batch: RowBatch,
  opts: { skipExisting: boolean },
): Promise<{ inserted: number; skipped: number }> {
  let inserted = 0;
  let skipped = 0;
  for (const rows of batch.byTable()) {
    if (rows.size === 0) continue;
    const stored = opts.skipExisting ? await existingKeys(client, database, rows) : NONE_STORED;
    const insert = insertBody(rows, stored);
    skipped += insert.skipped;
    if (insert.chunks.length === 0) continue;
    await client.insert({
      table: qualified(database, rows.spec.table),
      // Not in object mode: the client passes a TabSeparated stream's text on as it is.
      values: Readable.from(insert.chunks.map((chunk) => `${chunk}\n`), { objectMode: false }),
      format: INSERT_FORMAT,
      columns: rows.spec.columns.map((c) => c.name) as [string, ...string[]],
    });
    inserted += insert.inserted;
  }
  return { inserted, skipped };
}

const NONE_STORED: ReadonlySet<string> = new Set();

/**
 * Characters per chunk of an insert body, at most (a single longer line is a chunk of its own).
 * Below V8's large-object size (128 KiB): a larger string goes to fresh pages of its own, and
 * building one of the megabyte a batch holds took 20 to 40 times as long per byte as building it in
 * chunks this size (measured with node 20 on the 2-core development machine).
 */
export const BODY_CHUNK_CHARS = 64 * 1024;

/**
 * What an insert of `rows` sends: their lines, in chunks of whole lines joined by newlines (no
 * chunk when none is left), and how many rows it leaves out: a row whose key came earlier in
 * `rows`, or whose key is among `stored`. Usually none is.
 */
export function insertBody(rows: TableRows, stored: ReadonlySet<string>): { chunks: string[]; inserted: number; skipped: number } {
  const { lines, keys } = rows;
  const chunks: string[] = [];
  let parts: string[] = [];
  let chars = 0;
  let skipped = 0;
  const seen = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (seen.has(key) || stored.has(key)) {
      skipped++;
      continue;
    }
    seen.add(key);
    const line = lines[i] as string;
    if (parts.length > 0 && chars + line.length > BODY_CHUNK_CHARS) {
      chunks.push(parts.join('\n'));
      parts = [];
      chars = 0;
    }
    parts.push(line);
    chars += line.length + 1;
  }
  if (parts.length > 0) chunks.push(parts.join('\n'));
  return { chunks, inserted: lines.length - skipped, skipped };
}

/**
 * The records whose rows are not in their tables (yet): what a refill still waits for. Rows are
 * matched by key, so a record stored earlier by the live feed counts as present.
 */
export async function missingRecords<R extends MarketRecord>(client: ClickHouseClient, database: string, records: readonly R[]): Promise<R[]> {
  const byTable = new Map<RowEncoder, { rows: TableRows; records: R[] }>();
  for (const record of records) {
    const encoder = encoderFor(record);
    let group = byTable.get(encoder);
    if (!group) byTable.set(encoder, (group = { rows: new TableRows(encoder), records: [] }));
    group.rows.add(record);
    group.records.push(record);
  }
  const missing: R[] = [];
  for (const { rows, records: list } of byTable.values()) {
    const stored = await existingKeys(client, database, rows);
    list.forEach((record, i) => {
      if (!stored.has(rows.keys[i] as string)) missing.push(record);
    });
  }
  return missing;
}
