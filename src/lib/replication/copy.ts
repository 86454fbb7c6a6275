import type { ClickHouseServerConfig, Config } from '../config/schema.js';
import { clickHouseErrorCode, type ClickHouseClient } from '../store/client.js';
import { countRange, rangeCondition } from '../store/queries.js';
import { ident, qualified, str } from '../store/sql.js';
import type { TableSpec } from '../store/tables.js';
import { fenceCondition } from '../store/watermarks.js';
import type { TimeWindow } from './windows.js';

export interface CopyResult {
  /** Distinct keys in the source window. */
  hotCount: number;
  /** Rows (not distinct keys) in the target window after the copy. */
  coldCount: number;
  copied: number;
  verified: boolean;
}

/**
 * host:tcpPort of a server as another ClickHouse server reaches it with remote(). remote() speaks the
 * native TCP protocol, so for an external (HTTP) URL the host comes from the URL and the port is tcpPort.
 */
export function remoteAddress(server: ClickHouseServerConfig): string {
  const host = server.url === null ? server.host : new URL(server.url).hostname;
  return `${host}:${server.tcpPort}`;
}

interface Side {
  client: ClickHouseClient;
  server: ClickHouseServerConfig;
}

/**
 * The statement that copies one window from `source` into `target`; it runs on the target server, which
 * pulls the rows over remote(). Only keys the target lacks are inserted, and LIMIT 1 BY drops unmerged
 * duplicates on the source, so running it any number of times leaves each key once in the target.
 * GLOBAL: the key subquery must run on the target and travel to the source as a set; a plain NOT IN is
 * forwarded inside the remote query and would read the source's (nonexistent) target table.
 */
export function copySql(source: ClickHouseServerConfig, target: ClickHouseServerConfig, spec: TableSpec, w: TimeWindow, fence?: number): string {
  const columns = spec.columns.map((c) => ident(c.name)).join(', ');
  const key = spec.key.map(ident).join(', ');
  const targetTable = qualified(target.database, spec.table);
  const remote = `remote(${[str(remoteAddress(source)), ident(source.database), ident(spec.table), str(source.user), str(source.password)].join(', ')})`;
  return [
    `INSERT INTO ${targetTable} (${columns})`,
    `SELECT ${columns} FROM ${remote}`,
    `WHERE ${rangeCondition(spec, w)}`,
    `AND (${key}) GLOBAL NOT IN (SELECT ${key} FROM ${targetTable} WHERE ${rangeCondition(spec, w)})`,
    // Replication's copies carry the fence of their table's lease: once a newer holder has recorded
    // its fence in cold, a statement from an older holder (paused past its lease) inserts nothing.
    ...(fence === undefined ? [] : [`AND ${fenceCondition(target.database, spec.table, fence)}`]),
    `LIMIT 1 BY ${key}`,
  ].join('\n');
}

interface DirectedCopy {
  sourceDistinct: number;
  targetRows: number;
  copied: number;
  verified: boolean;
}

/** Server-side cap on one copy, below the client's request timeout: an abandoned copy must not outlive its caller. */
const COPY_MAX_EXECUTION_SECONDS = 50;

/** ClickHouse's QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: another copy of this window is under way. */
const QUERY_ALREADY_RUNNING = 216;
const BUSY_RETRIES = 20;
const BUSY_WAIT_MS = 500;

/** Every copy into `database`.`table` has a query id starting with this (see copyBetween). */
export function copyQueryIdPrefix(database: string, table: string): string {
  return `mprism-copy-${database}-${table}-`;
}

async function copyBetween(source: Side, target: Side, spec: TableSpec, w: TimeWindow, fence?: number): Promise<DirectedCopy> {
  const before = await countRange(target.client, target.server.database, spec, w);
  for (let attempt = 0; ; attempt++) {
    try {
      await target.client.command({
        query: copySql(source.server, target.server, spec, w, fence),
        // One id per target window: the server refuses a second copy of the same window while one runs
        // (the daemon after a timeout or restart, or a cron repair), so two copies never both insert a key.
        query_id: `${copyQueryIdPrefix(target.server.database, spec.table)}${w.start}-${w.end}`,
        clickhouse_settings: { max_execution_time: COPY_MAX_EXECUTION_SECONDS },
      });
      break;
    } catch (err) {
      // The other copy may leave the window complete, or not (it started before rows arrived):
      // wait for it and copy again, which inserts only what is still missing.
      if (clickHouseErrorCode(err) !== QUERY_ALREADY_RUNNING || attempt >= BUSY_RETRIES) throw err;
      await new Promise((r) => setTimeout(r, BUSY_WAIT_MS));
    }
  }
  const [src, dst] = await Promise.all([
    countRange(source.client, source.server.database, spec, w),
    countRange(target.client, target.server.database, spec, w),
  ]);
  return {
    sourceDistinct: src.distinct,
    targetRows: dst.rows,
    copied: dst.rows - before.rows,
    // Every source key present, each exactly once: equal row counts alone would pass a window with one
    // key missing and another duplicated.
    verified: src.distinct === dst.distinct && dst.rows === dst.distinct,
  };
}

/**
 * Copies one window hot -> cold and verifies it: verified when the cold window holds exactly one row per
 * distinct hot key. Idempotent; two copies of the same window running at once could both insert a key
 * (each sees it missing), which ReplacingMergeTree merges and `mprism repair` removes.
 * `fence`: replication's lease fence for the table (see copySql); the others' copies go without.
 */
export async function copyWindow(
  hot: ClickHouseClient,
  cold: ClickHouseClient,
  config: Config,
  table: TableSpec,
  w: TimeWindow,
  fence?: number,
): Promise<CopyResult> {
  const r = await copyBetween({ client: hot, server: config.clickhouse.hot }, { client: cold, server: config.clickhouse.cold }, table, w, fence);
  return { hotCount: r.sourceDistinct, coldCount: r.targetRows, copied: r.copied, verified: r.verified };
}

/**
 * The reverse copy, cold -> hot, for windows where cold holds keys hot lacks (see data-repair.ts).
 * hotCount is then the rows in hot after the copy and coldCount the distinct keys in cold.
 */
export async function backfillHotWindow(
  hot: ClickHouseClient,
  cold: ClickHouseClient,
  config: Config,
  table: TableSpec,
  w: TimeWindow,
): Promise<CopyResult> {
  const r = await copyBetween({ client: cold, server: config.clickhouse.cold }, { client: hot, server: config.clickhouse.hot }, table, w);
  return { hotCount: r.targetRows, coldCount: r.sourceDistinct, copied: r.copied, verified: r.verified };
}
