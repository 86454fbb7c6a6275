import { readFileSync } from 'node:fs';
import type { DaemonName } from '../paths.js';

export type DaemonState = 'stopped' | 'starting' | 'running' | 'backoff' | 'errored' | 'stopping';

export interface DaemonStatus {
  name: DaemonName;
  state: DaemonState;
  pid: number | null;
  /** Epoch ms of the current process start. */
  startedAt: number | null;
  restarts: number;
  /** Exits in a row that came before stableAfterMs of uptime. */
  fastFailures: number;
  lastExit: { code: number | null; signal: string | null; at: number } | null;
  detail: string | null;
  port: number;
  /** Asked to run (by start) and not asked to stop since: a wanted daemon that is not running is broken. */
  wanted: boolean;
}

/** What the supervisor persists to run/supervisor-state.json on every change (read by status when it is down). */
export interface SupervisorSnapshot {
  pid: number;
  startedAt: number;
  simulate: boolean;
  daemons: DaemonStatus[];
}

export function readSnapshot(file: string): SupervisorSnapshot | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as SupervisorSnapshot;
    return Array.isArray(v.daemons) ? v : null;
  } catch {
    return null;
  }
}
