import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { homePaths, type DaemonName, type InfraName } from '../paths.js';
import { probeInfra } from '../infra/probe.js';
import { ensureInfra, ensureSupervisor, localInfra } from '../platform.js';
import { callSupervisor } from '../supervisor/control.js';
import { acquireLock } from '../supervisor/lock.js';
import { readSnapshot } from '../supervisor/state.js';
import { cleanStaleFiles, type CleanAction, type KeptFile } from './clean.js';
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
  /** Broken-looking lock files left in place (their holder is alive), and why. */
  keptLocks: KeptFile[];
  /** Local servers that were down while daemons should run. */
  infra: { name: InfraName; done: boolean; detail: string }[];
  restarts: RestartAction[];
  errors: string[];
}

/**
 * Daemons that should run but do not: wanted (started and not stopped since) yet errored or
 * stopped under a live supervisor; or, when the supervisor itself is gone, every daemon its last
 * snapshot says was wanted. After `mprism stop` nothing is wanted, so cron repair starts nothing.
 */
async function deadDaemons(config: Config): Promise<{ names: DaemonName[]; reason: Map<DaemonName, string>; simulate: boolean }> {
  const paths = homePaths(config.home);
  const live = await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 2000).catch(() => null);
  const snap = live ?? readSnapshot(paths.supervisorState);
  const reason = new Map<DaemonName, string>();
  if (!snap) return { names: [], reason, simulate: false };
  for (const d of snap.daemons) {
    if (!d.wanted) continue;
    if (!live) reason.set(d.name, `supervisor is not running (daemon was ${d.state})`);
    else if (d.state === 'errored' || d.state === 'stopped') reason.set(d.name, `${d.state}${d.detail ? `: ${d.detail}` : ''}`);
  }
  return { names: [...reason.keys()], reason, simulate: snap.simulate };
}

/** Local servers that are down while daemons should be running: they are started before the daemons. */
async function downInfra(config: Config): Promise<InfraName[]> {
  const states = await Promise.all(localInfra(config).map(async (name) => ({ name, up: (await probeInfra(config, name, 2000)).up })));
  return states.filter((s) => !s.up).map((s) => s.name);
}

/**
 * Fix what integrity and the process table show broken. Holds the `repair` lock so overlapping
 * cron runs never repair the same window twice at once; every step is idempotent.
 */
export async function runRepair(config: Config, opts: { dryRun: boolean; sinceMs: number }): Promise<RepairReport> {
  const lock = acquireLock(homePaths(config.home).lockFile('repair'), 'repair');
  const report: RepairReport = { ok: true, dryRun: opts.dryRun, integrityBefore: null, data: [], locks: [], keptLocks: [], infra: [], restarts: [], errors: [] };
  try {
    const clean = cleanStaleFiles(config, { dryRun: opts.dryRun });
    report.locks = clean.files;
    report.keptLocks = clean.kept;
    // Processes first: the data checks below need the servers up.
    const dead = await deadDaemons(config);
    let infraOk = true;
    if (dead.names.length > 0) {
      for (const name of await downInfra(config)) report.infra.push({ name, done: false, detail: '' });
      if (!opts.dryRun && report.infra.length > 0) {
        try {
          await ensureInfra(config, report.infra.map((i) => i.name), () => undefined);
          for (const i of report.infra) Object.assign(i, { done: true, detail: 'started' });
        } catch (err) {
          infraOk = false;
          report.errors.push(`infra: ${errorMessage(err)}`);
        }
      }
    }
    for (const name of dead.names) {
      report.restarts.push({ daemon: name, reason: dead.reason.get(name)!, done: false, detail: '' });
    }
    if (!opts.dryRun && report.restarts.length > 0 && infraOk) {
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
    try {
      report.integrityBefore = await runIntegrity(config, { sinceMs: opts.sinceMs });
      report.data = await repairData(config, report.integrityBefore, { dryRun: opts.dryRun });
    } catch (err) {
      report.errors.push(`data repair: ${errorMessage(err)}`);
    }
  } finally {
    lock.release();
  }
  report.ok =
    report.errors.length === 0 &&
    report.data.every((a) => a.done || opts.dryRun) &&
    report.infra.every((a) => a.done || opts.dryRun) &&
    report.restarts.every((a) => a.done || opts.dryRun);
  return report;
}
