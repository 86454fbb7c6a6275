import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { PolledDataType } from '../../src/lib/config/schema.js';
import { binanceDerivatives } from '../../src/lib/exchanges/binance_derivatives.js';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { deribitDerivatives } from '../../src/lib/exchanges/deribit_derivatives.js';
import { okxChecksum } from '../../src/lib/exchanges/okx.js';
import { okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { okxSpot } from '../../src/lib/exchanges/okx_spot.js';
import { MalformedFrameError, normalizeAll, type PollOptions, type VenueAdapter } from '../../src/lib/exchanges/types.js';
import type { CaptureEntry } from '../../src/lib/feeds/raw-capture.js';
import { BookSync, type BookSyncOutput } from '../../src/lib/orderbook/sync.js';
import type { BookMessage } from '../../src/lib/orderbook/types.js';
import type { MarketRecord, OrderbookRecord } from '../../src/lib/records.js';
import { BookModel } from '../../src/lib/simulator/book-model.js';
import { dvolCandle } from '../../src/lib/simulator/deribit.js';
import { seededRandom } from '../../src/lib/simulator/market.js';
import { startSimulator, type SimulatorHandle, type SimulatorStats } from '../../src/lib/simulator/server.js';
import { waitFor } from '../helpers/wait.js';
import { openWsClient, type WsClient } from '../helpers/ws-client.js';

const log = pino({ level: 'silent' });

const POLL_OPTIONS: PollOptions = {
  intervalMs: { funding_rate: 60_000, open_interest: 60_000, lsr_top_position: 300_000, lsr_all_account: 300_000, volatility_index: 60_000 },
  lsrPeriod: '5m',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('book model', () => {
  it('is never crossed, stays within its depth, and reports every change it makes', () => {
    const book = new BookModel(seededRandom(3), 5, 1000, 100_000, 50);
    const mirror = { bids: new Map<number, number>(), asks: new Map<number, number>() };
    for (const [p, q] of book.levels().bids) mirror.bids.set(p, q);
    for (const [p, q] of book.levels().asks) mirror.asks.set(p, q);
    const walk = seededRandom(4);
    let centre = 100_000;
    for (let i = 0; i < 500; i++) {
      centre += Math.round((walk() - 0.5) * 200);
      const diff = book.step(centre);
      for (const [side, changes] of [
        [mirror.bids, diff.bids],
        [mirror.asks, diff.asks],
      ] as const) {
        for (const [p, q] of changes) {
          if (q === 0) side.delete(p);
          else side.set(p, q);
        }
      }
      const { bids, asks } = book.levels();
      expect(bids.length).toBeLessThanOrEqual(50);
      expect((bids[0] as readonly number[])[0]).toBeLessThan((asks[0] as readonly number[])[0] as number);
      expect([...mirror.bids].sort((a, b) => b[0] - a[0])).toEqual(bids.map((l) => [...l]));
      expect([...mirror.asks].sort((a, b) => a[0] - b[0])).toEqual(asks.map((l) => [...l]));
    }
  });

  it('gives DVOL candles on resolution boundaries whose newest one is still open', () => {
    const now = 1_800_000_123_456;
    const c = dvolCandle(1, 'btc_usd', 1_800_000_120_000, 60_000, now);
    expect(c[0] % 60_000).toBe(0);
    expect(c[2]).toBeGreaterThanOrEqual(Math.max(c[1], c[4]));
    expect(c[3]).toBeLessThanOrEqual(Math.min(c[1], c[4]));
    expect(dvolCandle(1, 'btc_usd', 1_800_000_120_000, 60_000, now)).toEqual(c);
  });
});

describe('simulator venues against the real adapters', () => {
  let sim: SimulatorHandle | null = null;
  const sockets: WebSocket[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await sim?.close();
    sim = null;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** `speed` runs the simulator's clock faster than real time, so liquidations and idle cuts come quickly. */
  async function start(opts: { tradesPerSecond?: number; speed?: number } = {}) {
    const t0 = Date.now();
    const speed = opts.speed ?? 1;
    sim = await startSimulator({
      host: '127.0.0.1',
      port: 0,
      symbols: ['BTCUSDT', 'ETHUSDT'],
      tradesPerSecond: opts.tradesPerSecond ?? 50,
      seed: 7,
      metrics: new Registry(),
      log,
      now: () => t0 + Math.floor((Date.now() - t0) * speed),
    });
    const http = `http://127.0.0.1:${sim.port}`;
    return { http, ws: `ws://127.0.0.1:${sim.port}`, base: (venue: string) => ({ ws: `ws://127.0.0.1:${sim?.port}/${venue}`, rest: `${http}/${venue}` }) };
  }

  function open(url: string, messages: readonly string[] = []): WsClient {
    const client = openWsClient(url, messages);
    sockets.push(client.ws);
    return client;
  }

  /** Every connection the adapter asks for, as the collector opens them. */
  function connect(adapter: VenueAdapter, wsBase: string, symbols: string[]): WsClient[] {
    return adapter.connections(wsBase, symbols, adapter.wsDataTypes).map((spec) => open(spec.url, spec.subscribeMessages));
  }

  function normalize(adapter: VenueAdapter, frames: readonly string[]): { records: MarketRecord[]; books: BookMessage[]; errors: string[] } {
    const records: MarketRecord[] = [];
    const books: BookMessage[] = [];
    const errors: string[] = [];
    for (const f of frames) {
      try {
        const out = normalizeAll(adapter, f, Date.now());
        records.push(...out.records);
        books.push(...out.books);
      } catch (err) {
        errors.push(err instanceof MalformedFrameError ? err.reason : String(err));
      }
    }
    return { records, books, errors };
  }

  const post = async (url: string, body: unknown) =>
    (await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })).json() as Promise<Record<string, unknown>>;

  const simStats = async (http: string) => (await (await fetch(`${http}/stats`)).json()) as SimulatorStats;

  /** A collector's book for one instrument: BookSync fed from the stream, REST snapshots fetched when asked. */
  function syncer(adapter: VenueAdapter, restBase: string, instrument: string) {
    const support = adapter.book;
    if (support === null) throw new Error('no books');
    const sync = new BookSync({ rules: support.rules, source: support.source, checksum: support.checksum, depth: 400, minPublishIntervalMs: 0 });
    const published: OrderbookRecord[] = [];
    const resyncs: string[] = [];
    let pending = Promise.resolve();
    const handle = (out: BookSyncOutput) => {
      if (out.publish !== null) published.push(out.publish);
      if (out.resync !== null) resyncs.push(out.resync);
      if (out.resync === 'rest_snapshot' && support.snapshotRequest && support.parseSnapshot) {
        const req = support.snapshotRequest(restBase, instrument);
        const parse = support.parseSnapshot.bind(support);
        pending = pending.then(async () => {
          const body = await (await fetch(req.url)).text();
          handle(sync.onSnapshot(parse(body, instrument, Date.now()), Date.now()));
        });
      }
    };
    return { sync, published, resyncs, feed: (m: BookMessage) => m.instrument === instrument && handle(sync.onMessage(m, Date.now())), settled: () => pending };
  }

  /** Feeds frames as they arrive; returns a function that stops. */
  function pump(adapter: VenueAdapter, feeds: readonly WsClient[], onBook: (m: BookMessage) => void, onRecord: (r: MarketRecord) => void = () => undefined) {
    const seen = feeds.map(() => 0);
    const timer = setInterval(() => {
      feeds.forEach((f, i) => {
        const fresh = f.frames.slice(seen[i]);
        seen[i] = f.frames.length;
        const { books, records } = normalize(adapter, fresh);
        books.forEach(onBook);
        records.forEach(onRecord);
      });
    }, 5);
    return () => clearInterval(timer);
  }

  it('binance_spot: trades and a book that matches the REST snapshot once paused; a gap resyncs', async () => {
    const { http, base } = await start();
    const { ws, rest } = base('binance_spot');
    const feeds = connect(binanceSpot, ws, ['BTCUSDT']);
    const book = syncer(binanceSpot, rest, 'BTCUSDT');
    const records: MarketRecord[] = [];
    const stop = pump(binanceSpot, feeds, book.feed, (r) => records.push(r));
    await waitFor(() => book.sync.state === 'synced' && book.sync.stats.applied > 5 && records.length > 10);
    expect(records[0]).toMatchObject({ dataType: 'trade', venue: 'binance_spot', symbol: 'BTC-USDT' });

    expect(await post(`${http}/control/fault`, { kind: 'gap', venue: 'binance_spot', instrument: 'BTCUSDT' })).toMatchObject({ ok: true, books: { binance_spot: ['BTCUSDT'] } });
    await waitFor(() => book.sync.stats.gaps === 1 && book.sync.state === 'synced');
    expect(book.resyncs.filter((r) => r === 'rest_snapshot')).toHaveLength(2);

    await post(`${http}/control/pause`, {});
    await sleep(100);
    await book.settled();
    stop();
    const snapshot = (await (await fetch(`${rest}/api/v3/depth?symbol=BTCUSDT&limit=1000`)).json()) as { lastUpdateId: number; bids: string[][]; asks: string[][] };
    const last = book.published.at(-1) as OrderbookRecord;
    expect(last.lastUpdateId).toBe(snapshot.lastUpdateId);
    expect(last.bids.map((l) => [...l])).toEqual(snapshot.bids);
    expect(last.asks.map((l) => [...l])).toEqual(snapshot.asks);
    const stats = await simStats(http);
    expect(stats.venues.binance_spot.faults).toEqual({ gap: 1 });
    expect(stats.venues.binance_spot.restRequests).toBeGreaterThanOrEqual(3);
    expect(stats.trades.BTCUSDT?.sent).toBeGreaterThan(0);
  });

  it('binance_derivatives: /public books and trades, /market liquidations, polls parse; the legacy route acks /market streams and stays silent', async () => {
    const { http, base } = await start({ speed: 5 });
    const { ws, rest } = base('binance_derivatives');
    const feeds = connect(binanceDerivatives, ws, ['BTCUSDT']);
    expect(new Set(feeds.map((f) => new URL(f.ws.url).pathname))).toEqual(new Set(['/binance_derivatives/public/stream', '/binance_derivatives/market/stream']));
    const legacy = open(`${ws}/stream`, [JSON.stringify({ method: 'SUBSCRIBE', params: ['btcusdt@forceOrder', 'btcusdt@aggTrade'], id: 1 })]);
    const book = syncer(binanceDerivatives, rest, 'BTCUSDT');
    const records: MarketRecord[] = [];
    const stop = pump(binanceDerivatives, feeds, book.feed, (r) => records.push(r));
    await waitFor(() => book.sync.state === 'synced' && records.some((r) => r.dataType === 'liquidation') && records.some((r) => r.dataType === 'trade'));
    expect(legacy.frames).toEqual(['{"result":null,"id":1}']);

    await post(`${http}/control/pause`, {});
    await sleep(100);
    await book.settled();
    stop();
    const snapshot = (await (await fetch(`${rest}/fapi/v1/depth?symbol=BTCUSDT&limit=1000`)).json()) as { lastUpdateId: number; bids: string[][]; asks: string[][]; E: number; T: number };
    expect(book.published.at(-1)).toMatchObject({ lastUpdateId: snapshot.lastUpdateId, bids: snapshot.bids, asks: snapshot.asks });
    expect(book.sync.stats.gaps).toBe(0);

    const polled = binanceDerivatives.polls(rest, ['BTCUSDT'], binanceDerivatives.polledDataTypes as PolledDataType[], POLL_OPTIONS);
    const types = new Set<string>();
    for (const poll of polled) {
      const res = await fetch(poll.url);
      expect(res.headers.get('x-mbx-used-weight-1m')).toMatch(/^\d+$/);
      for (const r of poll.parse(await res.text(), Date.now())) types.add(r.dataType);
    }
    expect(types).toEqual(new Set(binanceDerivatives.polledDataTypes));
  });

  it.each([
    ['okx_spot', okxSpot, 'BTC-USDT'],
    ['okx_derivatives', okxDerivatives(['BTC-USDT-SWAP']), 'BTC-USDT-SWAP'],
  ] as const)('%s: books verified by checksum against the REST book; bad_checksum and gap each cost one resubscribe', async (venue, adapter, instId) => {
    const { http, base } = await start();
    const { ws, rest } = base(venue);
    const feeds = connect(adapter, ws, [instId]);
    const book = syncer(adapter, rest, instId);
    const messages: BookMessage[] = [];
    const stop = pump(adapter, feeds, (m) => {
      messages.push(m);
      book.feed(m);
    });
    await waitFor(() => book.sync.state === 'synced' && book.sync.stats.applied > 5);
    expect(messages[0]).toMatchObject({ action: 'snapshot', prevUpdateId: -1 });
    expect(messages.every((m) => m.checksum !== null && m.checksum !== 0)).toBe(true);

    for (const kind of ['bad_checksum', 'gap']) {
      const gaps = book.sync.stats.gaps;
      expect(await post(`${http}/control/fault`, { kind, venue, instrument: instId })).toMatchObject({ books: { [venue]: [instId] } });
      await waitFor(() => book.sync.stats.gaps === gaps + 1);
      expect(book.resyncs.at(-1)).toBe('resubscribe');
      // What the collector does on `resubscribe`: the venue pushes a fresh snapshot.
      for (const frame of adapter.book?.resubscribe?.(instId) ?? []) feeds[0]?.ws.send(frame);
      await waitFor(() => book.sync.state === 'synced');
    }

    await post(`${http}/control/pause`, {});
    await sleep(100);
    stop();
    const body = (await (await fetch(`${rest}/api/v5/market/books?instId=${instId}&sz=400`)).json()) as { data: Array<{ bids: string[][]; asks: string[][] }> };
    const restBook = body.data[0] as { bids: string[][]; asks: string[][] };
    const last = book.published.at(-1) as OrderbookRecord;
    expect(last.bids.map((l) => [...l])).toEqual(restBook.bids.map((l) => l.slice(0, 2)));
    expect(last.asks.map((l) => [...l])).toEqual(restBook.asks.map((l) => l.slice(0, 2)));
    const top = (side: string[][]) => side.slice(0, 25).map((l) => [l[0], l[1]] as const) as Array<readonly [string, string]>;
    expect(okxChecksum(top(restBook.bids), top(restBook.asks))).toBe(messages.at(-1)?.checksum);
  });

  it('okx_derivatives: trades, liquidations for SWAP, and every poll parses', async () => {
    const { base } = await start({ speed: 5 });
    const adapter = okxDerivatives(['BTC-USDT-SWAP']);
    const { ws, rest } = base('okx_derivatives');
    const feeds = connect(adapter, ws, ['BTC-USDT-SWAP']);
    const records: MarketRecord[] = [];
    const stop = pump(adapter, feeds, () => undefined, (r) => records.push(r));
    await waitFor(() => records.some((r) => r.dataType === 'liquidation') && records.some((r) => r.dataType === 'trade'));
    stop();
    expect(records.find((r) => r.dataType === 'liquidation')).toMatchObject({ venue: 'okx_derivatives', instrument: 'BTC-USDT-SWAP', symbol: 'BTC-USDT' });
    const types = new Set<string>();
    for (const poll of adapter.polls(rest, ['BTC-USDT-SWAP'], adapter.polledDataTypes as PolledDataType[], POLL_OPTIONS)) {
      const records = poll.parse(await (await fetch(poll.url)).text(), Date.now());
      expect(records.length).toBeGreaterThan(0);
      for (const r of records) types.add(r.dataType);
    }
    expect(types).toEqual(new Set(adapter.polledDataTypes));

    // Contract values as OKX lists them: 0.01 BTC a contract, the unit the simulated swap sizes count.
    const contracts = adapter.contracts!;
    expect(contracts.reader(await (await fetch(contracts.request(rest, 'BTC-USDT-SWAP').url)).text())('BTC-USDT-SWAP')).toBe('0.01');
    expect(contracts.reader(await (await fetch(contracts.request(rest, 'ETH-USDT-SWAP').url)).text())('ETH-USDT-SWAP')).toBe('0.1');
    // ...and in the one listing of every swap the collector asks for first.
    const listing = await (await fetch(contracts.listAll!(rest).url)).text();
    const listed = contracts.reader(listing);
    expect(['BTC-USDT-SWAP', 'ETH-USDT-SWAP'].map((i) => listed(i))).toEqual(['0.01', '0.1']);
    expect(() => listed('NOPE-USDT-SWAP')).toThrow(/lists no swap/);
    const noType = await fetch(`${rest}/api/v5/public/instruments?instId=BTC-USDT-SWAP`);
    expect(noType.status).toBe(400);
    expect(await noType.json()).toMatchObject({ code: '50014' });
  });

  it('okx: answers ping, rejects unknown channels, closes a client silent for 30 s', async () => {
    const { ws } = await start({ speed: 100 });
    const c = open(`${ws}/okx_spot/ws/v5/public`, ['ping', JSON.stringify({ op: 'subscribe', args: [{ channel: 'books', instId: 'NOPE' }, { channel: 'candle1m', instId: 'BTC-USDT' }] })]);
    await waitFor(() => c.frames.length >= 3);
    expect(c.frames[0]).toBe('pong');
    for (const f of c.frames.slice(1, 3)) expect(JSON.parse(f)).toMatchObject({ event: 'error', code: '60018' });
    expect(await c.closed).toBe(4004);
  });

  it('okx: keeps a connection open while it pushes data, though the client sends nothing (the collector pings only after silence)', async () => {
    const { base } = await start({ speed: 100 });
    const [feed] = connect(okxSpot, base('okx_spot').ws, ['BTC-USDT']);
    let closedWith: number | null = null;
    void feed?.closed.then((code) => (closedWith = code));
    await feed?.opened;
    // 2.5 s here is over 4 simulated minutes: several 30 s idle windows with books every 100 ms.
    await sleep(2500);
    expect(closedWith).toBeNull();
    expect(feed?.frames.length).toBeGreaterThan(100);
  });

  it('deribit: DVOL polls parse into minute candles ending now; JSON-RPC subscribe pushes the index and heartbeats ask for tests', async () => {
    const { base } = await start({ speed: 10 });
    const { ws, rest } = base('deribit_derivatives');
    const [poll] = deribitDerivatives.polls(rest, ['BTC'], ['volatility_index'], POLL_OPTIONS);
    const records = poll?.parse(await (await fetch(poll.url)).text(), Date.now()) ?? [];
    expect(records.length).toBeGreaterThan(1);
    expect(records.every((r) => r.eventTime % 60_000 === 0)).toBe(true);
    expect(records[0]).toMatchObject({ dataType: 'volatility_index', venue: 'deribit_derivatives' });

    const c = open(`${ws}/ws/api/v2`, [
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'public/subscribe', params: { channels: ['deribit_volatility_index.btc_usd', 'book.NOPE.100ms'] } }),
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'public/set_heartbeat', params: { interval: 10 } }),
    ]);
    await waitFor(() => c.frames.some((f) => f.includes('test_request')) && c.frames.some((f) => f.includes('"method":"subscription"')));
    const parsed = c.frames.map((f) => JSON.parse(f) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({ id: 1, result: ['deribit_volatility_index.btc_usd'] });
    expect(parsed[1]).toMatchObject({ id: 2, result: 'ok' });
    expect(parsed.find((p) => p.method === 'subscription')).toMatchObject({ params: { channel: 'deribit_volatility_index.btc_usd', data: { index_name: 'btc_usd' } } });
    // Left unanswered, the next test_request round closes the connection.
    expect(await c.closed).toBe(1000);
  });

  it('faults: malformed frames per venue, http_429 with Retry-After, stall keeps sockets open, disconnect by venue', async () => {
    const { http, base } = await start();
    const okx = connect(okxSpot, base('okx_spot').ws, ['BTC-USDT']);
    const binance = connect(binanceSpot, base('binance_spot').ws, ['BTCUSDT']);
    await waitFor(() => okx[0]!.frames.length > 3 && binance[0]!.frames.length > 3);

    const malformed = await post(`${http}/control/fault`, { kind: 'malformed', venue: 'okx_spot' });
    expect(malformed).toMatchObject({ ok: true, connections: 1, venues: { okx_spot: 1 } });
    await waitFor(() => normalize(okxSpot, okx[0]!.frames).errors.length >= 2);
    expect(normalize(okxSpot, okx[0]!.frames).errors).toEqual(['malformed_json', 'unexpected_shape']);

    expect(await post(`${http}/control/fault`, { kind: 'http_429', venue: 'binance_spot', count: 2, retryAfterSeconds: 7 })).toMatchObject({ venues: ['binance_spot'], count: 2 });
    const url = `${base('binance_spot').rest}/api/v3/depth?symbol=BTCUSDT&limit=10`;
    const statuses: Array<[number, string | null]> = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(url);
      statuses.push([res.status, res.headers.get('retry-after')]);
    }
    expect(statuses).toEqual([
      [429, '7'],
      [429, '7'],
      [200, null],
    ]);

    await post(`${http}/control/fault`, { kind: 'stall', venue: 'binance_spot', seconds: 0.5 });
    await sleep(30);
    const [okxBefore, binanceBefore] = [okx[0]!.frames.length, binance[0]!.frames.length];
    await sleep(300);
    expect(binance[0]!.frames.length).toBe(binanceBefore);
    expect(binance[0]!.ws.readyState).toBe(WebSocket.OPEN);
    expect(okx[0]!.frames.length).toBeGreaterThan(okxBefore);

    expect(await post(`${http}/control/fault`, { kind: 'disconnect', venue: 'okx_spot' })).toMatchObject({ closed: 1, venues: { okx_spot: 1 } });
    expect(await okx[0]!.closed).toBe(1001);
    expect(binance[0]!.ws.readyState).toBe(WebSocket.OPEN);

    const stats = await simStats(http);
    expect(stats.venues.okx_spot.faults).toEqual({ malformed: 1, disconnect: 1 });
    expect(stats.venues.binance_spot.faults).toEqual({ http_429: 1, stall: 1 });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/mprism_simulator_faults_total\{kind="http_429"\} 1/);
  });

  it('answers unknown routes with 404 and bad parameters with 400 in each venue error shape', async () => {
    const { http } = await start();
    const get = async (path: string) => {
      const res = await fetch(`${http}${path}`);
      return [res.status, await res.json()] as const;
    };
    expect((await get('/binance_spot/api/v3/nope'))[0]).toBe(404);
    expect((await get('/kraken/api/v3/depth'))[0]).toBe(404);
    expect(await get('/binance_spot/api/v3/depth')).toEqual([400, { code: -1102, msg: expect.any(String) }]);
    expect(await get('/binance_derivatives/futures/data/topLongShortPositionRatio?symbol=BTCUSDT&period=7m')).toEqual([400, { code: -1120, msg: 'Invalid interval.' }]);
    expect(await get('/okx_derivatives/api/v5/public/funding-rate')).toEqual([400, { code: '50014', msg: expect.any(String), data: [] }]);
    expect(await get('/okx_spot/api/v5/market/books?instId=BTC-USDT-SWAP')).toEqual([400, { code: '51001', msg: expect.any(String), data: [] }]);
    const [status, body] = await get('/deribit_derivatives/api/v2/public/get_volatility_index_data?currency=XRP&start_timestamp=0&end_timestamp=1&resolution=60');
    expect(status).toBe(400);
    expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32602, data: { param: 'currency' } } });
    const [, lsr] = await get('/okx_derivatives/api/v5/rubik/stat/contracts/long-short-account-ratio-contract?instId=BTC-USDT-SWAP&period=5m&limit=3');
    const ts = (lsr as { data: string[][] }).data.map((row) => Number(row[0]));
    expect(ts).toEqual([ts[0], (ts[0] as number) - 300_000, (ts[0] as number) - 600_000]);
    expect((ts[0] as number) % 300_000).toBe(0);
  });

  it('replays a capture file: frames to clients on the captured route in order and pace, REST bodies for their path, no synthetic data meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mprism-replay-'));
    dirs.push(dir);
    const t = 1_700_000_000_000;
    const trade = (id: number) => `{"stream":"btcusdt@trade","data":{"e":"trade","E":${t + id},"s":"BTCUSDT","t":${id},"p":"1.00000000","q":"1.00000000","T":${t + id},"m":true,"M":true}}`;
    const entries: CaptureEntry[] = [
      { t, kind: 'ws', venue: 'binance_spot', conn: 'binance_spot/0', url: 'wss://stream.binance.com:9443/stream?streams=btcusdt@trade', data: trade(1) },
      { t: t + 100, kind: 'rest', venue: 'binance_spot', conn: 'snap', url: 'https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000', data: '{"lastUpdateId":5,"bids":[],"asks":[]}' },
      { t: t + 200, kind: 'ws', venue: 'binance_spot', conn: 'binance_spot/0', url: 'wss://stream.binance.com:9443/stream?streams=btcusdt@trade', data: trade(2) },
      { t: t + 2000, kind: 'ws', venue: 'binance_spot', conn: 'binance_spot/0', url: 'wss://stream.binance.com:9443/stream?streams=btcusdt@trade', data: trade(3) },
    ];
    const file = join(dir, 'binance_spot-capture.jsonl.gz');
    writeFileSync(file, gzipSync(entries.map((e) => JSON.stringify(e)).join('\n') + '\n'));

    const { http, base } = await start({ tradesPerSecond: 200 });
    const stream = open(`${base('binance_spot').ws}/stream?streams=btcusdt@trade`);
    const raw = open(`${base('binance_spot').ws}/ws/btcusdt@trade`);
    await Promise.all([stream.opened, raw.opened]);
    await waitFor(() => stream.frames.length > 0);
    const started = Date.now();
    const res = await post(`${http}/control/replay`, { file, speed: 10 });
    expect(res).toMatchObject({ ok: true, replay: { venues: ['binance_spot'], speed: 10 } });
    await waitFor(() => stream.frames.includes(trade(3)));
    // 2 s of capture at 10x: about 200 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(stream.frames.slice(stream.frames.indexOf(trade(1)))).toEqual([trade(1), trade(2), trade(3)]);
    // The raw route is another route: captured /stream frames do not go there.
    expect(raw.frames.filter((f) => f.includes('"p":"1.00000000"'))).toHaveLength(0);
    expect(await (await fetch(`${base('binance_spot').rest}/api/v3/depth?symbol=BTCUSDT&limit=100`)).text()).toBe('{"lastUpdateId":5,"bids":[],"asks":[]}');
    await waitFor(() => sim?.stats().replay?.done === true);
    expect(sim?.stats().replay).toMatchObject({ entries: 4, framesSent: 3, error: null });

    expect(await post(`${http}/control/replay`, { file: null })).toEqual({ ok: true, replay: null });
    const n = stream.frames.length;
    await waitFor(() => stream.frames.length > n);
    expect((await post(`${http}/control/replay`, { file: join(dir, 'missing.jsonl.gz') })).ok).toBe(false);
  });
});
