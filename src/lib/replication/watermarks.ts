import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../durable-file.js';
import { MprismError } from '../errors.js';
import { homePaths } from '../paths.js';

/** Where the replication daemon keeps its watermarks under MPRISM_HOME. */
export function watermarkFile(home: string): string {
  return join(homePaths(home).dataDir('replication'), 'watermarks.json');
}

/** The watermark file exists but cannot be trusted; replication must not guess where it was. */
export class WatermarkError extends MprismError {}

interface WatermarkFile {
  version: 1;
  /** table -> epoch ms: every window ending at or before it is in cold and verified. */
  tables: Record<string, number>;
}

/**
 * Per-table replication watermarks in one JSON file. Writes are atomic and durable (tmp file, fsync,
 * rename, fsync of the directory), so after a crash the file holds either the old or the new state.
 * A corrupt file is an error, never a silent reset: resetting would re-copy or skip history unnoticed.
 */
export class WatermarkStore {
  private readonly tables = new Map<string, number>();

  constructor(readonly file: string) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new WatermarkError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
    }
    for (const [table, value] of Object.entries(parse(file, text).tables)) this.tables.set(table, value);
  }

  get(table: string): number | null {
    return this.tables.get(table) ?? null;
  }

  set(table: string, endMs: number): void {
    if (!Number.isSafeInteger(endMs) || endMs < 0) throw new RangeError(`watermark must be epoch ms, got ${endMs}`);
    const next = new Map(this.tables).set(table, endMs);
    write(this.file, { version: 1, tables: Object.fromEntries([...next].sort(([a], [b]) => a.localeCompare(b))) });
    this.tables.set(table, endMs);
  }

  entries(): ReadonlyMap<string, number> {
    return this.tables;
  }
}

function parse(file: string, text: string): WatermarkFile {
  const corrupt = (why: string) =>
    new WatermarkError(`${file}: corrupt watermark file (${why}); fix it or remove it to restart replication from the oldest hot data`);
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
  for (const [table, t] of Object.entries(tables)) {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw corrupt(`"${table}" is not epoch milliseconds`);
  }
  return value as WatermarkFile;
}

function write(file: string, content: WatermarkFile): void {
  writeFileDurably(file, JSON.stringify(content, null, 2) + '\n');
}

/**
 * The watermarks for a reader that must go on when the file cannot be read (integrity, retention):
 * `error` says why, and `get` then answers undefined (unknown), never null (not begun).
 */
export function readWatermarks(home: string): { get(table: string): number | null | undefined; error: string | null } {
  try {
    const store = new WatermarkStore(watermarkFile(home));
    return { get: (t) => store.get(t), error: null };
  } catch (err) {
    return { get: () => undefined, error: `cannot read replication watermarks: ${(err as Error).message}` };
  }
}
