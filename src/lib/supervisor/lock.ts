import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import { LockHeldError } from '../errors.js';
import { DAEMON_NAMES, daemonPort, homePaths, type DaemonName } from '../paths.js';
import { isAlive, processCommand, processStartTime, readPidFile } from '../process-util.js';
import { holdsSocket, listeningInodes, listeningPid } from './port-owner.js';

export interface LockInfo {
  name: string;
  pid: number;
  /** /proc start time of pid when it took the lock: tells a reused pid from the holder. */
  startTime: string | null;
  acquiredAt: string;
}

export type LockState =
  | { state: 'free' }
  /** corrupt: the lock file is unreadable, but its holder was found alive (and why it is the holder). */
  | { state: 'live'; info: LockInfo; corrupt?: string }
  | { state: 'stale'; info: LockInfo | null; reason: string };

/** Where to find the holder of a lock whose file is corrupt (a torn write, a full disk, an editor). */
export interface LockHolderHints {
  /** The holder's pid file, written by the holder next to its lock. */
  pidFile?: string;
  /** The port the holder listens on: a daemon serves /health there. */
  port?: number;
  /** Text the holder's command line contains, e.g. `daemons/main.js storage`. */
  command?: string;
}

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.name !== 'string') return null;
    return { name: v.name, pid: v.pid, startTime: v.startTime ?? null, acquiredAt: String(v.acquiredAt ?? '') };
  } catch {
    return null;
  }
}

/**
 * The live holder of a lock whose file cannot be read. With a port, the holder must be listening
 * on it: the pid from the pid file if it does, otherwise whoever listens there and runs the
 * holder's command. Without a port, the pid file's pid must be alive and run the command.
 */
function findHolder(hints: LockHolderHints): { pid: number; why: string } | null {
  const fromFile = hints.pidFile === undefined ? null : readPidFile(hints.pidFile);
  const runsCommand = (pid: number) => hints.command !== undefined && (processCommand(pid) ?? '').includes(hints.command);
  if (hints.port !== undefined) {
    const inodes = listeningInodes(hints.port);
    if (inodes.size === 0) return null;
    if (fromFile !== null && isAlive(fromFile) && holdsSocket(fromFile, inodes)) {
      return { pid: fromFile, why: `pid ${fromFile} from its pid file is alive and listening on port ${hints.port}` };
    }
    const listener = listeningPid(hints.port);
    if (listener !== null && runsCommand(listener)) return { pid: listener, why: `pid ${listener} is listening on port ${hints.port}` };
    return null;
  }
  if (fromFile !== null && isAlive(fromFile) && runsCommand(fromFile)) return { pid: fromFile, why: `pid ${fromFile} from its pid file is alive` };
  return null;
}

/**
 * Live, stale (and why), or free; never throws for a missing or corrupt file. A corrupt file is
 * stale unless `hints` lead to its live holder: deleting the lock of a running daemon would let a
 * second instance start beside it.
 */
export function inspectLock(file: string, hints?: LockHolderHints): LockState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { state: 'free' };
  }
  const info = parseLock(text);
  if (info === null) {
    const holder = hints === undefined ? null : findHolder(hints);
    if (holder === null) return { state: 'stale', info: null, reason: 'corrupt lock file' };
    const name = file.slice(file.lastIndexOf('/') + 1).replace(/\.lock$/, '');
    return {
      state: 'live',
      info: { name, pid: holder.pid, startTime: processStartTime(holder.pid), acquiredAt: '' },
      corrupt: `corrupt lock file, but ${holder.why}`,
    };
  }
  if (!isAlive(info.pid)) return { state: 'stale', info, reason: `pid ${info.pid} is not running` };
  const now = processStartTime(info.pid);
  if (info.startTime !== null && now !== null && now !== info.startTime) {
    return { state: 'stale', info, reason: `pid ${info.pid} was reused by another process` };
  }
  return { state: 'live', info };
}

/** The hints for a lock under MPRISM_HOME/run: daemons are found by port, the supervisor by its pid file. */
export function homeLockHints(config: Config, name: string): LockHolderHints {
  const pidFile = homePaths(config.home).pidFile(name);
  if ((DAEMON_NAMES as readonly string[]).includes(name)) {
    return { pidFile, port: daemonPort(config, name as DaemonName), command: `daemons/main.js ${name}` };
  }
  if (name === 'supervisor') return { pidFile, command: 'daemons/supervisor/main.js' };
  return {};
}

/** inspectLock of a lock under MPRISM_HOME/run, finding the holder of a corrupt one. */
export function inspectHomeLock(config: Config, name: string): LockState {
  return inspectLock(homePaths(config.home).lockFile(name), homeLockHints(config, name));
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
 * `hints` find the live holder of a corrupt lock (see inspectLock), which is then not taken over.
 */
export function acquireLock(file: string, name: string, pid = process.pid, hints?: LockHolderHints): LockHandle {
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
      const current = inspectLock(file, hints);
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
