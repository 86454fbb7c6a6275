import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockHeldError } from '../../src/lib/errors.js';
import { processStartTime } from '../../src/lib/process-util.js';
import { acquireLock, inspectLock } from '../../src/lib/supervisor/lock.js';

let dir: string;
let file: string;
const children: ChildProcess[] = [];

function liveProcess(): number {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(child);
  return child.pid!;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-lock-'));
  file = join(dir, 'storage.lock');
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('lock files', () => {
  it('a free lock is taken and records pid and start time', () => {
    const h = acquireLock(file, 'storage');
    const info = JSON.parse(readFileSync(file, 'utf8'));
    expect(info.pid).toBe(process.pid);
    expect(info.startTime).toBe(processStartTime(process.pid));
    expect(h.replaced).toBeNull();
    h.release();
    expect(existsSync(file)).toBe(false);
  });

  it('a live lock makes a second instance refuse, naming the holder', () => {
    const pid = liveProcess();
    writeFileSync(file, JSON.stringify({ name: 'storage', pid, startTime: processStartTime(pid), acquiredAt: 'x' }));
    expect(inspectLock(file).state).toBe('live');
    expect(() => acquireLock(file, 'storage')).toThrow(LockHeldError);
    expect(() => acquireLock(file, 'storage')).toThrow(new RegExp(`storage is already running \\(pid ${pid}`));
  });

  it('a lock of a dead pid is stale and taken over', () => {
    const child = spawn('true');
    children.push(child);
    const deadPid = child.pid!;
    return new Promise<void>((resolve) => child.on('exit', () => resolve())).then(() => {
      writeFileSync(file, JSON.stringify({ name: 'storage', pid: deadPid, startTime: '1', acquiredAt: 'x' }));
      const state = inspectLock(file);
      expect(state).toMatchObject({ state: 'stale', reason: `pid ${deadPid} is not running` });
      const h = acquireLock(file, 'storage');
      expect(h.replaced).toBe(`pid ${deadPid} is not running`);
      expect(JSON.parse(readFileSync(file, 'utf8')).pid).toBe(process.pid);
    });
  });

  it('a pid reused by an unrelated process is detected by its start time and taken over', () => {
    const pid = liveProcess();
    const real = processStartTime(pid)!;
    writeFileSync(file, JSON.stringify({ name: 'storage', pid, startTime: String(Number(real) - 1000), acquiredAt: 'x' }));
    expect(inspectLock(file)).toMatchObject({ state: 'stale', reason: `pid ${pid} was reused by another process` });
    const h = acquireLock(file, 'storage');
    expect(h.replaced).toMatch(/reused/);
  });

  it('a corrupt lock file is stale, not a crash', () => {
    writeFileSync(file, '{"pid": "nope"');
    expect(inspectLock(file)).toMatchObject({ state: 'stale', reason: 'corrupt lock file' });
    expect(acquireLock(file, 'storage').replaced).toBe('corrupt lock file');
  });

  it('release leaves a lock alone that another process took over', () => {
    const h = acquireLock(file, 'storage');
    const pid = liveProcess();
    writeFileSync(file, JSON.stringify({ name: 'storage', pid, startTime: processStartTime(pid), acquiredAt: 'x' }));
    h.release();
    expect(JSON.parse(readFileSync(file, 'utf8')).pid).toBe(pid);
  });
});
