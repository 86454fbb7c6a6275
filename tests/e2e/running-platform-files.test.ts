import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiagnoseReport } from '../../src/lib/checks/diagnose.js';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import { effectiveConfigFile } from '../../src/lib/config/effective.js';
import { homePaths } from '../../src/lib/paths.js';
import { isAlive } from '../../src/lib/process-util.js';
import { eventually, runCli, type CliResult } from '../helpers/cli.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * A running platform whose files go bad under it: a corrupt lock of a live daemon is kept by
 * clean and repair, and an invalid mprism.yaml does not keep status, health, diagnose and stop
 * from seeing and stopping the platform (they use the config the supervisor started with).
 */
const HOT_PASSWORD = 'hot-Pw-7d1e';
const COLD_PASSWORD = 'cold-Pw-93ab';
let infra: TestInfra;
let validYaml: string;
const outputs: CliResult[] = [];
const seenPids = new Set<number>();

async function cli(args: string[], timeoutMs?: number): Promise<CliResult> {
  const r = await runCli(args, infra.env, timeoutMs);
  outputs.push(r);
  return r;
}

async function status(): Promise<StatusReport> {
  const r = await cli(['status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as StatusReport;
  for (const p of report.processes) if (p.pid) seenPids.add(p.pid);
  return report;
}

const stateOf = (r: StatusReport, name: string) => r.processes.find((p) => p.name === name)!;

beforeAll(async () => {
  infra = await startTestInfra({
    servers: [],
    overrides: {
      clickhouse: { hot: { password: HOT_PASSWORD }, cold: { password: COLD_PASSWORD } },
      // One venue keeps the platform light; health still needs its streams fresh.
      collector: {
        venues: {
          binance_derivatives: { enabled: false }, okx_spot: { enabled: false }, okx_derivatives: { enabled: false }, deribit_derivatives: { enabled: false },
        },
      },
      simulator: { tradesPerSecond: 20 },
      registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
      supervisor: { initialBackoffMs: 300, stableAfterMs: 5000, healthTimeoutMs: 30000 },
    },
  });
  validYaml = readFileSync(infra.configFile, 'utf8');
}, 120_000);

afterAll(async () => {
  if (infra === undefined) return;
  writeFileSync(infra.configFile, validYaml);
  await runCli(['stop', '--timeout', '10'], infra.env).catch(() => undefined);
  await infra.stop();
});

describe('a running platform with broken files', () => {
  it('starts, healthy, with its effective config private in run/', async () => {
    const r = await cli(['start', '--simulate'], 240_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    await eventually('health ok', async () => (await cli(['health', '--json'])).code === 0, 90_000, 2000);
    expect(statSync(effectiveConfigFile(infra.home)).mode & 0o777).toBe(0o600);
  }, 400_000);

  it('a corrupt lock of a live daemon survives clean --dry-run, clean and repair, and diagnose names it', async () => {
    const p = homePaths(infra.home);
    const storage = stateOf(await status(), 'storage');
    writeFileSync(p.lockFile('storage'), '{"name":"stor');

    const dry = await cli(['clean', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const dryReport = JSON.parse(dry.stdout) as { files: { path: string }[]; kept: { path: string; reason: string }[] };
    expect(dryReport.files.map((f) => f.path)).not.toContain(p.lockFile('storage'));
    expect(dryReport.kept).toEqual([{
      path: p.lockFile('storage'),
      reason: `lock of live storage: corrupt lock file, but pid ${storage.pid} from its pid file is alive and listening on port ${infra.config.storage.port}`,
    }]);

    const clean = await cli(['clean']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toContain(`kept ${p.lockFile('storage')}: lock of live storage`);
    expect(readFileSync(p.lockFile('storage'), 'utf8')).toBe('{"name":"stor');

    // Without its pid file the daemon is found by the port it listens on.
    rmSync(p.pidFile('storage'));
    for (const args of [['repair', '--dry-run', '--json'], ['repair', '--json']]) {
      const repair = await cli(args, 180_000);
      expect([0, 1], repair.stderr + repair.stdout).toContain(repair.code);
      const report = JSON.parse(repair.stdout) as { locks: { path: string }[]; keptLocks: { path: string; reason: string }[] };
      expect(report.locks.map((l) => l.path)).not.toContain(p.lockFile('storage'));
      expect(report.keptLocks).toEqual([{
        path: p.lockFile('storage'),
        reason: `lock of live storage: corrupt lock file, but pid ${storage.pid} is listening on port ${infra.config.storage.port}`,
      }]);
      expect(readFileSync(p.lockFile('storage'), 'utf8')).toBe('{"name":"stor');
    }
    expect(stateOf(await status(), 'storage')).toMatchObject({ state: 'running', pid: storage.pid });

    const diagnose = await cli(['diagnose', '--json']);
    expect(diagnose.code).toBe(1);
    const d = JSON.parse(diagnose.stdout) as DiagnoseReport;
    expect(d.locks.find((l) => l.name === 'storage')).toMatchObject({ state: 'corrupt', pid: storage.pid });
    expect(d.findings).toContain(`corrupt lock of live storage: corrupt lock file, but pid ${storage.pid} is listening on port ${infra.config.storage.port}`);
    expect(d.nextSteps.some((s) => s.includes("'mprism restart storage'"))).toBe(true);
  }, 400_000);

  it('with mprism.yaml invalid, status, health and diagnose still report the platform and warn', async () => {
    const broken = parse(validYaml) as Record<string, Record<string, unknown>>;
    broken.storage = { ...broken.storage, batchSize: 0 };
    writeFileSync(infra.configFile, stringify(broken));
    const problem = `${infra.configFile}: storage.batchSize: `;

    const s = await cli(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain('warning: the config file is invalid');
    expect(s.stderr).toContain(problem);
    const report = JSON.parse(s.stdout) as StatusReport;
    for (const name of ['supervisor', 'simulator', 'storage', 'replication', 'collector', 'brain', 'nats', 'clickhouse-hot', 'clickhouse-cold', 'redis', 'postgres']) {
      expect([name, stateOf(report, name).state]).toEqual([name, 'running']);
    }

    const text = await cli(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/storage\s+daemon\s+running/);

    const health = await cli(['health', '--json']);
    expect(health.code, health.stdout).toBe(0);
    expect(health.stderr).toContain(problem);

    const diagnose = await cli(['diagnose', '--json']);
    expect(diagnose.code).toBe(1);
    const d = JSON.parse(diagnose.stdout) as DiagnoseReport;
    expect(d.findings[0]).toContain('configuration file invalid');
    expect(d.findings[0]).toContain(problem);
    expect(d.nextSteps[0]).toContain('fix the configuration file');
    expect(d.processes.find((p) => p.name === 'collector')!.state).toBe('running');
  }, 120_000);

  it('a daemon the supervisor restarts meanwhile starts with the running config', async () => {
    const before = stateOf(await status(), 'collector');
    process.kill(before.pid!, 'SIGKILL');
    const after = await eventually('collector restarted', async () => {
      const c = stateOf(await status(), 'collector');
      return c.state === 'running' && c.pid !== before.pid ? c : null;
    }, 60_000);
    expect(after.restarts).toBeGreaterThan(before.restarts);
    expect(readFileSync(homePaths(infra.home).logFile('collector'), 'utf8')).toContain("config file is invalid: starting with the supervisor's config");
  }, 120_000);

  it('restart refuses up front (nothing is stopped), stop stops everything, and then the invalid file refuses again', async () => {
    const restart = await cli(['restart']);
    expect(restart.code).toBe(2);
    expect(stateOf(await status(), 'storage').state).toBe('running');

    const stop = await cli(['stop', '--timeout', '10'], 180_000);
    expect(stop.code, stop.stderr + stop.stdout).toBe(0);
    expect(stop.stderr).toContain(`${infra.configFile}: storage.batchSize: `);
    expect(stop.stdout).toMatch(/^stopped .*storage/m);
    for (const pid of seenPids) expect(isAlive(pid), `pid ${pid} still alive`).toBe(false);
    expect(existsSync(effectiveConfigFile(infra.home))).toBe(false);

    for (const args of [['status'], ['health'], ['stop']]) {
      const r = await cli(args);
      expect([args[0], r.code]).toEqual([args[0], 2]);
      expect(r.stderr).toContain(`${infra.configFile}: storage.batchSize: `);
    }
  }, 240_000);

  it('never printed or logged a password', () => {
    const logs = homePaths(infra.home).logs;
    const texts = [
      ...outputs.flatMap((o) => [o.stdout, o.stderr]),
      ...readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')),
    ];
    for (const secret of [HOT_PASSWORD, COLD_PASSWORD]) expect(texts.filter((t) => t.includes(secret))).toEqual([]);
  });
});
