import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storage } from '../../src/daemons/storage/run.js';
import type { ActionContext, BrainDeps, JobOutcome, ProgressStore } from '../../src/lib/brain/actions.js';
import { handleBrainRequest } from '../../src/lib/brain/api.js';
import { readItemState } from '../../src/lib/brain/backfill-plan.js';
import { ProgressTable } from '../../src/lib/brain/history.js';
import { copyBackfillToCold } from '../../src/lib/brain/backfill-cold.js';
import { BACKFILL_BUSY_NOTE, createBackfillAction, historyInitPending, initRoutes, initStatus, withBackfillLock, type BackfillReport } from '../../src/lib/brain/history-init.js';
import { connectNats } from '../../src/lib/bus/connection.js';
import type { Config, Venue } from '../../src/lib/config/schema.js';
import { pageHistory } from '../../src/lib/exchanges/history-paging.js';
import { adapterFor, pollOptions } from '../../src/lib/exchanges/registry.js';
import type { HistoryDataType } from '../../src/lib/exchanges/types.js';
import { postgresUrl } from '../../src/lib/infra/endpoints.js';
import { provision } from '../../src/lib/provision.js';
import type { MarketRecord } from '../../src/lib/records.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { createClickHouse } from '../../src/lib/store/client.js';
import { tableFor } from '../../src/lib/store/tables.js';
import { runDaemon, stopDaemon, type RunningDaemon } from '../helpers/daemons.js';
import { startLocalHttp, type LocalHttp } from '../helpers/local-http.js';
import { setWatermark } from '../helpers/watermarks.js';
import { startTestInfra, type TestInfra } from '../helpers/test-infra.js';
import { waitFor } from '../helpers/wait.js';

/**
 * History initialization against the simulator's history, through JetStream and storage into hot:
 * stopped mid-stage and resumed, it fetches no confirmed page again; a venue answering 429 leaves
 * its item to the next run, which finishes it; what hot holds of every polled type is then the
 * simulator's history for the range, each observation once.
 */
let infra: TestInfra;
let config: Config;
let sim: SimulatorHandle;
/** Between the backfill and the simulator: every venue request with the status it got. */
let proxy: LocalHttp;
const answered: { url: string; status: number }[] = [];
let store: RunningDaemon;
let pool: pg.Pool;
let redis: Redis;

const log = pino({ level: process.env.MPRISM_TEST_LOG ?? 'silent' });

beforeAll(async () => {
  infra = await startTestInfra({
    servers: ['nats', 'clickhouse-hot', 'clickhouse-cold', 'postgres'],
    overrides: {
      storage: { flushIntervalMs: 200 },
      // Backfill copies to cold up to the late-data window behind the watermark: none here, so all of it.
      replication: { lateDataSeconds: 0 },
      collector: {
        venues: {
          binance_spot: { enabled: false },
          okx_spot: { enabled: false },
          binance_derivatives: { symbols: ['BTCUSDT'], dataTypes: ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'] },
          okx_derivatives: { symbols: ['BTC-USDT-SWAP'], dataTypes: ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'] },
          deribit_derivatives: { symbols: ['BTC'] },
        },
      },
      // 30 h: funding settlements (8 h) in every run, several 6 h windows per item, within every venue's horizon.
      brain: { init: { since: '30h', maxTries: 3, concurrency: { funding_rate: 2, open_interest: 2, lsr: 2, volatility_index: 1, trade: 1 } } },
    },
  });
  await provision(infra.config);
  sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT'], tradesPerSecond: 5, seed: 42, metrics: new Registry(), log });
  proxy = await startLocalHttp((req, res) => {
    void (async () => {
      const r = await fetch(`http://127.0.0.1:${sim.port}${req.url ?? '/'}`, { headers: req.headers.authorization ? { authorization: req.headers.authorization } : {} });
      const body = await r.text();
      answered.push({ url: req.url ?? '', status: r.status });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const retryAfter = r.headers.get('retry-after');
      if (retryAfter !== null) headers['retry-after'] = retryAfter;
      res.writeHead(r.status, headers);
      res.end(body);
    })();
  });
  // The platform's venues are the simulator's routes, through the proxy.
  config = { ...infra.config, simulator: { ...infra.config.simulator, port: Number(new URL(proxy.url).port) } };
  // Replication has begun every table (history init waits for that), at the start of the test.
  await setWatermarks(Date.now());
  store = runDaemon(storage, infra.config);
  await waitFor(async () => (await store.health()).ok === true, 30_000, 100, 'storage healthy');
  pool = new pg.Pool({ connectionString: postgresUrl(config), max: 4 });
  redis = new Redis({ lazyConnect: true });
}, 180_000);

afterAll(async () => {
  if (store) await stopDaemon(store);
  await pool?.end();
  redis?.disconnect();
  await proxy?.close();
  await sim?.close();
  await infra?.stop();
}, 60_000);

/** Progress over PostgreSQL that aborts the run right after the `abortAfterPages`-th confirmed page was saved. */
function progressStore(onPage: () => void): ProgressStore & { pagesSaved: number } {
  const table = new ProgressTable(pool);
  const store = {
    pagesSaved: 0,
    load: (key: string) => table.load(key),
    clear: (key: string) => table.clear(key),
    list: (prefix: string) => table.list(prefix),
    async save(key: string, state: unknown) {
      const before = readItemState(await table.load(key)).pages;
      await table.save(key, state);
      if (key.startsWith('init:') && readItemState(state).pages > before) {
        store.pagesSaved++;
        onPage();
      }
    },
  };
  return store;
}

async function runAction(progress: ProgressStore, signal: AbortSignal, params: Record<string, unknown> = {}): Promise<JobOutcome & { result: BackfillReport }> {
  const deps: BrainDeps = { config, pool, redis, log, metrics: new Registry() };
  const ctx: ActionContext = { config, params, trigger: 'init', signal, log, progress };
  return (await createBackfillAction(deps, true)(ctx)) as JobOutcome & { result: BackfillReport };
}

const POLLED_TABLES = ['funding_rates', 'open_interests', 'lsr_top_positions', 'lsr_all_accounts', 'volatility_indices'];

/** Replication has begun (or passed) every polled table at `at`: the shared watermarks in cold say so. */
async function setWatermarks(at: number): Promise<void> {
  const cold = createClickHouse(infra.config.clickhouse.cold);
  try {
    for (const t of POLLED_TABLES) await setWatermark(cold, infra.config.clickhouse.cold.database, t, at);
  } finally {
    await cold.close();
  }
}

const VALUE: { readonly [T in Exclude<HistoryDataType, 'trade'>]: { key: string; value: string; of: (r: MarketRecord) => string } } = {
  funding_rate: { key: "''", value: 'funding_rate', of: (r) => (r.dataType === 'funding_rate' ? r.fundingRate : '') },
  open_interest: { key: "''", value: 'open_interest', of: (r) => (r.dataType === 'open_interest' ? r.openInterest : '') },
  lsr_top_position: { key: 'period', value: 'long_short_ratio', of: (r) => (r.dataType === 'lsr_top_position' ? r.longShortRatio : '') },
  lsr_all_account: { key: 'period', value: 'long_short_ratio', of: (r) => (r.dataType === 'lsr_all_account' ? r.longShortRatio : '') },
  volatility_index: { key: 'resolution', value: 'index_value', of: (r) => (r.dataType === 'volatility_index' ? r.indexValue : '') },
};

describe('history initialization', () => {
  let firstRange: BackfillReport['range'];

  it('stopped mid-stage, keeps what JetStream confirmed and reports the stage running', async () => {
    expect(await historyInitPending(new ProgressTable(pool), config)).toBe(true);
    const controller = new AbortController();
    const progress = progressStore(() => {
      if (progress.pagesSaved === 9) controller.abort();
    });
    const out = await runAction(progress, controller.signal);
    firstRange = out.result.range;
    expect(out.result.aborted).toBe(true);
    expect(out.result.complete).toBe(false);
    expect(out.problems).toContain('stopped before the end; the next run continues from the saved cursors');
    expect(progress.pagesSaved).toBe(9);

    const status = await initStatus(new ProgressTable(pool), config);
    expect(status.pending).toBe(true);
    expect(status.stages.map((s) => s.stage)).toEqual(['funding_rate', 'open_interest', 'lsr', 'volatility_index']);
    expect(status.stages.some((s) => s.state === 'running')).toBe(true);
    expect(status.stages.at(-1)!.state).toBe('pending');
  }, 120_000);

  it('a running backfill holds the lock: a second one does nothing and says so, without failing', async () => {
    const before = answered.length;
    const progress = progressStore(() => undefined);
    const out = await withBackfillLock(pool, () => runAction(progress, new AbortController().signal));
    expect(out.problems).toEqual([]);
    expect(out.result).toMatchObject({ note: BACKFILL_BUSY_NOTE, complete: false, aborted: false, records: 0, pages: 0, stages: [], left: [] });
    expect(progress.pagesSaved).toBe(0);
    expect(answered.length).toBe(before);
    expect((await initStatus(new ProgressTable(pool), config)).pending).toBe(true);
  });

  it('the action can be created twice over one metrics registry (a restarted brain, tests)', () => {
    const deps: BrainDeps = { config, pool, redis, log, metrics: new Registry() };
    createBackfillAction(deps, true);
    expect(() => createBackfillAction(deps, true)).not.toThrow();
    expect(deps.metrics.getSingleMetric('mprism_brain_backfill_records_total')).toBeDefined();
  });

  it('resumes without fetching a confirmed page again; a venue answering 429 is left after maxTries, the stages go on', async () => {
    const firstRun = answered.splice(0);
    // Deribit refuses the next 3 requests: DVOL's item fails 3 tries in a row.
    await fetch(`http://127.0.0.1:${sim.port}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'http_429', venue: 'deribit_derivatives', count: 3, retryAfterSeconds: 0 }) });
    const progress = progressStore(() => undefined);
    const out = await runAction(progress, new AbortController().signal);
    const secondRun = answered.splice(0);

    expect(out.result.aborted).toBe(false);
    expect(out.result.complete).toBe(false);
    expect(out.result.left.map((i) => i.key)).toEqual(['init:volatility_index:deribit_derivatives:btc_usd']);
    expect(out.result.left[0]!.error).toMatch(/HTTP 429/);
    expect(out.result.stages.map((s) => [s.stage, s.state])).toEqual([
      ['funding_rate', 'done'],
      ['open_interest', 'done'],
      ['lsr', 'done'],
      ['volatility_index', 'partial'],
    ]);
    expect(secondRun.filter((a) => a.status === 429)).toHaveLength(3);

    // Run 1 asked `firstRun` and confirmed 9 pages, one request each: only what it had not
    // confirmed (requests in flight at the abort) may be asked again.
    const ok1 = firstRun.filter((a) => a.status === 200).map((a) => a.url);
    const ok2 = secondRun.filter((a) => a.status === 200).map((a) => a.url);
    expect(new Set(ok1).size).toBe(ok1.length);
    expect(new Set(ok2).size).toBe(ok2.length);
    const again = ok2.filter((u) => ok1.includes(u));
    expect(again.length).toBeLessThanOrEqual(ok1.length - 9);

    const status = await initStatus(new ProgressTable(pool), config);
    const dvol = status.stages.find((s) => s.stage === 'volatility_index')!;
    expect(dvol).toMatchObject({ state: 'partial', items: { done: 0, left: 1, skipped: 0, total: 1 } });
    expect(dvol.lastError).toMatchObject({ item: 'init:volatility_index:deribit_derivatives:btc_usd', tries: 3, left: true });
    expect(dvol.lastError!.error).toMatch(/HTTP 429/);
    // Finished over the whole scope (an item left is the scheduled backfill's): no longer pending.
    expect(status.pending).toBe(false);

    // The API route serves the same.
    const res = await handleBrainRequest({ method: 'GET', url: '/api/v1/system/init/status', authorization: undefined, body: '' }, initRoutes(new ProgressTable(pool), config), 'token');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ enabled: true, pending: false, stages: [{ stage: 'funding_rate', state: 'done' }, {}, {}, { state: 'partial' }] });
  }, 180_000);

  it('the next run finishes the item left, and hot holds the simulator history of every type exactly once, cold too', async () => {
    // Replication has passed all of it: only the backfill itself can bring this history to cold.
    const watermarkAt = Date.now();
    await setWatermarks(watermarkAt);
    const out = await runAction(progressStore(() => undefined), new AbortController().signal);
    expect(out.result.complete).toBe(true);
    expect(out.problems).toEqual([]);
    expect(out.result.cold.error).toBeNull();
    // One copy per item, after it is done (an item's range may start later, at the venue's horizon).
    expect([...new Set(out.result.cold.tables.map((t) => t.table))].sort()).toEqual([...POLLED_TABLES].sort());
    for (const t of out.result.cold.tables) {
      expect(t.verified, t.table).toBe(true);
      expect(Date.parse(t.to!) <= watermarkAt, t.table).toBe(true);
    }
    // (earlier runs copied what they completed; below, cold is compared with hot row for row)
    const status = await initStatus(new ProgressTable(pool), config);
    expect(status.stages.map((s) => s.state)).toEqual(['done', 'done', 'done', 'done']);
    expect(status.stages.flatMap((s) => s.errors)).toEqual([]);

    // Every item covers at least the first run's range.
    const from = Date.parse(firstRange.from);
    const rows = await new ProgressTable(pool).list('init:');
    expect(rows).toHaveLength(9);
    for (const row of rows) {
      const s = readItemState(row.state);
      expect(s.coveredFrom, row.key).toBe(from);
      expect(s.coveredTo! >= Date.parse(firstRange.to), row.key).toBe(true);
    }

    const ch = createClickHouse(config.clickhouse.hot);
    const cold = createClickHouse(config.clickhouse.cold);
    try {
      for (const row of rows) {
        const [, dataType, venue, instrument] = row.key.split(':') as [string, Exclude<HistoryDataType, 'trade'>, Venue, string];
        const state = readItemState(row.state);
        const spec = VALUE[dataType];
        const table = `${config.clickhouse.hot.database}.${tableFor(dataType).table}`;
        const where = `venue = '${venue}' AND instrument = '${instrument}'`;
        const source = adapterFor(venue, config.collector.venues[venue].symbols).history[dataType]!;
        const query = { instrument, fromMs: state.coveredFrom!, toMs: state.coveredTo!, fromId: null, toId: null };
        const expected = new Map<string, number>();
        const get = async (req: { url: string }) => ({ body: await (await fetch(req.url)).text(), receiveTime: Date.now() });
        const base = `http://127.0.0.1:${sim.port}/${venue}`;
        for await (const page of pageHistory(source, base, query, { apiKey: null }, pollOptions(config), get)) {
          for (const r of page) expected.set(`${'period' in r ? r.period : 'resolution' in r ? r.resolution : ''}|${r.eventTime}`, Number(spec.of(r)));
        }
        expect(expected.size, row.key).toBeGreaterThan(0);
        // Storage may still be writing the last pages.
        let stored: { k: string; t: string; v: string | number; n: string }[] = [];
        let queryError: unknown = null;
        await waitFor(async () => {
          const rs = await ch.query({ query: `SELECT ${spec.key} AS k, event_time AS t, count() AS n, any(${spec.value}) AS v FROM ${table} WHERE ${where} GROUP BY k, t`, format: 'JSONEachRow' });
          stored = await rs.json();
          return stored.length >= expected.size;
        }, 30_000, 200, `${row.key} in hot`).catch((err: unknown) => (queryError = err));
        if (stored.length === 0 && queryError !== null) throw queryError;
        // Decimals as numbers: the column's scale pads what the venue sent (0.0001 -> 0.00010000).
        const got = new Map(stored.map((s) => [`${s.k}|${s.t}`, Number(s.v)]));
        expect(got, row.key).toEqual(expected);
        expect(stored.filter((s) => Number(s.n) > 1), `${row.key} duplicates`).toEqual([]);
        const rs = await ch.query({ query: `SELECT count() AS n, uniqExact(${spec.key}, event_time) AS u FROM ${table} WHERE ${where}`, format: 'JSONEachRow' });
        const [c] = await rs.json<{ n: string; u: string }>();
        expect(Number(c!.n), row.key).toBe(Number(c!.u));
        // Cold holds the same observations, each once.
        const coldTable = `${config.clickhouse.cold.database}.${tableFor(dataType).table}`;
        const crs = await cold.query({ query: `SELECT ${spec.key} AS k, event_time AS t, count() AS n, any(${spec.value}) AS v FROM ${coldTable} WHERE ${where} GROUP BY k, t`, format: 'JSONEachRow' });
        const inCold: { k: string; t: string; v: string | number; n: string }[] = await crs.json();
        expect(new Map(inCold.map((x) => [`${x.k}|${x.t}`, Number(x.v)])), `${row.key} in cold`).toEqual(got);
        expect(inCold.filter((x) => Number(x.n) > 1), `${row.key} duplicates in cold`).toEqual([]);
      }
    } finally {
      await ch.close();
      await cold.close();
    }
  }, 180_000);

  it('a copy to cold stopped by its signal fails instead of reporting a copy it did not make', async () => {
    const nc = await connectNats(config, 'history-init-test');
    try {
      const stopped = new AbortController();
      stopped.abort();
      const to = Date.now() - 60_000;
      await expect(copyBackfillToCold(config, nc, new Set(['funding_rate']), { fromMs: to - 2 * 86_400_000, toMs: to }, stopped.signal)).rejects.toThrow(/stopped while copying backfilled history to cold/);
    } finally {
      await nc.drain();
    }
  }, 60_000);

  it('a progress store failure ends the run only once every worker stopped: none fetches or saves after it', async () => {
    let failed = false;
    let savesAfter = 0;
    const table = new ProgressTable(pool);
    const progress: ProgressStore = {
      load: (key) => table.load(key),
      clear: (key) => table.clear(key),
      list: (prefix) => table.list(prefix),
      async save(key, state) {
        if (failed) savesAfter++;
        // The first page of OKX's funding item cannot be saved; Binance's funding item is mid-way then.
        if (key.startsWith('init:funding_rate:okx') && readItemState(state).pages > readItemState(await table.load(key)).pages) {
          failed = true;
          throw new Error('PostgreSQL went away');
        }
        await table.save(key, state);
      },
    };
    // 42 h further back than covered: 7 windows per item, both funding items at once (concurrency 2).
    const run = runAction(progress, new AbortController().signal, { since: '72h' });
    await expect(run).rejects.toThrow(/PostgreSQL went away/);
    const ended = { requests: answered.length, saves: savesAfter };
    await new Promise((r) => setTimeout(r, 2000));
    // The workers' last saves and requests happened before the run ended, none after.
    expect({ requests: answered.length, saves: savesAfter }).toEqual(ended);
    // The lock is free once the run ended.
    await withBackfillLock(pool, async () => undefined);
  }, 120_000);
});
