import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ParamError,
  EMPTY_ITEM,
  boundByHorizon,
  completeFill,
  coversInit,
  initScope,
  itemStatus,
  nextFill,
  planStages,
  readItemState,
  runRange,
  scopeFromParams,
  stageState,
  windowEnd,
  type ItemState,
} from '../../src/lib/brain/backfill-plan.js';
import { keepInitializingHistory, type HistoryInitDriver } from '../../src/lib/brain/history-init.js';
import { loadConfig } from '../../src/lib/config/load.js';
import pino from 'pino';

const home = mkdtempSync(join(tmpdir(), 'mprism-plan-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
// The shipped defaults: every venue, two symbols each.
const config = loadConfig({ env: { MPRISM_HOME: home } });
const H = 3_600_000;

describe('backfill stages', () => {
  it('runs funding, open interest, long/short ratios and DVOL in that order, trades only when asked', () => {
    const plan = planStages(config, initScope(config));
    expect(plan.map((s) => s.stage)).toEqual(['funding_rate', 'open_interest', 'lsr', 'volatility_index']);
    expect(plan.map((s) => s.concurrency)).toEqual([2, 2, 2, 1]);
    const funding = plan[0]!.items.map((i) => i.key);
    expect(funding).toEqual([
      'init:funding_rate:binance_derivatives:BTCUSDT',
      'init:funding_rate:binance_derivatives:ETHUSDT',
      'init:funding_rate:okx_derivatives:BTC-USDT-SWAP',
      'init:funding_rate:okx_derivatives:ETH-USDT-SWAP',
    ]);
    // Both ratios in one stage, per venue and instrument.
    expect(plan[2]!.items).toHaveLength(8);
    expect(new Set(plan[2]!.items.map((i) => i.dataType))).toEqual(new Set(['lsr_top_position', 'lsr_all_account']));
    expect(plan[3]!.items.map((i) => `${i.venue}/${i.instrument}`)).toEqual(['deribit_derivatives/btc_usd', 'deribit_derivatives/eth_usd']);

    const withTrades = planStages(config, { ...initScope(config), trades: true });
    expect(withTrades.at(-1)!.stage).toBe('trade');
    expect(withTrades.at(-1)!.items.map((i) => i.venue)).toContain('okx_spot');
  });

  it('narrows to the asked venue and types', () => {
    const plan = planStages(config, scopeFromParams({ venue: 'okx_derivatives', types: ['open_interest', 'lsr_all_account'] }, config));
    const items = plan.flatMap((s) => s.items.map((i) => i.key));
    expect(items).toEqual([
      'init:open_interest:okx_derivatives:BTC-USDT-SWAP',
      'init:open_interest:okx_derivatives:ETH-USDT-SWAP',
      'init:lsr_all_account:okx_derivatives:BTC-USDT-SWAP',
      'init:lsr_all_account:okx_derivatives:ETH-USDT-SWAP',
    ]);
    // An empty stage is done, not pending forever.
    expect(stageState([])).toBe('done');
  });
});

describe('backfill params', () => {
  it('names the bad param', () => {
    const bad = (params: Record<string, unknown>) => {
      try {
        scopeFromParams(params, config);
      } catch (err) {
        expect(err).toBeInstanceOf(ParamError);
        return (err as ParamError).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ since: '7 days' })).toMatch(/^params\.since: must be a duration/);
    expect(bad({ since: 7 })).toMatch(/^params\.since:/);
    expect(bad({ types: ['trades'] })).toMatch(/^params\.types: "trades" is not a data type/);
    expect(bad({ types: ['orderbook'] })).toMatch(/^params\.types: "orderbook" has no REST history/);
    expect(bad({ venue: 'kraken' })).toMatch(/^params\.venue: "kraken" is not a venue/);
    expect(bad({ trades: 'yes' })).toMatch(/^params\.trades:/);
    expect(bad({ sinse: '1d' })).toMatch(/^params\.sinse: unknown parameter/);
  });

  it('defaults to the config and knows when a run covers the initialization', () => {
    const scope = scopeFromParams({}, config);
    expect(scope).toEqual({ sinceMs: 7 * 24 * H, types: null, venue: null, trades: false });
    expect(coversInit(scope, config)).toBe(true);
    expect(coversInit(scopeFromParams({ since: '1d' }, config), config)).toBe(false);
    expect(coversInit(scopeFromParams({ venue: 'okx_derivatives' }, config), config)).toBe(false);
  });
});

describe('backfill ranges and cursors', () => {
  const now = Date.UTC(2024, 4, 1, 12, 30, 45, 500);

  it('ends at the last whole minute before the run', () => {
    const r = runRange(now, 12 * H);
    expect(r.toMs).toBe(Date.UTC(2024, 4, 1, 12, 30) - 1);
    expect(r.toMs - r.fromMs + 1).toBe(12 * H);
  });

  it('walks a fill window by window, aligned, oldest first', () => {
    const fill = nextFill(EMPTY_ITEM, { fromMs: 5 * H + 7, toMs: 20 * H - 1 })!;
    expect(fill).toEqual({ fromMs: 5 * H + 7, toMs: 20 * H - 1, cursor: 5 * H + 6, next: null });
    const ends: number[] = [];
    for (let f = fill; f.cursor < f.toMs; f = { ...f, cursor: windowEnd(f) }) ends.push(windowEnd(f));
    expect(ends).toEqual([6 * H - 1, 12 * H - 1, 18 * H - 1, 20 * H - 1]);
  });

  it('continues a saved fill where it stopped, with its next page', () => {
    const saved: ItemState = { ...EMPTY_ITEM, fill: { fromMs: 0, toMs: 24 * H - 1, cursor: 6 * H - 1, next: '/fapi/x?startTime=1' }, records: 7, pages: 2 };
    const back = readItemState(JSON.parse(JSON.stringify(saved)));
    expect(back).toEqual(saved);
    // Even when the run asks another range: the fill in progress is finished as planned first.
    expect(nextFill(back, { fromMs: H, toMs: 30 * H })).toEqual(saved.fill);
    expect(itemStatus(back)).toBe('running');
  });

  it('asks nothing covered again: only what is missing before, then after', () => {
    const covered = completeFill(EMPTY_ITEM, { fromMs: 10 * H, toMs: 20 * H - 1, cursor: 20 * H - 1, next: null });
    expect(covered).toMatchObject({ coveredFrom: 10 * H, coveredTo: 20 * H - 1, fill: null });
    expect(itemStatus(covered)).toBe('done');
    expect(nextFill(covered, { fromMs: 12 * H, toMs: 20 * H - 1 })).toBeNull();
    expect(nextFill(covered, { fromMs: 12 * H, toMs: 22 * H - 1 })).toEqual({ fromMs: 20 * H, toMs: 22 * H - 1, cursor: 20 * H - 1, next: null });
    const before = nextFill(covered, { fromMs: 4 * H, toMs: 22 * H - 1 })!;
    expect(before).toEqual({ fromMs: 4 * H, toMs: 10 * H - 1, cursor: 4 * H - 1, next: null });
    const grown = completeFill(covered, { ...before, cursor: before.toMs });
    expect(grown).toMatchObject({ coveredFrom: 4 * H, coveredTo: 20 * H - 1 });
    expect(nextFill(grown, { fromMs: 4 * H, toMs: 22 * H - 1 })).toMatchObject({ fromMs: 20 * H, toMs: 22 * H - 1 });
  });

  it('a range after a gap starts over instead of claiming the gap covered', () => {
    const covered = completeFill(EMPTY_ITEM, { fromMs: 0, toMs: H - 1, cursor: H - 1, next: null });
    const far = nextFill(covered, { fromMs: 5 * H, toMs: 6 * H - 1 })!;
    expect(far).toMatchObject({ fromMs: 5 * H, toMs: 6 * H - 1 });
    expect(completeFill(covered, { ...far, cursor: far.toMs })).toMatchObject({ coveredFrom: 5 * H, coveredTo: 6 * H - 1 });
  });

  it('bounds a range by the venue horizon and says so', () => {
    const want = runRange(now, 10 * 24 * H);
    const bounded = boundByHorizon(want, now, 5 * 24 * H, 'GET /rubik');
    expect(bounded.fromMs).toBeGreaterThan(now - 5 * 24 * H);
    expect(bounded.fromMs % 60_000).toBe(0);
    expect(bounded.note).toMatch(/^GET \/rubik keeps 5 days: fetched from /);
    expect(boundByHorizon(want, now, undefined, 'x')).toEqual({ ...want, note: null });
    expect(boundByHorizon(want, now, 30 * 24 * H, 'x').note).toBeNull();
  });

  it('tells stage states apart', () => {
    expect(stageState(['pending', 'pending'])).toBe('pending');
    expect(stageState(['done', 'pending'])).toBe('running');
    expect(stageState(['done', 'skipped'])).toBe('done');
    expect(stageState(['done', 'left'])).toBe('partial');
    expect(itemStatus(null)).toBe('pending');
    expect(itemStatus({ ...EMPTY_ITEM, left: true, fill: { fromMs: 0, toMs: 1, cursor: 0, next: null } })).toBe('left');
  });
});

describe('history initialization retries', () => {
  const log = pino({ level: 'silent' });
  const retry = { initialMs: 20, maxMs: 80 };

  /** Attempts with the results given, in order; pending until `completeAfter` attempts ran. */
  function driver(results: Awaited<ReturnType<HistoryInitDriver['attempt']>>[], completeAfter: number, extra: Partial<HistoryInitDriver> = {}) {
    const startedAt: number[] = [];
    const d: HistoryInitDriver = {
      pending: async () => startedAt.length < completeAfter,
      attempt: async () => {
        startedAt.push(Date.now());
        return results[startedAt.length - 1] ?? 'ok';
      },
      leading: () => true,
      signal: new AbortController().signal,
      log,
      retry,
      pollMs: 5,
      ...extra,
    };
    return { d, startedAt };
  }

  it('runs the initialization again, with growing waits, until it completes', async () => {
    // Failed outright (NATS not ready), refused by the lock (a clean no-op), failed again, then done.
    const { d, startedAt } = driver(['error', 'ok', 'failed', 'ok'], 4);
    expect(await keepInitializingHistory(d)).toBe('complete');
    expect(startedAt).toHaveLength(4);
    const waits = startedAt.slice(1).map((t, i) => t - startedAt[i]!);
    expect(waits[0]).toBeGreaterThanOrEqual(19);
    expect(waits[1]).toBeGreaterThanOrEqual(39);
    expect(waits[2]).toBeGreaterThanOrEqual(79);
  });

  it('does nothing when nothing is pending, and one run when the first completes it', async () => {
    const none = driver([], 0);
    expect(await keepInitializingHistory(none.d)).toBe('complete');
    expect(none.startedAt).toHaveLength(0);
    const once = driver(['ok'], 1);
    expect(await keepInitializingHistory(once.d)).toBe('complete');
    expect(once.startedAt).toHaveLength(1);
  });

  it('stops retrying when leadership is lost during a wait', async () => {
    let leading = true;
    const { d, startedAt } = driver(['error'], 99, { retry: { initialMs: 60_000, maxMs: 60_000 }, leading: () => leading });
    setTimeout(() => (leading = false), 50);
    const began = Date.now();
    expect(await keepInitializingHistory(d)).toBe('not-leading');
    expect(startedAt).toHaveLength(1);
    expect(Date.now() - began).toBeLessThan(5_000);
  });

  it('stops when the scheduler says this brain does not lead, and when the brain stops', async () => {
    const refused = driver(['not-leader'], 99);
    expect(await keepInitializingHistory(refused.d)).toBe('not-leading');
    expect(refused.startedAt).toHaveLength(1);

    const stop = new AbortController();
    const stopping = driver(['error'], 99, { retry: { initialMs: 60_000, maxMs: 60_000 }, signal: stop.signal });
    setTimeout(() => stop.abort(), 50);
    const began = Date.now();
    expect(await keepInitializingHistory(stopping.d)).toBe('stopped');
    expect(stopping.startedAt).toHaveLength(1);
    expect(Date.now() - began).toBeLessThan(5_000);
  });

  it('a failing pending check counts as pending (PostgreSQL down), not as done', async () => {
    let checks = 0;
    const { d, startedAt } = driver(['ok', 'ok'], 2, {
      pending: async () => {
        checks++;
        if (checks === 1) throw new Error('connection refused');
        return startedAt.length < 2;
      },
    });
    expect(await keepInitializingHistory(d)).toBe('complete');
    expect(startedAt).toHaveLength(2);
  });
});
