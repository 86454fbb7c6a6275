import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config/load.js';
import { locateBinary } from '../../src/lib/infra/binaries.js';
import { SHIPPED_ALERT_RULES, installPrometheusConfig, writePrometheusTargets } from '../../src/lib/monitoring.js';
import { DAEMON_NAMES } from '../../src/lib/paths.js';

/**
 * The shipped rules and the config `mprism start` renders, checked by the real promtool (Debian's
 * prometheus package, which `mprism init --binaries-only --install` installs), and the rules' meaning
 * checked by `promtool test rules` against series that should and should not fire.
 */
let dir: string;
let promtool: string;

async function run(args: string[]) {
  const r = await execa(promtool, args, { reject: false, timeout: 60_000 });
  return { code: r.exitCode ?? -1, output: `${r.stdout}\n${r.stderr}` };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mprism-promtool-'));
  const prometheus = locateBinary('prometheus').path;
  if (prometheus === null) throw new Error('prometheus is not installed: run `mprism init --binaries-only --install --yes`');
  promtool = join(prometheus, '..', 'promtool');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('promtool', () => {
  it('check rules passes on config/alerts.yml', async () => {
    const r = await run(['check', 'rules', SHIPPED_ALERT_RULES]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS: 9 rules found/);
  });

  it('check rules fails on a broken copy (the check can fail)', async () => {
    const broken = join(dir, 'broken.yml');
    writeFileSync(broken, readFileSync(SHIPPED_ALERT_RULES, 'utf8').replace('mprism_replication_lag_seconds > 900', 'mprism_replication_lag_seconds >'));
    const r = await run(['check', 'rules', broken]);
    expect(r.code).not.toBe(0);
  });

  it('check config passes on the config start renders under MPRISM_HOME, with its rules and targets', async () => {
    const home = join(dir, 'home');
    const config = loadConfig({ env: { MPRISM_HOME: home } });
    const files = installPrometheusConfig(home);
    writePrometheusTargets(config, DAEMON_NAMES, 'box-1');
    const r = await run(['check', 'config', files.config]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${files.config} is valid prometheus config file syntax`);
    expect(r.output).toMatch(/SUCCESS: 9 rules found/);
  });

  it('test rules: each metric rule fires past its threshold and not before; forwarded rules follow the brain', async () => {
    copyFileSync(SHIPPED_ALERT_RULES, join(dir, 'alerts.yml'));
    const trade = { venue: 'binance_spot', data_type: 'trade', instrument: 'BTCUSDT' };
    const funding = { venue: 'okx_derivatives', data_type: 'funding_rate', instrument: 'BTC-USDT-SWAP' };
    const liquidation = { venue: 'binance_derivatives', data_type: 'liquidation' };
    const series = (name: string, labels: Record<string, string>) => `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
    const tests = {
      rule_files: ['alerts.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // Last record at t=0 and none after: the age is the evaluation time.
            { series: series('mprism_collector_instrument_last_success_timestamp_seconds', trade), values: '0x400' },
            { series: series('mprism_collector_instrument_last_success_timestamp_seconds', funding), values: '0x600' },
            { series: series('mprism_collector_last_success_timestamp_seconds', liquidation), values: '0x100' },
            { series: series('mprism_replication_lag_seconds', { table: 'trades' }), values: '800 900 901' },
            { series: series('up', { job: 'mprism', daemon: 'storage', host: 'box-1' }), values: '1 0 0 0' },
            { series: series('mprism_brain_alerts_open', { rule: 'hole-unrepaired', severity: 'warning' }), values: '0 1' },
          ],
          alert_rule_test: [
            { eval_time: '5m', alertname: 'MprismStreamStale', exp_alerts: [] },
            {
              eval_time: '6m',
              alertname: 'MprismStreamStale',
              exp_alerts: [{ exp_labels: { ...trade, severity: 'critical' }, exp_annotations: { summary: 'binance_spot trade BTCUSDT: no data for 6m 0s' } }],
            },
            {
              // Liquidations as a whole stream after an hour; funding only after 8 h.
              eval_time: '61m',
              alertname: 'MprismStreamStale',
              exp_alerts: [
                { exp_labels: { ...trade, severity: 'critical' }, exp_annotations: { summary: 'binance_spot trade BTCUSDT: no data for 1h 1m 0s' } },
                { exp_labels: { ...liquidation, severity: 'critical' }, exp_annotations: { summary: 'binance_derivatives liquidation : no data for 1h 1m 0s' } },
              ],
            },
            { eval_time: '1m', alertname: 'MprismReplicationLag', exp_alerts: [] },
            {
              eval_time: '2m',
              alertname: 'MprismReplicationLag',
              exp_alerts: [{ exp_labels: { table: 'trades', severity: 'warning' }, exp_annotations: { summary: 'replication of trades is 15m 1s behind (limit 15m)' } }],
            },
            // Down at 1m: pending for the 1m `for`, firing from 2m.
            { eval_time: '1m', alertname: 'MprismDaemonDown', exp_alerts: [] },
            {
              eval_time: '2m',
              alertname: 'MprismDaemonDown',
              exp_alerts: [{ exp_labels: { job: 'mprism', daemon: 'storage', host: 'box-1', severity: 'critical' }, exp_annotations: { summary: 'storage on box-1 not answering /metrics for over 1m' } }],
            },
            { eval_time: '0m', alertname: 'MprismHoleUnrepaired', exp_alerts: [] },
            {
              eval_time: '1m',
              alertname: 'MprismHoleUnrepaired',
              exp_alerts: [{ exp_labels: { rule: 'hole-unrepaired', severity: 'warning' }, exp_annotations: { summary: '1 stream(s) with holes open over 1h: mprism repair' } }],
            },
            { eval_time: '1m', alertname: 'MprismIntegrityProblems', exp_alerts: [] },
          ],
        },
      ],
    };
    const file = join(dir, 'alerts.test.yml');
    writeFileSync(file, stringify(tests));
    const r = await run(['test', 'rules', file]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
  });
});
