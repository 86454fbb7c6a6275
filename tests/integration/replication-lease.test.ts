import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { leaseKeys, readLease } from '../../src/lib/coordination/lease.js';
import { fetchDaemonHealth } from '../../src/lib/daemon-health.js';
import { redisUrl } from '../../src/lib/infra/endpoints.js';
import { freePort } from '../../src/lib/infra/free-port.js';
import { startLocalServer, stopLocalServer } from '../../src/lib/infra/local-servers.js';
import { PACKAGE_ROOT } from '../../src/lib/paths.js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { copyQueryIdPrefix, copyWindow } from '../../src/lib/replication/copy.js';
import { createReplicationMetrics } from '../../src/lib/replication/metrics.js';
import { Replicator, type TableLeases } from '../../src/lib/replication/replicator.js';
import { SharedWatermarks, watermarkFile } from '../../src/lib/replication/watermarks.js';
import { createClickHouse, detectDialect, selectRows, type ClickHouseClient } from '../../src/lib/store/client.js';
import { ensureSchema, TABLES, tableFor } from '../../src/lib/store/tables.js';
import { ensureWatermarksTable, insertWatermark, readStoredWatermarks, runningQueries, WATERMARKS_TABLE } from '../../src/lib/store/watermarks.js';
import { insertRecords } from '../../src/lib/store/writer.js';
import { eventually } from '../helpers/cli.js';
import { tradeAt } from '../helpers/records.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { watermarkOf } from '../helpers/watermarks.js';

/**
 * Replication as a singleton per table, by lease: two replication daemons (real processes from the
 * built dist/, each with its own MPRISM_HOME and port) against one hot/cold pair and one Redis.
 */
const MINUTE = 60_000;
const WINDOW_MS = 2_000;
const TTL_SECONDS = 3;
const trades = tableFor('trade');
let infra: TestInfra;
let hot: ClickHouseClient;
let cold: ClickHouseClient;
let redis: Redis;
const homes: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['clickhouse-hot', 'clickhouse-cold', 'nats', 'redis'],
    overrides: {
      replication: { windowSeconds: WINDOW_MS / 1000, safetyLagSeconds: 3, lateDataSeconds: 30, pollIntervalMs: 200, lease: { ttlSeconds: TTL_SECONDS } },
    },
  });
  redis = new Redis(redisUrl(infra.config), { lazyConnect: true });
  redis.on('error', () => undefined); // the outage test stops Redis under it
  await redis.connect();
  hot = createClickHouse(infra.config.clickhouse.hot);
  cold = createClickHouse(infra.config.clickhouse.cold);
  await ensureSchema(hot, infra.config.clickhouse.hot.database, await detectDialect(hot));
  await ensureSchema(cold, infra.config.clickhouse.cold.database, await detectDialect(cold));
  await ensureWatermarksTable(cold, infra.config.clickhouse.cold.database);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  redis?.disconnect();
  await hot?.close();
  await cold?.close();
  await infra?.stop();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

describe('fenced copies on 18.16', () => {
  it('a copy under an older fence than the recorded one inserts nothing; under the newest it copies; the watermark is the max', async () => {
    const db = infra.config.clickhouse.cold.database;
    // Far in the past, apart from the daemons' windows near now (which start at a migrated watermark).
    const w = { start: 3_000 * MINUTE, end: 3_001 * MINUTE };
    await insertRecords(hot, infra.config.clickhouse.hot.database, [tradeAt(w.start + 1, 'f1'), tradeAt(w.start + 2, 'f2')], { skipExisting: false });
    expect((await readStoredWatermarks(cold, db)).size).toBe(0);
    await insertWatermark(cold, db, { table: 'trades', watermark: w.start, fence: 5, holder: 'b' });
    const stale = await copyWindow(hot, cold, infra.config, trades, w, 4);
    expect(stale).toMatchObject({ hotCount: 2, coldCount: 0, copied: 0, verified: false });
    const current = await copyWindow(hot, cold, infra.config, trades, w, 5);
    expect(current).toEqual({ hotCount: 2, coldCount: 2, copied: 2, verified: true });
    const [r] = await selectRows<{ n: string }>(cold, `SELECT count() AS n FROM ${db}.trades`);
    expect(Number(r!.n)).toBe(2);
    // A smaller watermark written later (a stale holder's) leaves the table's watermark where it was.
    await insertWatermark(cold, db, { table: 'trades', watermark: w.start - MINUTE, fence: 4, holder: 'a' });
    expect(await readStoredWatermarks(cold, db)).toEqual(new Map([['trades', { watermark: w.start, fence: 5 }]]));
    // The daemons below find a fresh install's cold (no watermarks) and an upgraded host's file.
    await cold.command({ query: `DROP TABLE ${db}.${WATERMARKS_TABLE}` });
  });
});

interface Daemon {
  name: string;
  port: number;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

/** A replication daemon process in a home of its own, sharing the test's servers; only its port differs. */
async function spawnReplication(name: string, legacyWatermarks?: Record<string, number>): Promise<Daemon> {
  const home = mkdtempSync(join(tmpdir(), `mprism-repl-${name}-`));
  homes.push(home);
  const port = await freePort();
  const config = parse(readFileSync(infra.configFile, 'utf8')) as { replication: { port: number } };
  config.replication.port = port;
  const configFile = join(home, 'mprism.yaml');
  writeFileSync(configFile, stringify(config));
  if (legacyWatermarks !== undefined) {
    const file = watermarkFile(home);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ version: 1, tables: legacyWatermarks }));
  }
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist', 'daemons', 'main.js'), 'replication'], {
    env: { ...process.env, MPRISM_HOME: home, MPRISM_CONFIG: configFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { name, port, child, output, exited };
}

interface Leases {
  held: string[];
  standby: string[];
  error: string | null;
}

/** The daemon's /health: ok and the tables it holds; null while it does not answer (stopped, starting). */
async function health(d: Daemon): Promise<{ ok: boolean; leases: Leases } | null> {
  const a = await fetchDaemonHealth(d.port, 1000);
  if (!a.answered) return null;
  const body = a.body as { leases?: Leases };
  return body.leases === undefined ? null : { ok: a.ok, leases: body.leases };
}

const allTables = TABLES.map((t) => t.table).sort();

describe('two replication daemons against one hot/cold pair', () => {
  it('each window is copied once, the watermark never regresses, and a paused or killed holder is taken over', async () => {
    const { hot: hotCfg, cold: coldCfg } = infra.config.clickhouse;
    const now = Date.now();
    // Ten minutes of backlog, then trades written live while the daemons run.
    const backlogStart = Math.floor(now / MINUTE) * MINUTE - 10 * MINUTE;
    const sent: number[] = [];
    let seq = 0;
    const write = async (times: number[]) => {
      await insertRecords(hot, hotCfg.database, times.map((t) => tradeAt(t, `lease-${seq++}`)), { skipExisting: false });
      sent.push(...times);
    };
    await write(Array.from({ length: 1200 }, (_, i) => backlogStart + i * 500));

    // Sampled throughout: the watermark (as every daemon reads it) and which tables each daemon holds.
    const watermarks: number[] = [];
    const overlaps: string[] = [];
    let sampling = true;
    const daemons: Daemon[] = [];
    const sampler = (async () => {
      while (sampling) {
        const [w, ...states] = await Promise.all([watermarkOf(cold, coldCfg.database, 'trades'), ...daemons.map((d) => health(d))]);
        if (w !== null) watermarks.push(w);
        const seen = new Map<string, string>();
        states.forEach((s, i) => {
          for (const t of s?.leases.held ?? []) {
            if (seen.has(t)) overlaps.push(`${t} held by ${seen.get(t)} and ${daemons[i]!.name}`);
            seen.set(t, daemons[i]!.name);
          }
        });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const t = Date.now();
        await write([t - 300, t - 200, t - 100]);
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    try {
      // An upgraded install: A's home has the pre-lease watermark file, which A carries into cold.
      const a = await spawnReplication('a', Object.fromEntries(allTables.map((t) => [t, backlogStart])));
      daemons.push(a);
      await eventually('A to carry its watermark file into cold', async () => (await watermarkOf(cold, coldCfg.database, 'open_interests')) === backlogStart, 30_000, 100);
      const b = await spawnReplication('b');
      daemons.push(b);
      const both = async () => {
        const [ha, hb] = await Promise.all([health(a), health(b)]);
        return ha !== null && hb !== null && ha.ok && hb.ok ? { a: ha.leases, b: hb.leases } : null;
      };
      // Every table is held by exactly one of them; a daemon holding none is a healthy standby.
      const split = await eventually('both healthy, every table held', async () => {
        const s = await both();
        return s !== null && [...s.a.held, ...s.b.held].sort().join() === allTables.join() ? s : null;
      }, 30_000, 100);
      expect([...split.a.held, ...split.b.held].sort()).toEqual(allTables);

      const caughtUp = async () => ((await watermarkOf(cold, coldCfg.database, 'trades')) ?? 0) >= Date.now() - 8_000;
      await eventually('the backlog replicated', caughtUp, 60_000, 200);
      const holderOf = async (table: string) => {
        const [ha, hb] = await Promise.all([health(a), health(b)]);
        return ha?.leases.held.includes(table) ? a : hb?.leases.held.includes(table) ? b : null;
      };
      const fence0 = (await readLease(redis, leaseKeys('replication:trades')))!.fence;

      // The trades holder pauses (SIGSTOP) past its lease: the other takes trades over and goes on.
      const paused = (await holderOf('trades'))!;
      const other = paused === a ? b : a;
      paused.child.kill('SIGSTOP');
      await eventually('the other daemon to take trades over', async () => (await health(other))?.leases.held.includes('trades'), 20_000, 100);
      const wmDuringPause = (await watermarkOf(cold, coldCfg.database, 'trades'))!;
      await eventually('the watermark to move under the new holder', async () => ((await watermarkOf(cold, coldCfg.database, 'trades')) ?? 0) > wmDuringPause, 20_000, 100);
      // It resumes: its lease lapsed by its own clock, so it copies no more trades and stands by.
      paused.child.kill('SIGCONT');
      await eventually('the resumed daemon to stand by for trades', async () => {
        const h = await health(paused);
        return h !== null && !h.leases.held.includes('trades');
      }, 10_000, 100);
      const fence1 = (await readLease(redis, leaseKeys('replication:trades')))!.fence;
      expect(fence1).toBeGreaterThan(fence0);

      // Now the trades holder dies (kill -9): the survivor takes every table over and catches up.
      const killed = (await holderOf('trades'))!;
      const survivor = killed === a ? b : a;
      killed.child.kill('SIGKILL');
      await killed.exited;
      await eventually('the survivor to hold every table', async () => {
        const h = await health(survivor);
        return h !== null && h.ok && [...h.leases.held].sort().join() === allTables.join();
      }, 20_000, 100);
      expect((await readLease(redis, leaseKeys('replication:trades')))!.fence).toBeGreaterThan(fence1);
      await new Promise((r) => setTimeout(r, 3_000));

      writing = false;
      await writer;
      const last = Math.max(...sent);
      await eventually('every sent trade below the watermark', async () => ((await watermarkOf(cold, coldCfg.database, 'trades')) ?? 0) > last, 30_000, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${survivor.port}/metrics`)).text();
      for (const t of allTables) expect(metrics).toContain(`mprism_lease_held{name="replication:${t}"} 1`);

      sampling = false;
      await sampler;
      // Stopped cleanly, it hands its leases back at once.
      survivor.child.kill('SIGTERM');
      expect(await survivor.exited).toBe(0);
      expect(await readLease(redis, leaseKeys('replication:trades'))).toBeNull();
    } finally {
      writing = false;
      sampling = false;
      await writer;
      await sampler;
    }

    const watermark = (await watermarkOf(cold, coldCfg.database, 'trades'))!;
    // The daemons' own record: each trades window was replicated (copied, verified, watermark moved
    // under a valid lease) by one daemon once, from the migrated watermark to the last one, no gap.
    const spans = daemons
      .flatMap((d) => d.output.join('').split('\n').map((line) => ({ d: d.name, line })))
      .filter(({ line }) => line.startsWith('{'))
      .map(({ d, line }) => ({ d, ...(JSON.parse(line) as { msg: string; table?: string; start?: string; end?: string }) }))
      .filter((l) => l.msg === 'window replicated' && l.table === 'trades')
      .map((l) => ({ d: l.d, start: Date.parse(l.start!), end: Date.parse(l.end!) }))
      .sort((x, y) => x.start - y.start);
    const breaks = spans.flatMap((s, i) => {
      const expectedStart = i === 0 ? backlogStart : spans[i - 1]!.end;
      return s.start === expectedStart ? [] : [`${s.d} replicated from ${new Date(s.start).toISOString()}, expected ${new Date(expectedStart).toISOString()}`];
    });
    expect(breaks).toEqual([]);
    // And each daemon replicated trades only while it held the trades lease, by its own log in order.
    const outsideLease = daemons.flatMap((d) => {
      let holding = false;
      const out: string[] = [];
      for (const line of d.output.join('').split('\n')) {
        if (!line.startsWith('{')) continue;
        const l = JSON.parse(line) as { msg: string; table?: string; lease?: string; start?: string };
        if (l.lease === leaseKeys('replication:trades').lease) holding = l.msg.startsWith('took') ? true : l.msg.startsWith('lost') ? false : holding;
        if (l.msg === 'window replicated' && l.table === 'trades' && !holding) out.push(`${d.name} replicated ${l.start} without the lease`);
      }
      return out;
    });
    expect(outsideLease).toEqual([]);
    expect(spans.at(-1)!.end).toBe(watermark);
    expect(new Set(spans.map((s) => s.d)).size).toBe(2);
    // Ground truth, window by window: every sent trade in cold exactly once (rows counted, no FINAL).
    const expected = new Map<number, number>();
    for (const t of sent) if (t < watermark) expected.set(Math.floor(t / WINDOW_MS) * WINDOW_MS, (expected.get(Math.floor(t / WINDOW_MS) * WINDOW_MS) ?? 0) + 1);
    const bucket = `intDiv(event_time, ${WINDOW_MS}) * ${WINDOW_MS}`;
    const rows = await selectRows<{ w: string; n: string; u: string }>(
      cold,
      `SELECT ${bucket} AS w, count() AS n, uniqExact(event_time, venue, symbol, trade_id) AS u FROM ${coldCfg.database}.trades
       WHERE trade_id LIKE 'lease-%' AND event_time < ${watermark} GROUP BY w ORDER BY w`,
    );
    const coldRows = new Map(rows.map((r) => [Number(r.w), Number(r.n)]));
    const duplicated = rows.filter((r) => r.n !== r.u).map((r) => new Date(Number(r.w)).toISOString());
    const missing = [...expected].filter(([w, n]) => (coldRows.get(w) ?? 0) < n).map(([w]) => new Date(w).toISOString());
    const excess = [...coldRows].filter(([w, n]) => n > (expected.get(w) ?? 0)).map(([w]) => new Date(w).toISOString());
    expect({ duplicated, missing, excess }).toEqual({ duplicated: [], missing: [], excess: [] });
    expect([...coldRows.values()].reduce((x, y) => x + y, 0)).toBe(sent.filter((t) => t < watermark).length);
    expect(expected.size).toBeGreaterThan(300);

    expect(overlaps).toEqual([]);
    expect(watermarks.length).toBeGreaterThan(50);
    const regressions = watermarks.flatMap((w, i) => (i > 0 && w < watermarks[i - 1]! ? [`${watermarks[i - 1]} -> ${w}`] : []));
    expect(regressions).toEqual([]);
  }, 240_000);
});

describe('a Replicator taking a table over (in process, real servers)', () => {
  /** A Replicator whose daemon holds every table's lease under `fence`; release() is recorded. */
  function replicatorUnder(fence: number, released: string[], log = pino({ level: 'silent' })) {
    const leases: TableLeases = {
      holderId: 'test-holder',
      heldFence: (table) => (released.includes(table) ? null : fence),
      release: async (table) => void released.push(table),
      error: () => null,
    };
    return new Replicator({
      hot,
      cold,
      config: infra.config,
      store: new SharedWatermarks(cold, infra.config.clickhouse.cold.database),
      leases,
      log,
      metrics: createReplicationMetrics(new Registry(), () => new Map()),
      signal: new AbortController().signal,
    });
  }

  it('under a fence older than the recorded one copies nothing, moves no watermark and hands the lease back', async () => {
    const db = infra.config.clickhouse.cold.database;
    const before = (await readStoredWatermarks(cold, db)).get('trades')!;
    expect(before.fence).toBeGreaterThan(1);
    const released: string[] = [];
    const r = replicatorUnder(1, released);
    expect(await r.runCycle()).toEqual({ backlog: false, errors: 0 });
    expect(released).toContain('trades');
    expect((await readStoredWatermarks(cold, db)).get('trades')).toEqual(before);
    expect(r.health()).toMatchObject({ ok: true, lastError: null });
  });

  it('under a new fence records it, then waits for a copy into the table still running on cold before its first copy', async () => {
    const db = infra.config.clickhouse.cold.database;
    const before = (await readStoredWatermarks(cold, db)).get('trades')!;
    const fence = before.fence + 10;
    // A copy the previous holder left running (its statement outlives it): 3 s on the server.
    const queryId = `${copyQueryIdPrefix(db, 'trades')}left-running`;
    const leftRunning = cold.query({ query: 'SELECT sleep(3)', query_id: queryId, format: 'JSONEachRow' }).then((res) => res.json());
    await eventually('the left copy to run', async () => (await runningQueries(cold, copyQueryIdPrefix(db, 'trades'))) > 0, 5_000, 20);
    const seenRunning = Date.now();
    const lines: { msg: string; time: number; table?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; time: number; table?: string }) });
    await replicatorUnder(fence, [], log).runCycle();
    await leftRunning;
    // It took the table over (and so copied) only once the left copy had ended, about 3 s after it began.
    const takeover = lines.find((l) => l.msg === 'copying this table: its lease is ours' && l.table === 'trades');
    expect(takeover).toBeDefined();
    expect(takeover!.time - seenRunning).toBeGreaterThanOrEqual(2_500);
    const firstCopy = lines.findIndex((l) => l.msg === 'window replicated' && l.table === 'trades');
    expect(firstCopy).toBeGreaterThan(lines.indexOf(takeover!));
    // The new fence is recorded, and the windows closed meanwhile (2 s each) were copied under it.
    const after = (await readStoredWatermarks(cold, db)).get('trades')!;
    expect(after.fence).toBe(fence);
    expect(after.watermark).toBeGreaterThan(before.watermark);
  });
});

describe('a replication daemon through a Redis outage', () => {
  it('stops copying and reports the outage in /health (no crash), then takes its tables back when Redis returns', async () => {
    const db = infra.config.clickhouse.cold.database;
    const d = await spawnReplication('outage');
    const held = async () => {
      const h = await health(d);
      return h !== null && h.ok && [...h.leases.held].sort().join() === allTables.join() ? h : null;
    };
    await eventually('it holds every table', held, 20_000, 100);
    await stopLocalServer(infra.config, 'redis', 10_000);
    const down = await eventually('the outage in /health', async () => {
      const h = await health(d);
      return h !== null && !h.ok && h.leases.error !== null && h.leases.held.length === 0 ? h : null;
    }, 20_000, 100);
    expect(down.leases.error).toMatch(/^cannot take or renew table leases at redis:\/\/127\.0\.0\.1:\d+: redis: /);
    // Nothing is copied without the lease: the watermark stands still.
    const still = await watermarkOf(cold, db, 'trades');
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await watermarkOf(cold, db, 'trades')).toBe(still);
    expect(d.child.exitCode).toBeNull();

    await startLocalServer(infra.config, 'redis');
    await eventually('every table held again', held, 30_000, 100);
    await eventually('the watermark moving again', async () => ((await watermarkOf(cold, db, 'trades')) ?? 0) > still!, 20_000, 100);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  }, 120_000);
});
