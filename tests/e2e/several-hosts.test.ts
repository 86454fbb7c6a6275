import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IntegrityReport } from '../../src/lib/checks/integrity.js';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import { infraUrl } from '../../src/lib/infra/endpoints.js';
import { isAlive } from '../../src/lib/process-util.js';
import { eventually, runCli } from '../helpers/cli.js';
import { pauseAndDrain, truth } from '../helpers/ground-truth.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * A platform spread over two homes, as over two machines ("Running on several machines"): home A
 * runs the servers, the simulator, the collector and the brain (`daemons: [collector, brain]`);
 * home B runs only storage and replication (`daemons: [storage, replication]`) against A's servers
 * by URL, with its own supervisor. Each `mprism start` starts its share only; status and health
 * judge their own share; B's supervisor restarts its storage after kill -9; every trade the
 * simulator sent ends up in hot and in cold exactly once, and integrity on A is clean.
 */
let a: TestInfra;
let b: TestInfra;

const shared = {
  collector: {
    venues: { binance_derivatives: { enabled: false }, okx_derivatives: { enabled: false }, deribit_derivatives: { enabled: false } },
  },
  simulator: { tradesPerSecond: 30 },
  replication: { windowSeconds: 5, safetyLagSeconds: 2, pollIntervalMs: 1000 },
  storage: { flushIntervalMs: 500, ackWaitSeconds: 5 },
  registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
  supervisor: { initialBackoffMs: 300, stableAfterMs: 5000, healthTimeoutMs: 30000 },
  brain: { init: { since: '10m' } },
};

async function status(home: TestInfra): Promise<StatusReport> {
  const r = await runCli(['status', '--json'], home.env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusReport;
}

const daemonRows = (s: StatusReport) => s.processes.filter((p) => p.kind === 'daemon');

beforeAll(async () => {
  a = await startTestInfra({ servers: [], overrides: { ...shared, daemons: ['collector', 'brain'] } });
  const c = a.config;
  b = await startTestInfra({
    servers: [],
    overrides: {
      ...shared,
      daemons: ['storage', 'replication'],
      nats: { url: infraUrl(c, 'nats') },
      clickhouse: {
        // Cold pulls from hot over hot's native port: B's config names A's.
        hot: { url: infraUrl(c, 'clickhouse-hot'), tcpPort: c.clickhouse.hot.tcpPort },
        cold: { url: infraUrl(c, 'clickhouse-cold'), tcpPort: c.clickhouse.cold.tcpPort },
      },
      redis: { url: infraUrl(c, 'redis') },
      postgres: { url: infraUrl(c, 'postgres') },
    },
  });
}, 120_000);

afterAll(async () => {
  if (b !== undefined) await runCli(['stop', '--timeout', '10'], b.env).catch(() => undefined);
  if (a !== undefined) await runCli(['stop', '--timeout', '10'], a.env).catch(() => undefined);
  await b?.stop();
  await a?.stop();
});

describe('one platform on two hosts', () => {
  it('each start starts its own share: A the servers, simulator, collector and brain; B storage and replication only', async () => {
    const startA = await runCli(['start', '--simulate'], a.env, 300_000);
    expect(startA.code, startA.stderr + startA.stdout).toBe(0);
    const startB = await runCli(['start'], b.env, 300_000);
    expect(startB.code, startB.stderr + startB.stdout).toBe(0);

    const sa = await status(a);
    expect(daemonRows(sa).map((p) => [p.name, p.state])).toEqual([['simulator', 'running'], ['collector', 'running'], ['brain', 'running']]);
    expect(sa.processes.filter((p) => p.kind === 'infra').every((p) => p.state === 'running')).toBe(true);
    const sb = await status(b);
    expect(daemonRows(sb).map((p) => [p.name, p.state])).toEqual([['storage', 'running'], ['replication', 'running']]);
    // B runs no server: every one is A's, by URL.
    expect(sb.processes.filter((p) => p.kind === 'infra').map((p) => p.state)).toEqual(['external', 'external', 'external', 'external', 'external']);

    // A daemon of the other host's share is refused by name, saying why.
    const wrong = await runCli(['start', 'collector'], b.env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/not in use with this configuration: collector .*daemons \[storage, replication\]/);
  }, 700_000);

  it('both hosts are healthy once trades flow through the other host\'s storage', async () => {
    await eventually('health ok on A', async () => (await runCli(['health'], a.env)).code === 0, 120_000, 2000);
    const hb = await eventually('health ok on B', async () => {
      const r = await runCli(['health', '--json'], b.env);
      return r.code === 0 ? r : null;
    }, 60_000, 2000);
    // B's health looks at its own daemons, not at A's collector or brain.
    expect(hb.stdout).toMatch(/"storage"/);
    expect(hb.stdout).not.toMatch(/"name":\s*"collector"/);
    // Which process copies each table, seen from either host: B's replication holds every table's lease.
    const leases = (await status(a)).leases ?? [];
    expect(leases.find((l) => l.name === 'replication:trades')?.holderId).toMatch(new RegExp(`:${b.config.replication.port}$`));
  }, 200_000);

  it('B\'s supervisor restarts its storage after kill -9; every trade sent is in hot and in cold exactly once; integrity on A is clean', async () => {
    const before = daemonRows(await status(b)).find((p) => p.name === 'storage');
    expect(before?.pid).toBeTypeOf('number');
    process.kill(before!.pid!, 'SIGKILL');
    const restarted = await eventually('storage restarted on B', async () => {
      const row = daemonRows(await status(b)).find((p) => p.name === 'storage');
      return row?.state === 'running' && row.pid !== before!.pid ? row : null;
    }, 60_000, 500);
    expect(isAlive(before!.pid!)).toBe(false);
    expect(restarted.restarts).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 3000));

    const hot = await pauseAndDrain(a.config);
    expect(hot.expected).toBeGreaterThan(100);
    expect(hot.missingRanges).toEqual([]);
    expect({ distinct: hot.distinct, rows: hot.rows }).toEqual({ distinct: hot.expected, rows: hot.expected });

    const cold = await eventually('cold caught up', async () => {
      const t = await truth(a.config, a.config.clickhouse.cold);
      return t.distinct === hot.expected ? t : null;
    }, 90_000, 2000);
    expect({ distinct: cold.distinct, rows: cold.rows }).toEqual({ distinct: hot.expected, rows: hot.expected });

    const integrity = await eventually('integrity ok on A', async () => {
      const r = await runCli(['integrity', '--since', '10m', '--json'], a.env);
      return r.code === 0 ? r : null;
    }, 90_000, 2000);
    expect((JSON.parse(integrity.stdout) as IntegrityReport).ok).toBe(true);
  }, 400_000);
});
