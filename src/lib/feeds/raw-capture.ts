import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { VENUES, type Venue } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { isObject } from '../exchanges/types.js';
import type { Logger } from '../log.js';

/** One raw frame or REST body as received; a capture file holds one JSON entry per line. */
export interface CaptureEntry {
  /** Receive time, epoch ms. */
  t: number;
  kind: 'ws' | 'rest';
  venue: Venue;
  /** Connection id (WS) or poll id (REST). */
  conn: string;
  url: string;
  /** Frame text or response body, exactly as received. */
  data: string;
}

export interface CaptureStats {
  files: number;
  entries: number;
  /** Uncompressed bytes written. */
  bytes: number;
  /** Entries dropped for a broken or too slow disk, plus one per file that failed while open. */
  errors: number;
}

export interface RawCaptureWriterOptions {
  dir: string;
  venue: Venue;
  /** A file is ended and the next begun after this many uncompressed bytes. */
  maxFileBytes: number;
  log: Logger;
  now?: () => number;
}

/** After a disk error, entries are dropped (and counted) this long before a new file is tried. */
const REOPEN_AFTER_MS = 5000;
/** At most one disk-error log line per this long. */
const ERROR_LOG_INTERVAL_MS = 60_000;
/** Entries are dropped while this much waits for a slow disk, rather than buffering without bound. */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;

/** 2026-03-01T12:34:56.789Z -> 20260301T123456 */
function fileTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').slice(0, 15);
}

export function captureFileName(venue: Venue, ms: number, seq: number): string {
  return `${venue}-${fileTimestamp(ms)}-${String(seq).padStart(4, '0')}.jsonl.gz`;
}

interface OpenFile {
  gzip: Gzip;
  bytes: number;
}

/**
 * Writes raw frames to gzip JSONL files, rotating by size. Capture is a side channel: a full or
 * broken disk costs captured entries (counted in stats.errors), never the collector.
 */
export class RawCaptureWriter {
  readonly stats: CaptureStats = { files: 0, entries: 0, bytes: 0, errors: 0 };
  private current: OpenFile | null = null;
  private seq = 0;
  private pausedUntil = 0;
  private lastErrorLogAt = -Infinity;
  private closed = false;
  /** Files being finished (ended or rotated away): close() waits for all of them. */
  private readonly finishing = new Set<Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly opts: RawCaptureWriterOptions) {
    this.now = opts.now ?? Date.now;
  }

  write(entry: Omit<CaptureEntry, 'venue'>): void {
    if (this.closed) return;
    const line = `${JSON.stringify({ t: entry.t, kind: entry.kind, venue: this.opts.venue, conn: entry.conn, url: entry.url, data: entry.data })}\n`;
    const file = this.current ?? this.open();
    if (file === null || file.gzip.writableLength > MAX_PENDING_BYTES) {
      this.stats.errors += 1;
      return;
    }
    const bytes = Buffer.byteLength(line);
    file.gzip.write(line);
    file.bytes += bytes;
    this.stats.entries += 1;
    this.stats.bytes += bytes;
    if (file.bytes >= this.opts.maxFileBytes) this.finish(file);
  }

  /** Flushes and ends the open file; resolves once every file is complete on disk. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.current !== null) this.finish(this.current);
    await Promise.all(this.finishing);
  }

  private open(): OpenFile | null {
    const now = this.now();
    if (now < this.pausedUntil) return null;
    const path = join(this.opts.dir, captureFileName(this.opts.venue, now, ++this.seq));
    try {
      mkdirSync(this.opts.dir, { recursive: true });
    } catch (err) {
      this.diskError(err, path);
      return null;
    }
    const gzip = createGzip();
    const file: OpenFile = { gzip, bytes: 0 };
    // 'wx': never clobber an earlier capture (a restart within the same second restarts seq).
    const done = pipeline(gzip, createWriteStream(path, { flags: 'wx' }))
      .catch((err: unknown) => {
        if (this.current === file) this.current = null;
        this.stats.errors += 1;
        this.diskError(err, path);
      })
      .finally(() => this.finishing.delete(done));
    this.finishing.add(done);
    this.current = file;
    this.stats.files += 1;
    return file;
  }

  private finish(file: OpenFile): void {
    if (this.current === file) this.current = null;
    file.gzip.end();
  }

  /** Pauses reopening and logs, rate-limited; the caller counts what was lost. */
  private diskError(err: unknown, path: string): void {
    const now = this.now();
    this.pausedUntil = now + REOPEN_AFTER_MS;
    if (now - this.lastErrorLogAt >= ERROR_LOG_INTERVAL_MS) {
      this.lastErrorLogAt = now;
      this.opts.log.warn({ file: path, err: errorMessage(err), errors: this.stats.errors }, 'raw capture: disk error, entries are being dropped');
    }
  }
}

/** The entry a capture line holds, or why it is not one. */
export function parseCaptureLine(line: string): CaptureEntry | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (!isObject(v)) return 'not a JSON object';
  const { t, kind, venue, conn, url, data } = v;
  if (typeof t !== 'number' || !Number.isFinite(t)) return 't is not a number';
  if (kind !== 'ws' && kind !== 'rest') return `kind ${JSON.stringify(kind)} is neither ws nor rest`;
  if (typeof venue !== 'string' || !(VENUES as readonly string[]).includes(venue)) return `unknown venue ${JSON.stringify(venue)}`;
  if (typeof conn !== 'string' || typeof url !== 'string' || typeof data !== 'string') return 'conn, url or data is not a string';
  return { t, kind, venue: venue as Venue, conn, url, data };
}

function isZlibError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && ((err as NodeJS.ErrnoException).code as string).startsWith('Z_');
}

/**
 * Entries of a capture file in order. Corrupt lines are reported and skipped; a truncated or damaged
 * gzip stream (a collector killed mid-write) ends the file after the last complete line. A file
 * that cannot be read at all rejects.
 */
export async function* readCapture(file: string, onCorrupt?: (line: number, reason: string) => void): AsyncGenerator<CaptureEntry> {
  const source = createReadStream(file);
  const gunzip = createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip).setEncoding('utf8');
  let pending = '';
  let lineNo = 0;
  function* lines(text: string): Generator<CaptureEntry> {
    for (const line of text.split('\n')) {
      lineNo += 1;
      if (line.length === 0) continue;
      const parsed = parseCaptureLine(line);
      if (typeof parsed === 'string') onCorrupt?.(lineNo, parsed);
      else yield parsed;
    }
  }
  try {
    for await (const chunk of gunzip as AsyncIterable<string>) {
      const text = pending + chunk;
      const end = text.lastIndexOf('\n');
      if (end === -1) {
        pending = text;
        continue;
      }
      pending = text.slice(end + 1);
      yield* lines(text.slice(0, end));
    }
  } catch (err) {
    if (!isZlibError(err)) throw err;
    onCorrupt?.(lineNo + 1, `gzip stream damaged or truncated (${errorMessage(err)}); ${pending.length} bytes of an incomplete line dropped`);
    return;
  } finally {
    source.destroy();
    gunzip.destroy();
  }
  // A complete file may end without a final newline.
  if (pending.length > 0) yield* lines(pending);
}
