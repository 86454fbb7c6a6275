import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RotatingLog, copyTruncateIfLarger } from '../../src/lib/supervisor/rotating-log.js';

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

describe('copyTruncateIfLarger', () => {
  it('leaves a small file alone', () => {
    const file = join(dir, 'nats.log');
    writeFileSync(file, 'x'.repeat(100));
    expect(copyTruncateIfLarger(file, 1000, 2)).toBe(false);
    expect(readFileSync(file, 'utf8')).toHaveLength(100);
  });

  it('copies a large file aside and truncates it in place, so an O_APPEND writer keeps writing to it', () => {
    const file = join(dir, 'redis.log');
    const fd = openSync(file, 'a');
    writeSync(fd, 'a'.repeat(2000));
    expect(copyTruncateIfLarger(file, 1000, 2)).toBe(true);
    writeSync(fd, 'after\n');
    closeSync(fd);
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('a'.repeat(2000));
    expect(readFileSync(file, 'utf8')).toBe('after\n');
  });

  it('keeps at most `keep` old copies and ignores a missing file', () => {
    const file = join(dir, 'pg.log');
    for (let i = 0; i < 4; i++) {
      writeFileSync(file, String(i).repeat(2000));
      copyTruncateIfLarger(file, 1000, 2);
    }
    expect(readFileSync(`${file}.1`, 'utf8')[0]).toBe('3');
    expect(readFileSync(`${file}.2`, 'utf8')[0]).toBe('2');
    expect(existsSync(`${file}.3`)).toBe(false);
    expect(copyTruncateIfLarger(join(dir, 'missing.log'), 10, 1)).toBe(false);
  });
});
