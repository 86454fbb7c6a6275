import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { deribitDerivatives } from '../../src/lib/exchanges/deribit_derivatives.js';
import { pageHistory } from '../../src/lib/exchanges/history-paging.js';
import type { HistoryQuery, HistorySource, RestRequest } from '../../src/lib/exchanges/types.js';
import { msgIdFor, type MarketRecord } from '../../src/lib/records.js';
import { DeribitSim, DVOL_FIRST_CANDLE_MS, dvolCandle, dvolPage } from '../../src/lib/simulator/deribit.js';
import { createSimMetrics } from '../../src/lib/simulator/hub.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { TEST_POLL_OPTIONS } from '../helpers/adapters.js';

const log = pino({ level: 'silent' });
const SEED = 7;
const MINUTE = 60_000;
const BASE = 'http://sim.invalid/deribit_derivatives';

function history(): HistorySource {
  const s = deribitDerivatives.history.volatility_index;
  if (s === undefined) throw new Error('deribit_derivatives has no DVOL history');
  return s;
}

/** Records as the bus sees them: keyed by Msg-Id, receive time aside (it is when, not what). */
function byMsgId(records: Iterable<MarketRecord>): Map<string, MarketRecord> {
  return new Map([...records].map((r) => [msgIdFor(r), { ...r, receiveTime: 0 }]));
}

/** An in-process Deribit simulator on a clock the test moves, answering requests by URL as the server routes them. */
function simAt(start: number) {
  const clock = { now: start };
  const sim = new DeribitSim({ seed: SEED, slowClientBytes: 16 << 20, metrics: createSimMetrics(new Registry()), log, now: () => clock.now });
  let requests = 0;
  const get = (url: string): string => {
    requests++;
    const u = new URL(url);
    const reply = sim.rest(u.pathname.slice('/deribit_derivatives'.length), u.searchParams);
    if (reply === null || reply.status !== 200) throw new Error(`simulator answered ${String(reply?.status)}: ${reply?.body ?? 'no route'}`);
    return reply.body;
  };
  return { clock, get, requests: () => requests, close: () => sim.close() };
}

describe('simulated DVOL answers', () => {
  it('serves the newest 1000 candles of a range, older ones by continuation, none from before DVOL existed', () => {
    const now = Date.UTC(2026, 0, 10, 12, 0, 30);
    const page = dvolPage(SEED, 'btc_usd', now - 2500 * MINUTE, now + 3600_000, MINUTE, now);
    expect(page.candles).toHaveLength(1000);
    const newest = Math.floor(now / MINUTE) * MINUTE;
    expect(page.candles.at(-1)?.[0]).toBe(newest);
    expect(page.candles[0]?.[0]).toBe(newest - 999 * MINUTE);
    expect(page.continuation).toBe(newest - 999 * MINUTE - 1);
    const older = dvolPage(SEED, 'btc_usd', now - 2500 * MINUTE, page.continuation!, MINUTE, now);
    expect(older.candles.at(-1)?.[0]).toBe(newest - 1000 * MINUTE);

    const launch = dvolPage(SEED, 'btc_usd', 0, DVOL_FIRST_CANDLE_MS + 86_400_000, 86_400_000, now);
    expect(launch).toEqual({ candles: [dvolCandle(SEED, 'btc_usd', DVOL_FIRST_CANDLE_MS, 86_400_000, now), dvolCandle(SEED, 'btc_usd', DVOL_FIRST_CANDLE_MS + 86_400_000, 86_400_000, now)], continuation: null });
    expect(dvolPage(SEED, 'btc_usd', 0, DVOL_FIRST_CANDLE_MS - 1, MINUTE, now)).toEqual({ candles: [], continuation: null });
  });

  it('gives a finished candle the same values whenever it is asked for', () => {
    const ts = Date.UTC(2026, 0, 10, 12, 0);
    const atEnd = dvolCandle(SEED, 'eth_usd', ts, MINUTE, ts + MINUTE);
    expect(dvolCandle(SEED, 'eth_usd', ts, MINUTE, ts + 7 * 86_400_000)).toEqual(atEnd);
    expect(dvolCandle(SEED, 'eth_usd', ts, MINUTE, ts + 30_000)).not.toEqual(atEnd);
  });
});

describe('DVOL history from the simulator equals what the live poll saw', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /**
   * Polls the simulator as the collector does, at jittered 60 s intervals from `start` for
   * `minutes`, skipping polls inside `down` (collector stopped); first record per Msg-Id wins.
   */
  function pollLive(start: number, minutes: number, down: [number, number] | null) {
    const sim = simAt(start);
    const [poll] = deribitDerivatives.polls(BASE, ['BTC'], ['volatility_index'], TEST_POLL_OPTIONS);
    const seen = new Map<string, MarketRecord>();
    for (let i = 0; i < minutes; i++) {
      sim.clock.now = start + i * MINUTE + ((i * 7919) % 5000);
      if (down !== null && sim.clock.now >= down[0] && sim.clock.now <= down[1]) continue;
      vi.setSystemTime(sim.clock.now);
      for (const r of poll!.parse(sim.get(poll!.url), sim.clock.now)) if (!seen.has(msgIdFor(r))) seen.set(msgIdFor(r), r);
    }
    return { sim, records: [...seen.values()] };
  }

  it('fills a 5-hour outage inside 25 hours of polling over several continuation pages, with the values a running collector got', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 10, 0, 0, 12_345);
    const minutes = 25 * 60;
    const down: [number, number] = [start + 600 * MINUTE, start + 900 * MINUTE];
    const full = pollLive(start, minutes, null);
    const gappy = pollLive(start, minutes, down);
    expect(gappy.records.length).toBeLessThan(full.records.length - 290);

    const times = full.records.map((r) => r.eventTime);
    const q: HistoryQuery = { instrument: 'btc_usd', fromMs: Math.min(...times), toMs: Math.max(...times), fromId: null, toId: null };
    const { sim, clock } = { sim: gappy.sim, clock: gappy.sim.clock };
    const get = async (req: RestRequest) => ({ body: sim.get(req.url), receiveTime: clock.now });
    const before = sim.requests();
    const refilled: MarketRecord[] = [];
    for await (const page of pageHistory(history(), BASE, q, { apiKey: null }, TEST_POLL_OPTIONS, get)) refilled.push(...page);

    expect(sim.requests() - before).toBe(2);
    const expected = byMsgId(full.records);
    expect(byMsgId(refilled)).toEqual(expected);
    expect(new Set(refilled.map((r) => r.eventTime)).size).toBe(refilled.length);
    // Every minute of the range, each once, and the polls that did run agree with history.
    expect(refilled.length).toBe((q.toMs - q.fromMs) / MINUTE + 1);
    for (const [id, r] of byMsgId(gappy.records)) expect(expected.get(id)).toEqual(r);
    full.sim.close();
    gappy.sim.close();
  });

  it('leaves the still-running newest minute to the live poll when the hole reaches the present', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 10, 6, 0, 0);
    const { sim, records } = pollLive(start, 30, null);
    sim.clock.now = start + 30 * MINUTE + 20_000;
    const fromMs = Math.min(...records.map((r) => r.eventTime));
    const q: HistoryQuery = { instrument: 'btc_usd', fromMs, toMs: sim.clock.now, fromId: null, toId: null };
    const refilled: MarketRecord[] = [];
    const get = async (req: RestRequest) => ({ body: sim.get(req.url), receiveTime: sim.clock.now });
    for await (const page of pageHistory(history(), BASE, q, { apiKey: null }, TEST_POLL_OPTIONS, get)) refilled.push(...page);
    const running = Math.floor(sim.clock.now / MINUTE) * MINUTE;
    expect(refilled.map((r) => r.eventTime)).not.toContain(running);
    expect(refilled.at(-1)?.eventTime).toBe(running - MINUTE);
    // The live poll that would run now sees the minute that finished since the last one, as history does.
    vi.setSystemTime(sim.clock.now);
    const [poll] = deribitDerivatives.polls(BASE, ['BTC'], ['volatility_index'], TEST_POLL_OPTIONS);
    const next = poll!.parse(sim.get(poll!.url), sim.clock.now);
    expect(next.map((r) => r.eventTime)).toContain(running - MINUTE);
    expect(byMsgId(refilled)).toEqual(byMsgId([...records, ...next].filter((r) => r.eventTime >= fromMs)));
    sim.close();
  });
});

describe('DVOL history over the simulator HTTP server', () => {
  let handle: SimulatorHandle | null = null;
  afterEach(async () => {
    await handle?.close();
    handle = null;
  });

  it('answers live polls and a history query for the same minutes with the same records', async () => {
    const t0 = Date.now();
    // 600x: ten simulated minutes per second.
    handle = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT'], tradesPerSecond: 1, seed: SEED, metrics: new Registry(), log, now: () => t0 + (Date.now() - t0) * 600 });
    const rest = `http://127.0.0.1:${handle.port}/deribit_derivatives`;
    const fetchBody = async (url: string) => {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      return res.text();
    };
    const [poll] = deribitDerivatives.polls(rest, ['BTC'], ['volatility_index'], TEST_POLL_OPTIONS);
    const live = new Map<string, MarketRecord>();
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      // The simulator's clock runs ahead of ours: move the poll's window onto it, as a collector's window sits on the venue's.
      const url = new URL(poll!.url);
      const end = t0 + (Date.now() - t0) * 600;
      url.searchParams.set('start_timestamp', String(end - 5 * MINUTE));
      url.searchParams.set('end_timestamp', String(end));
      for (const r of poll!.parse(await fetchBody(url.toString()), Date.now())) if (!live.has(msgIdFor(r))) live.set(msgIdFor(r), r);
      await new Promise((r) => setTimeout(r, 50));
    }
    const times = [...live.values()].map((r) => r.eventTime);
    expect(times.length).toBeGreaterThan(8);
    const q: HistoryQuery = { instrument: 'btc_usd', fromMs: Math.min(...times), toMs: Math.max(...times), fromId: null, toId: null };
    const refilled: MarketRecord[] = [];
    const get = async (req: RestRequest) => ({ body: await fetchBody(req.url), receiveTime: Date.now() });
    for await (const page of pageHistory(history(), rest, q, { apiKey: null }, TEST_POLL_OPTIONS, get)) refilled.push(...page);
    expect(byMsgId(refilled)).toEqual(byMsgId(live.values()));
  });
});
