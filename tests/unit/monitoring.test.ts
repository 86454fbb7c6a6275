import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config/load.js';
import { ConfigError } from '../../src/lib/errors.js';
import {
  PROMETHEUS_FILES,
  SHIPPED_ALERT_RULES,
  SHIPPED_GRAFANA_DASHBOARD,
  SHIPPED_PROMETHEUS_CONFIG,
  installPrometheusConfig,
  metricsBind,
  metricsListenHosts,
  prometheusArgs,
  prometheusFiles,
  prometheusTargets,
  scrapeAddress,
  writePrometheusTargets,
} from '../../src/lib/monitoring.js';
import { DAEMON_NAMES } from '../../src/lib/paths.js';
import { wantedBinaries } from '../../src/lib/platform.js';
import { locateBinary } from '../../src/lib/infra/binaries.js';
import { configSchema } from '../../src/lib/config/schema.js';
import { baseMetricName, exposedMetrics, promqlMetricNames } from '../helpers/promql.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'mprism-monitoring-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const configWith = (yaml: string) => {
  const file = join(home, 'mprism.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ env: { MPRISM_HOME: home }, file });
};

describe('monitoring settings', () => {
  it('default to loopback: daemons, brain and Prometheus; Prometheus off and not on 9090', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    expect(c.metrics).toEqual({ host: '127.0.0.1' });
    expect(c.prometheus).toEqual({ enabled: false, host: '127.0.0.1', port: 9190, retention: '15d' });
    for (const d of DAEMON_NAMES) expect(metricsBind(c, d).host).toBe('127.0.0.1');
  });

  it('refuses a bad port, an empty host and a retention that is not a duration', () => {
    expect(() => configWith('prometheus:\n  port: 0\n')).toThrow(/prometheus\.port/);
    expect(() => configWith('metrics:\n  host: ""\n')).toThrow(/metrics\.host/);
    expect(() => configWith('prometheus:\n  retention: forever\n')).toThrow(ConfigError);
    expect(() => configWith('prometheus:\n  retention: forever\n')).toThrow(/prometheus\.retention: must be a duration/);
  });

  it('can be set from the environment like every key', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home, MPRISM_METRICS_HOST: '0.0.0.0', MPRISM_PROMETHEUS_PORT: '9300' } });
    expect(c.metrics.host).toBe('0.0.0.0');
    expect(c.prometheus.port).toBe(9300);
  });
});

describe('the prometheus binary', () => {
  it('is optional unless prometheus.enabled: init --install installs it, a plain start never needs it', () => {
    const single = ['nats', 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres'];
    expect(wantedBinaries(loadConfig({ env: { MPRISM_HOME: home } }))).toEqual({ needed: single, optional: ['prometheus'] });
    expect(wantedBinaries(configWith('prometheus:\n  enabled: true\nredis:\n  url: redis://cache:6379\n'))).toEqual({
      needed: [...single.filter((n) => n !== 'redis'), 'prometheus'],
      optional: [],
    });
  });

  it("comes from Debian's prometheus package (which ships promtool too)", () => {
    const dir = join(home, 'bin');
    expect(locateBinary('prometheus', { path: [dir], extra: [], postgresRoot: dir })).toEqual({ name: 'prometheus', path: null, debianPackage: 'prometheus' });
  });

  it('a configuration recorded without the monitoring keys (an earlier version) still loads, with the defaults', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    const { home: _h, file: _f, metrics: _m, prometheus: _p, ...older } = c;
    const parsed = configSchema.parse(JSON.parse(JSON.stringify(older)));
    expect(parsed.metrics).toEqual(c.metrics);
    expect(parsed.prometheus).toEqual(c.prometheus);
  });
});

describe('where /metrics listens', () => {
  it('metrics.host moves collector, storage and replication; the brain stays on brain.host, the simulator on loopback', () => {
    const c = configWith('metrics:\n  host: 10.1.2.3\nbrain:\n  host: 0.0.0.0\n');
    expect(metricsBind(c, 'collector')).toEqual({ host: '10.1.2.3', port: 8087 });
    expect(metricsBind(c, 'storage')).toEqual({ host: '10.1.2.3', port: 8085 });
    expect(metricsBind(c, 'replication')).toEqual({ host: '10.1.2.3', port: 8086 });
    expect(metricsBind(c, 'brain')).toEqual({ host: '0.0.0.0', port: 8088 });
    expect(metricsBind(c, 'simulator')).toEqual({ host: '127.0.0.1', port: 8090 });
  });

  it('each storage instance is scraped on its own port (storage.port + k)', () => {
    const c = configWith('storage:\n  port: 8095\n  instances: 3\n');
    expect(prometheusTargets(c, ['storage', 'storage-2', 'storage-3'], 'box-1').map((g) => [g.labels.daemon, g.targets[0]])).toEqual([
      ['storage', '127.0.0.1:8095'],
      ['storage-2', '127.0.0.1:8096'],
      ['storage-3', '127.0.0.1:8097'],
    ]);
  });

  it("any address but 127.0.0.1 or a wildcard gets a 127.0.0.1 listener beside it (mprism's clients use 127.0.0.1)", () => {
    expect(metricsListenHosts('127.0.0.1')).toEqual(['127.0.0.1']);
    expect(metricsListenHosts('::1')).toEqual(['127.0.0.1', '::1']);
    expect(metricsListenHosts('127.0.0.2')).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(metricsListenHosts('0.0.0.0')).toEqual(['0.0.0.0']);
    expect(metricsListenHosts('::')).toEqual(['::']);
    expect(metricsListenHosts('10.1.2.3')).toEqual(['127.0.0.1', '10.1.2.3']);
  });

  it('a wildcard bind is scraped on loopback; IPv6 literals get brackets', () => {
    expect(scrapeAddress('127.0.0.1', 8087)).toBe('127.0.0.1:8087');
    expect(scrapeAddress('0.0.0.0', 8087)).toBe('127.0.0.1:8087');
    expect(scrapeAddress('::', 8087)).toBe('[::1]:8087');
    expect(scrapeAddress('fd00::5', 8087)).toBe('[fd00::5]:8087');
    expect(scrapeAddress('10.1.2.3', 8087)).toBe('10.1.2.3:8087');
  });
});

describe('the file_sd targets', () => {
  it('one group per daemon run, at its configured port, labelled with daemon and host', () => {
    const c = configWith('collector:\n  port: 18087\nstorage:\n  port: 18085\nmetrics:\n  host: 0.0.0.0\n');
    expect(prometheusTargets(c, ['storage', 'collector', 'brain'], 'box-1')).toEqual([
      { targets: ['127.0.0.1:18085'], labels: { daemon: 'storage', host: 'box-1' } },
      { targets: ['127.0.0.1:18087'], labels: { daemon: 'collector', host: 'box-1' } },
      { targets: ['127.0.0.1:8088'], labels: { daemon: 'brain', host: 'box-1' } },
    ]);
    expect(prometheusTargets(c, [], 'box-1')).toEqual([]);
  });

  it('are written as JSON under MPRISM_HOME/prometheus, beside the config that names them', () => {
    const c = loadConfig({ env: { MPRISM_HOME: home } });
    const file = writePrometheusTargets(c, ['simulator', 'storage'], 'box-1');
    expect(file).toBe(join(home, 'prometheus', 'targets.json'));
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(prometheusTargets(c, ['simulator', 'storage'], 'box-1'));
    const files = installPrometheusConfig(home);
    expect(files).toEqual(prometheusFiles(home));
    expect(readFileSync(files.config, 'utf8')).toBe(readFileSync(SHIPPED_PROMETHEUS_CONFIG, 'utf8'));
    expect(readFileSync(files.rules, 'utf8')).toBe(readFileSync(SHIPPED_ALERT_RULES, 'utf8'));
  });
});

describe('the shipped Prometheus config', () => {
  const shipped = parse(readFileSync(SHIPPED_PROMETHEUS_CONFIG, 'utf8')) as {
    rule_files: string[];
    scrape_configs: { job_name: string; file_sd_configs: { files: string[] }[] }[];
  };

  it('loads the rules and the targets by the names start writes, relative to its own directory', () => {
    expect(shipped.rule_files).toEqual([PROMETHEUS_FILES.rules]);
    expect(shipped.scrape_configs).toHaveLength(1);
    expect(shipped.scrape_configs[0]).toMatchObject({ job_name: 'mprism', file_sd_configs: [{ files: [PROMETHEUS_FILES.targets] }] });
  });

  it('the local Prometheus runs on it, on its configured address, with data and retention under MPRISM_HOME', () => {
    const c = configWith('prometheus:\n  port: 9333\n  retention: 2d\n');
    expect(prometheusArgs(c)).toEqual([
      `--config.file=${join(home, 'prometheus', 'prometheus.yml')}`,
      '--web.listen-address=127.0.0.1:9333',
      `--storage.tsdb.path=${join(home, 'data', 'prometheus')}`,
      '--storage.tsdb.retention.time=2d',
    ]);
  });

  it('one alert rule per brain rule in the default config, each naming the brain rule it mirrors', () => {
    const rules = (parse(readFileSync(SHIPPED_ALERT_RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
    const text = readFileSync(SHIPPED_ALERT_RULES, 'utf8');
    const brainRules = loadConfig({ env: { MPRISM_HOME: home } }).brain.alerts.rules;
    for (const r of brainRules) expect(text, `${r.name} (${r.kind})`).toContain(`kind ${r.kind}`);
    // Each forwarded rule selects a brain rule that exists by default.
    for (const m of text.matchAll(/mprism_brain_alerts_open\{rule="([^"]+)"\}/g)) expect(brainRules.map((r) => r.name)).toContain(m[1]);
    expect(rules.map((r) => r.alert)).toContain('MprismStreamStale');
    expect(rules.find((r) => r.alert === 'MprismReplicationLag')?.expr).toContain('> 900');
  });
});

describe('the Grafana dashboard', () => {
  it('parses, and every panel queries Prometheus through the dashboard\'s datasource variable', () => {
    const dash = JSON.parse(readFileSync(SHIPPED_GRAFANA_DASHBOARD, 'utf8')) as { panels: { type: string; datasource?: { uid: string }; targets?: { expr: string }[] }[] };
    const graphs = dash.panels.filter((p) => p.type !== 'row');
    expect(graphs.length).toBeGreaterThan(10);
    for (const p of graphs) {
      expect(p.datasource?.uid).toBe('${datasource}');
      expect(p.targets?.length).toBeGreaterThan(0);
    }
  });
});

describe('promqlMetricNames', () => {
  it('finds the metric names and nothing else', () => {
    expect(promqlMetricNames('sum by (venue, data_type) (rate(mprism_collector_messages_total{host=~"$host", x="a{b}"}[$__rate_interval]))')).toEqual(['mprism_collector_messages_total']);
    expect(promqlMetricNames('histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket[5m])))')).toEqual(['a_seconds_bucket']);
    expect(promqlMetricNames('time() - max by (stream) (b_ts) or on(x) c_total > 3 unless ignoring(y) up{job="m"} == bool 0')).toEqual(['b_ts', 'c_total', 'up']);
    expect(promqlMetricNames('x offset 5m and without_total')).toEqual(['without_total', 'x']);
  });

  it('histogram series map to their family; # TYPE lines give the families a scrape exposes', () => {
    const hist = new Set(['a_seconds']);
    expect(baseMetricName('a_seconds_bucket', hist)).toBe('a_seconds');
    expect(baseMetricName('b_count', hist)).toBe('b_count');
    expect([...exposedMetrics('# HELP x_total h\n# TYPE x_total counter\nx_total 1\n# TYPE a_seconds histogram\n').entries()]).toEqual([
      ['x_total', 'counter'],
      ['a_seconds', 'histogram'],
    ]);
  });
});
