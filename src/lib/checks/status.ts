import type { Config } from '../config/schema.js';
import { displayAddress, infraUrl, isExternal, redisUrl } from '../infra/endpoints.js';
import { fetchRegistry } from '../registry.js';
import { DAEMON_NAMES, INFRA_NAMES, homePaths, type InfraName } from '../paths.js';
import { isAlive, readPidFile } from '../process-util.js';
import { callSupervisor } from '../supervisor/control.js';
import { inspectLock } from '../supervisor/lock.js';
import { procStats } from '../supervisor/proc-stats.js';
import { readSnapshot, type SupervisorSnapshot } from '../supervisor/state.js';
import type { ProcessRow, StatusReport } from './status-types.js';

function infraPort(config: Config, name: InfraName): number {
  switch (name) {
    case 'nats':
      return config.nats.port;
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

function row(name: string, kind: ProcessRow['kind'], state: string, pid: number | null, port: number | null, restarts = 0, detail: string | null = null): ProcessRow {
  const stats = pid !== null ? procStats(pid) : null;
  return {
    name, kind, state, pid, port, restarts, detail, heartbeatAgeSeconds: null,
    uptimeSeconds: stats?.uptimeSeconds ?? null,
    cpuPercent: stats?.cpuPercent ?? null,
    rssBytes: stats?.rssBytes ?? null,
  };
}

/**
 * One row per process. The live supervisor is asked first; when it is down, its last persisted
 * snapshot is checked against the daemons' locks, so a daemon orphaned by a killed supervisor
 * still shows as running (and a dead one as dead, not as its last known state).
 */
export async function collectStatus(config: Config): Promise<StatusReport> {
  const paths = homePaths(config.home);
  let snapshot: SupervisorSnapshot | null = null;
  let supervisorUp = false;
  try {
    snapshot = await callSupervisor(paths.supervisorSocket, 'GET /state', undefined, 2000);
    supervisorUp = true;
  } catch {
    snapshot = readSnapshot(paths.supervisorState);
  }
  // Only asked while the supervisor runs: with the platform down there is no Redis to wait for.
  const registry = supervisorUp || snapshot !== null ? await fetchRegistry(redisUrl(config), 1000) : null;
  const heartbeat = new Map((registry ?? []).map((e) => [e.name, Math.max(0, Math.round((Date.now() - Date.parse(e.lastHeartbeat)) / 100) / 10)]));
  const processes: ProcessRow[] = [];
  const supPid = supervisorUp ? snapshot!.pid : null;
  processes.push(row('supervisor', 'supervisor', supervisorUp ? 'running' : 'stopped', supPid, null));

  for (const name of DAEMON_NAMES) {
    const d = snapshot?.daemons.find((x) => x.name === name);
    const port = config[name].port;
    if (supervisorUp && d) {
      processes.push(row(name, 'daemon', d.state, d.pid, port, d.restarts, d.detail));
      continue;
    }
    const lock = inspectLock(paths.lockFile(name));
    if (lock.state === 'live') {
      processes.push(row(name, 'daemon', 'running', lock.info.pid, port, d?.restarts ?? 0, 'supervisor is not running'));
    } else {
      const was = d && d.state !== 'stopped' ? `was ${d.state} when the supervisor stopped` : null;
      processes.push(row(name, 'daemon', lock.state === 'stale' || was ? 'dead' : 'stopped', null, port, d?.restarts ?? 0, lock.state === 'stale' ? `stale lock: ${lock.reason}` : was));
    }
  }

  for (const p of processes) if (p.kind === 'daemon') p.heartbeatAgeSeconds = heartbeat.get(p.name) ?? null;

  for (const name of INFRA_NAMES) {
    if (isExternal(config, name)) {
      processes.push(row(name, 'infra', 'external', null, null, 0, displayAddress(infraUrl(config, name))));
      continue;
    }
    const pid = readPidFile(paths.pidFile(name));
    const alive = pid !== null && isAlive(pid);
    processes.push(row(name, 'infra', alive ? 'running' : pid !== null ? 'dead' : 'stopped', alive ? pid : null, infraPort(config, name), 0, pid !== null && !alive ? `pid file names dead pid ${pid}` : null));
  }
  return { home: config.home, processes };
}
