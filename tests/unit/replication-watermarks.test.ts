import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WatermarkError, WatermarkStore, watermarkFile } from '../../src/lib/replication/watermarks.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mprism-wm-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('WatermarkStore', () => {
  it('starts empty when the file does not exist and creates its directory on first write', () => {
    const file = join(tempDir(), 'nested', 'watermarks.json');
    const store = new WatermarkStore(file);
    expect(store.get('trades')).toBeNull();
    store.set('trades', 120_000);
    expect(store.get('trades')).toBe(120_000);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, tables: { trades: 120_000 } });
  });

  it('survives a reopen and leaves no temporary file behind', () => {
    const dir = tempDir();
    const file = join(dir, 'watermarks.json');
    const a = new WatermarkStore(file);
    a.set('trades', 60_000);
    a.set('orderbooks', 180_000);
    a.set('trades', 240_000);
    const b = new WatermarkStore(file);
    expect(b.get('trades')).toBe(240_000);
    expect(b.get('orderbooks')).toBe(180_000);
    expect(readdirSync(dir)).toEqual(['watermarks.json']);
  });

  it('refuses a corrupt file with a message naming it instead of resetting', () => {
    const file = join(tempDir(), 'watermarks.json');
    for (const text of ['{"version":1,"tables":{"trades":12', '[]', '{"version":2,"tables":{}}', '{"version":1,"tables":{"trades":"x"}}', '{"version":1,"tables":{"trades":-5}}']) {
      writeFileSync(file, text);
      expect(() => new WatermarkStore(file), text).toThrow(WatermarkError);
    }
    writeFileSync(file, '{"version":1,"tables":{"trades":"x"}}');
    expect(() => new WatermarkStore(file)).toThrow(new RegExp(`${file}: corrupt watermark file`));
  });

  it('rejects a watermark that is not epoch milliseconds', () => {
    const store = new WatermarkStore(join(tempDir(), 'w.json'));
    expect(() => store.set('trades', 1.5)).toThrow(RangeError);
    expect(store.get('trades')).toBeNull();
  });

  it('lives under the replication data directory of MPRISM_HOME', () => {
    expect(watermarkFile('/h')).toBe('/h/data/replication/watermarks.json');
  });
});
