import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RotatingLog } from '../../src/lib/supervisor/rotating-log.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-log-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('RotatingLog', () => {
  it('caps each file and keeps only `keep` rotated files', () => {
    const file = join(dir, 'storage.log');
    const log = new RotatingLog(file, 1024, 2);
    for (let i = 0; i < 100; i++) log.write(`${String(i).padStart(3, '0')} ${'x'.repeat(95)}\n`);
    log.close();
    expect(statSync(file).size).toBeLessThanOrEqual(1024);
    expect(existsSync(`${file}.1`)).toBe(true);
    expect(existsSync(`${file}.2`)).toBe(true);
    expect(existsSync(`${file}.3`)).toBe(false);
    // the newest line is in the current file, the previous ones in .1
    expect(readFileSync(file, 'utf8')).toContain('099 ');
    const older = readFileSync(`${file}.1`, 'utf8').trim().split('\n');
    const current = readFileSync(file, 'utf8').trim().split('\n');
    expect(Number(older.at(-1)!.slice(0, 3)) + 1).toBe(Number(current[0]!.slice(0, 3)));
  });

  it('appends to an existing file across restarts', () => {
    const file = join(dir, 'a.log');
    const a = new RotatingLog(file, 10_000, 1);
    a.write('one\n');
    a.close();
    const b = new RotatingLog(file, 10_000, 1);
    b.write('two\n');
    b.close();
    expect(readFileSync(file, 'utf8')).toBe('one\ntwo\n');
  });
});
