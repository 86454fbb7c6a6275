import { describe, expect, it } from 'vitest';
import { DATA_TYPES } from '../../src/lib/config/schema.js';
import { ClickHouseError } from '@clickhouse/client';
import { clickHouseErrorCode, dialectFromVersion } from '../../src/lib/store/client.js';
import { engineFor, migrationsFor, partitionOf, renderCreateTable, TABLES, tableFor } from '../../src/lib/store/tables.js';

const legacy = dialectFromVersion('18.16.1');
const modern = dialectFromVersion('24.8.4.13');

describe('dialect detection', () => {
  it('treats 18.x and 19.x as legacy and 20+ as modern', () => {
    expect(legacy).toEqual({ version: '18.16.1', major: 18, minor: 16, legacy: true });
    expect(dialectFromVersion('19.17.6.36').legacy).toBe(true);
    expect(dialectFromVersion('20.3.1').legacy).toBe(false);
    expect(modern).toMatchObject({ major: 24, minor: 8, legacy: false });
  });

  it('rejects a version it cannot read', () => {
    expect(() => dialectFromVersion('unknown')).toThrow(/unrecognized ClickHouse version/);
  });
});

describe('clickHouseErrorCode', () => {
  it('reads the code from 18.16 error text and from parsed errors, null otherwise', () => {
    expect(clickHouseErrorCode(new Error('Code: 216, e.displayText() = DB::Exception: Query with id = x is already running., e.what() = DB::Exception'))).toBe(216);
    expect(clickHouseErrorCode(new ClickHouseError({ message: 'x', code: '60', type: 'UNKNOWN_TABLE' }))).toBe(60);
    expect(clickHouseErrorCode(new Error('socket hang up'))).toBeNull();
    expect(clickHouseErrorCode('Code: 1')).toBeNull();
  });
});

describe('table specs', () => {
  it('has one table per data type, named as the plural, plus the orderbook gap markers', () => {
    expect(TABLES.map((t) => t.table)).toEqual([
      'orderbooks',
      'trades',
      'funding_rates',
      'open_interests',
      'liquidations',
      'lsr_top_positions',
      'lsr_all_accounts',
      'volatility_indices',
      'orderbook_gaps',
      'stream_holes',
    ]);
    for (const dt of DATA_TYPES) expect(tableFor(dt).dataType).toBe(dt);
  });

  it('keys every table on time first, then its identity, all of them real columns', () => {
    for (const t of TABLES) {
      expect(t.key[0]).toBe(t.timeColumn);
      const names = t.columns.map((c) => c.name);
      for (const k of t.key) expect(names).toContain(k);
      expect(new Set(names).size).toBe(names.length);
    }
    expect(tableFor('trade').key).toEqual(['event_time', 'venue', 'symbol', 'trade_id']);
  });

  it('maps an epoch ms to its UTC day partition', () => {
    expect(partitionOf(Date.UTC(2024, 0, 31, 23, 59, 59, 999))).toBe(20240131);
    expect(partitionOf(Date.UTC(2024, 1, 1))).toBe(20240201);
  });
});

describe('renderCreateTable', () => {
  it('renders trades for ClickHouse 18.16 without LowCardinality, CODEC, TTL or DateTime64', () => {
    expect(renderCreateTable(tableFor('trade'), 'mprism_hot', legacy)).toBe(
      [
        'CREATE TABLE IF NOT EXISTS `mprism_hot`.`trades`',
        '(',
        '    `venue` String,',
        '    `market_type` String,',
        '    `symbol` String,',
        '    `instrument` String,',
        '    `event_time` UInt64,',
        '    `receive_time` UInt64,',
        '    `trade_id` String,',
        '    `price` Decimal(38, 18),',
        '    `quantity` Decimal(38, 18),',
        '    `side` String',
        ')',
        'ENGINE = ReplacingMergeTree',
        "PARTITION BY toYYYYMMDD(toDateTime(intDiv(`event_time`, 1000), 'UTC'))",
        'ORDER BY (`event_time`, `venue`, `symbol`, `trade_id`)',
      ].join('\n'),
    );
  });

  it('renders trades for ClickHouse 24 with LowCardinality labels and delta-coded times', () => {
    expect(renderCreateTable(tableFor('trade'), 'mprism_cold', modern)).toBe(
      [
        'CREATE TABLE IF NOT EXISTS `mprism_cold`.`trades`',
        '(',
        '    `venue` LowCardinality(String),',
        '    `market_type` LowCardinality(String),',
        '    `symbol` LowCardinality(String),',
        '    `instrument` LowCardinality(String),',
        '    `event_time` UInt64 CODEC(Delta, ZSTD(1)),',
        '    `receive_time` UInt64 CODEC(Delta, ZSTD(1)),',
        '    `trade_id` String,',
        '    `price` Decimal(38, 18),',
        '    `quantity` Decimal(38, 18),',
        '    `side` LowCardinality(String)',
        ')',
        'ENGINE = ReplacingMergeTree',
        "PARTITION BY toYYYYMMDD(toDateTime(intDiv(`event_time`, 1000), 'UTC'))",
        'ORDER BY (`event_time`, `venue`, `symbol`, `trade_id`)',
      ].join('\n'),
    );
  });

  it('never uses features 18.16 lacks in any legacy table, and renders orderbook levels as parallel arrays', () => {
    for (const t of TABLES) {
      const ddl = renderCreateTable(t, 'db', legacy);
      expect(ddl).not.toMatch(/LowCardinality|CODEC|TTL|DateTime64|toStartOfInterval|Tuple/);
    }
    const book = renderCreateTable(tableFor('orderbook'), 'db', legacy);
    expect(book).toContain('`bid_prices` Array(Decimal(38, 18))');
    expect(book).toContain('`best_bid_price` Nullable(Decimal(38, 18))');
    expect(book).toContain('ORDER BY (`event_time`, `venue`, `symbol`, `last_update_id`)');
  });

  it('renders the same spec as ReplicatedReplacingMergeTree for a replicated tier: ZooKeeper path per database and table, {replica} macro', () => {
    const single = renderCreateTable(tableFor('trade'), 'mprism_hot', legacy, 'single');
    const replicated = renderCreateTable(tableFor('trade'), 'mprism_hot', legacy, 'replicated');
    expect(replicated).toBe(
      single.replace(
        'ENGINE = ReplacingMergeTree\n',
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/mprism_hot/trades', '{replica}')\n",
      ),
    );
    // Every table gets a path of its own; the default stays the single-server engine.
    const paths = TABLES.map((t) => /ReplicatedReplacingMergeTree\('([^']+)'/.exec(renderCreateTable(t, 'db', modern, 'replicated'))?.[1]);
    expect(new Set(paths).size).toBe(TABLES.length);
    expect(paths).toContain('/clickhouse/tables/{shard}/db/stream_holes');
    expect(renderCreateTable(tableFor('trade'), 'mprism_hot', legacy)).toBe(single);
    expect(single).not.toContain('Replicated');
  });

  it('chooses the engine from the tier config: replicated only when replication is configured', () => {
    expect(engineFor({ replication: null })).toBe('single');
    expect(engineFor({ replication: { interserverPort: 9009, replicas: [{ url: null, host: '127.0.0.1', httpPort: 8125, tcpPort: 9002, interserverPort: 9010 }] } })).toBe('replicated');
  });

  it('gives hot and cold the same columns on either dialect, so remote() copies between versions', () => {
    for (const t of TABLES) {
      const names = (ddl: string) => [...ddl.matchAll(/^ {4}`(\w+)`/gm)].map((m) => m[1]);
      expect(names(renderCreateTable(t, 'a', legacy))).toEqual(names(renderCreateTable(t, 'b', modern)));
    }
  });

  it('migrates an existing table by adding missing columns and modifying changed non-key ones only', () => {
    const spec = tableFor('lsr_all_account');
    const have = new Map(spec.columns.map((c) => [c.name, c.name.endsWith('_pct') ? 'Decimal(38, 18)' : c.name === 'long_short_ratio' ? 'Decimal(38, 18)' : /time/.test(c.name) ? 'UInt64' : 'String']));
    have.delete('receive_time');
    expect(migrationsFor(spec, 'db', legacy, have)).toEqual([
      'ALTER TABLE `db`.`lsr_all_accounts` ADD COLUMN `receive_time` UInt64 AFTER `event_time`',
      'ALTER TABLE `db`.`lsr_all_accounts` MODIFY COLUMN `long_account_pct` Nullable(Decimal(38, 18))',
      'ALTER TABLE `db`.`lsr_all_accounts` MODIFY COLUMN `short_account_pct` Nullable(Decimal(38, 18))',
    ]);
    const changedKey = new Map(have).set('period', 'UInt8').set('receive_time', 'UInt64');
    expect(migrationsFor(spec, 'db', legacy, changedKey).some((q) => q.includes('`period`'))).toBe(false);
  });
});
