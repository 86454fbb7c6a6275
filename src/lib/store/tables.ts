import type { ClickHouseServerConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { RecordKind } from '../records.js';
import { selectRows, type ClickHouseClient, type Dialect } from './client.js';
import { ident, qualified, str } from './sql.js';

/**
 * Column kinds, not ClickHouse types: each kind is rendered per server dialect, so hot and cold (possibly
 * different versions) always hold the same columns with the same values and replicate with remote().
 */
export type ColumnType =
  /** Epoch milliseconds. UInt64 everywhere: 18.16 has no DateTime64, and one numeric form keeps window queries identical on every version. */
  | { kind: 'timeMs' }
  /** Few distinct values (venue, symbol, side, period): LowCardinality where the server has it by default. */
  | { kind: 'label' }
  | { kind: 'text' }
  | { kind: 'uint64' }
  | { kind: 'int64' }
  | { kind: 'decimal'; precision: number; scale: number; nullable: boolean }
  | { kind: 'decimalArray'; precision: number; scale: number };

export interface ColumnSpec {
  name: string;
  type: ColumnType;
}

export interface TableSpec {
  table: string;
  dataType: RecordKind;
  columns: readonly ColumnSpec[];
  /** Event time (epoch ms): partitions, replication windows and freshness are all computed on it. */
  timeColumn: string;
  /**
   * Row identity, also the ORDER BY and so the ReplacingMergeTree merge key. It starts with the time column
   * so that window queries (replication, integrity) read only the granules of their window; since a
   * record's event time is part of its content, time + id identifies a row exactly as the id alone does.
   */
  key: readonly string[];
}

const PRICE = { kind: 'decimal', precision: 38, scale: 18, nullable: false } as const;
const OPTIONAL_PRICE = { ...PRICE, nullable: true } as const;
const PRICE_ARRAY = { kind: 'decimalArray', precision: 38, scale: 18 } as const;
const TIME = { kind: 'timeMs' } as const;
const LABEL = { kind: 'label' } as const;

const col = (name: string, type: ColumnType): ColumnSpec => ({ name, type });

/** Fields of RecordBase, in every table. */
const BASE_COLUMNS: readonly ColumnSpec[] = [
  col('venue', LABEL),
  col('market_type', LABEL),
  col('symbol', LABEL),
  col('instrument', LABEL),
  col('event_time', TIME),
  col('receive_time', TIME),
];

function spec(dataType: RecordKind, table: string, own: readonly ColumnSpec[], identity: readonly string[]): TableSpec {
  return Object.freeze({
    table,
    dataType,
    columns: Object.freeze([...BASE_COLUMNS, ...own]),
    timeColumn: 'event_time',
    key: Object.freeze(['event_time', 'venue', 'symbol', ...identity]),
  });
}

export const TABLES: readonly TableSpec[] = Object.freeze([
  spec(
    'orderbook',
    'orderbooks',
    [
      col('last_update_id', { kind: 'uint64' }),
      col('best_bid_price', OPTIONAL_PRICE),
      col('best_ask_price', OPTIONAL_PRICE),
      // Parallel arrays, best level first: 18.16 cannot read Array(Tuple(...)) from JSONEachRow.
      col('bid_prices', PRICE_ARRAY),
      col('bid_quantities', PRICE_ARRAY),
      col('ask_prices', PRICE_ARRAY),
      col('ask_quantities', PRICE_ARRAY),
    ],
    ['last_update_id'],
  ),
  spec(
    'trade',
    'trades',
    [col('trade_id', { kind: 'text' }), col('price', PRICE), col('quantity', PRICE), col('side', LABEL)],
    ['trade_id'],
  ),
  spec(
    'funding_rate',
    'funding_rates',
    [
      col('funding_rate', PRICE),
      // 0 when the venue does not announce it.
      col('next_funding_time', TIME),
      col('mark_price', OPTIONAL_PRICE),
    ],
    [],
  ),
  spec(
    'open_interest',
    'open_interests',
    [col('open_interest', PRICE), col('open_interest_value', OPTIONAL_PRICE)],
    [],
  ),
  spec(
    'liquidation',
    'liquidations',
    [
      // The venue's order id, or a digest of the event fields where the venue sends none: several
      // liquidations can share symbol, side and millisecond.
      col('liquidation_id', { kind: 'text' }),
      col('side', LABEL),
      col('price', PRICE),
      col('quantity', PRICE),
    ],
    ['liquidation_id'],
  ),
  spec(
    'lsr_top_position',
    'lsr_top_positions',
    [
      col('period', LABEL),
      col('long_short_ratio', PRICE),
      // null where the venue publishes only the ratio (OKX).
      col('long_position_pct', OPTIONAL_PRICE),
      col('short_position_pct', OPTIONAL_PRICE),
    ],
    ['period'],
  ),
  spec(
    'lsr_all_account',
    'lsr_all_accounts',
    [
      col('period', LABEL),
      col('long_short_ratio', PRICE),
      col('long_account_pct', OPTIONAL_PRICE),
      col('short_account_pct', OPTIONAL_PRICE),
    ],
    ['period'],
  ),
  spec(
    'volatility_index',
    'volatility_indices',
    [col('resolution', LABEL), col('index_value', PRICE)],
    ['resolution'],
  ),
  // Not market data: where an orderbook lost sync, so integrity can report holes in the book stream.
  spec(
    'orderbook_gap',
    'orderbook_gaps',
    [col('last_update_id', { kind: 'uint64' }), col('reason', LABEL), col('detail', { kind: 'text' })],
    ['last_update_id'],
  ),
  // Not market data: holes in any stream, one row per state a hole reached (see StreamHoleRecord).
  spec(
    'stream_hole',
    'stream_holes',
    [
      col('hole_id', { kind: 'text' }),
      col('state', LABEL),
      col('data_type', LABEL),
      col('from_time', TIME),
      col('to_time', TIME),
      // '' where unknown: 18.16 cannot put Nullable columns in the sorting key, and these are not in it anyway.
      col('first_missing_id', { kind: 'text' }),
      col('last_missing_id', { kind: 'text' }),
      // -1 where unknown.
      col('missing_count', { kind: 'int64' }),
      col('cause', LABEL),
      col('detail', { kind: 'text' }),
    ],
    ['hole_id', 'state'],
  ),
]);

export function tableFor(dataType: RecordKind): TableSpec {
  const found = TABLES.find((t) => t.dataType === dataType);
  if (!found) throw new RangeError(`no table for data type ${dataType}`);
  return found;
}

/** The column type as system.columns names it (no codec). */
function typeName(type: ColumnType, dialect: Dialect): string {
  switch (type.kind) {
    case 'timeMs':
      return 'UInt64';
    case 'label':
      return dialect.legacy ? 'String' : 'LowCardinality(String)';
    case 'text':
      return 'String';
    case 'uint64':
      return 'UInt64';
    case 'int64':
      return 'Int64';
    case 'decimal': {
      const d = `Decimal(${type.precision}, ${type.scale})`;
      return type.nullable ? `Nullable(${d})` : d;
    }
    case 'decimalArray':
      return `Array(Decimal(${type.precision}, ${type.scale}))`;
  }
}

function renderType(type: ColumnType, dialect: Dialect): string {
  return type.kind === 'timeMs' && !dialect.legacy ? 'UInt64 CODEC(Delta, ZSTD(1))' : typeName(type, dialect);
}

/** UTC day of the time column, e.g. 20240131; also what OPTIMIZE ... PARTITION takes. */
export function partitionExpression(spec: TableSpec): string {
  return `toYYYYMMDD(toDateTime(intDiv(${ident(spec.timeColumn)}, 1000), 'UTC'))`;
}

/** The partition value (UTC yyyymmdd) holding epoch ms `t`. */
export function partitionOf(t: number): number {
  const d = new Date(t);
  return d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

/**
 * How a tier stores its tables: on one server, or replicated by ZooKeeper across the tier's replicas.
 * The same table spec renders both; only the ENGINE clause differs.
 */
export type TableEngine = 'single' | 'replicated';

export function engineFor(server: Pick<ClickHouseServerConfig, 'replication'>): TableEngine {
  return server.replication === null ? 'single' : 'replicated';
}

/**
 * The table's ZooKeeper path. {shard} is a macro every replica's server config defines (mprism's local
 * replicas: 01), so one path names the same table on every replica of the tier.
 */
export function zookeeperPath(database: string, table: string): string {
  return `/clickhouse/tables/{shard}/${database}/${table}`;
}

/** The engine name as system.tables reports it. */
export function engineName(engine: TableEngine): string {
  return engine === 'replicated' ? 'ReplicatedReplacingMergeTree' : 'ReplacingMergeTree';
}

/**
 * The ENGINE clause. Replicated*: ZooKeeper path and replica name ({replica}: a macro per server) are the
 * only parameters, as the table has no version column; PARTITION BY / ORDER BY stay clauses (18.16 takes
 * the new syntax for Replicated* as well).
 */
export function renderEngine(spec: TableSpec, database: string, engine: TableEngine): string {
  const name = engineName(engine);
  return engine === 'replicated' ? `${name}(${str(zookeeperPath(database, spec.table))}, ${str('{replica}')})` : name;
}

export function renderCreateTable(spec: TableSpec, database: string, dialect: Dialect, engine: TableEngine = 'single'): string {
  const columns = spec.columns.map((c) => `    ${ident(c.name)} ${renderType(c.type, dialect)}`).join(',\n');
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified(database, spec.table)}`,
    '(',
    columns,
    ')',
    `ENGINE = ${renderEngine(spec, database, engine)}`,
    `PARTITION BY ${partitionExpression(spec)}`,
    `ORDER BY (${spec.key.map(ident).join(', ')})`,
  ].join('\n');
}

/**
 * ALTERs that bring an existing table to its spec: missing columns are added, non-key columns whose
 * type changed are modified (e.g. a column made Nullable). Key columns are never altered.
 */
export function migrationsFor(spec: TableSpec, database: string, dialect: Dialect, have: ReadonlyMap<string, string>): string[] {
  const table = qualified(database, spec.table);
  const out: string[] = [];
  let previous: string | null = null;
  for (const c of spec.columns) {
    const current = have.get(c.name);
    if (current === undefined) {
      out.push(`ALTER TABLE ${table} ADD COLUMN ${ident(c.name)} ${renderType(c.type, dialect)}${previous === null ? '' : ` AFTER ${ident(previous)}`}`);
    } else if (current !== typeName(c.type, dialect) && !spec.key.includes(c.name)) {
      out.push(`ALTER TABLE ${table} MODIFY COLUMN ${ident(c.name)} ${renderType(c.type, dialect)}`);
    }
    previous = c.name;
  }
  return out;
}

/**
 * Creates the database and any missing table, and migrates existing ones; safe to run at every start.
 * A replicated tier runs this on every replica: each creates its own replica of the table, and column
 * ALTERs made on one reach the others through ZooKeeper (the next replica then finds nothing to do).
 * An existing table on the other engine is refused, not converted: that is a data migration.
 */
export async function ensureSchema(
  client: ClickHouseClient,
  database: string,
  dialect: Dialect,
  engine: TableEngine = 'single',
): Promise<{ created: string[]; existing: string[]; migrated: string[] }> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${ident(database)}` });
  const engines = new Map(
    (await selectRows<{ name: string; engine: string }>(client, `SELECT name, engine FROM system.tables WHERE database = ${str(database)}`)).map((r) => [r.name, r.engine]),
  );
  const mismatched = TABLES.filter((t) => engines.has(t.table) && engines.get(t.table) !== engineName(engine));
  if (mismatched.length > 0) {
    const names = mismatched.map((t) => `${database}.${t.table} (${engines.get(t.table)})`).join(', ');
    throw new ConfigError(
      `the config makes ${database} ${engine === 'replicated' ? 'replicated' : 'single-server'} (${engineName(engine)}), but ${names} exist on the other engine: mprism does not convert tables; move the data or change clickhouse.*.replication`,
    );
  }
  const created: string[] = [];
  const existing: string[] = [];
  const migrated: string[] = [];
  for (const spec of TABLES) {
    if (!engines.has(spec.table)) {
      await client.command({ query: renderCreateTable(spec, database, dialect, engine) });
      created.push(spec.table);
      continue;
    }
    existing.push(spec.table);
    const columns = await selectRows<{ name: string; type: string }>(
      client,
      `SELECT name, type FROM system.columns WHERE database = ${str(database)} AND table = ${str(spec.table)}`,
    );
    const alters = migrationsFor(spec, database, dialect, new Map(columns.map((c) => [c.name, c.type])));
    for (const query of alters) await client.command({ query });
    if (alters.length > 0) migrated.push(spec.table);
  }
  return { created, existing, migrated };
}

export async function existingTables(client: ClickHouseClient, database: string): Promise<string[]> {
  const rows = await selectRows<{ name: string }>(client, `SELECT name FROM system.tables WHERE database = ${str(database)}`);
  return rows.map((r) => r.name);
}
