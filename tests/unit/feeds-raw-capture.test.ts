import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RawCaptureWriter, captureFileName, parseCaptureLine, readCapture, type CaptureEntry } from '../../src/lib/feeds/raw-capture.js';
import { fixturePath } from '../helpers/fixtures.js';

const BINANCE_TRADE = readFileSync(fixturePath('binance_spot', 'trade.jsonl'), 'utf8').split('\n')[0] as string;
const DVOL_BODY = readFileSync(fixturePath('deribit_derivatives', 'volatility_index_rest.jsonl'), 'utf8').split('\n')[0] as string;

let dir: string;
const logLines: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-capture-'));
  logLines.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(file: string): Promise<{ entries: CaptureEntry[]; corrupt: [number, string][] }> {
  const entries: CaptureEntry[] = [];
  const corrupt: [number, string][] = [];
  for await (const e of readCapture(file, (line, reason) => corrupt.push([line, reason]))) entries.push(e);
  return { entries, corrupt };
}

const files = () =>
  readdirSync(dir)
    .sort()
    .map((f) => join(dir, f));

describe('raw capture', () => {
  it('names files venue-UTC time-sequence', () => {
    expect(captureFileName('okx_spot', Date.UTC(2026, 2, 1, 12, 34, 56, 789), 3)).toBe('okx_spot-20260301T123456-0003.jsonl.gz');
  });

  it('writes gzip JSONL that reads back exactly, creating the directory', async () => {
    const sub = join(dir, 'nested', 'capture');
    const w = new RawCaptureWriter({ dir: sub, venue: 'binance_spot', maxFileBytes: 1 << 20, log, now: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
    const written = [
      { t: 1554076801000, kind: 'ws' as const, conn: 'binance_spot/0', url: 'wss://stream.binance.com:9443/stream', data: BINANCE_TRADE },
      { t: 1554076801001, kind: 'rest' as const, conn: 'deribit/dvol', url: 'https://x/api?a=1&b=2', data: DVOL_BODY },
      { t: 1554076801002, kind: 'ws' as const, conn: 'c', url: 'u', data: 'line\nbreak "quoted" \u00e9\u{1F600}' },
    ];
    for (const e of written) w.write(e);
    await w.close();
    expect(readdirSync(sub)).toEqual(['binance_spot-20260102T030405-0001.jsonl.gz']);
    const { entries, corrupt } = await readAll(join(sub, 'binance_spot-20260102T030405-0001.jsonl.gz'));
    expect(entries).toEqual(written.map((e) => ({ ...e, venue: 'binance_spot' })));
    expect(corrupt).toEqual([]);
    expect(w.stats).toMatchObject({ files: 1, entries: 3, errors: 0 });
    const raw = readFileSync(join(sub, 'binance_spot-20260102T030405-0001.jsonl.gz'));
    expect(w.stats.bytes).toBeGreaterThan(raw.length);
  });

  it('rotates after maxFileBytes of uncompressed input and loses nothing across files', async () => {
    const w = new RawCaptureWriter({ dir, venue: 'okx_spot', maxFileBytes: 2048, log });
    const written = Array.from({ length: 60 }, (_, i) => ({ t: 1000 + i, kind: 'ws' as const, conn: 'okx_spot/0', url: 'wss://ws.okx.com:8443/ws/v5/public', data: `{"n":${i}}` }));
    for (const e of written) w.write(e);
    await w.close();
    const names = files();
    expect(names.length).toBeGreaterThan(1);
    expect(w.stats.files).toBe(names.length);
    const back: CaptureEntry[] = [];
    for (const f of names) back.push(...(await readAll(f)).entries);
    expect(back).toEqual(written.map((e) => ({ ...e, venue: 'okx_spot' })));
    expect(w.stats.entries).toBe(60);
  });

  it('reports corrupt lines by number and keeps the good ones', async () => {
    const good = (t: number) => JSON.stringify({ t, kind: 'ws', venue: 'okx_spot', conn: 'c', url: 'u', data: 'd' });
    const text = [
      good(1),
      '{"t":2,"kind":"ws","venue":"okx_sp',
      JSON.stringify({ t: 3, kind: 'udp', venue: 'okx_spot', conn: 'c', url: 'u', data: 'd' }),
      JSON.stringify({ t: 4, kind: 'ws', venue: 'kraken', conn: 'c', url: 'u', data: 'd' }),
      good(5),
    ].join('\n');
    const file = join(dir, 'manual.jsonl.gz');
    writeFileSync(file, gzipSync(text));
    const { entries, corrupt } = await readAll(file);
    expect(entries.map((e) => e.t)).toEqual([1, 5]);
    expect(corrupt).toEqual([
      [2, 'not JSON'],
      [3, 'kind "udp" is neither ws nor rest'],
      [4, 'unknown venue "kraken"'],
    ]);
  });

  it('keeps the entries before a truncated gzip tail and reports the truncation', async () => {
    const w = new RawCaptureWriter({ dir, venue: 'binance_derivatives', maxFileBytes: 1 << 24, log });
    // Incompressible payloads, so the compressor emits complete blocks long before the end.
    const written = Array.from({ length: 400 }, (_, i) => ({ t: i, kind: 'ws' as const, conn: 'c', url: 'u', data: randomBytes(300).toString('hex') }));
    for (const e of written) w.write(e);
    await w.close();
    const [file] = files();
    truncateSync(file as string, Math.floor(statSync(file as string).size / 2));
    const { entries, corrupt } = await readAll(file as string);
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.length).toBeLessThan(written.length);
    expect(entries).toEqual(written.slice(0, entries.length).map((e) => ({ ...e, venue: 'binance_derivatives' })));
    expect(corrupt).toHaveLength(1);
    expect(corrupt[0]?.[0]).toBe(entries.length + 1);
    expect(corrupt[0]?.[1]).toMatch(/gzip stream damaged or truncated/);
  });

  it('rejects when the file cannot be read at all', async () => {
    await expect(readAll(join(dir, 'missing.jsonl.gz'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('counts disk errors instead of throwing, and logs them once per interval', async () => {
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, '');
    let now = 0;
    const w = new RawCaptureWriter({ dir: join(blocker, 'capture'), venue: 'okx_spot', maxFileBytes: 4096, log, now: () => now });
    for (let i = 0; i < 5; i++) w.write({ t: i, kind: 'ws', conn: 'c', url: 'u', data: 'd' });
    now = 10_000;
    w.write({ t: 9, kind: 'ws', conn: 'c', url: 'u', data: 'd' });
    await w.close();
    expect(w.stats).toEqual({ files: 0, entries: 0, bytes: 0, errors: 6 });
    expect(logLines).toHaveLength(1);
    expect(JSON.parse(logLines[0] as string)).toMatchObject({ msg: 'raw capture: disk error, entries are being dropped' });
  });

  it('never overwrites an existing capture file', async () => {
    const at = Date.UTC(2026, 0, 1);
    const name = join(dir, captureFileName('okx_spot', at, 1));
    writeFileSync(name, 'earlier capture');
    const w = new RawCaptureWriter({ dir, venue: 'okx_spot', maxFileBytes: 4096, log, now: () => at });
    w.write({ t: 1, kind: 'ws', conn: 'c', url: 'u', data: 'd' });
    await w.close();
    expect(readFileSync(name, 'utf8')).toBe('earlier capture');
    expect(w.stats.errors).toBe(1);
  });

  it('validates single lines', () => {
    expect(parseCaptureLine('{"t":1,"kind":"rest","venue":"deribit_derivatives","conn":"c","url":"u","data":""}')).toEqual({
      t: 1,
      kind: 'rest',
      venue: 'deribit_derivatives',
      conn: 'c',
      url: 'u',
      data: '',
    });
    expect(parseCaptureLine('[1]')).toBe('not a JSON object');
    expect(parseCaptureLine('{"t":"1","kind":"ws"}')).toBe('t is not a number');
    expect(parseCaptureLine('{"t":1,"kind":"ws","venue":"okx_spot","conn":"c","url":"u","data":{}}')).toBe('conn, url or data is not a string');
  });
});
