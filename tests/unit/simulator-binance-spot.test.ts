import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { binanceSpot } from '../../src/lib/exchanges/binance_spot.js';
import { MalformedFrameError, normalizeAll } from '../../src/lib/exchanges/types.js';
import type { TradeRecord } from '../../src/lib/records.js';
import { tradeEventJson } from '../../src/lib/simulator/binance-spot.js';
import { RateClock, SymbolMarket, seededRandom } from '../../src/lib/simulator/market.js';
import { startSimulator, type SimulatorHandle } from '../../src/lib/simulator/server.js';
import { waitFor } from '../helpers/wait.js';
import { openWsClient, type WsClient } from '../helpers/ws-client.js';

const log = pino({ level: 'silent' });

describe('market model', () => {
  it('is reproducible from the seed and independent per symbol', () => {
    const tape = (seed: number, symbol: string) => {
      const m = new SymbolMarket(symbol, seed, 1000);
      return Array.from({ length: 50 }, (_, i) => m.next(i));
    };
    expect(tape(42, 'BTCUSDT')).toEqual(tape(42, 'BTCUSDT'));
    expect(tape(42, 'BTCUSDT')).not.toEqual(tape(43, 'BTCUSDT'));
    expect(tape(42, 'BTCUSDT').map((t) => t.price)).not.toEqual(tape(42, 'ETHUSDT').map((t) => t.price));
    expect(seededRandom(1)()).toBe(seededRandom(1)());
  });

  it('issues sequential ids and 8-decimal price/quantity strings', () => {
    const m = new SymbolMarket('BTCUSDT', 7, 500);
    const trades = Array.from({ length: 1000 }, (_, i) => m.next(i));
    expect(trades.map((t) => t.id)).toEqual(Array.from({ length: 1000 }, (_, i) => 500 + i));
    for (const t of trades) {
      expect(t.price).toMatch(/^\d+\.\d{8}$/);
      expect(t.quantity).toMatch(/^\d+\.\d{8}$/);
      expect(Number(t.quantity)).toBeGreaterThan(0);
    }
  });

  it('owes trades at the configured rate and does not burst after a long stall', () => {
    const clock = new RateClock(1000, 0);
    expect(clock.due(10)).toBe(10);
    expect(clock.due(10)).toBe(0);
    expect(clock.due(1010)).toBe(1000);
    expect(clock.due(60_000)).toBe(1000);
    expect(clock.due(60_001)).toBe(1);
  });
});

describe('simulator frame format', () => {
  it('matches the documented Binance trade event key for key, and parses with the normalizer', () => {
    const m = new SymbolMarket('BTCUSDT', 42, 12345);
    const t = m.next(1672515782136);
    const frame = tradeEventJson(t, 1672515782137);
    const doc = JSON.parse('{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}') as Record<string, unknown>;
    const ours = JSON.parse(frame) as Record<string, unknown>;
    expect(Object.keys(ours)).toEqual(Object.keys(doc));
    for (const k of Object.keys(doc)) expect(typeof ours[k]).toBe(typeof doc[k]);
    const [r] = normalizeAll(binanceSpot, frame, 1).records;
    expect(r).toMatchObject({ symbol: 'BTC-USDT', tradeId: '12345', price: t.price, quantity: t.quantity, eventTime: 1672515782136, side: t.buyerIsMaker ? 'sell' : 'buy' });
  });
});

describe('simulator server', () => {
  let sim: SimulatorHandle | null = null;
  const sockets: WebSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await sim?.close();
    sim = null;
  });

  async function start(tradesPerSecond = 200) {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, symbols: ['BTCUSDT', 'ETHUSDT'], tradesPerSecond, seed: 42, metrics: new Registry(), log });
    return { http: `http://127.0.0.1:${sim.port}`, ws: `ws://127.0.0.1:${sim.port}/binance_spot` };
  }

  function collect(url: string, send?: string): WsClient {
    const client = openWsClient(url, send === undefined ? [] : [send]);
    sockets.push(client.ws);
    return client;
  }


  const post = (url: string, body?: unknown) =>
    fetch(url, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  const trades = (frames: string[]) => frames.flatMap((f) => normalizeAll(binanceSpot, f, 0).records) as TradeRecord[];

  it('acks SUBSCRIBE on /stream and sends combined frames with sequential ids; /stats counts them', async () => {
    const { http, ws } = await start();
    const c = collect(`${ws}/stream`, JSON.stringify({ method: 'SUBSCRIBE', params: ['btcusdt@trade'], id: 1 }));
    await waitFor(() => c.frames.length > 20);
    expect(JSON.parse(c.frames[0] as string)).toEqual({ result: null, id: 1 });
    const data = c.frames.slice(1);
    for (const f of data) expect(JSON.parse(f)).toMatchObject({ stream: 'btcusdt@trade', data: { e: 'trade', s: 'BTCUSDT', M: true } });
    const ids = trades(data).map((t) => Number(t.tradeId));
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => (ids[0] as number) + i));
    c.ws.close();
    await waitFor(() => c.ws.readyState === WebSocket.CLOSED);
    // Frames sent until the server saw our close still arrive: count after the handshake.
    const all = trades(c.frames.slice(1)).map((t) => Number(t.tradeId));
    expect(all.slice(0, ids.length)).toEqual(ids);
    const stats = (await (await fetch(`${http}/stats`)).json()) as { trades: Record<string, { sent: number; firstId: number; lastId: number }> };
    expect(stats.trades.BTCUSDT).toEqual({ sent: all.length, firstId: all[0], lastId: all.at(-1) });
    expect(stats.trades.ETHUSDT).toEqual({ sent: 0, firstId: null, lastId: null });
  });

  it('serves raw /ws/<stream> bare events and /stream?streams=a/b', async () => {
    const { ws } = await start();
    const raw = collect(`${ws}/ws/ethusdt@trade`);
    const combined = collect(`${ws}/stream?streams=btcusdt@trade/ethusdt@trade`);
    await waitFor(() => raw.frames.length > 5 && combined.frames.length > 10);
    expect(JSON.parse(raw.frames[0] as string)).toMatchObject({ e: 'trade', s: 'ETHUSDT' });
    expect(new Set(trades(combined.frames).map((t) => t.symbol))).toEqual(new Set(['BTC-USDT', 'ETH-USDT']));
  });

  it('answers LIST_SUBSCRIPTIONS, UNSUBSCRIBE and rejects bad requests like Binance', async () => {
    const { ws } = await start(1);
    const c = collect(`${ws}/stream?streams=btcusdt@trade`);
    await c.opened;
    c.ws.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 3 }));
    c.ws.send(JSON.stringify({ method: 'UNSUBSCRIBE', params: ['btcusdt@trade'], id: 4 }));
    c.ws.send(JSON.stringify({ method: 'NOPE', id: 5 }));
    c.ws.send('not json');
    await waitFor(() => c.frames.filter((f) => !f.includes('"e":"trade"')).length >= 4);
    const control = c.frames.filter((f) => !f.includes('"e":"trade"')).map((f) => JSON.parse(f) as Record<string, unknown>);
    expect(control[0]).toEqual({ result: ['btcusdt@trade'], id: 3 });
    expect(control[1]).toEqual({ result: null, id: 4 });
    expect(control[2]).toMatchObject({ error: { code: 2 }, id: 5 });
    expect(control[3]).toMatchObject({ error: { code: 3 } });
  });

  it('pauses and resumes generation', async () => {
    const { http, ws } = await start();
    const c = collect(`${ws}/ws/btcusdt@trade`);
    await waitFor(() => c.frames.length > 3);
    expect(await (await post(`${http}/control/pause`)).json()).toEqual({ ok: true, paused: true });
    await new Promise((r) => setTimeout(r, 50));
    const n = c.frames.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(c.frames.length).toBe(n);
    await post(`${http}/control/resume`);
    await waitFor(() => c.frames.length > n + 3);
    const ids = trades(c.frames).map((t) => Number(t.tradeId));
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => (ids[0] as number) + i));
  });

  it('injects malformed frames that the normalizer rejects', async () => {
    const { http, ws } = await start(1);
    const c = collect(`${ws}/stream?streams=btcusdt@trade`);
    await c.opened;
    const res = await post(`${http}/control/fault`, { kind: 'malformed' });
    expect(await res.json()).toMatchObject({ ok: true, fault: 'malformed', connections: 1 });
    await waitFor(() => c.frames.filter((f) => !f.includes('"M":true')).length >= 2);
    const codes = c.frames
      .filter((f) => !f.includes('"M":true'))
      .map((f) => {
        try {
          normalizeAll(binanceSpot, f, 0);
          return 'ok';
        } catch (err) {
          return err instanceof MalformedFrameError ? err.reason : 'other';
        }
      });
    expect(codes).toEqual(['malformed_json', 'unexpected_shape']);
  });

  it('stalls without closing, then resumes sending', async () => {
    const { http, ws } = await start();
    const c = collect(`${ws}/ws/btcusdt@trade`);
    await waitFor(() => c.frames.length > 3);
    // Long enough that late timers on a loaded machine still look inside it.
    await post(`${http}/control/fault`, { kind: 'stall', seconds: 2 });
    await new Promise((r) => setTimeout(r, 50));
    const n = c.frames.length;
    await new Promise((r) => setTimeout(r, 250));
    expect(c.frames.length).toBe(n);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    await waitFor(() => c.frames.length > n + 3);
  });

  it('disconnects every client on the disconnect fault', async () => {
    const { http, ws } = await start();
    const a = collect(`${ws}/ws/btcusdt@trade`);
    const b = collect(`${ws}/stream?streams=ethusdt@trade`);
    await Promise.all([a.opened, b.opened]);
    const closed = Promise.all([a, b].map((c) => new Promise<number>((r) => c.ws.on('close', (code: number) => r(code)))));
    expect(await (await post(`${http}/control/fault`, { kind: 'disconnect' })).json()).toMatchObject({ ok: true, closed: 2 });
    expect(await closed).toEqual([1001, 1001]);
  });

  it('serves /health, /metrics, and rejects unknown routes and bad faults', async () => {
    const { http, ws } = await start();
    const c = collect(`${ws}/ws/btcusdt@trade`);
    await waitFor(() => c.frames.length > 2);
    expect(await (await fetch(`${http}/health`)).json()).toMatchObject({ ok: true, paused: false, connections: 1 });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/mprism_simulator_trades_sent_total\{venue="binance_spot",symbol="BTCUSDT"\} \d+/);
    expect((await fetch(`${http}/nope`)).status).toBe(404);
    expect((await post(`${http}/control/fault`, { kind: 'explode' })).status).toBe(400);
    expect((await post(`${http}/control/fault`)).status).toBe(400);
    const bad = new WebSocket(`${ws}/elsewhere`);
    sockets.push(bad);
    const status = await new Promise<number | undefined>((r) => bad.on('unexpected-response', (_req, res) => r(res.statusCode)).on('error', () => r(undefined)));
    expect(status).toBe(404);
  });

  it('delivers every trade, in order, at a high trade rate', async () => {
    // The rate itself is RateClock's (tested above); here: nothing is dropped or reordered at 5000/s.
    const { ws } = await start(5000);
    const c = collect(`${ws}/stream?streams=btcusdt@trade/ethusdt@trade`);
    await c.opened;
    await waitFor(() => c.frames.length >= 10_000, 30_000);
    const ids = new Map<string, number[]>();
    for (const f of c.frames) {
      const { data } = JSON.parse(f) as { data: { s: string; t: number } };
      if (!ids.has(data.s)) ids.set(data.s, []);
      ids.get(data.s)!.push(data.t);
    }
    expect([...ids.keys()].sort()).toEqual(['BTCUSDT', 'ETHUSDT']);
    for (const [symbol, list] of ids) expect(list.every((id, i) => i === 0 || id === list[i - 1]! + 1), symbol).toBe(true);
  });
});
