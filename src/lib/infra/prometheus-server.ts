import { mkdirSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { installPrometheusConfig, prometheusArgs, prometheusFiles } from '../monitoring.js';
import { locateBinary } from './binaries.js';
import { httpGet } from './http-get.js';
import { spawnDetached } from './launch.js';
import { bringUpServer, stopServer } from './local-servers.js';
import { commonPaths, findServerPid, urlHost, type LocalServerSpec } from './server-spec.js';

/** The local Prometheus's base URL (its HTTP API and UI). */
export function prometheusUrl(config: Config): string {
  return `http://${urlHost(config.prometheus.host)}:${config.prometheus.port}`;
}

/**
 * The optional local Prometheus: not an InfraName (no daemon needs it, the supervisor does not
 * watch it), started by `mprism start --with-prometheus` and stopped by `mprism stop`.
 */
export function prometheusServer(config: Config): LocalServerSpec {
  const { host, port } = config.prometheus;
  const paths = commonPaths(config.home, 'prometheus');
  return {
    name: 'prometheus',
    executable: 'prometheus',
    // The config file lives under this MPRISM_HOME: tells our Prometheus from any other.
    marker: `--config.file=${prometheusFiles(config.home).config}`,
    ...paths,
    extraLogFiles: [],
    ports: [{ setting: 'prometheus.port', host, port }],
    stopSignal: 'SIGTERM',
    async launch(ctx) {
      mkdirSync(paths.dataDir, { recursive: true });
      return spawnDetached(ctx.binary, prometheusArgs(config), paths.logFile);
    },
    async isReady() {
      try {
        return (await httpGet(new URL(`${prometheusUrl(config)}/-/ready`), { timeoutMs: 1000 })).status === 200;
      } catch {
        return false;
      }
    },
  };
}

/**
 * Refreshes the shipped config and rules under MPRISM_HOME/prometheus and starts Prometheus on them
 * (or adopts the running one). Prometheus rereads the targets file by itself when start rewrites it.
 */
export async function startPrometheus(config: Config, log: (line: string) => void): Promise<{ pid: number; url: string }> {
  installPrometheusConfig(config.home);
  const spec = prometheusServer(config);
  const running = findServerPid(spec);
  // A running one keeps its rules until told to reload them (SIGHUP rereads config and rules).
  if (running !== null) process.kill(running, 'SIGHUP');
  const pid = await bringUpServer(config.home, spec, locateBinary('prometheus'), log);
  return { pid, url: prometheusUrl(config) };
}

/** Whether this home's Prometheus runs (restart brings it back after its full stop). */
export function prometheusRunning(config: Config): boolean {
  return findServerPid(prometheusServer(config)) !== null;
}

/** Resolves to whether it was running. */
export function stopPrometheus(config: Config, timeoutMs: number): Promise<boolean> {
  return stopServer(prometheusServer(config), timeoutMs);
}
