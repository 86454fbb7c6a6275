import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { DAEMON_NAMES, activeDaemons, homePaths, type DaemonName, type InfraName } from '../paths.js';
import { probeInfra } from '../infra/probe.js';
import { ensureSupervisor, localInfra } from '../platform.js';
import { callSupervisor } from '../supervisor/control.js';
import { acquireLock, inspectHomeLock } from '../supervisor/lock.js';
import { infraWanted, platformWanted } from '../supervisor/state.js';
import type { StartResult } from '../supervisor/supervisor.js';
import { cleanStaleFiles, type CleanAction, type KeptFile } from './clean.js';
import { repairData, type DataRepairAction } from './data-repair.js';
import { repairHoles, type HoleRepairAction } from './hole-repair.js';
import { runIntegrity, type IntegrityReport } from './integrity.js';
import { runRetention, type RetentionReport } from './retention.js';
import { judgeSupervisor, supervisorView } from './status.js';

export interface RestartAction {
  daemon: DaemonName;
  reason: string;
  done: boolean;
  detail: string;
}

export interface AdoptAction {
  daemon: DaemonName;
  pid: number;
  done: boolean;
  detail: string;
}

/** Stable --json shape of `mprism repair`. */
export interface RepairReport {
  ok: boolean;
  dryRun: boolean;
  integrityBefore: IntegrityReport | null;
  /** What was done about each open hole (refilled from the venues' history, or why not). */
  holes: HoleRepairAction[];
  data: DataRepairAction[];
  /**
   * Retention, last: hot partitions past retention.hotDays that cold lacks rows of are copied to cold,
   * then every partition past its horizon and verified is dropped. With --dry-run: the plan, nothing dropped.
   */
  retention: RetentionReport | null;
  locks: CleanAction[];
  /** Broken-looking lock files left in place (their holder is alive), and why. */
  keptLocks: KeptFile[];
  /** A supervisor that died without `mprism stop` is replaced by a new one. */
  supervisor: { reason: string; done: boolean; detail: string } | null;
  /** Local servers that were down while they should run; done only when they answer afterwards. */
  infra: { name: InfraName; done: boolean; detail: string }[];
  /** Daemons that should run but did not: started. */
  restarts: RestartAction[];
  /** Daemons a dead supervisor left running: kept as they are and handed to the new supervisor. */
  adopted: AdoptAction[];
  errors: string[];
}

/** What repair sees of the processes before it acts. */
export interface ProcessFacts {
  /** As judged by judgeSupervisor: running | unresponsive | dead | stopped. */
  supervisor: string;
  supervisorDetail: string | null;
  simulate: boolean;
  daemons: { name: DaemonName; wanted: boolean; state: string | null; detail: string | null; livePid: number | null }[];
  /** Local servers only (a configured URL is not ours to start). */
  infra: { name: InfraName; wanted: boolean; up: boolean }[];
}

export interface ProcessPlan {
  replaceSupervisor: string | null;
  startInfra: { name: InfraName; reason: string }[];
  startDaemons: { name: DaemonName; reason: string }[];
  adoptDaemons: { name: DaemonName; pid: number }[];
  /** What the (new) supervisor is asked to start; a start is a no-op for what already runs. */
  request: { names: DaemonName[]; infra: InfraName[]; simulate: boolean } | null;
  /** Why nothing can be done safely. */
  blocked: string | null;
}

/**
 * Starts what is down (servers first, then daemons), never restarts a daemon that runs: under a
 * dead supervisor a live daemon is adopted by the new one. After `mprism stop` nothing is wanted,
 * so cron repair starts nothing.
 */
export function planProcessRepair(f: ProcessFacts): ProcessPlan {
  const plan: ProcessPlan = { replaceSupervisor: null, startInfra: [], startDaemons: [], adoptDaemons: [], request: null, blocked: null };
  if (f.supervisor === 'stopped') return plan;
  if (f.supervisor === 'unresponsive') {
    plan.blocked = `supervisor ${f.supervisorDetail ?? 'does not answer'}: run 'mprism stop' then 'mprism start'`;
    return plan;
  }
  const supervisorDead = f.supervisor === 'dead';
  if (supervisorDead) plan.replaceSupervisor = f.supervisorDetail ?? "died without 'mprism stop'";
  const wantedInfra = f.infra.filter((i) => i.wanted);
  plan.startInfra = wantedInfra.filter((i) => !i.up).map((i) => ({ name: i.name, reason: 'down while it should run' }));
  for (const d of f.daemons.filter((x) => x.wanted)) {
    if (supervisorDead) {
      if (d.livePid !== null) plan.adoptDaemons.push({ name: d.name, pid: d.livePid });
      else plan.startDaemons.push({ name: d.name, reason: `died (was ${d.state ?? 'running'} when the supervisor died)` });
    } else if (d.livePid === null && (d.state === 'errored' || d.state === 'stopped')) {
      plan.startDaemons.push({ name: d.name, reason: `${d.state}${d.detail ? `: ${d.detail}` : ''}` });
    }
  }
  const actions = plan.replaceSupervisor !== null || plan.startInfra.length > 0 || plan.startDaemons.length > 0 || plan.adoptDaemons.length > 0;
  if (actions) {
    const names = DAEMON_NAMES.filter((n) => plan.startDaemons.some((d) => d.name === n) || plan.adoptDaemons.some((d) => d.name === n));
    plan.request = { names, infra: wantedInfra.map((i) => i.name), simulate: f.simulate };
  }
  return plan;
}

async function processFacts(config: Config): Promise<ProcessFacts> {
  const view = await supervisorView(config);
  const snap = view.snapshot;
  const sup = judgeSupervisor(view.reachable, inspectHomeLock(config, 'supervisor'), platformWanted(snap));
  const infra = await Promise.all(
    localInfra(config).map(async (name) => ({ name, wanted: infraWanted(snap, name), up: (await probeInfra(config, name, 2000)).up })),
  );
  const daemons = activeDaemons(config).map((name) => {
    const d = snap?.daemons.find((x) => x.name === name);
    const lock = inspectHomeLock(config, name);
    return { name, wanted: d?.wanted ?? false, state: d?.state ?? null, detail: d?.detail ?? null, livePid: lock.state === 'live' ? lock.info.pid : null };
  });
  return { supervisor: sup.state, supervisorDetail: sup.detail, simulate: snap?.simulate ?? false, daemons, infra };
}

/** Carries out the plan through the (new) supervisor and reports what is true afterwards. */
async function repairProcesses(config: Config, plan: ProcessPlan, report: RepairReport, dryRun: boolean): Promise<void> {
  if (plan.replaceSupervisor !== null) report.supervisor = { reason: plan.replaceSupervisor, done: false, detail: '' };
  report.infra = plan.startInfra.map((i) => ({ name: i.name, done: false, detail: '' }));
  report.restarts = plan.startDaemons.map((d) => ({ daemon: d.name, reason: d.reason, done: false, detail: '' }));
  report.adopted = plan.adoptDaemons.map((d) => ({ daemon: d.name, pid: d.pid, done: false, detail: '' }));
  if (plan.blocked !== null) report.errors.push(plan.blocked);
  if (dryRun || plan.request === null) return;

  let result: StartResult | null = null;
  try {
    if (report.supervisor) {
      await ensureSupervisor(config);
      Object.assign(report.supervisor, { done: true, detail: 'replaced' });
    }
    result = await callSupervisor(homePaths(config.home).supervisorSocket, 'POST /start', plan.request, 600_000);
  } catch (err) {
    report.errors.push(`${report.supervisor && !report.supervisor.done ? 'supervisor' : 'start'}: ${errorMessage(err)}`);
  }
  const failure = (name: string) => result?.failed.find((f) => f.name === name)?.reason;
  for (const i of report.infra) {
    // Whatever the supervisor said, only a server that answers now counts as repaired.
    const probe = await probeInfra(config, i.name, 3000);
    i.done = probe.up;
    i.detail = probe.up ? 'started' : `still down: ${failure(i.name) ?? probe.error ?? 'no answer'}`;
  }
  for (const r of report.restarts) {
    const d = result?.daemons.find((x) => x.name === r.daemon);
    r.done = failure(r.daemon) === undefined && d?.state === 'running';
    r.detail = failure(r.daemon) ?? (r.done ? 'started' : result ? 'not started (an earlier process failed)' : 'not started');
  }
  for (const a of report.adopted) {
    const d = result?.daemons.find((x) => x.name === a.daemon);
    const action = result?.actions.find((x) => x.name === a.daemon)?.action;
    a.done = d?.state === 'running' && d.pid === a.pid;
    a.detail =
      failure(a.daemon) ??
      (a.done ? 'kept running, now supervised' : action === 'started' ? `replaced (pid ${d?.pid ?? '-'}): the old process could not be kept` : 'not adopted');
  }
}

/**
 * Fix what integrity and the process table show broken. Holds the `repair` lock so overlapping
 * cron runs never repair the same window twice at once; every step is idempotent.
 */
export async function runRepair(config: Config, opts: { dryRun: boolean; sinceMs: number; progress?: (line: string) => void; signal?: AbortSignal }): Promise<RepairReport> {
  const lock = acquireLock(homePaths(config.home).lockFile('repair'), 'repair');
  const report: RepairReport = {
    ok: true, dryRun: opts.dryRun, integrityBefore: null, holes: [], data: [], retention: null, locks: [], keptLocks: [], supervisor: null, infra: [], restarts: [], adopted: [], errors: [],
  };
  try {
    // Judged before stale files go: a dead supervisor's lock is part of the evidence.
    const facts = await processFacts(config);
    const plan = planProcessRepair(facts);
    const clean = cleanStaleFiles(config, { dryRun: opts.dryRun });
    report.locks = clean.files;
    report.keptLocks = clean.kept;
    // Processes first: the data checks below need the servers up.
    await repairProcesses(config, plan, report, opts.dryRun);
    // From here each step checks the signal: the brain that lost its lease must stop before another leads.
    opts.signal?.throwIfAborted();
    try {
      // Holes first: the rows refilled into hot are then copied to cold by the window repair below.
      report.holes = await repairHoles(config, { dryRun: opts.dryRun, sinceMs: opts.sinceMs, simulate: facts.simulate, progress: opts.progress, signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      report.errors.push(`hole repair: ${errorMessage(err)}`);
    }
    try {
      report.integrityBefore = await runIntegrity(config, { sinceMs: opts.sinceMs, signal: opts.signal });
      report.data = await repairData(config, report.integrityBefore, { dryRun: opts.dryRun, signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      report.errors.push(`data repair: ${errorMessage(err)}`);
    }
    try {
      opts.signal?.throwIfAborted();
      report.retention = await runRetention(config, { dryRun: opts.dryRun, copyMissing: true, signal: opts.signal });
      report.errors.push(...report.retention.errors.map((e) => `retention: ${e}`));
      if (!opts.dryRun) {
        for (const d of report.retention.dropped.filter((x) => !x.done)) report.errors.push(`retention: ${d.server} ${d.table} partition ${d.partition}: ${d.detail}`);
      }
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      report.errors.push(`retention: ${errorMessage(err)}`);
    }
  } finally {
    lock.release();
  }
  const done = (a: { done: boolean }) => a.done || opts.dryRun;
  report.ok =
    report.errors.length === 0 &&
    report.data.every(done) &&
    report.holes.every((h) => h.outcome !== 'open') &&
    (report.supervisor === null || done(report.supervisor)) &&
    report.infra.every(done) &&
    report.restarts.every(done) &&
    report.adopted.every(done);
  return report;
}
