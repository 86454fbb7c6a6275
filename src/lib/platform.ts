import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { sleep } from './backoff.js';
import { DEFAULT_CONFIG_FILE } from './config/load.js';
import type { Config } from './config/schema.js';
import { MissingBinaryError, UnreachableError, UsageError, errorMessage } from './errors.js';
import { OPTIONAL_BINARIES, installMissing, locateBinaries, locateBinary, type BinaryInfo, type BinaryName } from './infra/binaries.js';
import { isExternal, needsLocalZooKeeper } from './infra/endpoints.js';
import { startCompanions, startLocalServer, stopLocalServer } from './infra/local-servers.js';
import { prometheusRunning, startPrometheus, stopPrometheus } from './infra/prometheus-server.js';
import { prometheusFiles, writePrometheusTargets } from './monitoring.js';
import { probeInfra } from './infra/probe.js';
import { DAEMON_NAMES, INFRA_NAMES, PACKAGE_ROOT, activeDaemons, activeInfra, homePaths, type DaemonName, type InfraName } from './paths.js';
import { terminate } from './process-util.js';
import { provision, type ProvisionReport } from './provision.js';
import { callSupervisor } from './supervisor/control.js';
import { inspectHomeLock, inspectLock } from './supervisor/lock.js';
import { clearWanted, readSnapshot } from './supervisor/state.js';
import type { StartResult } from './supervisor/supervisor.js';

export type Progress = (line: string) => void;

/** Split CLI names into daemons and infra; unknown names are a usage error. */
export function splitNames(names: readonly string[]): { daemons: DaemonName[]; infra: InfraName[] } {
  const daemons: DaemonName[] = [];
  const infra: InfraName[] = [];
  for (const n of names) {
    if ((DAEMON_NAMES as readonly string[]).includes(n)) daemons.push(n as DaemonName);
    else if ((INFRA_NAMES as readonly string[]).includes(n)) infra.push(n as InfraName);
    else throw new UsageError(`unknown name '${n}': expected one of ${[...DAEMON_NAMES, ...INFRA_NAMES].join(', ')}`);
  }
  return { daemons, infra };
}

/** Local servers this config needs (those without a configured URL). */
export function localInfra(config: Config): InfraName[] {
  return activeInfra(config).filter((n) => !isExternal(config, n));
}

export function ensureHomeLayout(config: Config): { created: boolean; configWritten: string | null } {
  const p = homePaths(config.home);
  const created = !existsSync(p.home);
  for (const dir of [p.home, p.data, p.run, p.logs, p.tmp]) mkdirSync(dir, { recursive: true });
  let configWritten: string | null = null;
  if (config.file === null) {
    copyFileSync(DEFAULT_CONFIG_FILE, p.configFile);
    configWritten = p.configFile;
  }
  return { created, configWritten };
}

export interface InitReport {
  home: string;
  homeCreated: boolean;
  configWritten: string | null;
  binaries: BinaryReport[];
  provision: ProvisionReport;
  changed: boolean;
}

export interface BinaryReport {
  name: BinaryName;
  path: string | null;
  installed: boolean;
  /** Not needed to run the platform (Prometheus): reported, installed with --install, never required. */
  optional?: boolean;
}

/** The binaries of the local servers this config runs, and the optional ones it does not need (Prometheus unless enabled). */
export function wantedBinaries(config: Config): { needed: BinaryName[]; optional: BinaryName[] } {
  const needed: BinaryName[] = [
    ...localInfra(config),
    ...(needsLocalZooKeeper(config) ? ['zookeeper' as const] : []),
    ...(config.prometheus.enabled ? OPTIONAL_BINARIES : []),
  ];
  return { needed, optional: OPTIONAL_BINARIES.filter((n) => !needed.includes(n)) };
}

/**
 * Locate the binaries of the local servers this config needs; install missing ones with apt when
 * allowed. Optional ones (Prometheus, unless prometheus.enabled) are installed with the others but
 * their absence is no error.
 */
export async function ensureBinaries(config: Config, opts: { install: boolean; progress: Progress }): Promise<BinaryReport[]> {
  const { needed, optional } = wantedBinaries(config);
  const find = () => [...locateBinaries().filter((b) => needed.includes(b.name)), ...optional.map((n) => locateBinary(n))];
  const missing = find().filter((b) => b.path === null && (opts.install || needed.includes(b.name)));
  if (missing.length > 0) {
    if (!opts.install) {
      throw new MissingBinaryError(
        `missing server binaries: ${missing.map((b) => `${b.name} (Debian package ${b.debianPackage})`).join(', ')}; run 'mprism init --install' or configure their URLs`,
      );
    }
    opts.progress(`installing ${missing.map((b) => b.debianPackage).join(' ')} with apt-get`);
    await installMissing(missing, { log: opts.progress });
  }
  const found = find();
  const still = found.filter((b) => b.path === null && (opts.install || needed.includes(b.name)));
  if (still.length > 0) throw new MissingBinaryError(`still missing after install: ${still.map((b) => b.name).join(', ')}`);
  return found.map((b: BinaryInfo) => ({
    name: b.name,
    path: b.path,
    installed: missing.some((m) => m.name === b.name),
    ...(needed.includes(b.name) ? {} : { optional: true }),
  }));
}

/**
 * Find (and optionally install) server binaries, lay out MPRISM_HOME, and provision streams,
 * tables and the brain schema. Local servers it had to start for that are stopped again, so
 * init leaves the machine running exactly what ran before.
 */
export async function initPlatform(config: Config, opts: { install: boolean; progress: Progress }): Promise<InitReport> {
  const binaries = await ensureBinaries(config, opts);
  const layout = ensureHomeLayout(config);
  const started = await ensureInfra(config, activeInfra(config), opts.progress, { stopStartedOnFailure: true });
  let report: ProvisionReport;
  try {
    opts.progress('creating streams, tables and schema');
    report = await provision(config);
  } finally {
    for (const name of [...started].reverse()) await stopLocalServer(config, name, 15_000);
  }
  return {
    home: config.home,
    homeCreated: layout.created,
    configWritten: layout.configWritten,
    binaries,
    provision: report,
    changed: layout.created || layout.configWritten !== null || binaries.some((b) => b.installed) || report.changed,
  };
}

/**
 * Make the named infra reachable: local servers are started (idempotent), external ones probed.
 * Returns the local servers that were not running before.
 */
export async function ensureInfra(
  config: Config,
  names: readonly InfraName[],
  progress: Progress,
  opts: { stopStartedOnFailure?: boolean } = {},
): Promise<InfraName[]> {
  const startedNow: InfraName[] = [];
  const results = await Promise.allSettled(
    names.map(async (name) => {
      if (isExternal(config, name)) {
        const s = await probeInfra(config, name);
        if (!s.up) throw new UnreachableError(name, s.address, { cause: new Error(s.error ?? 'no answer') });
        return;
      }
      const before = await probeInfra(config, name, 1000);
      if (before.up) {
        // The probe sees a tier's first replica only; its ZooKeeper and other replicas may still be down.
        await startCompanions(config, name, progress);
        return;
      }
      await startLocalServer(config, name, { log: progress });
      startedNow.push(name);
    }),
  );
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    if (opts.stopStartedOnFailure) {
      for (const name of [...startedNow].reverse()) await stopLocalServer(config, name, 15_000).catch(() => false);
    }
    throw failure.reason;
  }
  return startedNow;
}

const supervisorMain = join(PACKAGE_ROOT, 'dist', 'daemons', 'supervisor', 'main.js');

/** Start the supervisor process if it is not answering, detached so it outlives this CLI. */
export async function ensureSupervisor(config: Config): Promise<void> {
  const paths = homePaths(config.home);
  try {
    await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 2000);
    return;
  } catch {
    // not running: start it below
  }
  mkdirSync(paths.logs, { recursive: true });
  const errFd = openSync(paths.logFile('supervisor.stderr'), 'a');
  const child = spawn(process.execPath, [supervisorMain], {
    detached: true,
    stdio: ['ignore', 'ignore', errFd],
    env: { ...process.env, MPRISM_HOME: config.home, ...(config.file ? { MPRISM_CONFIG: config.file } : {}) },
  });
  child.unref();
  closeSync(errFd);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 1000);
      return;
    } catch {
      // Our child exits at once when a concurrent `start` won the lock: wait for that one instead.
      if (child.exitCode !== null && inspectLock(paths.lockFile('supervisor')).state !== 'live') break;
      await sleep(100);
    }
  }
  throw new UnreachableError('supervisor', paths.supervisorSocket, {
    cause: new Error(`did not come up; see ${paths.logFile('supervisor')} and ${paths.logFile('supervisor.stderr')}`),
  });
}

export interface StartReport {
  infra: InfraName[];
  daemons: StartResult;
  /** The file_sd targets file written for the daemons the supervisor runs (null: no daemon was started). */
  prometheusTargets: string | null;
  /** The local Prometheus, when started (--with-prometheus or prometheus.enabled). */
  prometheus: { pid: number; url: string } | null;
}

/** Names the configuration does not use (nats-3 with one node, storage-2 with one instance) cannot be started. */
function refuseUnused(config: Config, daemons: readonly DaemonName[], infra: readonly InfraName[]): void {
  const unused = [...daemons.filter((n) => !activeDaemons(config).includes(n)), ...infra.filter((n) => !activeInfra(config).includes(n))];
  if (unused.length > 0) {
    throw new UsageError(
      `not in use with this configuration: ${unused.join(', ')} (nats.cluster.nodes ${config.nats.cluster.nodes}${config.nats.url !== null ? ', nats.url set' : ''}, storage.instances ${config.storage.instances}${config.daemons !== null ? `, daemons [${config.daemons.join(', ')}]` : ''})`,
    );
  }
}

export async function startPlatform(
  config: Config,
  opts: { names: string[]; simulate: boolean; withPrometheus?: boolean; progress: Progress },
): Promise<StartReport> {
  const { daemons, infra } = splitNames(opts.names);
  refuseUnused(config, daemons, infra);
  const all = opts.names.length === 0;
  const withPrometheus = opts.withPrometheus === true || config.prometheus.enabled;
  // Before anything starts: a start that asked for Prometheus must not half succeed for want of it.
  if (withPrometheus && locateBinary('prometheus').path === null) {
    throw new MissingBinaryError("prometheus not found (PATH, /usr/sbin): run 'mprism init --install' or 'apt-get install prometheus', or start without --with-prometheus");
  }
  ensureHomeLayout(config);
  const wantInfra = all ? activeInfra(config) : infra;
  // Daemons need all infra; starting a single daemon still brings up what it depends on.
  const infraToEnsure = all || daemons.length > 0 ? activeInfra(config) : wantInfra;
  await ensureInfra(config, infraToEnsure, opts.progress);
  const socket = homePaths(config.home).supervisorSocket;
  const watched = infraToEnsure.filter((n) => !isExternal(config, n));
  const monitoring = async (targets: string | null): Promise<StartReport['prometheus']> => {
    if (!withPrometheus) return null;
    if (targets === null) writePrometheusTargets(config, wantedDaemons(config), hostname());
    return startPrometheus(config, opts.progress);
  };
  if (!all && daemons.length === 0) {
    // A running supervisor watches servers started by name too; without one there is nothing to tell.
    const result = await callSupervisor(socket, 'POST /start', { names: [], simulate: false, infra: watched }, 120_000).catch((err: unknown) => {
      if (err instanceof UnreachableError) return { ok: true, daemons: [], infra: [], actions: [], failed: [] } satisfies StartResult;
      throw err;
    });
    return { infra: wantInfra, daemons: result, prometheusTargets: null, prometheus: await monitoring(null) };
  }
  await provision(config);
  await ensureSupervisor(config);
  const wanted = all ? activeDaemons(config).filter((n) => n !== 'simulator' || opts.simulate) : daemons;
  opts.progress(`starting ${wanted.join(', ')}`);
  // The supervisor takes over the servers just started and restarts them if they die.
  const result = await callSupervisor(socket, 'POST /start', { names: wanted, simulate: opts.simulate, infra: watched }, 600_000);
  // Every daemon the supervisor is to run, not only those of this call (`start storage` after `start`).
  const targets = writePrometheusTargets(config, result.daemons.filter((d) => d.wanted).map((d) => d.name), hostname());
  return { infra: infraToEnsure, daemons: result, prometheusTargets: targets, prometheus: await monitoring(targets) };
}

/** The daemons the supervisor's last snapshot says are meant to run. */
function wantedDaemons(config: Config): DaemonName[] {
  return (readSnapshot(homePaths(config.home).supervisorState)?.daemons ?? []).filter((d) => d.wanted).map((d) => d.name);
}

export interface StopReport {
  daemons: DaemonName[];
  infra: InfraName[];
  killedOrphans: { name: string; pid: number }[];
  /** The local Prometheus was running and is stopped (a full stop stops it). */
  prometheus: boolean;
}

export async function stopPlatform(config: Config, opts: { names: string[]; timeoutMs: number; progress: Progress }): Promise<StopReport> {
  const { daemons, infra } = splitNames(opts.names);
  const all = opts.names.length === 0;
  const paths = homePaths(config.home);
  const report: StopReport = { daemons: [], infra: [], killedOrphans: [], prometheus: false };
  const stopDaemons = all ? [...DAEMON_NAMES] : daemons;
  if (!all && stopDaemons.length === 0 && infra.length > 0) {
    // Unwatch first, or the supervisor would start again what we are about to stop.
    await callSupervisor(paths.supervisorSocket, 'POST /stop', { names: [], timeoutMs: opts.timeoutMs, infra }, 10_000).catch((err: unknown) => {
      if (!(err instanceof UnreachableError)) opts.progress(`supervisor: ${errorMessage(err)}`);
    });
  }
  if (stopDaemons.length > 0) {
    const running = (name: string) => inspectHomeLock(config, name).state === 'live';
    const wasRunning = stopDaemons.filter(running);
    try {
      if (all) {
        opts.progress('stopping daemons');
        await callSupervisor(paths.supervisorSocket, 'POST /shutdown', { timeoutMs: opts.timeoutMs }, opts.timeoutMs * DAEMON_NAMES.length + 10_000);
        await waitGone(paths.pidFile('supervisor'), opts.timeoutMs);
      } else {
        await callSupervisor(paths.supervisorSocket, 'POST /stop', { names: stopDaemons, timeoutMs: opts.timeoutMs, infra }, opts.timeoutMs * stopDaemons.length + 10_000);
      }
    } catch (err) {
      // Unreachable or failing, the supervisor is bypassed: what still holds a lock is stopped below.
      if (!(err instanceof UnreachableError)) opts.progress(`supervisor: ${errorMessage(err)}`);
    }
    // Whatever still holds a lock (a supervisor that died or failed, and the daemons it left) is
    // stopped directly: the supervisor first, so it cannot respawn them, then in reverse order.
    const leftovers = all ? ['supervisor', ...[...DAEMON_NAMES].reverse()] : [...stopDaemons].reverse();
    for (const name of leftovers) {
      // A corrupt lock of a live daemon counts: its holder is found by pid file or port.
      const lock = inspectHomeLock(config, name);
      if (lock.state !== 'live') continue;
      await terminate(lock.info.pid, opts.timeoutMs);
      report.killedOrphans.push({ name, pid: lock.info.pid });
    }
    report.daemons = wasRunning as DaemonName[];
  }
  if (all && prometheusRunning(config)) {
    opts.progress('stopping prometheus');
    report.prometheus = await stopPrometheus(config, opts.timeoutMs);
  }
  const stopInfra = all ? localInfra(config) : infra;
  for (const name of [...INFRA_NAMES].reverse().filter((n) => stopInfra.includes(n))) {
    if (isExternal(config, name)) continue;
    opts.progress(`stopping ${name}`);
    if (await stopLocalServer(config, name, opts.timeoutMs)) report.infra.push(name);
  }
  // A dead supervisor could not record this stop itself: without it, status would call what we
  // just stopped `dead` and repair would start it again.
  clearWanted(paths.supervisorState, [...stopDaemons, ...stopInfra]);
  // Stopped on purpose: no longer a target, so an operator's Prometheus does not call it down.
  if (stopDaemons.length > 0 && existsSync(prometheusFiles(config.home).targets)) writePrometheusTargets(config, wantedDaemons(config), hostname());
  return report;
}

async function waitGone(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && existsSync(file)) await sleep(100);
}
