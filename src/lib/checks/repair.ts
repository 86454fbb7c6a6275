import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { homePaths, type DaemonName } from '../paths.js';
import { ensureSupervisor } from '../platform.js';
import { callSupervisor } from '../supervisor/control.js';
import { acquireLock } from '../supervisor/lock.js';
import { readSnapshot } from '../supervisor/state.js';
import { cleanStaleFiles, type CleanAction } from './clean.js';
import { repairData, type DataRepairAction } from './data-repair.js';
import { runIntegrity, type IntegrityReport } from './integrity.js';

export interface RestartAction {
  daemon: DaemonName;
  reason: string;
  done: boolean;
  detail: string;
}

/** Stable --json shape of `mprism repair`. */
export interface RepairReport {
  ok: boolean;
  dryRun: boolean;
  integrityBefore: IntegrityReport | null;
  data: DataRepairAction[];
  locks: CleanAction[];
  restarts: RestartAction[];
  errors: string[];
}

/**
 * Daemons the supervisor was running that are now dead or errored. When the supervisor itself is
 * gone, its last snapshot says which daemons were meant to run.
 */
async function deadDaemons(config: Config): Promise<{ names: DaemonName[]; reason: Map<DaemonName, string>; simulate: boolean }> {
  const paths = homePaths(config.home);
  const live = await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 2000).catch(() => null);
  const snap = live ?? readSnapshot(paths.supervisorState);
  const reason = new Map<DaemonName, string>();
  if (!snap) return { names: [], reason, simulate: false };
  for (const d of snap.daemons) {
    if (live && d.state === 'errored') reason.set(d.name, `errored: ${d.detail ?? ''}`.trim());
    if (!live && d.state !== 'stopped') reason.set(d.name, `supervisor is not running (daemon was ${d.state})`);
  }
  return { names: [...reason.keys()], reason, simulate: snap.simulate };
}

/**
 * Fix what integrity and the process table show broken. Holds the `repair` lock so overlapping
 * cron runs never repair the same window twice at once; every step is idempotent.
 */
export async function runRepair(config: Config, opts: { dryRun: boolean; sinceMs: number }): Promise<RepairReport> {
  const lock = acquireLock(homePaths(config.home).lockFile('repair'), 'repair');
  const report: RepairReport = { ok: true, dryRun: opts.dryRun, integrityBefore: null, data: [], locks: [], restarts: [], errors: [] };
  try {
    report.locks = cleanStaleFiles(config, { dryRun: opts.dryRun });
    try {
      report.integrityBefore = await runIntegrity(config, { sinceMs: opts.sinceMs });
      report.data = await repairData(config, report.integrityBefore, { dryRun: opts.dryRun });
    } catch (err) {
      report.errors.push(`data repair: ${errorMessage(err)}`);
    }
    const dead = await deadDaemons(config);
    for (const name of dead.names) {
      const action: RestartAction = { daemon: name, reason: dead.reason.get(name)!, done: false, detail: '' };
      report.restarts.push(action);
    }
    if (!opts.dryRun && report.restarts.length > 0) {
      try {
        await ensureSupervisor(config);
        const result = await callSupervisor(homePaths(config.home).supervisorSocket, 'POST /start', { names: dead.names, simulate: dead.simulate }, 600_000);
        for (const a of report.restarts) {
          const failed = result.failed.find((f) => f.name === a.daemon);
          a.done = !failed && result.daemons.find((d) => d.name === a.daemon)?.state === 'running';
          a.detail = failed ? failed.reason : a.done ? 'restarted' : 'not started (an earlier daemon failed)';
        }
      } catch (err) {
        report.errors.push(`restart: ${errorMessage(err)}`);
      }
    }
  } finally {
    lock.release();
  }
  report.ok =
    report.errors.length === 0 &&
    report.data.every((a) => a.done || opts.dryRun) &&
    report.restarts.every((a) => a.done || opts.dryRun);
  return report;
}
