import { mkdirSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { commonPaths, urlHost, type LocalServerSpec } from './server-spec.js';
import { spawnDetached } from './launch.js';
import { httpGet } from './http-get.js';

export function natsServer(config: Config): LocalServerSpec {
  const { host, port, monitorPort } = config.nats;
  const paths = commonPaths(config.home, 'nats');
  return {
    name: 'nats',
    executable: 'nats-server',
    marker: paths.dataDir,
    ...paths,
    extraLogFiles: [],
    ports: [
      { setting: 'nats.port', host, port },
      { setting: 'nats.monitorPort', host, port: monitorPort },
    ],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      mkdirSync(paths.dataDir, { recursive: true });
      // The monitor listens on `-a` too (no separate http host flag needed), so nothing binds 0.0.0.0.
      const args = ['-js', '-sd', paths.dataDir, '-a', host, '-p', String(port), '-m', String(monitorPort)];
      return spawnDetached(ctx.binary, args, paths.logFile);
    },
    async isReady() {
      // /healthz turns ok only once JetStream is up, not merely when the port is open.
      try {
        const res = await httpGet(new URL(`http://${urlHost(host)}:${monitorPort}/healthz`), { timeoutMs: 1000 });
        return res.status === 200 && (JSON.parse(res.body) as { status?: string }).status === 'ok';
      } catch {
        return false;
      }
    },
  };
}
