import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeDaemons, activeInfra, daemonPort, type DaemonName, type InfraName } from '../../src/lib/paths.js';
import { probeInfra } from '../../src/lib/infra/probe.js';
import { isAlive } from '../../src/lib/process-util.js';
import { provision } from '../../src/lib/provision.js';
import { Supervisor } from '../../src/lib/supervisor/supervisor.js';
import { createClickHouse } from '../../src/lib/store/client.js';
import { eventually } from '../helpers/cli.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/**
 * The supervisor watches the local servers it was asked for: kill -9 of one brings it back with
 * the daemons' restart rules, and the daemons that use it (real processes from dist/) recover by
 * themselves: same pids, healthy again, data flowing again.
 */
let infra: TestInfra;
let sup: Supervisor;
let daemons: DaemonName[];
let infraNames: InfraName[];

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

async function tradesInHot(): Promise<number> {
  const server = infra.config.clickhouse.hot;
  const ch = createClickHouse(server);
  try {
    const rs = await ch.query({ query: `SELECT count() AS n FROM ${server.database}.trades`, format: 'JSONEachRow' });
    return Number((await rs.json<{ n: string }>())[0]!.n);
  } finally {
    await ch.close();
  }
}

function infraEntry(name: InfraName) {
  return sup.snapshot().infra!.find((i) => i.name === name)!;
}

beforeAll(async () => {
  infra = await startTestInfra({
    overrides: {
      simulator: { tradesPerSecond: 10 },
      collector: { venues: { okx_spot: { enabled: false }, okx_derivatives: { enabled: false }, deribit_derivatives: { enabled: false }, binance_derivatives: { enabled: false } } },
      storage: { flushIntervalMs: 300 },
      registry: { heartbeatIntervalMs: 1000, ttlSeconds: 5 },
      supervisor: { initialBackoffMs: 200, maxBackoffMs: 1000, maxFastFailures: 3, stableAfterMs: 15_000, healthTimeoutMs: 30_000 },
    },
  });
  await provision(infra.config);
  daemons = activeDaemons(infra.config);
  infraNames = activeInfra(infra.config);
  sup = new Supervisor(infra.config, pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' }), { watchIntervalMs: 200 });
}, 180_000);

afterAll(async () => {
  await sup?.shutdown(10_000);
  await infra?.stop();
}, 60_000);

describe('self-healing of local servers', () => {
  it('takes over running servers and starts the daemons', async () => {
    const result = await sup.start(daemons, true, infraNames);
    expect(result.failed).toEqual([]);
    // The servers were already up (started by the test): watched, not started again.
    expect(result.actions.filter((a) => (infraNames as readonly string[]).includes(a.name))).toEqual(infraNames.map((name) => ({ name, action: 'running' })));
    expect(result.infra.every((i) => i.state === 'running' && i.pid !== null && i.wanted)).toBe(true);
    await eventually('trades in hot', async () => (await tradesInHot()) > 0, 60_000, 500);
  }, 120_000);

  for (const name of ['nats', 'clickhouse-hot', 'redis', 'postgres'] as const) {
    it(`kill -9 of ${name}: it comes back by itself and every daemon recovers without a restart`, async () => {
      const before = infraEntry(name);
      const daemonPids = new Map(sup.snapshot().daemons.map((d) => [d.name, d.pid]));
      process.kill(before.pid!, 'SIGKILL');
      const after = await eventually(`${name} restarted`, async () => {
        const i = infraEntry(name);
        return i.state === 'running' && i.pid !== before.pid && i.restarts === before.restarts + 1 ? i : null;
      }, 60_000, 100);
      expect(isAlive(after.pid!)).toBe(true);
      expect((await probeInfra(infra.config, name, 3000)).up).toBe(true);

      for (const d of daemons) {
        await eventually(`${d} healthy after ${name} came back`, () => healthy(daemonPort(infra.config, d)), 90_000, 500);
      }
      // Reconnected, not restarted: same processes, no restart counted.
      const now = sup.snapshot().daemons;
      expect(now.map((d) => [d.name, d.state, d.pid, d.restarts])).toEqual(daemons.map((d) => [d, 'running', daemonPids.get(d), 0]));
      // And data flows end to end again.
      const rows = await eventually('hot readable', async () => tradesInHot().catch(() => null), 30_000, 500);
      await eventually(`new trades after ${name} came back`, async () => (await tradesInHot()) > rows, 90_000, 1000);
    }, 240_000);
  }

  it('a server that cannot come back ends up errored after maxFastFailures tries, not in a loop', async () => {
    const before = infraEntry('redis');
    process.kill(before.pid!, 'SIGKILL');
    // Someone else takes the port: every restart fails at once.
    const squatter: Server = await eventually('redis port taken', async () => {
      await new Promise((r) => setTimeout(r, 50));
      return new Promise<Server | null>((resolve) => {
        // Clients that reconnect to it are dropped at once, so close() does not wait for them.
        const s = createServer((c) => c.destroy());
        s.once('error', () => resolve(null));
        s.listen(infra.config.redis.port, infra.config.redis.host, () => resolve(s));
      });
    }, 10_000, 0);
    try {
      const errored = await eventually('redis errored', async () => {
        const i = infraEntry('redis');
        return i.state === 'errored' ? i : null;
      }, 60_000, 100);
      expect(errored.fastFailures).toBe(3);
      expect(errored.detail).toMatch(/already in use.*not restarting|not restarting/s);
      const restarts = errored.restarts;
      await new Promise((r) => setTimeout(r, 1500));
      expect(infraEntry('redis')).toMatchObject({ state: 'errored', restarts });
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    // A start request (what `mprism repair` sends) tries again from scratch.
    const again = await sup.start([], true, ['redis']);
    expect(again.failed).toEqual([]);
    expect(again.actions).toEqual([{ name: 'redis', action: 'started' }]);
    expect(infraEntry('redis')).toMatchObject({ state: 'running', fastFailures: 0 });
  }, 120_000);
});
