import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/lib/infra/free-port.js';
import { httpGet } from '../../src/lib/infra/http-get.js';
import { stopPrometheus } from '../../src/lib/infra/prometheus-server.js';
import { portProblem } from '../../src/lib/infra/server-spec.js';
import { SHIPPED_ALERT_RULES, SHIPPED_GRAFANA_DASHBOARD, prometheusFiles, type TargetGroup } from '../../src/lib/monitoring.js';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import type { StartReport } from '../../src/lib/platform.js';
import { activeDaemons, homePaths } from '../../src/lib/paths.js';
import { isAlive, readPidFile } from '../../src/lib/process-util.js';
import { eventually, runCli } from '../helpers/cli.js';
import { baseMetricName, exposedMetrics, promqlMetricNames } from '../helpers/promql.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * The monitoring kit against the running platform (one start serves every check):
 * `mprism start --simulate --with-prometheus` writes the file_sd targets from the configured ports
 * and runs the Debian Prometheus on the shipped config; every metric the Grafana dashboard and the
 * alert rules query is exported by the running daemons; Prometheus scrapes every daemon (all
 * targets up) and loads the rules; `mprism stop` stops it too. collector, storage and replication
 * bind metrics.host = 127.0.0.2 (a loopback address that is not 127.0.0.1), so the setting is used.
 */
const METRICS_HOST = '127.0.0.2';
let infra: TestInfra;
let prometheusPort: number;
let report: StartReport;

const prometheusApi = async <T>(path: string): Promise<T> => {
  const res = await httpGet(new URL(`http://127.0.0.1:${prometheusPort}${path}`), { timeoutMs: 5000 });
  expect(res.status, res.body).toBe(200);
  return (JSON.parse(res.body) as { data: T }).data;
};

beforeAll(async () => {
  prometheusPort = await freePort();
  infra = await startTestInfra({
    servers: [],
    overrides: {
      // One venue keeps the platform light; every metric is registered whatever the venues.
      collector: {
        venues: {
          binance_derivatives: { enabled: false }, okx_spot: { enabled: false }, okx_derivatives: { enabled: false }, deribit_derivatives: { enabled: false },
        },
      },
      simulator: { tradesPerSecond: 20 },
      registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
      metrics: { host: METRICS_HOST },
      prometheus: { port: prometheusPort, retention: '1d' },
    },
  });
}, 120_000);

afterAll(async () => {
  if (infra === undefined) return;
  await runCli(['stop', '--timeout', '10'], infra.env).catch(() => undefined);
  // A failed test must not leave Prometheus behind (infra.stop() knows only the platform's servers).
  await stopPrometheus(infra.config, 10_000).catch(() => undefined);
  await infra.stop();
});

describe('the monitoring kit on a running platform', () => {
  it('start --simulate --with-prometheus writes the targets from the configured ports and runs Prometheus', async () => {
    const r = await runCli(['start', '--simulate', '--with-prometheus', '--json'], infra.env, 300_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    report = JSON.parse(r.stdout) as StartReport;
    expect(report.prometheus?.url).toBe(`http://127.0.0.1:${prometheusPort}`);
    expect(report.prometheusTargets).toBe(prometheusFiles(infra.home).targets);
    const c = infra.config;
    const groups = JSON.parse(readFileSync(prometheusFiles(infra.home).targets, 'utf8')) as TargetGroup[];
    const host = hostname();
    expect(groups.sort((a, b) => a.labels.daemon!.localeCompare(b.labels.daemon!))).toEqual([
      { targets: [`127.0.0.1:${c.brain.port}`], labels: { daemon: 'brain', host } },
      { targets: [`${METRICS_HOST}:${c.collector.port}`], labels: { daemon: 'collector', host } },
      { targets: [`${METRICS_HOST}:${c.replication.port}`], labels: { daemon: 'replication', host } },
      { targets: [`127.0.0.1:${c.simulator.port}`], labels: { daemon: 'simulator', host } },
      { targets: [`${METRICS_HOST}:${c.storage.port}`], labels: { daemon: 'storage', host } },
    ]);
    // The pid file and log of a local server, like the others'.
    const pid = readPidFile(homePaths(infra.home).pidFile('prometheus'));
    expect(pid).toBe(report.prometheus?.pid);
    expect(isAlive(pid!)).toBe(true);
    expect(existsSync(homePaths(infra.home).logFile('prometheus'))).toBe(true);
    const status = await runCli(['status', '--json'], infra.env);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as StatusReport).processes.find((p) => p.name === 'prometheus')).toMatchObject({
      kind: 'monitoring', state: 'running', pid, port: prometheusPort, detail: `http://127.0.0.1:${prometheusPort}`,
    });
  }, 400_000);

  it('every metric the dashboard and the alert rules query exists in a scrape of the running daemons', async () => {
    const groups = JSON.parse(readFileSync(prometheusFiles(infra.home).targets, 'utf8')) as TargetGroup[];
    const exposed = new Map<string, string>();
    const perDaemon = new Map<string, Map<string, string>>();
    for (const g of groups) {
      const res = await httpGet(new URL(`http://${g.targets[0]}/metrics`), { timeoutMs: 5000 });
      expect(res.status, `${g.labels.daemon} /metrics`).toBe(200);
      const families = exposedMetrics(res.body);
      perDaemon.set(g.labels.daemon!, families);
      for (const [name, type] of families) exposed.set(name, type);
    }
    // Process CPU and memory of every daemon, which the dashboard's process panels show.
    for (const d of activeDaemons(infra.config)) {
      expect(perDaemon.get(d)?.get(`mprism_${d}_process_cpu_seconds_total`), d).toBe('counter');
      expect(perDaemon.get(d)?.get(`mprism_${d}_process_resident_memory_bytes`), d).toBe('gauge');
    }
    const histograms = new Set([...exposed].filter(([, type]) => type === 'histogram').map(([name]) => name));

    const dashboard = JSON.parse(readFileSync(SHIPPED_GRAFANA_DASHBOARD, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const dashboardExprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    const rules = (parse(readFileSync(SHIPPED_ALERT_RULES, 'utf8')) as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules);
    const queried = new Set([...dashboardExprs, ...rules.map((r) => r.expr)].flatMap((e) => promqlMetricNames(e)).map((n) => baseMetricName(n, histograms)));
    // `up` is Prometheus's own per target: the next test sees it for every daemon.
    queried.delete('up');
    expect(queried.size).toBeGreaterThan(30);
    expect([...queried].filter((n) => !exposed.has(n))).toEqual([]);
  }, 60_000);

  it('Prometheus scrapes every daemon with the shipped config: all targets up, the rules loaded', async () => {
    type Target = { labels: Record<string, string>; scrapeUrl: string; health: string; lastError: string };
    const targets = await eventually(
      'every target up',
      async () => {
        const data = await prometheusApi<{ activeTargets: Target[] }>('/api/v1/targets');
        return data.activeTargets.length === activeDaemons(infra.config).length && data.activeTargets.every((t) => t.health === 'up') ? data.activeTargets : null;
      },
      120_000,
      2000,
    ).catch(async (err: unknown) => {
      const data = await prometheusApi<{ activeTargets: Target[] }>('/api/v1/targets');
      throw new Error(`${(err as Error).message}: ${JSON.stringify(data.activeTargets.map((t) => [t.labels.daemon, t.health, t.lastError]))}`);
    });
    expect(targets.map((t) => t.labels.daemon).sort()).toEqual([...activeDaemons(infra.config)].sort());
    for (const t of targets) expect(t.labels).toMatchObject({ job: 'mprism', host: hostname() });

    // Real samples through Prometheus: the collector's ingest counter and `up` per daemon.
    const up = await prometheusApi<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent('up{job="mprism"}')}`);
    expect(up.result.map((s) => [s.metric.daemon, s.value[1]]).sort()).toEqual([...activeDaemons(infra.config)].sort().map((d) => [d, '1']));
    const ingest = await eventually('ingest samples', async () => {
      const q = await prometheusApi<{ result: { metric: Record<string, string> }[] }>(`/api/v1/query?query=${encodeURIComponent('mprism_collector_messages_total{venue="binance_spot"}')}`);
      return q.result.length > 0 ? q.result : null;
    }, 60_000, 2000);
    expect(ingest.map((s) => s.metric.data_type).sort()).toEqual(['orderbook', 'trade']);

    const rules = await prometheusApi<{ groups: { name: string; rules: { name: string; health: string }[] }[] }>('/api/v1/rules');
    const loaded = rules.groups.flatMap((g) => g.rules);
    expect(loaded).toHaveLength(9);
    expect(loaded.filter((r) => r.health === 'err')).toEqual([]);
  }, 200_000);

  it('mprism stop stops Prometheus too', async () => {
    const pid = report.prometheus!.pid;
    const r = await runCli(['stop', '--timeout', '10'], infra.env, 180_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('prometheus');
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(homePaths(infra.home).pidFile('prometheus'))).toBe(false);
    expect(await portProblem('127.0.0.1', prometheusPort)).toBeNull();
    // Stopped on purpose: nothing left for a Prometheus of the operator's to call down.
    expect(JSON.parse(readFileSync(prometheusFiles(infra.home).targets, 'utf8'))).toEqual([]);
    const status = await runCli(['status', '--json'], infra.env);
    expect((JSON.parse(status.stdout) as StatusReport).processes.map((p) => p.name)).not.toContain('prometheus');
  }, 200_000);
});
