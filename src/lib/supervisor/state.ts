import { readFileSync } from 'node:fs';
import type { DaemonName, InfraName } from '../paths.js';
import { writeFileAtomic } from '../process-util.js';

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
  /** Taken over from an earlier supervisor that died: not our child, so its exit status is unknown. */
  adopted?: boolean;
}

export type InfraState = 'stopped' | 'starting' | 'running' | 'backoff' | 'errored';

/** A local server the supervisor watches (servers with a configured URL are not watched). */
export interface InfraProcessStatus {
  name: InfraName;
  state: InfraState;
  pid: number | null;
  startedAt: number | null;
  restarts: number;
  fastFailures: number;
  lastExit: { at: number } | null;
  detail: string | null;
  /** Asked to run by start or repair and not stopped since: the supervisor restarts it when it dies. */
  wanted: boolean;
}

/** What the supervisor persists to run/supervisor-state.json on every change (read by status when it is down). */
export interface SupervisorSnapshot {
  pid: number;
  startedAt: number;
  simulate: boolean;
  daemons: DaemonStatus[];
  /** Absent in snapshots written before the supervisor watched local servers. */
  infra?: InfraProcessStatus[];
}

export function readSnapshot(file: string): SupervisorSnapshot | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as SupervisorSnapshot;
    return Array.isArray(v.daemons) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether the platform is meant to be running: something was started and not stopped since.
 * `mprism stop` clears every wanted flag, so a supervisor missing after it is stopped, not dead.
 */
export function platformWanted(snap: SupervisorSnapshot | null): boolean {
  if (snap === null) return false;
  return snap.daemons.some((d) => d.wanted) || (snap.infra ?? []).some((i) => i.wanted);
}

/** Whether a local server should be running per the snapshot; older snapshots imply it from wanted daemons. */
export function infraWanted(snap: SupervisorSnapshot | null, name: InfraName): boolean {
  if (snap === null) return false;
  const entry = snap.infra?.find((i) => i.name === name);
  return entry !== undefined ? entry.wanted : snap.daemons.some((d) => d.wanted);
}

/**
 * Records a stop done without the supervisor (it was dead): the named processes are no longer
 * wanted, so status calls them stopped, not dead, and repair leaves them alone.
 */
export function clearWanted(file: string, names: readonly string[]): void {
  const snap = readSnapshot(file);
  if (snap === null) return;
  for (const p of [...snap.daemons, ...(snap.infra ?? [])]) if (names.includes(p.name)) p.wanted = false;
  writeFileAtomic(file, JSON.stringify(snap, null, 2));
}
