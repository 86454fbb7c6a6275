import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  isAlive,
  processCommand,
  processStartTime,
  readPidFile,
  tailFile,
  waitFor,
  writeFileAtomic,
} from '../../src/lib/process-util.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readPidFile', () => {
  it('reads the pid on the first line', () => {
    writeFileSync(join(dir, 'a.pid'), '1234\n');
    writeFileSync(join(dir, 'b.pid'), ' 42 \nstart=99\n');
    expect(readPidFile(join(dir, 'a.pid'))).toBe(1234);
    expect(readPidFile(join(dir, 'b.pid'))).toBe(42);
  });

  it('gives null for a missing, empty or corrupt file', () => {
    for (const [name, text] of [['empty', ''], ['junk', '12abc\n'], ['zero', '0\n'], ['neg', '-5\n'], ['huge', '99999999999999999999\n']]) {
      writeFileSync(join(dir, name as string), text as string);
      expect(readPidFile(join(dir, name as string)), name).toBeNull();
    }
    expect(readPidFile(join(dir, 'missing.pid'))).toBeNull();
  });
});

describe('writeFileAtomic', () => {
  it('creates parent directories, replaces content and leaves no temp file behind', () => {
    const file = join(dir, 'run', 'x.pid');
    writeFileAtomic(file, 'one\n');
    writeFileAtomic(file, 'two\n');
    expect(readFileSync(file, 'utf8')).toBe('two\n');
    expect(readdirSync(join(dir, 'run'))).toEqual(['x.pid']);
  });
});

describe('process inspection', () => {
  it('sees this process as alive with a start time and a command line', () => {
    expect(isAlive(process.pid)).toBe(true);
    const start = processStartTime(process.pid);
    expect(start).toMatch(/^\d+$/);
    expect(processStartTime(process.pid)).toBe(start);
    expect(processCommand(process.pid)).toMatch(/node/);
  });

  it('tells processes apart by start time', () => {
    expect(processStartTime(1)).not.toBe(processStartTime(process.pid));
  });

  it('reports an exited process as dead and has nothing to say about it', async () => {
    const child = spawn('sleep', ['10']);
    const pid = child.pid as number;
    expect(isAlive(pid)).toBe(true);
    expect(processCommand(pid)).toBe('sleep 10');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    await waitFor(() => !isAlive(pid), { timeoutMs: 2000, what: 'child to die' });
    expect(processStartTime(pid)).toBeNull();
    expect(processCommand(pid)).toBeNull();
  });

  it('rejects impossible pids', () => {
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-1)).toBe(false);
    expect(isAlive(1.5)).toBe(false);
  });
});

describe('waitFor', () => {
  it('resolves once the check passes', async () => {
    let n = 0;
    await waitFor(() => ++n >= 3, { timeoutMs: 1000, intervalMs: 5, what: 'three calls' });
    expect(n).toBe(3);
  });

  it('times out with what it waited for', async () => {
    await expect(waitFor(async () => false, { timeoutMs: 50, intervalMs: 10, what: 'the moon' })).rejects.toThrow(
      /timed out after 50 ms waiting for the moon/,
    );
  });

  it('stops at once when the check throws', async () => {
    const started = Date.now();
    await expect(
      waitFor(() => {
        throw new Error('server died');
      }, { timeoutMs: 5000, what: 'x' }),
    ).rejects.toThrow('server died');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('tailFile', () => {
  it('returns the last lines, or empty for a missing file', () => {
    const file = join(dir, 'log');
    writeFileSync(file, Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n');
    expect(tailFile(file, 3)).toBe('line 97\nline 98\nline 99');
    expect(tailFile(join(dir, 'nope'), 3)).toBe('');
  });

  it('reads only the end of a big file', () => {
    const file = join(dir, 'big');
    writeFileSync(file, 'x'.repeat(1_000_000) + '\nlast\n');
    expect(tailFile(file, 1)).toBe('last');
  });
});
