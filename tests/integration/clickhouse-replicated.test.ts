import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/lib/config/schema.js';
import { runIntegrity, type IntegrityReport } from '../../src/lib/checks/integrity.js';
import { clickhouseServer } from '../../src/lib/infra/clickhouse-server.js';
import { freePorts } from '../../src/lib/infra/free-port.js';
import { startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { clickhouseReplicaServer } from '../../src/lib/infra/clickhouse-server.js';
import { portProblem } from '../../src/lib/infra/server-spec.js';
import { findServerPid } from '../../src/lib/infra/server-spec.js';
import { ConfigError } from '../../src/lib/errors.js';
import { zookeeperServer } from '../../src/lib/infra/zookeeper-server.js';
import { isAlive, waitFor } from '../../src/lib/process-util.js';
import { ensureClickHouseSchemas } from '../../src/lib/provision.js';
import { copyWindow } from '../../src/lib/replication/copy.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { dropPartition } from '../../src/lib/store/retention.js';
import { tierReplicas } from '../../src/lib/store/replicas.js';
import { ensureSchema, partitionOf, tableFor } from '../../src/lib/store/tables.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { WATERMARKS_TABLE, ensureWatermarksTable, insertWatermark, readStoredWatermarks } from '../../src/lib/store/watermarks.js';
import pino from 'pino';
import { collectStatus } from '../../src/lib/checks/status.js';
import { Supervisor } from '../../src/lib/supervisor/supervisor.js';
import { eventually, runCli } from '../helpers/cli.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';

/*
 * The replicated hot layout, on real servers: one ZooKeeper (Debian's 3.8) and two clickhouse-server
 * 18.16 replicas of hot, all started by mprism's own LocalServerSpecs (starting clickhouse-hot brings up
 * its companions), plus a single cold. Trades are written through replica 1 only, with the storage
 * daemon's insert path; integrity must count each exactly once, whichever replica it reads.
 */

const MINUTE = 60_000;
const PER_WINDOW = 40;
const WINDOWS = 5;
const N = PER_WINDOW * WINDOWS;

let infra: TestInfra;
/** The same platform, with hot's replicas listed the other way round: integrity then reads replica 2. */
let viaReplica2: Config;
let replica1: ClickHouseClient;
let replica2: ClickHouseClient;
let cold: ClickHouseClient;
let now: number;
let base: number;
const windowStart = (i: number) => base + i * MINUTE;
// A symbol no venue is configured for: the test's rows are the only ones, and no configured stream goes stale.
const trade = (t: number, id: string) =>
  tradeAt(t, id, { venue: 'okx_spot', symbol: 'SOL-USDT', instrument: 'SOL-USDT', receiveTime: t + 1, price: '230.01', quantity: '1.5', side: 'buy' });
const trades = (r: IntegrityReport) => r.tables.find((t) => t.table === 'trades')!;
const hotDb = () => infra.config.clickhouse.hot.database;
const count = async (client: ClickHouseClient, where = '1') =>
  Number((await selectRows<{ n: string }>(client, `SELECT count() AS n FROM ${hotDb()}.trades WHERE ${where}`))[0]!.n);

beforeAll(async () => {
  const [zk, hot1Interserver, hot2Http, hot2Tcp, hot2Interserver] = (await freePorts(5)) as [number, number, number, number, number];
  infra = await startTestInfra({
    servers: ['clickhouse-hot', 'clickhouse-cold'],
    overrides: {
      clickhouse: {
        hot: {
          replication: {
            interserverPort: hot1Interserver,
            replicas: [{ url: null, host: '127.0.0.1', httpPort: hot2Http, tcpPort: hot2Tcp, interserverPort: hot2Interserver }],
          },
        },
        zookeeper: { port: zk },
      },
      replication: { windowSeconds: 60, safetyLagSeconds: 5, pollIntervalMs: 200, lateDataSeconds: 300 },
    },
  });
  const hot = infra.config.clickhouse.hot;
  const [first, second] = tierReplicas(hot);
  viaReplica2 = {
    ...infra.config,
    clickhouse: {
      ...infra.config.clickhouse,
      hot: { ...second!, replication: { interserverPort: hot2Interserver, replicas: [{ url: null, host: first!.host, httpPort: first!.httpPort, tcpPort: first!.tcpPort, interserverPort: hot1Interserver }] } },
    },
  };
  replica1 = createClickHouse(first!);
  replica2 = createClickHouse(second!);
  cold = createClickHouse(infra.config.clickhouse.cold);
  // What `mprism init`/`start` run: every replica of hot creates its replica of each table.
  const created = await ensureClickHouseSchemas(infra.config);
  expect(created.map((c) => [c.server, c.replica ?? null, c.created.length])).toEqual([
    ['hot', 1, 10],
    ['hot', 2, 10],
    ['cold', null, 10],
  ]);

  now = Date.now();
  base = Math.floor(now / MINUTE) * MINUTE - 30 * MINUTE;
  const rows = Array.from({ length: N }, (_, i) => trade(windowStart(Math.floor(i / PER_WINDOW)) + (i % PER_WINDOW) * 1000, `r${i}`));
  // Storage's insert path, through replica 1 only.
  await insertRecords(replica1, hot.database, rows, { skipExisting: false });
  for (let i = 0; i < WINDOWS; i++) {
    const r = await copyWindow(replica1, cold, infra.config, tableFor('trade'), { start: windowStart(i), end: windowStart(i + 1) });
    expect(r.verified).toBe(true);
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([replica1?.close(), replica2?.close(), cold?.close()]);
  await infra?.stop();
});

describe('replicated hot (2 replicas of 18.16 + ZooKeeper 3.8)', () => {
  it('creates ReplicatedReplacingMergeTree tables that both replicas see as one (2 active replicas)', async () => {
    const tables = await selectRows<{ name: string; engine: string }>(replica2, `SELECT name, engine FROM system.tables WHERE database = '${hotDb()}' AND name = 'trades'`);
    expect(tables).toEqual([{ name: 'trades', engine: 'ReplicatedReplacingMergeTree' }]);
    const [state] = await selectRows<{ zookeeper_path: string; total_replicas: number; active_replicas: number; is_readonly: number }>(
      replica2,
      `SELECT zookeeper_path, total_replicas, active_replicas, is_readonly FROM system.replicas WHERE database = '${hotDb()}' AND table = 'trades'`,
    );
    expect(state).toEqual({ zookeeper_path: `/clickhouse/tables/01/${hotDb()}/trades`, total_replicas: 2, active_replicas: 2, is_readonly: 0 });
    // Cold is single-server: the plain engine, as before.
    const [coldEngine] = await selectRows<{ engine: string }>(cold, `SELECT engine FROM system.tables WHERE database = '${infra.config.clickhouse.cold.database}' AND name = 'trades'`);
    expect(coldEngine?.engine).toBe('ReplacingMergeTree');
  });

  it('replication watermarks on a replicated tier are replicated too: written on replica 1, read on replica 2', async () => {
    // What a replicated cold gets (provision creates the table on every replica); hot's replicas stand in for it.
    await ensureWatermarksTable(replica1, hotDb(), 'replicated');
    await ensureWatermarksTable(replica2, hotDb(), 'replicated');
    await insertWatermark(replica1, hotDb(), { table: 'trades', watermark: 120_000, fence: 3, holder: 'host-a:8086' });
    await replica2.command({ query: `SYSTEM SYNC REPLICA ${hotDb()}.${WATERMARKS_TABLE}` });
    expect(await readStoredWatermarks(replica2, hotDb())).toEqual(new Map([['trades', { watermark: 120_000, fence: 3 }]]));
    await replica1.command({ query: `DROP TABLE ${hotDb()}.${WATERMARKS_TABLE}` });
    await replica2.command({ query: `DROP TABLE ${hotDb()}.${WATERMARKS_TABLE}` });
  });

  it('refuses, with a message, to treat existing single-server tables as replicated (no silent conversion)', async () => {
    const db = infra.config.clickhouse.cold.database;
    const attempt = ensureSchema(cold, db, await detectDialect(cold), 'replicated');
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(`the config makes ${db} replicated (ReplicatedReplacingMergeTree), but ${db}.orderbooks (ReplacingMergeTree)`);
    // Provisioning again is a no-op on every replica.
    expect((await ensureClickHouseSchemas(infra.config)).every((c) => c.created.length === 0 && c.migrated.length === 0)).toBe(true);
  });

  it('integrity counts every row written on replica 1 exactly once, reading replica 1', async () => {
    const report = await runIntegrity(infra.config, { sinceMs: 60 * MINUTE, now });
    const t = trades(report);
    expect(report.readFrom.hot).toBe(`http://127.0.0.1:${infra.config.clickhouse.hot.httpPort}`);
    expect(t).toMatchObject({ hotRows: N, coldRows: N, hotDuplicates: 0, coldDuplicates: 0, problems: [] });
    expect(t.windows.map((w) => [w.hot, w.cold, w.status])).toEqual(Array.from({ length: WINDOWS }, () => [PER_WINDOW, PER_WINDOW, 'ok']));
    // Streams configured by default but never written here are warned about; nothing else may be.
    expect(report.warnings.filter((w) => !/^stream stopped: .*: no data in hot$/.test(w))).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('reading through replica 2, a window just written on replica 1 is there, counted once', async () => {
    // One more window, written on replica 1 and read on replica 2 straight away: integrity lets replica 2
    // catch up (SYNC REPLICA) before counting.
    const late = Array.from({ length: PER_WINDOW }, (_, i) => trade(windowStart(WINDOWS) + i * 1000, `w${i}`));
    await insertRecords(replica1, hotDb(), late, { skipExisting: false });
    expect((await copyWindow(replica1, cold, infra.config, tableFor('trade'), { start: windowStart(WINDOWS), end: windowStart(WINDOWS + 1) })).verified).toBe(true);
    const report = await runIntegrity(viaReplica2, { sinceMs: 60 * MINUTE, now });
    expect(report.readFrom.hot).toBe(`http://127.0.0.1:${viaReplica2.clickhouse.hot.httpPort}`);
    const t = trades(report);
    expect(t).toMatchObject({ hotRows: N + PER_WINDOW, coldRows: N + PER_WINDOW, hotDuplicates: 0, problems: [] });
    expect(t.windows).toHaveLength(WINDOWS + 1);
    expect(t.windows.every((w) => w.hot === PER_WINDOW && w.cold === PER_WINDOW && w.status === 'ok')).toBe(true);
    expect(report.ok).toBe(true);
    // Each replica holds every row: summing them would have doubled the count.
    expect(await count(replica1)).toBe(N + PER_WINDOW);
    expect(await count(replica2)).toBe(N + PER_WINDOW);
  });

  it('fails over to replica 2 when replica 1 is down: the CLI still counts every row once', async () => {
    const spec = clickhouseServer(infra.config, 'clickhouse-hot');
    const pid = findServerPid(spec);
    expect(pid).not.toBeNull();
    process.kill(pid!, 'SIGKILL');
    await waitFor(() => !isAlive(pid!), { timeoutMs: 10_000, intervalMs: 50, what: 'replica 1 to exit' });
    try {
      const cli = await runCli(['integrity', '--since', '1h', '--json'], infra.env);
      expect(cli.code, cli.stderr).toBe(0);
      const report = JSON.parse(cli.stdout) as IntegrityReport;
      expect(report.readFrom.hot).toBe(`http://127.0.0.1:${viaReplica2.clickhouse.hot.httpPort}`);
      expect(report.warnings.some((w) => w.startsWith(`hot: replica http://127.0.0.1:${infra.config.clickhouse.hot.httpPort} did not answer`))).toBe(true);
      expect(trades(report)).toMatchObject({ hotRows: N + PER_WINDOW, coldRows: N + PER_WINDOW, hotDuplicates: 0, problems: [] });
      expect(report.ok).toBe(true);
    } finally {
      // Starting the tier again restarts only what is down: ZooKeeper and replica 2 are adopted.
      const zkPid = findServerPid(zookeeperServer(infra.config));
      await startLocalServer(infra.config, 'clickhouse-hot');
      expect(findServerPid(zookeeperServer(infra.config))).toBe(zkPid);
    }
  });

  it('detects rows really missing from the replica it reads: written on replica 1, never fetched by replica 2 (the CLI exits 1)', async () => {
    // Replica 2 stops fetching; a window is written on replica 1 and copied to cold; replica 1 dies.
    // Reading fails over to replica 2, which lacks those rows: a difference, not an ok.
    await replica2.command({ query: `SYSTEM STOP FETCHES ${hotDb()}.trades` });
    const lost = Array.from({ length: 7 }, (_, i) => trade(windowStart(WINDOWS + 1) + i * 1000, `lost${i}`));
    await insertRecords(replica1, hotDb(), lost, { skipExisting: false });
    expect((await copyWindow(replica1, cold, infra.config, tableFor('trade'), { start: windowStart(WINDOWS + 1), end: windowStart(WINDOWS + 2) })).verified).toBe(true);
    const pid = findServerPid(clickhouseServer(infra.config, 'clickhouse-hot'))!;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !isAlive(pid), { timeoutMs: 10_000, intervalMs: 50, what: 'replica 1 to exit' });
    try {
      expect(await count(replica2, "trade_id LIKE 'lost%'")).toBe(0);
      const cli = await runCli(['integrity', '--since', '1h', '--json'], infra.env);
      expect(cli.code, cli.stderr).toBe(1);
      const report = JSON.parse(cli.stdout) as IntegrityReport;
      expect(report.readFrom.hot).toBe(`http://127.0.0.1:${viaReplica2.clickhouse.hot.httpPort}`);
      const t = trades(report);
      expect(t.hotRows).toBe(N + PER_WINDOW);
      expect(t.coldRows).toBe(N + PER_WINDOW + lost.length);
      const w = t.windows.find((x) => x.start === new Date(windowStart(WINDOWS + 1)).toISOString());
      expect(w).toMatchObject({ hot: 0, cold: lost.length, status: 'excess' });
      expect(t.problems).toEqual([`${w!.start}..${w!.end} excess: hot 0, cold ${lost.length}`]);
      // ...and says why the replica it read may be behind.
      expect(report.warnings.some((x) => x.startsWith(`hot: replica http://127.0.0.1:${viaReplica2.clickhouse.hot.httpPort} may lack rows of trades`))).toBe(true);
      expect(report.ok).toBe(false);
    } finally {
      await startLocalServer(infra.config, 'clickhouse-hot');
      await replica2.command({ query: `SYSTEM START FETCHES ${hotDb()}.trades` });
    }
    // Both replicas up and fetching again: replica 2 gets the rows from replica 1, and reading it is whole.
    const healed = await runIntegrity(viaReplica2, { sinceMs: 60 * MINUTE, now });
    expect(trades(healed)).toMatchObject({ hotRows: N + PER_WINDOW + lost.length, coldRows: N + PER_WINDOW + lost.length, hotDuplicates: 0, problems: [] });
    expect(healed.ok).toBe(true);
  });

  it("retention's DROP PARTITION through replica 1 empties the partition on replica 2 too", async () => {
    // A day of its own, far in the past, so the windows above are untouched.
    const day = Date.UTC(2020, 0, 15, 12);
    await insertRecords(replica1, hotDb(), [trade(day, 'old1'), trade(day + 1000, 'old2')], { skipExisting: false });
    await replica2.command({ query: `SYSTEM SYNC REPLICA ${hotDb()}.trades` });
    expect(await count(replica2, "trade_id LIKE 'old%'")).toBe(2);
    // Replica 1 was killed (-9) and restarted above: until ZooKeeper expires its old session (30 s), the
    // dead session still holds the leadership, and a DROP PARTITION (run by the leader) fails with
    // "Leader was suddenly changed". Retention reports that and drops on its next run; so does this.
    await eventually('DROP PARTITION to succeed', () => dropPartition(replica1, hotDb(), 'trades', String(partitionOf(day))), 60_000, 1000);
    await eventually('the drop to reach replica 2', async () => (await count(replica2, "trade_id LIKE 'old%'")) === 0, 20_000, 200);
  });

  it('the supervisor starts a second replica again when it dies while the first runs; status shows it', async () => {
    const sup = new Supervisor(infra.config, pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' }), { watchIntervalMs: 200 });
    try {
      expect((await sup.start([], false, ['clickhouse-hot'])).failed).toEqual([]);
      const second = clickhouseReplicaServer(infra.config, 'hot', 2);
      const before = findServerPid(second);
      expect(before).not.toBeNull();
      process.kill(before!, 'SIGKILL');
      await waitFor(() => !isAlive(before!), { timeoutMs: 10_000, intervalMs: 50, what: 'replica 2 to exit' });
      const after = await eventually('replica 2 started again', async () => {
        const pid = findServerPid(second);
        return pid !== null && pid !== before ? pid : null;
      }, 60_000, 200);
      const rows = (await collectStatus(infra.config)).processes;
      expect(rows.find((r) => r.name === 'clickhouse-hot-2')).toMatchObject({ kind: 'infra', state: 'running', pid: after });
      expect(rows.find((r) => r.name === 'zookeeper')?.state).toBe('running');
      // It serves its replica again: what was written meanwhile through replica 1 reaches it.
      await insertRecords(replica1, hotDb(), [trade(Date.UTC(2020, 0, 16, 12), 'after-restart')], { skipExisting: false });
      await eventually('replica 2 to fetch the new row', async () => (await count(replica2, "trade_id = 'after-restart'").catch(() => 0)) === 1, 120_000, 500);
    } finally {
      // Unwatches without stopping servers (the caller stops them): the next test stops the tier itself.
      await sup.shutdown(10_000);
    }
  });

  it('stopping the tier stops its other replica and ZooKeeper too: no process left, ports free', async () => {
    const specs = [clickhouseServer(infra.config, 'clickhouse-hot'), clickhouseReplicaServer(infra.config, 'hot', 2), zookeeperServer(infra.config)];
    expect(specs.map((spec) => findServerPid(spec) !== null)).toEqual([true, true, true]);
    expect(await stopLocalServer(infra.config, 'clickhouse-hot', 10_000)).toBe(true);
    expect(specs.map((spec) => findServerPid(spec))).toEqual([null, null, null]);
    for (const spec of specs) for (const p of spec.ports) expect(await portProblem(p.host, p.port), p.setting).toBeNull();
  });
});
