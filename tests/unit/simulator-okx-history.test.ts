import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { normalizeAll, type HistoryQuery, type HistorySource, type PollOptions } from '../../src/lib/exchanges/types.js';
import type { MarketRecord, TradeRecord } from '../../src/lib/records.js';
import { FUNDING_INTERVAL_MS, nextFundingTime } from '../../src/lib/simulator/derivatives-model.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { historyOf } from '../helpers/adapters.js';
import { waitFor } from '../helpers/wait.js';
import { openWsClient } from '../helpers/ws-client.js';

const log = pino({ level: 'silent' });
const NO_KEY = { apiKey: null };
const POLL_OPTIONS: PollOptions = {
  intervalMs: { funding_rate: 60_000, open_interest: 60_000, lsr_top_position: 300_000, lsr_all_account: 300_000, volatility_index: 60_000 },
  lsrPeriod: '5m',
};
const FIVE_MINUTES = 300_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Records compared as published: receiveTime is when we read them, not what the venue said. */
const asPublished = (records: readonly MarketRecord[]) => records.map((r) => ({ ...r, receiveTime: 0 }));

/** What `mprism repair` does with a HistorySource: every page of one hole, in order. */
async function refill(source: HistorySource, restBase: string, query: HistoryQuery): Promise<{ records: MarketRecord[]; pages: number }> {
  const records: MarketRecord[] = [];
  let pages = 0;
  for (let req: ReturnType<HistorySource['request']> | null = source.request(restBase, query, NO_KEY, POLL_OPTIONS); req !== null; pages++) {
    const res = await fetch(req.url);
    expect(res.status).toBe(200);
    const page = source.parsePage(await res.text(), query, req, Date.now());
    records.push(...page.records);
    req = page.next;
  }
  return { records, pages };
}


describe('okx simulator history against the real adapters', () => {
  let sim: SimulatorHandle | null = null;
  const sockets: WebSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await sim?.close();
    sim = null;
  });

  async function start(opts: { tradesPerSecond: number; now?: () => number }) {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT', 'ETHUSDT'], tradesPerSecond: opts.tradesPerSecond, seed: 11, metrics: new Registry(), log, now: opts.now });
    const http = `http://127.0.0.1:${sim.port}`;
    return { http, rest: (venue: string) => `${http}/${venue}`, ws: (venue: string) => `ws://127.0.0.1:${sim?.port}/${venue}` };
  }

  it.each([
    ['okx_spot', okxSpot, 'BTC-USDT'],
    ['okx_derivatives', okxDerivatives(['BTC-USDT-SWAP']), 'BTC-USDT-SWAP'],
  ] as const)('%s: paging the REST history of streamed trades yields the streamed records, by id and by time', async (venue, adapter, instId) => {
    const { http, rest, ws } = await start({ tradesPerSecond: 400 });
    const [spec] = adapter.connections(ws(venue), [instId], ['trade']);
    const client = openWsClient(spec?.url ?? '', spec?.subscribeMessages ?? []);
    sockets.push(client.ws);
    const streamed = (): TradeRecord[] => client.frames.flatMap((f) => normalizeAll(adapter, f, Date.now()).records).filter((r): r is TradeRecord => r.dataType === 'trade');
    await waitFor(() => streamed().length >= 450);
    await fetch(`${http}/control/pause`, { method: 'POST' });
    await sleep(50);
    const live = streamed();
    const history = historyOf(adapter, 'trade');

    // A hole known by its ids, several pages deep.
    const hole = live.slice(40, 400);
    const byId = await refill(history, rest(venue), {
      instrument: instId,
      fromMs: (hole[0] as TradeRecord).eventTime,
      toMs: (hole.at(-1) as TradeRecord).eventTime,
      fromId: (hole[0] as TradeRecord).tradeId,
      toId: (hole.at(-1) as TradeRecord).tradeId,
    });
    expect(byId.pages).toBeGreaterThanOrEqual(4);
    const sorted = (rs: MarketRecord[]) => [...(rs as TradeRecord[])].sort((a, b) => Number(a.tradeId) - Number(b.tradeId));
    expect(asPublished(sorted(byId.records))).toEqual(asPublished(hole));

    // The same kind of hole known only by time: every trade of those milliseconds, streamed or not.
    const fromMs = (live[40] as TradeRecord).eventTime;
    const toMs = (live[400] as TradeRecord).eventTime;
    const byTime = await refill(history, rest(venue), { instrument: instId, fromMs, toMs, fromId: null, toId: null });
    expect(byTime.pages).toBeGreaterThanOrEqual(4);
    expect(asPublished(sorted(byTime.records))).toEqual(asPublished(live.filter((r) => r.eventTime >= fromMs && r.eventTime <= toMs)));
    expect(new Set(byTime.records.map((r) => (r as TradeRecord).tradeId)).size).toBe(byTime.records.length);
  });

  it('okx_derivatives: funding, open interest and long/short history equal what the live endpoints said at those times', async () => {
    // A clock the test moves: trades happen at the instants it is set to.
    const bar = Math.floor(1_800_000_000_000 / FIVE_MINUTES) * FIVE_MINUTES;
    let clock = bar - 3000;
    const { rest } = await start({ tradesPerSecond: 50, now: () => clock });
    const base = rest('okx_derivatives');
    const adapter = okxDerivatives(['BTC-USDT-SWAP']);
    const newestTradeTime = async () => Number(((await (await fetch(`${base}/api/v5/market/history-trades?instId=BTC-USDT-SWAP&limit=1`)).json()) as { data: { ts: string }[] }).data[0]?.ts);
    clock = bar;
    await waitFor(async () => (await newestTradeTime()) === bar);

    const polls = Object.fromEntries(adapter.polls(base, ['BTC-USDT-SWAP'], ['open_interest', 'lsr_all_account', 'lsr_top_position'], POLL_OPTIONS).map((p) => [p.dataType, p]));
    const poll = async (dataType: string) => {
      const p = polls[dataType];
      if (p === undefined) throw new Error(dataType);
      return p.parse(await (await fetch(p.url)).text(), Date.now());
    };
    const liveOpenInterest = await poll('open_interest');
    expect(liveOpenInterest).toMatchObject([{ eventTime: bar }]);

    // Later, at another price: the bar at `bar` still says what the live answer said then.
    clock = bar + 60_000;
    await waitFor(async () => (await newestTradeTime()) === bar + 60_000);
    const hole = { instrument: 'BTC-USDT-SWAP', fromMs: bar - 2 * FIVE_MINUTES, toMs: bar, fromId: null, toId: null };
    const oi = await refill(historyOf(adapter, 'open_interest'), base, hole);
    expect(oi.records.map((r) => r.eventTime)).toEqual([bar - 2 * FIVE_MINUTES, bar - FIVE_MINUTES, bar]);
    expect(asPublished(oi.records.slice(-1))).toEqual(asPublished(liveOpenInterest));

    for (const dataType of ['lsr_all_account', 'lsr_top_position'] as const) {
      const live = await poll(dataType);
      expect(live.map((r) => r.eventTime).sort()).toEqual([bar - FIVE_MINUTES, bar]);
      const history = await refill(historyOf(adapter, dataType), base, { ...hole, fromMs: bar - FIVE_MINUTES });
      expect(asPublished(history.records)).toEqual(asPublished([...live].sort((a, b) => a.eventTime - b.eventTime)));
    }

    // The settled rate of the last settlement, as the live answer states it (settFundingRate).
    const current = (await (await fetch(`${base}/api/v5/public/funding-rate?instId=BTC-USDT-SWAP`)).json()) as { data: { settFundingRate: string }[] };
    const settled = nextFundingTime(clock) - FUNDING_INTERVAL_MS;
    const funding = await refill(historyOf(adapter, 'funding_rate'), base, { ...hole, fromMs: settled - 3 * FUNDING_INTERVAL_MS, toMs: clock });
    expect(funding.records.map((r) => r.eventTime)).toEqual([3, 2, 1, 0].map((k) => settled - k * FUNDING_INTERVAL_MS));
    expect(funding.records.at(-1)).toMatchObject({ dataType: 'funding_rate', fundingRate: current.data[0]?.settFundingRate, nextFundingTime: 0, markPrice: null });
  });

  it('answers bad parameters and exhausted budgets the way OKX does', async () => {
    const { http, rest } = await start({ tradesPerSecond: 50 });
    const get = async (venue: string, path: string) => {
      const res = await fetch(`${rest(venue)}${path}`);
      return [res.status, await res.json()] as const;
    };
    const error = (code: string, msg: string) => [400, { code, msg, data: [] }] as const;
    expect(await get('okx_spot', '/api/v5/market/history-trades?instId=BTC-USDT&type=3')).toEqual(error('51000', 'Parameter type error'));
    expect(await get('okx_spot', '/api/v5/market/history-trades?instId=BTC-USDT&after=abc')).toEqual(error('51000', 'Parameter after error'));
    expect(await get('okx_spot', '/api/v5/market/history-trades?type=1')).toEqual(error('50014', 'Parameter instId can not be empty'));
    expect(await get('okx_spot', '/api/v5/public/funding-rate-history?instId=BTC-USDT')).toEqual(error('51001', 'Instrument ID does not exist'));
    expect(await get('okx_derivatives', '/api/v5/public/funding-rate-history?instId=BTC-USDT-SWAP&limit=-1')).toEqual(error('51000', 'Parameter limit error'));
    expect(await get('okx_derivatives', '/api/v5/rubik/stat/contracts/open-interest-history?instId=BTC-USDT-SWAP&period=7m')).toEqual(error('51000', 'Parameter period error'));
    expect(await get('okx_derivatives', '/api/v5/rubik/stat/contracts/open-interest-history?instId=BTC-USDT-SWAP&end=soon')).toEqual(error('51000', 'Parameter end error'));

    // Page sizes are capped at OKX's maxima; rubik keeps 1,440 bars.
    const [, oi] = await get('okx_derivatives', '/api/v5/rubik/stat/contracts/open-interest-history?instId=BTC-USDT-SWAP&limit=500');
    expect((oi as { data: unknown[] }).data).toHaveLength(100);
    const [, old] = await get('okx_derivatives', `/api/v5/rubik/stat/contracts/open-interest-history?instId=BTC-USDT-SWAP&end=${Date.now() - 1441 * FIVE_MINUTES}`);
    expect(old).toEqual({ code: '0', msg: '', data: [] });
    const [, funding] = await get('okx_derivatives', '/api/v5/public/funding-rate-history?instId=BTC-USDT-SWAP&limit=1000');
    // Three months of 8-hour settlements: fewer than the 400 a page allows.
    expect((funding as { data: unknown[] }).data.length).toBeGreaterThanOrEqual(270);
    expect((funding as { data: unknown[] }).data.length).toBeLessThanOrEqual(271);

    // The http_429 fault covers the history routes like every other OKX route.
    await fetch(`${http}/control/fault`, { method: 'POST', body: JSON.stringify({ kind: 'http_429', venue: 'okx_spot', retryAfterSeconds: 2 }), headers: { 'content-type': 'application/json' } });
    const throttled = await fetch(`${rest('okx_spot')}/api/v5/market/history-trades?instId=BTC-USDT`);
    expect([throttled.status, throttled.headers.get('retry-after'), await throttled.json()]).toEqual([429, '2', { code: '50011', msg: 'Too Many Requests', data: [] }]);
    expect((await fetch(`${rest('okx_spot')}/api/v5/market/history-trades?instId=BTC-USDT`)).status).toBe(200);
  });
});
