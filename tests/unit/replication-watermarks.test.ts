import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decideWatermarkWrite, readWatermarkFile, WatermarkError, watermarkFile } from '../../src/lib/replication/watermarks.js';
import { createWatermarksTableSql, fenceCondition } from '../../src/lib/store/watermarks.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mprism-wm-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the legacy watermark file (carried into cold once)', () => {
  it('reads nothing when there is no file, and the tables of a valid one', () => {
    const file = join(tempDir(), 'watermarks.json');
    expect(readWatermarkFile(file)).toBeNull();
    writeFileSync(file, JSON.stringify({ version: 1, tables: { trades: 240_000, orderbooks: 180_000 } }));
    expect(readWatermarkFile(file)).toEqual(new Map([['trades', 240_000], ['orderbooks', 180_000]]));
  });

  it('refuses a corrupt file with a message naming it instead of resetting', () => {
    const file = join(tempDir(), 'watermarks.json');
    for (const text of ['{"version":1,"tables":{"trades":12', '[]', '{"version":2,"tables":{}}', '{"version":1,"tables":{"trades":"x"}}', '{"version":1,"tables":{"trades":-5}}']) {
      writeFileSync(file, text);
      expect(() => readWatermarkFile(file), text).toThrow(WatermarkError);
    }
    writeFileSync(file, '{"version":1,"tables":{"trades":"x"}}');
    expect(() => readWatermarkFile(file)).toThrow(new RegExp(`${file}: corrupt watermark file`));
  });

  it('lives under the replication data directory of MPRISM_HOME', () => {
    expect(watermarkFile('/h')).toBe('/h/data/replication/watermarks.json');
  });
});

describe('fenced watermark writes', () => {
  it('writes under the newest fence or a newer one, refuses under an older one', () => {
    expect(decideWatermarkWrite(undefined, 1)).toBe('written');
    expect(decideWatermarkWrite({ watermark: 60_000, fence: 3 }, 3)).toBe('written');
    expect(decideWatermarkWrite({ watermark: 60_000, fence: 3 }, 4)).toBe('written');
    expect(decideWatermarkWrite({ watermark: 60_000, fence: 4 }, 3)).toBe('fenced');
    // A migrated watermark (fence 0) is below every lease's fence.
    expect(decideWatermarkWrite({ watermark: 60_000, fence: 0 }, 1)).toBe('written');
  });

  it('keeps one row per lease term and reads the max, so a late smaller write changes nothing', () => {
    const sql = createWatermarksTableSql('cold');
    expect(sql).toContain('ReplacingMergeTree(watermark_ms)');
    expect(sql).toContain('ORDER BY (table_name, fence)');
    // On a replicated cold, replicated like the data, under the same ZooKeeper path scheme.
    expect(createWatermarksTableSql('cold', 'replicated')).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cold/replication_watermarks', '{replica}', watermark_ms)",
    );
  });

  it('the copy condition compares the recorded fence of that table on the target', () => {
    expect(fenceCondition('cold', 'trades', 7)).toBe(
      "1 GLOBAL IN (SELECT toUInt8(max(fence) <= 7) FROM `cold`.`replication_watermarks` WHERE table_name = 'trades')",
    );
    expect(() => fenceCondition('cold', 'trades', -1)).toThrow(RangeError);
  });
});
