import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { DAEMON_NAMES, INFRA_NAMES, homePaths } from '../paths.js';
import { isAlive, readPidFile } from '../process-util.js';
import { effectiveConfigFile, runningPlatformConfig } from '../config/effective.js';
import { inspectHomeLock } from '../supervisor/lock.js';

const TEMP_MIN_AGE_MS = 3600_000;

export interface CleanAction {
  path: string;
  reason: string;
  removed: boolean;
}

/** A file that looks broken but is left in place, and why. */
export interface KeptFile {
  path: string;
  reason: string;
}

export interface CleanReport {
  files: CleanAction[];
  kept: KeptFile[];
}

/**
 * Stale pid and lock files, a leftover supervisor socket, and temp files. Never data: only files
 * under run/ and tmp/ are candidates, and a file naming a live process is kept. A corrupt lock whose
 * daemon is found alive (by its pid file or its port) is kept too, and listed with the reason.
 */
export function findStaleFiles(config: Config, opts: { force: boolean }): { stale: Omit<CleanAction, 'removed'>[]; kept: KeptFile[] } {
  const p = homePaths(config.home);
  const found: Omit<CleanAction, 'removed'>[] = [];
  const kept: KeptFile[] = [];
  const names = ['supervisor', 'repair', ...DAEMON_NAMES];
  for (const name of names) {
    const lock = inspectHomeLock(config, name);
    if (lock.state === 'stale') found.push({ path: p.lockFile(name), reason: `stale lock: ${lock.reason}` });
    else if (lock.state === 'live' && lock.corrupt) kept.push({ path: p.lockFile(name), reason: `lock of live ${name}: ${lock.corrupt}` });
  }
  for (const name of [...names, ...INFRA_NAMES, 'prometheus']) {
    const file = p.pidFile(name);
    if (!existsSync(file)) continue;
    const pid = readPidFile(file);
    if (pid === null) found.push({ path: file, reason: 'corrupt pid file' });
    else if (!isAlive(pid)) found.push({ path: file, reason: `pid ${pid} is not running` });
  }
  const supPid = readPidFile(p.pidFile('supervisor'));
  if (existsSync(p.supervisorSocket) && (supPid === null || !isAlive(supPid))) {
    found.push({ path: p.supervisorSocket, reason: 'socket of a supervisor that is not running' });
  }
  // It holds passwords: once the platform it describes is gone, it is only a liability.
  if (existsSync(effectiveConfigFile(config.home)) && runningPlatformConfig(config.home) === null) {
    found.push({ path: effectiveConfigFile(config.home), reason: 'configuration of a supervisor that is not running' });
  }
  // Temp files of atomic writes and lock take-overs live for milliseconds; an old one is a leftover.
  const leftoverCutoff = Date.now() - 60_000;
  if (existsSync(p.run)) {
    for (const f of readdirSync(p.run)) {
      if (!f.endsWith('.tmp') && !f.includes('.stale.')) continue;
      const path = join(p.run, f);
      if (opts.force || statSync(path).mtimeMs < leftoverCutoff) found.push({ path, reason: 'leftover temp file' });
    }
  }
  if (existsSync(p.tmp)) {
    // A young temp file may belong to a running command; --force takes those too.
    const cutoff = Date.now() - TEMP_MIN_AGE_MS;
    for (const f of readdirSync(p.tmp)) {
      const path = join(p.tmp, f);
      if (opts.force || statSync(path).mtimeMs < cutoff) found.push({ path, reason: 'temp file' });
    }
  }
  return { stale: found, kept };
}

export function cleanStaleFiles(config: Config, opts: { dryRun: boolean; force?: boolean }): CleanReport {
  const { stale, kept } = findStaleFiles(config, { force: opts.force === true });
  const files = stale.map((f) => {
    if (!opts.dryRun) rmSync(f.path, { force: true, recursive: true });
    return { ...f, removed: !opts.dryRun };
  });
  return { files, kept };
}
