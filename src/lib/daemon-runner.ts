import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { writeFileSync, unlinkSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { loadDaemonConfig, redactSecrets } from './config/effective.js';
import type { Config } from './config/schema.js';
import type { Daemon, HealthReport } from './daemon-context.js';
import { errorMessage } from './errors.js';
import { redisUrl } from './infra/endpoints.js';
import { createLogger, type Logger } from './log.js';
import { metricsListenHosts } from './monitoring.js';
import { daemonKind, daemonPort, homePaths, type DaemonName } from './paths.js';
import { removeEntry, writeHeartbeat } from './registry.js';
import { acquireLock, homeLockHints } from './supervisor/lock.js';

export { daemonPort } from './paths.js';

/** Daemons that serve their own HTTP (they need more routes than /health and /metrics). */
const SERVES_OWN_PORT: ReadonlySet<DaemonName> = new Set(['simulator', 'brain']);

function serveHealthAndMetrics(host: string, port: number, metrics: Registry, health: () => Promise<HealthReport>): Promise<Server> {
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.url === '/health') {
          const report = await health();
          res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(report));
        } else if (req.url === '/metrics') {
          res.writeHead(200, { 'content-type': metrics.contentType });
          res.end(await metrics.metrics());
        } else {
          res.writeHead(404).end();
        }
      } catch (err) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: false, error: errorMessage(err) }));
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** One server per address of metrics.host (see metricsListenHosts); all of them or none. */
async function serveOnHosts(hosts: readonly string[], port: number, metrics: Registry, health: () => Promise<HealthReport>): Promise<Server[]> {
  const results = await Promise.allSettled(hosts.map((host) => serveHealthAndMetrics(host, port, metrics, health)));
  const servers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    for (const s of servers) s.close();
    throw failed.reason;
  }
  return servers;
}

/** Heartbeats into the Redis registry; a Redis outage is logged and counted, never fatal. */
function startHeartbeat(config: Config, name: DaemonName, log: Logger, metrics: Registry, healthy: () => Promise<boolean>) {
  const failures = new Counter({
    // Metric names take the kind: `storage-2` is no valid name, and every storage instance exports the same series.
    name: `mprism_${daemonKind(name)}_heartbeat_failures_total`,
    help: 'Registry heartbeats that could not be written to Redis',
    registers: [metrics],
  });
  const redis = new Redis(redisUrl(config), { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', () => undefined); // surfaced through beat() failures below
  const startedAt = new Date().toISOString();
  let warned = false;
  const beat = async () => {
    try {
      if (redis.status === 'wait' || redis.status === 'end') await redis.connect();
      await writeHeartbeat(
        redis,
        { name, pid: process.pid, host: hostname(), port: daemonPort(config, name), startedAt, lastHeartbeat: new Date().toISOString(), healthy: await healthy() },
        config.registry.ttlSeconds,
      );
      warned = false;
    } catch (err) {
      failures.inc();
      if (!warned) log.warn({ err: errorMessage(err) }, 'registry heartbeat failed; will keep trying');
      warned = true;
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), config.registry.heartbeatIntervalMs);
  return async () => {
    clearInterval(timer);
    await removeEntry(redis, name, hostname()).catch(() => undefined);
    redis.disconnect();
  };
}

/**
 * Process wrapper shared by every daemon: config, lock + pid file, logger, /health and /metrics,
 * registry heartbeat, signal handling. The daemon itself only sees its DaemonContext.
 */
export async function runDaemon(name: DaemonName, daemon: Daemon): Promise<number> {
  const log = createLogger(name);
  let config: Config;
  try {
    const resolved = loadDaemonConfig();
    config = resolved.config;
    if (resolved.invalidFile) {
      log.warn({ err: redactSecrets(resolved.invalidFile.message, config) }, "config file is invalid: starting with the supervisor's config");
    }
  } catch (err) {
    log.fatal({ err: errorMessage(err) }, 'invalid configuration');
    return 2;
  }
  const paths = homePaths(config.home);
  let lock;
  try {
    lock = acquireLock(paths.lockFile(name), name, process.pid, homeLockHints(config, name));
  } catch (err) {
    log.fatal({ err: errorMessage(err) }, 'cannot take the daemon lock');
    return 1;
  }
  if (lock.replaced) log.warn({ reason: lock.replaced }, 'took over a stale lock');
  writeFileSync(paths.pidFile(name), `${process.pid}\n`);

  const controller = new AbortController();
  const stop = (signal: string) => {
    if (!controller.signal.aborted) log.info({ signal }, 'shutting down');
    controller.abort();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: `mprism_${daemonKind(name)}_` });
  // Not healthy until the daemon has set up and installed its own provider: the supervisor's
  // health gate then means "initialized and connected", not merely "process started".
  let healthProvider: () => HealthReport | Promise<HealthReport> = () => ({ ok: false, state: 'initializing' });
  const health = async () => healthProvider();

  let servers: Server[] = [];
  let stopHeartbeat: (() => Promise<void>) | null = null;
  let exitCode = 0;
  try {
    if (!SERVES_OWN_PORT.has(name)) servers = await serveOnHosts(metricsListenHosts(config.metrics.host), daemonPort(config, name), metrics, health);
    stopHeartbeat = startHeartbeat(config, name, log, metrics, async () => (await health()).ok);
    log.info({ port: daemonPort(config, name), simulate: process.env.MPRISM_SIMULATE === '1' }, 'started');
    await daemon(
      { signal: controller.signal, log, metrics, setHealth: (p) => (healthProvider = p), simulate: process.env.MPRISM_SIMULATE === '1' },
      config,
    );
    log.info('stopped');
  } catch (err) {
    log.fatal({ err: errorMessage(err), stack: (err as Error)?.stack }, 'daemon failed');
    exitCode = 1;
  } finally {
    await stopHeartbeat?.();
    for (const s of servers) s.close();
    try {
      unlinkSync(paths.pidFile(name));
    } catch {
      // removed by `mprism clean`
    }
    lock.release();
  }
  return exitCode;
}
