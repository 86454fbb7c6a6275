import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, MprismError } from '../errors.js';
import { homePaths } from '../paths.js';
import type { ClickHouseClient } from '../store/client.js';
import type { TableEngine } from '../store/tables.js';
import { ensureWatermarksTable, insertWatermark, readStoredWatermarks, type StoredWatermark } from '../store/watermarks.js';

/**
 * Where replication kept its watermarks before they moved to cold (see SharedWatermarks): read once,
 * at the first start after the upgrade, to carry them over; then left alone.
 */
export function watermarkFile(home: string): string {
  return join(homePaths(home).dataDir('replication'), 'watermarks.json');
}

/** The watermark file exists but cannot be trusted; replication must not guess where it was. */
export class WatermarkError extends MprismError {}

/** The legacy file's table -> epoch ms, or null when there is no file. A corrupt file throws WatermarkError. */
export function readWatermarkFile(file: string): Map<string, number> | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WatermarkError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  const corrupt = (why: string) =>
    new WatermarkError(`${file}: corrupt watermark file (${why}); fix it, or remove it to let replication start from the watermarks in cold (or the oldest hot data)`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw corrupt((err as Error).message);
  }
  if (typeof value !== 'object' || value === null || (value as { version?: unknown }).version !== 1) {
    throw corrupt('expected {"version":1,"tables":{...}}');
  }
  const tables = (value as { tables?: unknown }).tables;
  if (typeof tables !== 'object' || tables === null || Array.isArray(tables)) throw corrupt('"tables" is not an object');
  const out = new Map<string, number>();
  for (const [table, t] of Object.entries(tables)) {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw corrupt(`"${table}" is not epoch milliseconds`);
    out.set(table, t);
  }
  return out;
}

/** What a fenced write did: `fenced` means a newer lease holder has written, and this one must stop. */
export type WatermarkWrite = 'written' | 'fenced';

/**
 * Decides a watermark write under lease fence `fence`, given what cold holds for the table now.
 * Pure: the rule the store applies, and that the unit tests pin down.
 */
export function decideWatermarkWrite(stored: StoredWatermark | undefined, fence: number): WatermarkWrite {
  return stored !== undefined && stored.fence > fence ? 'fenced' : 'written';
}

/** A watermark row of 0 records a fence before the table has a watermark; it reads as none. */
const toWatermark = (w: StoredWatermark | undefined): number | null => (w === undefined || w.watermark === 0 ? null : w.watermark);

/**
 * Per-table replication watermarks shared by every replication daemon, in cold ClickHouse (see
 * store/watermarks.ts), with a local copy for the synchronous readers (health, metrics).
 *
 * Why a daemon that lost its lease cannot move a watermark back: a table's watermark is the max of
 * every value ever written, so a late write of a smaller value changes nothing. And a value is only
 * ever written after the windows below it verified in cold, so even a stale holder's write states a
 * truth. Its fence is checked before the write (decideWatermarkWrite): a holder that finds a newer
 * fence stops. That check and the insert are two statements, but the race between them can only add
 * another true, smaller-or-equal value, which the max ignores.
 */
export class SharedWatermarks {
  private readonly cache = new Map<string, StoredWatermark>();

  constructor(
    private readonly cold: ClickHouseClient,
    private readonly database: string,
    /** Cold's engine (engineFor): a replicated cold replicates its watermarks too. */
    private readonly engine: TableEngine = 'single',
  ) {}

  async ensure(): Promise<void> {
    await ensureWatermarksTable(this.cold, this.database, this.engine);
  }

  /** Reads every table's watermark from cold (another daemon may have moved it). */
  async refresh(): Promise<void> {
    for (const [table, w] of await readStoredWatermarks(this.cold, this.database)) this.remember(table, w);
  }

  /** The last read or written watermark; null before the table's first verified window. */
  get(table: string): number | null {
    return toWatermark(this.cache.get(table));
  }

  /** The newest fence recorded for `table`, read from cold now: a new lease's fence must be above it. */
  async storedFence(table: string): Promise<number> {
    const w = (await readStoredWatermarks(this.cold, this.database, table)).get(table);
    if (w !== undefined) this.remember(table, w);
    return w?.fence ?? 0;
  }

  /** Records that every window of `table` ending at or before endMs verified, under lease fence `fence`. */
  async advance(table: string, endMs: number, fence: number, holder: string): Promise<WatermarkWrite> {
    if (!Number.isSafeInteger(endMs) || endMs <= 0) throw new RangeError(`watermark must be epoch ms, got ${endMs}`);
    return this.write(table, endMs, fence, holder);
  }

  /**
   * Records a new lease's fence for `table` (at the current watermark) before its first copy: from
   * then on copies under older fences insert nothing (see copySql) and their watermarks are refused.
   */
  async claim(table: string, fence: number, holder: string): Promise<WatermarkWrite> {
    return this.write(table, null, fence, holder);
  }

  private async write(table: string, endMs: number | null, fence: number, holder: string): Promise<WatermarkWrite> {
    const stored = (await readStoredWatermarks(this.cold, this.database, table)).get(table);
    if (stored !== undefined) this.remember(table, stored);
    if (decideWatermarkWrite(stored, fence) === 'fenced') return 'fenced';
    const watermark = endMs ?? stored?.watermark ?? 0;
    await insertWatermark(this.cold, this.database, { table, watermark, fence, holder });
    this.remember(table, { watermark, fence });
    return 'written';
  }

  /**
   * Carries the legacy local file's watermarks into cold, for tables cold has none of: an existing
   * install does not copy everything again. The file is left as it was. Fence 0: written under no
   * lease, below every real one. Returns the tables carried over.
   */
  async migrateFile(file: string, holder: string): Promise<string[]> {
    const legacy = readWatermarkFile(file);
    if (legacy === null) return [];
    const stored = await readStoredWatermarks(this.cold, this.database);
    const carried: string[] = [];
    for (const [table, watermark] of legacy) {
      if (watermark === 0 || toWatermark(stored.get(table)) !== null) continue;
      await insertWatermark(this.cold, this.database, { table, watermark, fence: 0, holder: `migrated:${holder}` });
      this.remember(table, { watermark, fence: stored.get(table)?.fence ?? 0 });
      carried.push(table);
    }
    return carried;
  }

  private remember(table: string, w: StoredWatermark): void {
    const had = this.cache.get(table);
    this.cache.set(table, had === undefined ? w : { watermark: Math.max(had.watermark, w.watermark), fence: Math.max(had.fence, w.fence) });
  }
}

/**
 * The watermarks for a reader that must go on when cold cannot tell them (integrity, retention):
 * `error` says why, and `get` then answers undefined (unknown), never null (not begun).
 */
export async function readWatermarks(cold: ClickHouseClient, database: string): Promise<{ get(table: string): number | null | undefined; error: string | null }> {
  try {
    const stored = await readStoredWatermarks(cold, database);
    return { get: (t) => toWatermark(stored.get(t)), error: null };
  } catch (err) {
    return { get: () => undefined, error: `cannot read replication watermarks from cold: ${errorMessage(err)}` };
  }
}
