import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LockHeldError } from '../errors.js';
import { isAlive, processStartTime } from '../process-util.js';

export interface LockInfo {
  name: string;
  pid: number;
  /** /proc start time of pid when it took the lock: tells a reused pid from the holder. */
  startTime: string | null;
  acquiredAt: string;
}

export type LockState =
  | { state: 'free' }
  | { state: 'live'; info: LockInfo }
  | { state: 'stale'; info: LockInfo | null; reason: string };

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.name !== 'string') return null;
    return { name: v.name, pid: v.pid, startTime: v.startTime ?? null, acquiredAt: String(v.acquiredAt ?? '') };
  } catch {
    return null;
  }
}

/** Live, stale (and why), or free; never throws for a missing or corrupt file. */
export function inspectLock(file: string): LockState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { state: 'free' };
  }
  const info = parseLock(text);
  if (info === null) return { state: 'stale', info: null, reason: 'corrupt lock file' };
  if (!isAlive(info.pid)) return { state: 'stale', info, reason: `pid ${info.pid} is not running` };
  const now = processStartTime(info.pid);
  if (info.startTime !== null && now !== null && now !== info.startTime) {
    return { state: 'stale', info, reason: `pid ${info.pid} was reused by another process` };
  }
  return { state: 'live', info };
}

export interface LockHandle {
  file: string;
  info: LockInfo;
  /** Release only if the lock still names us (another process may have taken over a lock judged stale). */
  release(): void;
  /** Stale lock this acquisition replaced, if any, and why it was stale. */
  replaced: string | null;
}

/**
 * Exclusive lock file. Creation is atomic (write a temp file, hard-link it into place: link fails
 * if the lock exists), so a reader never sees a half-written lock. A stale lock is renamed aside
 * and checked before retrying: a racer's fresh lock moved by mistake is put back, not deleted.
 */
export function acquireLock(file: string, name: string, pid = process.pid): LockHandle {
  mkdirSync(dirname(file), { recursive: true });
  const info: LockInfo = { name, pid, startTime: processStartTime(pid), acquiredAt: new Date().toISOString() };
  const tmp = `${file}.${pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info));
  let replaced: string | null = null;
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, file);
        return { file, info, replaced, release: () => releaseLock(file, info) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const current = inspectLock(file);
      if (current.state === 'live') throw new LockHeldError(file, current.info.pid, current.info.name);
      if (current.state === 'stale') {
        replaced = current.reason;
        const aside = `${file}.stale.${pid}`;
        try {
          renameSync(file, aside);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone else moved it first
          throw err;
        }
        // Between our inspection and the rename another process may have replaced the stale lock
        // with its own live one: then we moved the wrong file, and put it back.
        let moved: string | null = null;
        try {
          moved = readFileSync(aside, 'utf8');
        } catch {
          // vanished: nothing to restore
        }
        const movedInfo = moved === null ? null : parseLock(moved);
        const sameAsInspected = current.info === null ? movedInfo === null : movedInfo?.pid === current.info.pid && movedInfo.startTime === current.info.startTime;
        if (moved !== null && !sameAsInspected) {
          try {
            linkSync(aside, file);
          } catch {
            // a third process took the slot meanwhile; its lock stands
          }
        }
        try {
          unlinkSync(aside);
        } catch {
          // already gone
        }
      }
    }
    throw new LockHeldError(file, -1, `${name} (lock contended)`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

function releaseLock(file: string, info: LockInfo): void {
  const current = inspectLock(file);
  if (current.state !== 'free' && current.info?.pid === info.pid && current.info.startTime === info.startTime) {
    try {
      unlinkSync(file);
    } catch {
      // removed concurrently by `mprism clean`; nothing to release
    }
  }
}
