import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import { displayAddress, infraUrl, isExternal, natsNodePorts, redisUrl } from '../infra/endpoints.js';
import { findServerPid } from '../infra/server-spec.js';
import { companionSpecs, localServerSpec } from '../infra/specs.js';
import { prometheusServer, prometheusUrl } from '../infra/prometheus-server.js';
import { readLeader } from '../brain/lease.js';
import { entriesOfHost, readRegistry, withRedis } from '../registry.js';
import { readLeases } from '../coordination/lease.js';
import { activeDaemons, activeInfra, daemonPort, homePaths, type InfraName } from '../paths.js';
import { isAlive, readPidFile } from '../process-util.js';
import { callSupervisor } from '../supervisor/control.js';
import { inspectHomeLock, type LockState } from '../supervisor/lock.js';
import { procStats } from '../supervisor/proc-stats.js';
import { infraWanted, platformWanted, readSnapshot, type DaemonStatus, type InfraProcessStatus, type SupervisorSnapshot } from '../supervisor/state.js';
import type { ProcessRow, StatusReport } from './status-types.js';

export interface Judged {
  state: string;
  detail: string | null;
}

/** A died-without-stop explanation, with the lock's reason when it has one. */
const died = (what: string, lock: LockState) => `${what}${lock.state === 'stale' ? ` (${lock.reason})` : ''}`;

/**
 * The supervisor is `dead` when it is gone while the platform should run (something started and
 * not stopped since) or it left a stale lock; `stopped` only after `mprism stop` or before any start.
 */
export function judgeSupervisor(reachable: boolean, lock: LockState, wanted: boolean): Judged {
  if (reachable) return { state: 'running', detail: null };
  if (lock.state === 'live') return { state: 'unresponsive', detail: `pid ${lock.info.pid} holds the supervisor lock but does not answer on its socket` };
  if (wanted || lock.state === 'stale') return { state: 'dead', detail: died("died without 'mprism stop'", lock) };
  return { state: 'stopped', detail: null };
}

/** A daemon with no live supervisor: its lock says whether it runs; `wanted` tells dead from stopped. */
export function judgeDaemon(supervised: DaemonStatus | undefined, supervisorUp: boolean, lock: LockState): Judged {
  if (supervisorUp && supervised) return { state: supervised.state, detail: supervised.detail };
  if (lock.state === 'live') return { state: 'running', detail: 'supervisor is not running' };
  if (supervised?.wanted || lock.state === 'stale') {
    return { state: 'dead', detail: died(supervised?.wanted ? `died without 'mprism stop' (was ${supervised.state})` : "died without 'mprism stop'", lock) };
  }
  return { state: 'stopped', detail: null };
}

/**
 * A local server: what its watching supervisor says while it is between a crash and its restart
 * (or gave up), else whether its process runs; not running while wanted (or with a pid file left
 * behind) is `dead`, whatever happened to the pid file since.
 */
export function judgeInfra(watched: InfraProcessStatus | undefined, runningPid: number | null, wanted: boolean, stalePid: number | null): Judged {
  if (watched?.wanted && (watched.state === 'backoff' || watched.state === 'errored' || watched.state === 'starting')) {
    return { state: watched.state, detail: watched.detail };
  }
  if (runningPid !== null) return { state: 'running', detail: null };
  if (wanted) return { state: 'dead', detail: "died without 'mprism stop'" };
  if (stalePid !== null) return { state: 'dead', detail: `pid file names dead pid ${stalePid}` };
  return { state: 'stopped', detail: null };
}

function infraPort(config: Config, name: InfraName): number {
  switch (name) {
    case 'nats':
    case 'nats-2':
    case 'nats-3':
      return natsNodePorts(config, name).port;
    case 'clickhouse-hot':
      return config.clickhouse.hot.httpPort;
    case 'clickhouse-cold':
      return config.clickhouse.cold.httpPort;
    case 'redis':
      return config.redis.port;
    case 'postgres':
      return config.postgres.port;
  }
}

function row(name: string, kind: ProcessRow['kind'], judged: Judged, pid: number | null, port: number | null, restarts = 0): ProcessRow {
  const stats = pid !== null ? procStats(pid) : null;
  return {
    name, kind, state: judged.state, pid, port, restarts, detail: judged.detail, heartbeatAgeSeconds: null,
    uptimeSeconds: stats?.uptimeSeconds ?? null,
    cpuPercent: stats?.cpuPercent ?? null,
    rssBytes: stats?.rssBytes ?? null,
  };
}

/** The live supervisor's state, else its last persisted snapshot (reachable tells which). */
export async function supervisorView(config: Config): Promise<{ reachable: boolean; snapshot: SupervisorSnapshot | null }> {
  const paths = homePaths(config.home);
  try {
    return { reachable: true, snapshot: await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 2000) };
  } catch {
    return { reachable: false, snapshot: readSnapshot(paths.supervisorState) };
  }
}

/**
 * One row per process. The live supervisor is asked first; when it is down, its last persisted
 * snapshot is checked against the daemons' locks, so a daemon orphaned by a killed supervisor
 * still shows as running, and one that died as dead, not as its last known state.
 */
export async function collectStatus(config: Config): Promise<StatusReport> {
  const paths = homePaths(config.home);
  const { reachable: supervisorUp, snapshot } = await supervisorView(config);
  // Only asked while the supervisor runs: with the platform down there is no Redis to wait for.
  const fromRedis = supervisorUp || snapshot !== null
    ? await withRedis(redisUrl(config), 1000, async (r) => ({ registry: await readRegistry(r), leader: await readLeader(r), leases: await readLeases(r) }))
    : null;
  const registry = fromRedis?.registry ?? null;
  const heartbeat = new Map(entriesOfHost(registry ?? [], hostname()).map((e) => [e.name, Math.max(0, Math.round((Date.now() - Date.parse(e.lastHeartbeat)) / 100) / 10)]));
  const processes: ProcessRow[] = [];
  const supLock = inspectHomeLock(config, 'supervisor');
  const sup = judgeSupervisor(supervisorUp, supLock, platformWanted(snapshot));
  processes.push(row('supervisor', 'supervisor', sup, supervisorUp ? snapshot!.pid : supLock.state === 'live' ? supLock.info.pid : null, null));

  for (const name of activeDaemons(config)) {
    const d = snapshot?.daemons.find((x) => x.name === name);
    const lock = inspectHomeLock(config, name);
    const judged = judgeDaemon(d, supervisorUp, lock);
    const pid = supervisorUp && d ? d.pid : lock.state === 'live' ? lock.info.pid : null;
    processes.push(row(name, 'daemon', judged, pid, daemonPort(config, name), d?.restarts ?? 0));
  }
  for (const p of processes) if (p.kind === 'daemon') p.heartbeatAgeSeconds = heartbeat.get(p.name) ?? null;

  for (const name of activeInfra(config)) {
    if (isExternal(config, name)) {
      processes.push(row(name, 'infra', { state: 'external', detail: displayAddress(infraUrl(config, name)) }, null, null));
      continue;
    }
    const watched = snapshot?.infra?.find((i) => i.name === name);
    const pid = findServerPid(localServerSpec(config, name));
    const recorded = readPidFile(paths.pidFile(name));
    const stalePid = recorded !== null && !isAlive(recorded) ? recorded : null;
    const judged = judgeInfra(supervisorUp ? watched : undefined, pid, infraWanted(snapshot, name), stalePid);
    processes.push(row(name, 'infra', judged, pid, infraPort(config, name), watched?.restarts ?? 0));
    // A replicated tier's ZooKeeper and other replicas: down while their tier runs is a fault the supervisor mends.
    for (const spec of companionSpecs(config, name)) {
      if (processes.some((p) => p.name === spec.name)) continue; // ZooKeeper shared by hot and cold
      const companionPid = findServerPid(spec);
      const state = companionPid !== null ? 'running' : judged.state === 'running' ? 'dead' : 'stopped';
      const detail = state === 'dead' ? `companion of ${name}; the supervisor starts it again` : null;
      processes.push(row(spec.name, 'infra', { state, detail }, companionPid, spec.ports[0]?.port ?? null));
    }
  }
  // Optional and unwatched: a row while it runs, nothing otherwise (not running is no fault).
  const prometheus = findServerPid(prometheusServer(config));
  if (prometheus !== null) processes.push(row('prometheus', 'monitoring', { state: 'running', detail: prometheusUrl(config) }, prometheus, config.prometheus.port));
  return { home: config.home, processes, brainLeader: fromRedis?.leader ?? null, leases: fromRedis?.leases ?? null };
}
