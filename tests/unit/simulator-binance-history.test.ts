import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { normalizeAll, type HistoryQuery, type HistorySource, type VenueAdapter, type VenueCredentials } from '../../src/lib/exchanges/types.js';
import type { MarketRecord, TradeRecord } from '../../src/lib/records.js';
import { FUNDING_INTERVAL_MS, fundingRate } from '../../src/lib/simulator/derivatives-model.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { TEST_POLL_OPTIONS, historyOf } from '../helpers/adapters.js';
import { waitFor } from '../helpers/wait.js';
import { openWsClient, type WsClient } from '../helpers/ws-client.js';

const log = pino({ level: 'silent' });
const SEED = 11;
const NO_KEY: VenueCredentials = { apiKey: null };
const KEY: VenueCredentials = { apiKey: 'simulator-accepts-any-key' };

type Stored = Omit<MarketRecord, 'receiveTime'>;
/** What storage keeps of a record: everything but when it arrived. */
const stored = (records: readonly MarketRecord[]): Stored[] => records.map(({ receiveTime: _receiveTime, ...rest }) => rest);


describe('simulator history endpoints through the Binance adapters', () => {
  let sim: SimulatorHandle | null = null;
  const sockets: WebSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await sim?.close();
    sim = null;
  });

  async function start(tradesPerSecond: number) {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT'], tradesPerSecond, seed: SEED, metrics: new Registry(), log });
    return (venue: string) => ({ ws: `ws://127.0.0.1:${sim?.port}/${venue}`, rest: `http://127.0.0.1:${sim?.port}/${venue}` });
  }

  /** The trade records the adapter makes of what its WebSocket trade connections receive. */
  function streamTrades(adapter: VenueAdapter, ws: string): { client: WsClient; records: () => TradeRecord[] } {
    const [spec, ...more] = adapter.connections(ws, ['BTCUSDT'], ['trade']);
    expect(more).toEqual([]);
    if (spec === undefined) throw new Error('no trade connection');
    const client = openWsClient(spec.url, spec.subscribeMessages);
    sockets.push(client.ws);
    const records = () => client.frames.flatMap((f) => normalizeAll(adapter, f, Date.now()).records).filter((r): r is TradeRecord => r.dataType === 'trade');
    return { client, records };
  }

  /** Pages through a hole as the repair does: every request the source asks for, in turn. */
  async function refill(source: HistorySource, rest: string, q: HistoryQuery, credentials: VenueCredentials) {
    const records: MarketRecord[] = [];
    const weights: number[] = [];
    let request = source.request(rest, q, credentials, TEST_POLL_OPTIONS);
    for (let pages = 0; pages < 50; pages++) {
      const res = await fetch(request.url, { headers: request.headers });
      expect(res.status).toBe(200);
      weights.push(Number(res.headers.get('x-mbx-used-weight-1m')));
      const page = source.parsePage(await res.text(), q, request, Date.now());
      records.push(...page.records);
      if (page.next === null) return { records, weights };
      request = page.next;
    }
    throw new Error('history did not end within 50 pages');
  }

  /** The caller's filter: only the records inside the hole. */
  const tradesIn = (records: readonly MarketRecord[], fromId: number, toId: number) =>
    records.filter((r): r is TradeRecord => r.dataType === 'trade' && Number(r.tradeId) >= fromId && Number(r.tradeId) <= toId);

  it.each([
    ['binance_spot', binanceSpot, 1500, NO_KEY, 25],
    ['binance_derivatives', binanceDerivatives, 1200, KEY, 20],
  ] as const)('%s: trades refilled from historicalTrades equal the ones the stream sent, record for record', async (venue, adapter, count, credentials, weight) => {
    const base = (await start(1000))(venue);
    const feed = streamTrades(adapter, base.ws);
    await waitFor(() => feed.records().length >= count, 15_000);
    feed.client.ws.terminate();
    const live = feed.records();
    const fromId = Number(live[0]?.tradeId);
    const toId = Number(live.at(-1)?.tradeId);
    // Every trade was sent: the ids the stream carried count up by one.
    expect(live.map((r) => Number(r.tradeId))).toEqual(Array.from({ length: live.length }, (_, i) => fromId + i));

    const source = historyOf(adapter, 'trade');
    expect(source.blockedReason(credentials)).toBeNull();
    const q: HistoryQuery = { instrument: 'BTCUSDT', fromMs: live[0]?.eventTime ?? 0, toMs: live.at(-1)?.eventTime ?? 0, fromId: String(fromId), toId: String(toId) };
    const { records, weights } = await refill(source, base.rest, q, credentials);
    expect(weights.length).toBeGreaterThanOrEqual(2);
    // Each page costs the endpoint's weight (the counter restarts at each clock minute).
    expect(weights.slice(1).every((w, i) => w === (weights[i] ?? 0) + weight || w === weight)).toBe(true);
    expect(stored(tradesIn(records, fromId, toId))).toEqual(stored(live));
  });

  it('binance_spot: history also lists the trades nobody was subscribed for, ids without a hole', async () => {
    const base = (await start(500))('binance_spot');
    await new Promise((r) => setTimeout(r, 300));
    const res = await fetch(`${base.rest}/api/v3/historicalTrades?symbol=BTCUSDT&limit=5`);
    const newest = (await res.json()) as Array<{ id: number; time: number }>;
    expect(newest).toHaveLength(5);
    expect(newest.map((t) => t.id - (newest[0]?.id ?? 0))).toEqual([0, 1, 2, 3, 4]);
    // Older ids from fromId on; an id past the newest lists nothing.
    const from = (newest[0]?.id ?? 0) - 10;
    const older = (await (await fetch(`${base.rest}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=${from}&limit=3`)).json()) as Array<{ id: number }>;
    expect(older.map((t) => t.id)).toEqual([from, from + 1, from + 2]);
    expect(await (await fetch(`${base.rest}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=${(newest[4]?.id ?? 0) + 1_000_000}`)).json()).toEqual([]);
    const bad = await fetch(`${base.rest}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=abc`);
    expect([bad.status, await bad.json()]).toEqual([400, { code: -1100, msg: "Illegal characters found in parameter 'fromId'; legal range is '^[0-9]{1,20}$'." }]);
  });

  it('binance_derivatives: historicalTrades without an API key is refused as Binance refuses it, and the adapter says so first', async () => {
    const base = (await start(200))('binance_derivatives');
    const source = historyOf(binanceDerivatives, 'trade');
    expect(source.blockedReason(NO_KEY)).toMatch(/needs an API key: set collector\.venues\.binance_derivatives\.apiKey/);
    const q: HistoryQuery = { instrument: 'BTCUSDT', fromMs: 0, toMs: Date.now(), fromId: '1', toId: null };
    const request = source.request(base.rest, q, NO_KEY, TEST_POLL_OPTIONS);
    const res = await fetch(request.url, { headers: request.headers });
    expect([res.status, await res.json()]).toEqual([401, { code: -2014, msg: 'API-key format invalid.' }]);
  });

  it('binance_derivatives: funding, open interest and long/short history come from the same model as the live answers', async () => {
    const base = (await start(200))('binance_derivatives');
    await new Promise((r) => setTimeout(r, 200));
    const now = Date.now();
    const range = (fromMs: number, toMs: number): HistoryQuery => ({ instrument: 'BTCUSDT', fromMs, toMs, fromId: null, toId: null });

    const funding = await refill(historyOf(binanceDerivatives, 'funding_rate'), base.rest, range(now - 3 * 86_400_000, now), NO_KEY);
    expect(funding.records.length).toBeGreaterThanOrEqual(9);
    for (const r of funding.records) {
      if (r.dataType !== 'funding_rate') throw new Error(`unexpected ${r.dataType}`);
      expect(r.eventTime % FUNDING_INTERVAL_MS).toBe(0);
      expect(r.fundingRate).toBe(fundingRate(SEED, 'binance_derivatives/BTCUSDT', r.eventTime).toFixed(8));
      expect(r).toMatchObject({ nextFundingTime: 0, markPrice: expect.stringMatching(/^\d+\.\d{8}$/) });
    }

    const oiSource = historyOf(binanceDerivatives, 'open_interest');
    const hour = range(now - 3_600_000, now);
    const oi = await refill(oiSource, base.rest, hour, NO_KEY);
    expect(oi.records.length).toBeGreaterThanOrEqual(12);
    expect(oi.records.every((r) => r.dataType === 'open_interest' && r.eventTime % 300_000 === 0 && r.openInterestValue !== null)).toBe(true);
    // The same periods read the same on every request.
    expect(stored((await refill(oiSource, base.rest, hour, NO_KEY)).records)).toEqual(stored(oi.records));

    for (const dataType of ['lsr_top_position', 'lsr_all_account'] as const) {
      const [poll] = binanceDerivatives.polls(base.rest, ['BTCUSDT'], [dataType], TEST_POLL_OPTIONS);
      if (poll === undefined) throw new Error(`no ${dataType} poll`);
      const polled = poll.parse(await (await fetch(poll.url)).text(), Date.now());
      expect(polled).toHaveLength(2);
      const history = await refill(historyOf(binanceDerivatives, dataType), base.rest, range(polled[0]?.eventTime ?? 0, polled[1]?.eventTime ?? 0), NO_KEY);
      expect(stored(history.records)).toEqual(stored(polled));
    }
  });
});
