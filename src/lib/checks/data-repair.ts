import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { withColdWriteLock } from '../replication/cold-writers.js';
import { backfillHotWindow, copyWindow } from '../replication/copy.js';
import { createClickHouse, type ClickHouseClient } from '../store/client.js';
import { countRange } from '../store/queries.js';
import { qualified } from '../store/sql.js';
import { partitionOf, TABLES, type TableSpec } from '../store/tables.js';
import type { IntegrityReport, TableIntegrity } from './integrity.js';

export interface DataRepairAction {
  kind: 'recopy-window' | 'dedupe-table';
  table: string;
  /** The server written to. */
  server?: 'hot' | 'cold';
  window?: { start: string; end: string };
  done: boolean;
  detail: string;
}

const DAY_MS = 86_400_000;

/** UTC day starts (epoch ms) of the partitions overlapping [from, to]. */
export function daysBetween(from: number, to: number): number[] {
  const days: number[] = [];
  for (let d = Math.floor(from / DAY_MS) * DAY_MS; d <= to; d += DAY_MS) days.push(d);
  return days;
}

/**
 * OPTIMIZE ... FINAL makes ReplacingMergeTree keep one row per ORDER BY key, which is the dedupe key.
 * Only day partitions that hold duplicates are rewritten, and the result is measured rather than assumed:
 * a merge the server declines leaves the action not done.
 */
async function dedupe(
  client: ClickHouseClient,
  database: string,
  spec: TableSpec,
  server: 'hot' | 'cold',
  report: IntegrityReport,
  dryRun: boolean,
): Promise<DataRepairAction> {
  const action: DataRepairAction = { kind: 'dedupe-table', table: spec.table, server, done: false, detail: '' };
  const partitions: number[] = [];
  let remaining = 0;
  for (const day of daysBetween(Date.parse(report.since), Date.parse(report.now))) {
    const range = { start: day, end: day + DAY_MS };
    const before = await countRange(client, database, spec, range);
    if (before.rows === before.distinct) continue;
    partitions.push(partitionOf(day));
    if (dryRun) continue;
    await client.command({ query: `OPTIMIZE TABLE ${qualified(database, spec.table)} PARTITION ${partitionOf(day)} FINAL` });
    const after = await countRange(client, database, spec, range);
    remaining += after.rows - after.distinct;
  }
  const list = partitions.join(', ') || 'none';
  if (dryRun) action.detail = `would run OPTIMIZE FINAL on partitions ${list}`;
  else {
    action.done = remaining === 0;
    action.detail = `OPTIMIZE FINAL on partitions ${list}: ${remaining} duplicate rows left`;
  }
  return action;
}

/**
 * Short windows (cold lacks keys hot has) are copied again hot -> cold; the copy only inserts missing keys,
 * so this is the replication step itself, safe to repeat.
 *
 * Excess windows (cold holds keys hot lacks) are never fixed by deleting from cold: cold is the archive
 * and may hold the only copy of rows hot lost (a wiped or restored hot server, hot retention). Instead the
 * missing rows are copied cold -> hot the same idempotent way, and then hot -> cold again, so both servers
 * hold the union and the window verifies.
 */
async function resync(
  hot: ClickHouseClient,
  cold: ClickHouseClient,
  config: Config,
  spec: TableSpec,
  w: { start: string; end: string; status: 'short' | 'excess' },
  dryRun: boolean,
): Promise<DataRepairAction> {
  const window = { start: w.start, end: w.end };
  const server = w.status === 'short' ? 'cold' : 'hot';
  const action: DataRepairAction = { kind: 'recopy-window', table: spec.table, server, window, done: false, detail: '' };
  if (dryRun) {
    action.detail = w.status === 'short' ? 'would copy missing rows hot -> cold' : 'would copy rows hot lacks cold -> hot, then verify hot -> cold';
    return action;
  }
  const range = { start: Date.parse(w.start), end: Date.parse(w.end) };
  let restored = 0;
  if (w.status === 'excess') restored = (await backfillHotWindow(hot, cold, config, spec, range)).copied;
  const r = await copyWindow(hot, cold, config, spec, range);
  action.done = r.verified;
  action.detail =
    (w.status === 'excess' ? `restored ${restored} rows into hot; ` : '') +
    `copied ${r.copied} rows to cold; hot ${r.hotCount} keys, cold ${r.coldCount} rows${r.verified ? '' : ' (not verified)'}`;
  return action;
}

async function repairTable(
  hot: ClickHouseClient,
  cold: ClickHouseClient,
  config: Config,
  report: IntegrityReport,
  t: TableIntegrity,
  dryRun: boolean,
): Promise<DataRepairAction[]> {
  const spec = TABLES.find((s) => s.table === t.table);
  if (!spec) return [];
  const actions: DataRepairAction[] = [];
  const attempt = async (action: DataRepairAction, run: () => Promise<DataRepairAction>) => {
    try {
      actions.push(await run());
    } catch (err) {
      actions.push({ ...action, done: false, detail: `failed: ${errorMessage(err)}` });
    }
  };
  // Duplicates first: a window copied afterwards is then verified against deduplicated counts.
  for (const [server, client, count] of [
    ['hot', hot, t.hotDuplicates],
    ['cold', cold, t.coldDuplicates],
  ] as const) {
    if (count === 0) continue;
    const database = config.clickhouse[server].database;
    await attempt({ kind: 'dedupe-table', table: t.table, server, done: false, detail: '' }, () =>
      dedupe(client, database, spec, server, report, dryRun),
    );
  }
  for (const w of t.windows) {
    if (w.status !== 'short' && w.status !== 'excess') continue;
    const status = w.status;
    const server = status === 'short' ? 'cold' : 'hot';
    await attempt({ kind: 'recopy-window', table: t.table, server, window: { start: w.start, end: w.end }, done: false, detail: '' }, () =>
      resync(hot, cold, config, spec, { start: w.start, end: w.end, status }, dryRun),
    );
  }
  return actions;
}

/** Fixes what an integrity report found; idempotent, and with dryRun only says what it would do. */
export async function repairData(config: Config, report: IntegrityReport, opts: { dryRun: boolean; signal?: AbortSignal }): Promise<DataRepairAction[]> {
  const needsWork = report.tables.some(
    (t) => t.hotDuplicates > 0 || t.coldDuplicates > 0 || t.windows.some((w) => w.status === 'short' || w.status === 'excess'),
  );
  if (!needsWork) return [];
  const hot = createClickHouse(config.clickhouse.hot);
  const cold = createClickHouse(config.clickhouse.cold);
  try {
    const repairAll = async () => {
      const actions: DataRepairAction[] = [];
      for (const t of report.tables) {
        // Table by table: a brain that lost its lease stops here, before another brain repairs too.
        opts.signal?.throwIfAborted();
        actions.push(...(await repairTable(hot, cold, config, report, t, opts.dryRun)));
      }
      return actions;
    };
    return opts.dryRun ? await repairAll() : await withColdWriteLock(config, repairAll);
  } finally {
    await Promise.all([hot.close(), cold.close()]);
  }
}
