import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import { readPidFile, tailFile, waitFor } from '../process-util.js';
import { commonPaths, LocalServerError, type LocalServerSpec } from './server-spec.js';
import { runToCompletion } from './launch.js';
import { tcpProbe } from './tcp-probe.js';

/** One PING over a raw connection: true when the answer is +PONG (an auth error means it is up but not ours). */
export function redisPing(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return tcpProbe(host, port, 'PING\r\n', timeoutMs, (reply) => (reply.includes('\r\n') ? reply.startsWith('+PONG') : null));
}

export function redisServer(config: Config): LocalServerSpec {
  const { host, port } = config.redis;
  const paths = commonPaths(config.home, 'redis');
  return {
    name: 'redis',
    executable: 'redis-server',
    // Redis rewrites its process title to "redis-server host:port", dropping the other arguments; its
    // working directory (--dir) tells ours apart from a system Redis on the same address.
    marker: `${host}:${port}`,
    cwd: paths.dataDir,
    ...paths,
    extraLogFiles: [],
    ports: [{ setting: 'redis.port', host, port }],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      mkdirSync(paths.dataDir, { recursive: true });
      // Persistence off on purpose: Redis only holds the heartbeat registry, rebuilt within one heartbeat.
      const args = [
        '--bind', host, '--port', String(port), '--dir', paths.dataDir,
        '--daemonize', 'yes', '--pidfile', paths.pidFile, '--logfile', paths.logFile,
        '--save', '', '--appendonly', 'no',
      ];
      mkdirSync(dirname(paths.logFile), { recursive: true });
      const result = await runToCompletion(ctx.binary, args, { timeoutMs: 10_000 });
      if (result.code !== 0) {
        throw new LocalServerError(
          `redis-server exited with code ${result.code}: ${result.output || tailFile(paths.logFile, 20)}`,
        );
      }
      // The daemonized child writes the pid file right after forking.
      await waitFor(() => readPidFile(paths.pidFile) !== null, {
        timeoutMs: 5000,
        intervalMs: 20,
        what: `redis pid file ${paths.pidFile}`,
      });
      const pid = readPidFile(paths.pidFile);
      if (pid === null) throw new LocalServerError(`redis-server removed its pid file ${paths.pidFile} right after start`);
      return pid;
    },
    isReady: () => redisPing(host, port, 1000),
  };
}
