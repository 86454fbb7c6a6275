import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config/schema.js';
import { urlHost } from './infra/server-spec.js';
import { PACKAGE_ROOT, daemonKind, daemonPort, homePaths, type DaemonName } from './paths.js';
import { writeFileAtomic } from './process-util.js';

/**
 * The monitoring kit's files. The shipped prometheus.yml names the rules and the targets by these
 * names, relative to its own directory (Prometheus resolves rule_files and file_sd paths so), so it
 * works unchanged wherever the three files sit side by side.
 */
export const PROMETHEUS_FILES = { config: 'prometheus.yml', rules: 'alerts.yml', targets: 'targets.json' } as const;

export const SHIPPED_PROMETHEUS_CONFIG = join(PACKAGE_ROOT, 'config', PROMETHEUS_FILES.config);
export const SHIPPED_ALERT_RULES = join(PACKAGE_ROOT, 'config', PROMETHEUS_FILES.rules);
export const SHIPPED_GRAFANA_DASHBOARD = join(PACKAGE_ROOT, 'config', 'grafana', 'mprism-dashboard.json');

/** Binds that mprism's own clients reach at 127.0.0.1 (a wildcard takes loopback too). */
const REACHED_ON_LOOPBACK: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '0.0.0.0', '::', '[::]']);

/** Where a daemon's /metrics (and /health) listen. */
export function metricsBind(config: Config, name: DaemonName): { host: string; port: number } {
  const kind = daemonKind(name);
  switch (kind) {
    case 'brain':
      // Beside the brain's API, on the API's address.
      return { host: config.brain.host, port: config.brain.port };
    case 'simulator':
      // A test venue, not part of a deployment: always loopback (src/daemons/simulator/run.ts).
      return { host: '127.0.0.1', port: config.simulator.port };
    case 'collector':
    case 'storage':
    case 'replication':
      return { host: config.metrics.host, port: daemonPort(config, name) };
  }
}

/**
 * The addresses the runner's /health and /metrics server listens on. mprism's own clients (the
 * supervisor's health gate, `mprism health`, the brain's rules) reach a daemon at 127.0.0.1, so any
 * other address (10.0.0.5, 127.0.0.2, ::1) gets a 127.0.0.1 listener beside it.
 */
export function metricsListenHosts(host: string): string[] {
  return REACHED_ON_LOOPBACK.has(host) ? [host] : ['127.0.0.1', host];
}

/**
 * host:port a Prometheus on this machine scrapes for a server bound to `host`: a wildcard bind is
 * scraped on loopback (the targets file is read on this machine).
 */
export function scrapeAddress(host: string, port: number): string {
  if (host === '0.0.0.0') return `127.0.0.1:${port}`;
  if (host === '::' || host === '[::]') return `[::1]:${port}`;
  return `${urlHost(host)}:${port}`;
}

/** One entry of a Prometheus file_sd targets file. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * The file_sd target groups for the daemons this machine runs: one group per daemon, labelled with
 * the daemon's name and the machine's, so one Prometheus can tell apart the same daemon on two hosts.
 */
export function prometheusTargets(config: Config, daemons: readonly DaemonName[], hostname: string): TargetGroup[] {
  return daemons.map((daemon) => {
    const bind = metricsBind(config, daemon);
    return { targets: [scrapeAddress(bind.host, bind.port)], labels: { daemon, host: hostname } };
  });
}

/** Where `mprism start` keeps the local Prometheus's files: config, rules and targets together. */
export function prometheusFiles(home: string) {
  const dir = homePaths(home).prometheus;
  return {
    dir,
    config: join(dir, PROMETHEUS_FILES.config),
    rules: join(dir, PROMETHEUS_FILES.rules),
    targets: join(dir, PROMETHEUS_FILES.targets),
  };
}

/** The command line of the local Prometheus: loopback (or prometheus.host), data under MPRISM_HOME. */
export function prometheusArgs(config: Config): string[] {
  const files = prometheusFiles(config.home);
  return [
    `--config.file=${files.config}`,
    `--web.listen-address=${urlHost(config.prometheus.host)}:${config.prometheus.port}`,
    `--storage.tsdb.path=${homePaths(config.home).dataDir('prometheus')}`,
    `--storage.tsdb.retention.time=${config.prometheus.retention}`,
  ];
}

/**
 * Writes the targets file (atomically: Prometheus watches it and must never read half of it).
 * Always written by `mprism start`, so a Prometheus of the operator's own can point its file_sd at it.
 */
export function writePrometheusTargets(config: Config, daemons: readonly DaemonName[], hostname: string): string {
  const files = prometheusFiles(config.home);
  mkdirSync(files.dir, { recursive: true });
  writeFileAtomic(files.targets, `${JSON.stringify(prometheusTargets(config, daemons, hostname), null, 2)}\n`);
  return files.targets;
}

/** Copies the shipped prometheus.yml and alerts.yml beside the targets file (refreshed at every start). */
export function installPrometheusConfig(home: string): ReturnType<typeof prometheusFiles> {
  const files = prometheusFiles(home);
  mkdirSync(files.dir, { recursive: true });
  copyFileSync(SHIPPED_PROMETHEUS_CONFIG, files.config);
  copyFileSync(SHIPPED_ALERT_RULES, files.rules);
  return files;
}
