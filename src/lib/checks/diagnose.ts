import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statfsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { isExternal } from '../infra/endpoints.js';
import type { InfraStatus } from '../infra/local-servers.js';
import { probeInfra } from '../infra/probe.js';
import { activeDaemons, activeInfra, daemonPort, homePaths, isNatsNode } from '../paths.js';
import { natsNodePorts } from '../infra/endpoints.js';
import { inspectHomeLock } from '../supervisor/lock.js';
import { collectStatus } from './status.js';
import type { ProcessRow } from './status-types.js';

export interface PortCheck {
  owner: string;
  port: number;
  listening: boolean;
  /** Whether its owner should be running right now (per status). */
  expected: boolean;
}

export interface LockCheck {
  name: string;
  /** corrupt: the lock file is unreadable but its holder is alive (found by its pid file or port). */
  state: 'free' | 'live' | 'stale' | 'corrupt';
  pid: number | null;
  reason: string | null;
}

export interface LogError {
  file: string;
  line: string;
}

/** Stable --json shape of `mprism diagnose`. */
export interface DiagnoseReport {
  ok: boolean;
  home: string;
  configFile: string | null;
  node: string;
  processes: ProcessRow[];
  ports: PortCheck[];
  locks: LockCheck[];
  infra: InfraStatus[];
  disk: { path: string; freeBytes: number; totalBytes: number; freePercent: number } | null;
  recentErrors: LogError[];
  findings: string[];
  nextSteps: string[];
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Every port this home's local servers and daemons use, with the host each binds. */
function configuredPorts(config: Config): { owner: string; host: string; port: number }[] {
  const ports: { owner: string; host: string; port: number }[] = [];
  for (const name of activeInfra(config).filter(isNatsNode)) {
    if (isExternal(config, name)) continue;
    const p = natsNodePorts(config, name);
    ports.push({ owner: name, host: config.nats.host, port: p.port }, { owner: `${name} (monitor)`, host: config.nats.host, port: p.monitorPort });
    if (p.clusterPort !== null) ports.push({ owner: `${name} (cluster)`, host: config.nats.host, port: p.clusterPort });
  }
  for (const side of ['hot', 'cold'] as const) {
    if (isExternal(config, `clickhouse-${side}`)) continue;
    const ch = config.clickhouse[side];
    ports.push({ owner: `clickhouse-${side}`, host: ch.host, port: ch.httpPort }, { owner: `clickhouse-${side} (tcp)`, host: ch.host, port: ch.tcpPort });
  }
  if (!isExternal(config, 'redis')) ports.push({ owner: 'redis', host: config.redis.host, port: config.redis.port });
  if (!isExternal(config, 'postgres')) ports.push({ owner: 'postgres', host: config.postgres.host, port: config.postgres.port });
  for (const d of activeDaemons(config)) ports.push({ owner: d, host: '127.0.0.1', port: daemonPort(config, d) });
  return ports;
}

/** Error-level lines from the tail of each log: pino level >= 50, or servers' own error markers. */
export function recentLogErrors(logDir: string, perFile = 5, tailBytes = 64 * 1024): LogError[] {
  if (!existsSync(logDir)) return [];
  const out: LogError[] = [];
  for (const f of readdirSync(logDir).filter((n) => n.endsWith('.log')).sort()) {
    const file = join(logDir, f);
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - tailBytes);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n').filter((line) => {
        if (line.startsWith('{')) {
          try {
            return ((JSON.parse(line) as { level?: number }).level ?? 0) >= 50;
          } catch {
            return false;
          }
        }
        return /\b(FATAL|ERROR|PANIC)\b|<Error>|\[ERR\]|Error:/.test(line);
      });
      for (const line of lines.slice(-perFile)) out.push({ file: f, line: line.slice(0, 500) });
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/**
 * invalidConfigFile: the errors of a config file that became invalid while the platform runs
 * (the report then describes the platform as its supervisor's config has it).
 */
export async function runDiagnose(config: Config, opts: { invalidConfigFile?: string | null } = {}): Promise<DiagnoseReport> {
  const paths = homePaths(config.home);
  const findings: string[] = [];
  const nextSteps = new Set<string>();
  if (opts.invalidConfigFile) {
    findings.push(`configuration file invalid (the running platform uses the configuration it started with):\n${opts.invalidConfigFile}`);
    nextSteps.add("fix the configuration file (lines above); 'mprism restart' applies it, and refuses while it is invalid");
  }

  const status = await collectStatus(config);
  const running = new Set(status.processes.filter((p) => p.state === 'running' || p.state === 'starting').map((p) => p.name));

  const ports = await Promise.all(
    configuredPorts(config).map(async ({ owner, host, port }) => ({
      owner,
      port,
      listening: await listening(host, port),
      expected: running.has(owner.split(' ')[0]!),
    })),
  );
  for (const p of ports) {
    if (p.listening && !p.expected) {
      findings.push(`port ${p.port} (${p.owner}) is taken, but ${p.owner.split(' ')[0]} is not running under this MPRISM_HOME`);
      nextSteps.add(`free port ${p.port} (see: ss -ltnp 'sport = :${p.port}') or set another port in ${config.file ?? paths.configFile}`);
    }
    if (!p.listening && p.expected) {
      findings.push(`${p.owner} is running but nothing listens on port ${p.port}`);
      nextSteps.add(`read 'mprism logs ${p.owner.split(' ')[0]}'`);
    }
  }

  const locks: LockCheck[] = ['supervisor', 'repair', ...activeDaemons(config)].map((name) => {
    const l = inspectHomeLock(config, name);
    if (l.state === 'stale') {
      findings.push(`stale lock for ${name}: ${l.reason}`);
      nextSteps.add("run 'mprism clean' to remove stale locks");
    }
    if (l.state === 'live' && l.corrupt) {
      findings.push(`corrupt lock of live ${name}: ${l.corrupt}`);
      const restart = name === 'supervisor' ? 'mprism restart' : `mprism restart ${name}`;
      nextSteps.add(`run '${restart}' to have it write a new lock ('mprism clean' leaves the lock of a live process)`);
      return { name, state: 'corrupt', pid: l.info.pid, reason: l.corrupt };
    }
    return {
      name,
      state: l.state,
      pid: l.state === 'free' ? null : (l.info?.pid ?? null),
      reason: l.state === 'stale' ? l.reason : l.state === 'live' ? `held by pid ${l.info.pid} since ${l.info.acquiredAt}` : null,
    };
  });

  for (const p of status.processes) {
    if (p.state === 'errored') {
      findings.push(`${p.name} is errored: ${p.detail ?? ''}`);
      nextSteps.add(`read 'mprism logs ${p.name}', fix the cause, then 'mprism start ${p.name}'`);
    } else if (p.state === 'dead') {
      findings.push(`${p.name} is dead${p.detail ? `: ${p.detail}` : ''}`);
      nextSteps.add("run 'mprism repair' (starts what died: servers, supervisor, daemons; running daemons are kept)");
    } else if (p.state === 'unresponsive' || p.state === 'backoff') {
      findings.push(`${p.name} is ${p.state}${p.detail ? `: ${p.detail}` : ''}`);
      if (p.state === 'unresponsive') nextSteps.add("run 'mprism stop', then 'mprism start'");
    }
  }

  const infra = await Promise.all(activeInfra(config).map((n) => probeInfra(config, n, 3000)));
  for (const s of infra) {
    if (!s.up && (s.mode === 'external' || running.has(s.name))) {
      findings.push(`${s.name} (${s.mode}) unreachable at ${s.address}: ${s.error ?? 'no answer'}`);
      nextSteps.add(s.mode === 'external' ? `check ${s.name} at ${s.address} and its URL in the config` : `read 'mprism logs ${s.name}'`);
    }
  }

  let disk: DiagnoseReport['disk'] = null;
  try {
    const st = statfsSync(existsSync(config.home) ? config.home : '/');
    const total = st.blocks * st.bsize;
    const free = st.bavail * st.bsize;
    disk = { path: config.home, freeBytes: free, totalBytes: total, freePercent: Math.round((free / total) * 1000) / 10 };
    if (disk.freePercent < 10 || free < 1024 ** 3) {
      findings.push(`low disk space: ${(free / 1024 ** 3).toFixed(1)} GiB free (${disk.freePercent}%)`);
      nextSteps.add('free disk space or shorten retention');
    }
  } catch {
    // statfs unavailable on this platform: reported as null
  }

  const recentErrors = recentLogErrors(paths.logs);
  if (recentErrors.length > 0) nextSteps.add(`look at the ${recentErrors.length} recent error lines below ('mprism logs NAME' for context)`);
  if (!status.processes.some((p) => p.kind === 'daemon' && p.state === 'running')) nextSteps.add("nothing is running: 'mprism start' (or 'mprism start --simulate')");
  if (findings.length === 0 && nextSteps.size === 0) nextSteps.add('nothing to do');

  return {
    ok: findings.length === 0,
    home: config.home,
    configFile: config.file,
    node: process.version,
    processes: status.processes,
    ports,
    locks,
    infra,
    disk,
    recentErrors,
    findings,
    nextSteps: [...nextSteps],
  };
}
