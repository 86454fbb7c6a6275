import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthReport } from '../../src/lib/checks/health.js';
import type { IntegrityReport } from '../../src/lib/checks/integrity.js';
import type { StatusReport } from '../../src/lib/checks/status-types.js';
import { isAlive } from '../../src/lib/process-util.js';
import { VENUES, type DataType, type Venue } from '../../src/lib/config/schema.js';
import { createClickHouse } from '../../src/lib/store/client.js';
import { TABLES, tableFor } from '../../src/lib/store/tables.js';
import { eventually, runCli } from '../helpers/cli.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * The platform as a user drives it: init, start --simulate with the default venues, all eight tables in
 * hot and cold, health per venue x data type, integrity, kill -9 of storage with no trade lost or
 * duplicated, stop with nothing left behind.
 */
let infra: TestInfra;
const seenPids = new Set<number>();

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function status(): Promise<StatusReport> {
  const r = await runCli(['status', '--json'], infra.env);
  expect(r.code, r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as StatusReport;
  for (const p of report.processes) if (p.pid) seenPids.add(p.pid);
  return report;
}

/** Binance spot trades: the simulator's /stats counts exactly these. */
async function count(side: 'hot' | 'cold', where = '1'): Promise<{ rows: number; distinct: number }> {
  const server = infra.config.clickhouse[side];
  const ch = createClickHouse(server);
  try {
    const rs = await ch.query({ query: `SELECT count() AS rows, uniqExact(symbol, trade_id) AS distinct FROM ${server.database}.trades WHERE venue = 'binance_spot' AND ${where}`, format: 'JSONEachRow' });
    const [row] = await rs.json<{ rows: string; distinct: string }>();
    return { rows: Number(row!.rows), distinct: Number(row!.distinct) };
  } finally {
    await ch.close();
  }
}

async function tradeIds(symbol: string): Promise<string[]> {
  const server = infra.config.clickhouse.hot;
  const ch = createClickHouse(server);
  try {
    const rs = await ch.query({ query: `SELECT trade_id FROM ${server.database}.trades WHERE venue = 'binance_spot' AND symbol = '${symbol}'`, format: 'JSONEachRow' });
    return (await rs.json<{ trade_id: string }>()).map((r) => r.trade_id);
  } finally {
    await ch.close();
  }
}

/** Rows per venue in one table. */
async function rowsByVenue(side: 'hot' | 'cold', table: string): Promise<Record<string, number>> {
  const server = infra.config.clickhouse[side];
  const ch = createClickHouse(server);
  try {
    const rs = await ch.query({ query: `SELECT venue, count() AS n FROM ${server.database}.${table} GROUP BY venue`, format: 'JSONEachRow' });
    return Object.fromEntries((await rs.json<{ venue: string; n: string }>()).map((r) => [r.venue, Number(r.n)]));
  } finally {
    await ch.close();
  }
}

/** Every venue x data type the default config enables. */
function enabledStreams(): { venue: Venue; dataType: DataType }[] {
  return VENUES.flatMap((venue) => {
    const v = infra.config.collector.venues[venue];
    return v.enabled ? v.dataTypes.map((dataType) => ({ venue, dataType })) : [];
  });
}

async function simulatorStats(): Promise<Record<string, { sent: number; firstId: number; lastId: number }>> {
  const res = await fetch(`http://127.0.0.1:${infra.config.simulator.port}/stats`);
  return ((await res.json()) as { trades: Record<string, { sent: number; firstId: number; lastId: number }> }).trades;
}

beforeAll(async () => {
  infra = await startTestInfra({
    servers: [],
    overrides: {
      simulator: { tradesPerSecond: 40 },
      replication: { windowSeconds: 5, safetyLagSeconds: 2, pollIntervalMs: 1000 },
      storage: { flushIntervalMs: 500, ackWaitSeconds: 5 },
      registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
      supervisor: { initialBackoffMs: 300, stableAfterMs: 5000, healthTimeoutMs: 30000 },
      // The default brain, history initialization included, over 2 h: 7 days of 5 s windows would keep
      // replication catching up for the whole test.
      brain: { init: { since: '2h' } },
    },
  });
});

afterAll(async () => {
  await runCli(['stop', '--timeout', '10'], infra.env).catch(() => undefined);
  await infra.stop();
});

describe('mprism end to end with the simulator', () => {
  it('init provisions everything, and a second init changes nothing', async () => {
    const first = await runCli(['init'], infra.env, 180_000);
    expect(first.code, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toMatch(/created streams MARKET_DATA, ORDERBOOK_SNAP/);
    expect(first.stdout).toMatch(/clickhouse hot 18\.16.*created .*trades/);
    const second = await runCli(['init', '--json'], infra.env, 180_000);
    expect(second.code, second.stderr).toBe(0);
    const report = JSON.parse(second.stdout);
    expect(report.changed).toBe(false);
    expect(report.provision.clickhouse.map((c: { created: string[] }) => c.created.length)).toEqual([0, 0]);
    expect(report.provision.clickhouse[0].existing).toHaveLength(TABLES.length);
    // init stops the servers it started for provisioning
    expect((await status()).processes.filter((p) => p.kind === 'infra' && p.state === 'running')).toEqual([]);
  }, 400_000);

  it('start --simulate brings up infra and daemons, and is idempotent', async () => {
    const r = await runCli(['start', '--simulate'], infra.env, 240_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const s = await status();
    const state = Object.fromEntries(s.processes.map((p) => [p.name, p.state]));
    expect(state).toMatchObject({
      supervisor: 'running', simulator: 'running', storage: 'running', replication: 'running', collector: 'running', brain: 'running',
      nats: 'running', 'clickhouse-hot': 'running', 'clickhouse-cold': 'running', redis: 'running', postgres: 'running',
    });
    const pids = s.processes.map((p) => p.pid);
    const again = await runCli(['start', '--simulate'], infra.env, 120_000);
    expect(again.code, again.stderr).toBe(0);
    expect((await status()).processes.map((p) => p.pid)).toEqual(pids);
  }, 400_000);

  it('the default config fills all eight tables, from every enabled venue, in hot and in cold', async () => {
    const streams = enabledStreams();
    expect(streams).toHaveLength(2 + 7 + 2 + 7 + 1);
    for (const side of ['hot', 'cold'] as const) {
      for (const { venue, dataType } of streams) {
        const table = tableFor(dataType).table;
        await eventually(`${venue} ${dataType} in ${side}`, async () => ((await rowsByVenue(side, table))[venue] ?? 0) > 0, 120_000, 1000);
      }
    }
    expect((await count('hot')).rows).toBeGreaterThan(50);

    // OKX swap sizes are stored in coins: whole simulated contracts x 0.01 BTC / 0.1 ETH. A contract
    // count would be a whole number of at least 1.
    const server = infra.config.clickhouse.hot;
    const ch = createClickHouse(server);
    try {
      const rs = await ch.query({ query: `SELECT instrument, toString(quantity) AS q FROM ${server.database}.trades WHERE venue = 'okx_derivatives'`, format: 'JSONEachRow' });
      const rows = await rs.json<{ instrument: string; q: string }>();
      for (const [instrument, perContract] of [['BTC-USDT-SWAP', 0.01], ['ETH-USDT-SWAP', 0.1]] as const) {
        const sizes = rows.filter((r) => r.instrument === instrument).map((r) => Number(r.q));
        expect([instrument, sizes.length > 0]).toEqual([instrument, true]);
        const offGrid = sizes.filter((q) => Math.abs(q / perContract - Math.round(q / perContract)) > 1e-9 || q < perContract);
        expect([instrument, offGrid]).toEqual([instrument, []]);
        expect([instrument, Math.min(...sizes) < 1]).toEqual([instrument, true]);
      }
    } finally {
      await ch.close();
    }
  }, 300_000);

  it('health is ok and integrity is clean for closed windows', async () => {
    const health = await eventually('health ok', async () => {
      const r = await runCli(['health', '--json'], infra.env);
      return r.code === 0 ? r : null;
    }, 60_000, 2000);
    const report = JSON.parse(health.stdout) as HealthReport;
    const fresh = (xs: { venue: string; dataType: string; status: string }[]) => xs.map((f) => [f.venue, f.dataType, f.status]).sort();
    const expected = enabledStreams().map((x) => [x.venue, x.dataType, 'fresh']).sort();
    // Stored data (ClickHouse hot) and the collector's own view agree: every enabled stream is fresh.
    expect(fresh(report.freshness)).toEqual(expected);
    expect(fresh(report.collectorStreams)).toEqual(expected);
    // ...and so is each configured instrument of each stream (BTC and ETH on every venue).
    const instruments = report.collectorStreams.flatMap((st) => st.instruments.map((i) => `${st.venue} ${st.dataType} ${i.instrument} ${i.status}`));
    expect(instruments).toHaveLength(2 * expected.length);
    expect(instruments.filter((x) => !x.endsWith(' fresh'))).toEqual([]);
    expect(report.daemons.every((d: { registered: boolean }) => d.registered)).toBe(true);
    // status reads the same Redis registry: every daemon heartbeats within its interval (1 s here).
    const withBrain = await status();
    for (const p of withBrain.processes.filter((x) => x.kind === 'daemon')) {
      expect([p.name, p.heartbeatAgeSeconds !== null && p.heartbeatAgeSeconds < 5]).toEqual([p.name, true]);
    }
    // ...and names the brain that leads: the only one, this platform's.
    const brainPid = withBrain.processes.find((p) => p.name === 'brain')!.pid;
    expect(withBrain.brainLeader?.brainId).toMatch(new RegExp(`:${brainPid}$`));

    const integrity = await eventually('integrity ok', async () => {
      const r = await runCli(['integrity', '--since', '10m', '--json'], infra.env);
      return r.code === 0 ? r : null;
    }, 60_000, 2000);
    const tables = (JSON.parse(integrity.stdout) as IntegrityReport).tables;
    // Gap markers and holes appear only where something broke: a clean run may have none.
    for (const t of tables.filter((x) => x.table !== 'orderbook_gaps' && x.table !== 'stream_holes')) {
      const closed = t.windows.filter((w) => w.status !== 'pending');
      expect([t.table, closed.length > 0]).toEqual([t.table, true]);
      for (const w of closed) expect([t.table, w.start, w.hot]).toEqual([t.table, w.start, w.cold]);
    }
  }, 150_000);

  it('kill -9 of storage: the supervisor restarts it and no trade is lost or duplicated', async () => {
    const before = (await status()).processes.find((p) => p.name === 'storage')!;
    process.kill(before.pid!, 'SIGKILL');
    const after = await eventually('storage restarted', async () => {
      const p = (await status()).processes.find((x) => x.name === 'storage')!;
      return p.state === 'running' && p.pid !== before.pid ? p : null;
    }, 60_000);
    expect(after.restarts).toBeGreaterThanOrEqual(before.restarts + 1);

    // Stop generating, then every trade the simulator sent must arrive in hot exactly once.
    await fetch(`http://127.0.0.1:${infra.config.simulator.port}/control/pause`, { method: 'POST' });
    await new Promise((r) => setTimeout(r, 500));
    const sent = await simulatorStats();
    for (const [instrument, s] of Object.entries(sent)) {
      const symbol = instrument.replace(/USDT$/, '-USDT');
      const where = `symbol = '${symbol}'`;
      const got = await eventually(`all ${s.sent} ${symbol} trades in hot`, async () => {
        const c = await count('hot', where);
        return c.distinct >= s.sent ? c : null;
      }, 60_000);
      expect(got.distinct).toBe(s.sent);
      expect(got.rows).toBe(got.distinct);
      // Ids are sequential per symbol: every id the simulator sent, none missing in between.
      const ids = new Set(await tradeIds(symbol));
      for (let id = s.firstId; id <= s.lastId; id++) if (!ids.has(String(id))) expect.fail(`trade ${symbol} ${id} missing from hot`);
    }
  }, 200_000);

  it('logs, diagnose and repair report on the running platform', async () => {
    const logs = await runCli(['logs', 'storage', '-n', '3'], infra.env);
    expect(logs.code, logs.stderr).toBe(0);
    const lines = logs.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ component: 'storage' });

    const diagnose = await runCli(['diagnose', '--json'], infra.env);
    expect(diagnose.code, diagnose.stdout).toBe(0);
    const d = JSON.parse(diagnose.stdout);
    expect(d.findings).toEqual([]);
    expect(d.locks.find((l: { name: string }) => l.name === 'storage')).toMatchObject({ state: 'live' });
    expect(d.infra.every((s: { up: boolean }) => s.up)).toBe(true);

    // Rows the storage restart delivered late were copied to cold by replication's late-data pass,
    // so once integrity is clean repair has nothing to do.
    await eventually('integrity ok', async () => (await runCli(['integrity', '--since', '10m'], infra.env)).code === 0, 60_000, 1000);
    const repair = await runCli(['repair', '--json'], infra.env);
    expect(repair.code, repair.stdout).toBe(0);
    expect(JSON.parse(repair.stdout)).toMatchObject({ ok: true, data: [], locks: [], restarts: [] });
  }, 120_000);

  it('kill -9 of nats under a running supervisor: it comes back by itself and status shows the restart', async () => {
    const before = (await status()).processes.find((p) => p.name === 'nats')!;
    const daemonsBefore = (await status()).processes.filter((p) => p.kind === 'daemon').map((p) => [p.name, p.pid]);
    process.kill(before.pid!, 'SIGKILL');
    const after = await eventually('nats restarted', async () => {
      const p = (await status()).processes.find((x) => x.name === 'nats')!;
      return p.state === 'running' && p.pid !== before.pid ? p : null;
    }, 60_000, 300);
    expect(after.restarts).toBe(before.restarts + 1);
    // The daemons reconnect: no restart, and health is ok again.
    await eventually('health ok after nats came back', async () => (await runCli(['health'], infra.env)).code === 0, 90_000, 2000);
    expect((await status()).processes.filter((p) => p.kind === 'daemon').map((p) => [p.name, p.pid])).toEqual(daemonsBefore);
  }, 200_000);

  it('after kill -9 of the supervisor, a daemon and a server: health fails, status says dead, repair adopts the live daemons and starts the dead', async () => {
    const before = await status();
    const pidOf = (r: StatusReport, name: string) => r.processes.find((p) => p.name === name)!.pid!;
    process.kill(pidOf(before, 'supervisor'), 'SIGKILL');
    process.kill(pidOf(before, 'collector'), 'SIGKILL');
    process.kill(pidOf(before, 'redis'), 'SIGKILL');
    const broken = await eventually('collector dead', async () => {
      const r = await status();
      return r.processes.find((p) => p.name === 'collector')!.state === 'dead' ? r : null;
    }, 20_000);
    const state = (r: StatusReport, name: string) => r.processes.find((p) => p.name === name)!.state;
    expect([state(broken, 'supervisor'), state(broken, 'redis')]).toEqual(['dead', 'dead']);
    // Daemons the supervisor left behind keep running and are shown as such.
    expect(broken.processes.find((p) => p.name === 'storage')).toMatchObject({ state: 'running', detail: 'supervisor is not running' });

    const health = await runCli(['health', '--json'], infra.env);
    expect(health.code).toBe(1);
    expect((JSON.parse(health.stdout) as HealthReport).problems.join('\n')).toMatch(/supervisor dead: died without 'mprism stop'/);
    const diagnose = JSON.parse((await runCli(['diagnose', '--json'], infra.env)).stdout) as { findings: string[]; nextSteps: string[] };
    expect(diagnose.findings.filter((f) => / is dead/.test(f)).map((f) => f.split(' ')[0]).sort()).toEqual(['collector', 'redis', 'supervisor']);
    expect(diagnose.nextSteps.join('\n')).toMatch(/mprism repair/);

    const dry = JSON.parse((await runCli(['repair', '--dry-run', '--json'], infra.env)).stdout);
    expect(dry.restarts.map((r: { daemon: string }) => r.daemon)).toEqual(['collector']);
    expect(state(await status(), 'collector')).toBe('dead');

    const kept = ['simulator', 'storage', 'replication', 'brain'];
    const repair = await runCli(['repair', '--json'], infra.env, 180_000);
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    const report = JSON.parse(repair.stdout);
    expect(report.supervisor).toMatchObject({ done: true });
    expect(report.infra).toEqual([{ name: 'redis', done: true, detail: 'started' }]);
    expect(report.restarts.map((r: { daemon: string; done: boolean }) => [r.daemon, r.done])).toEqual([['collector', true]]);
    expect(report.adopted.map((a: { daemon: string; pid: number; done: boolean }) => [a.daemon, a.pid, a.done])).toEqual(kept.map((n) => [n, pidOf(before, n), true]));
    const after = await status();
    for (const name of ['supervisor', ...kept, 'collector', 'redis']) expect([name, state(after, name)]).toEqual([name, 'running']);
    // Adopted, not restarted: the same processes, now supervised by the new supervisor.
    expect(pidOf(after, 'supervisor')).not.toBe(pidOf(before, 'supervisor'));
    for (const name of kept) expect([name, pidOf(after, name)]).toEqual([name, pidOf(before, name)]);
    await eventually('health ok after repair', async () => (await runCli(['health'], infra.env)).code === 0, 90_000, 2000);

    // The new supervisor watches the adopted daemons: one killed now is restarted by it.
    process.kill(pidOf(after, 'storage'), 'SIGKILL');
    await eventually('adopted storage restarted', async () => {
      const p = (await status()).processes.find((x) => x.name === 'storage')!;
      return p.state === 'running' && p.pid !== pidOf(after, 'storage') ? p : null;
    }, 60_000);
  }, 300_000);

  it('stop leaves no process and no listening port behind', async () => {
    const s = await status();
    const ports = [
      infra.config.nats.port, infra.config.clickhouse.hot.httpPort, infra.config.clickhouse.cold.httpPort, infra.config.redis.port,
      infra.config.postgres.port, infra.config.simulator.port, infra.config.storage.port, infra.config.replication.port,
      infra.config.collector.port, infra.config.brain.port,
    ];
    expect(s.processes.length).toBeGreaterThan(0);
    const r = await runCli(['stop'], infra.env, 180_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const after = await status();
    for (const p of after.processes) expect([p.name, p.state]).toEqual([p.name, 'stopped']);
    for (const pid of seenPids) expect(isAlive(pid), `pid ${pid} still alive`).toBe(false);
    for (const port of ports) expect(await portOpen(port), `port ${port} still open`).toBe(false);
  }, 200_000);
});
