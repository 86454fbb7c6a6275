import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Logger } from '../log.js';
import type { SimTrade } from './market.js';

/** Unsent bytes after which a subscriber counts as too slow and is disconnected. */
const SLOW_CLIENT_BUFFER_BYTES = 16 * 1024 * 1024;

/** Per-symbol count of trades that reached at least one subscriber. */
export interface SymbolSendStats {
  sent: number;
  firstId: number | null;
  lastId: number | null;
}

interface Client {
  /** `/stream` wraps frames as {"stream","data"}; `/ws` sends bare events. */
  combined: boolean;
  streams: Set<string>;
  alive: boolean;
}

/** Binance pings every 20 s and drops a client that has not answered by the next round. */
const PING_INTERVAL_MS = 20_000;

export function tradeStream(symbol: string): string {
  return `${symbol.toLowerCase()}@trade`;
}

/** The exact field order and formatting of a live spot `@trade` event. */
export function tradeEventJson(t: SimTrade, eventTime: number): string {
  return `{"e":"trade","E":${eventTime},"s":"${t.symbol}","t":${t.id},"p":"${t.price}","q":"${t.quantity}","T":${t.time},"m":${t.buyerIsMaker},"M":true}`;
}

function combinedJson(stream: string, event: string): string {
  return `{"stream":"${stream}","data":${event}}`;
}

function streamsFromPath(url: URL): { combined: boolean; streams: string[] } | null {
  if (url.pathname === '/stream') {
    const list = url.searchParams.get('streams');
    return { combined: true, streams: list === null || list === '' ? [] : list.split('/') };
  }
  if (url.pathname === '/ws') return { combined: false, streams: [] };
  const raw = /^\/ws\/([^/]+)$/.exec(url.pathname);
  if (raw !== null) return { combined: false, streams: (raw[1] ?? '').split('/') };
  return null;
}

type Request = { method?: unknown; params?: unknown; id?: unknown };

/**
 * Binance spot market streams as the real exchange serves them: `/stream` (combined, optional
 * `?streams=`), `/ws/<stream>` and `/ws` (raw), SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS requests.
 */
export class BinanceSpotSim {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private readonly clients = new Map<WebSocket, Client>();
  private readonly subscribers = new Map<string, Set<WebSocket>>();
  private readonly sendStats = new Map<string, SymbolSendStats>();
  private stalledUntil = 0;
  private readonly pinger: NodeJS.Timeout;
  private readonly tradesSent: Counter<'venue' | 'symbol'>;
  private readonly framesSent: Counter<'venue'>;
  private readonly connections: Gauge<'venue'>;

  constructor(
    symbols: readonly string[],
    metrics: Registry,
    private readonly log: Logger,
  ) {
    for (const s of symbols) this.sendStats.set(s, { sent: 0, firstId: null, lastId: null });
    this.tradesSent = new Counter({ name: 'mprism_simulator_trades_sent_total', help: 'Trades sent to at least one subscriber', labelNames: ['venue', 'symbol'], registers: [metrics] });
    this.framesSent = new Counter({ name: 'mprism_simulator_frames_sent_total', help: 'WebSocket data frames sent', labelNames: ['venue'], registers: [metrics] });
    this.connections = new Gauge({ name: 'mprism_simulator_connections', help: 'Open WebSocket connections', labelNames: ['venue'], registers: [metrics] });
    this.pinger = setInterval(() => this.pingAll(), PING_INTERVAL_MS);
    this.pinger.unref();
  }

  /** Takes over the upgrade when the path is a Binance spot route; false leaves it to others. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = streamsFromPath(url);
    if (route === null) return false;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, route.combined, route.streams));
    return true;
  }

  get stats(): Record<string, SymbolSendStats> {
    return Object.fromEntries([...this.sendStats].map(([s, v]) => [s, { ...v }]));
  }

  get connectionCount(): number {
    return this.clients.size;
  }

  /** Sends one trade to its subscribers; counted only if at least one socket took it. */
  publish(trade: SimTrade, now: number): void {
    if (now < this.stalledUntil) return;
    const stream = tradeStream(trade.symbol);
    const subs = this.subscribers.get(stream);
    if (subs === undefined || subs.size === 0) return;
    const event = tradeEventJson(trade, now);
    let combinedFrame: string | null = null;
    let delivered = 0;
    for (const ws of subs) {
      const client = this.clients.get(ws);
      if (client === undefined || ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > SLOW_CLIENT_BUFFER_BYTES) {
        // Like the real exchange, a client that stops reading is dropped rather than buffered for forever.
        ws.terminate();
        continue;
      }
      if (client.combined) {
        combinedFrame ??= combinedJson(stream, event);
        ws.send(combinedFrame);
      } else {
        ws.send(event);
      }
      delivered++;
    }
    if (delivered === 0) return;
    this.framesSent.inc({ venue: 'binance_spot' }, delivered);
    this.tradesSent.inc({ venue: 'binance_spot', symbol: trade.symbol });
    const st = this.sendStats.get(trade.symbol) ?? { sent: 0, firstId: null, lastId: null };
    st.sent++;
    st.firstId ??= trade.id;
    st.lastId = trade.id;
    this.sendStats.set(trade.symbol, st);
  }

  /** Close every connection with a normal close handshake, so frames already sent still arrive. */
  disconnectAll(): number {
    const n = this.clients.size;
    for (const ws of this.clients.keys()) ws.close(1001, 'simulated disconnect');
    return n;
  }

  /** One unparseable and one wrong-shape frame to every subscribed connection. */
  sendMalformed(now: number): number {
    let n = 0;
    for (const [ws, client] of this.clients) {
      if (client.streams.size === 0 || ws.readyState !== WebSocket.OPEN) continue;
      const stream = [...client.streams][0] as string;
      const symbol = stream.split('@')[0]?.toUpperCase() ?? 'BTCUSDT';
      const wrongShape = `{"e":"trade","E":${now},"s":"${symbol}","t":"not-a-number","p":42}`;
      ws.send(client.combined ? `{"stream":"${stream}","data":{"e":"trade","E":${now}` : `{"e":"trade","E":${now}`);
      ws.send(client.combined ? combinedJson(stream, wrongShape) : wrongShape);
      n++;
    }
    return n;
  }

  /** Stop sending frames until `until`; connections stay open and answer pings. */
  stall(until: number): void {
    this.stalledUntil = until;
  }

  close(): void {
    clearInterval(this.pinger);
    for (const ws of this.clients.keys()) ws.terminate();
    this.wss.close();
  }

  private accept(ws: WebSocket, combined: boolean, streams: string[]): void {
    const client: Client = { combined, streams: new Set(), alive: true };
    this.clients.set(ws, client);
    this.connections.set({ venue: 'binance_spot' }, this.clients.size);
    this.subscribe(ws, client, streams);
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => this.onRequest(ws, client, data, isBinary));
    ws.on('close', () => {
      for (const s of client.streams) this.subscribers.get(s)?.delete(ws);
      this.clients.delete(ws);
      this.connections.set({ venue: 'binance_spot' }, this.clients.size);
    });
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'simulator client socket error'));
  }

  private subscribe(ws: WebSocket, client: Client, streams: readonly string[]): void {
    for (const s of streams) {
      client.streams.add(s);
      let set = this.subscribers.get(s);
      if (set === undefined) {
        set = new Set();
        this.subscribers.set(s, set);
      }
      set.add(ws);
    }
  }

  private unsubscribe(ws: WebSocket, client: Client, streams: readonly string[]): void {
    for (const s of streams) {
      client.streams.delete(s);
      this.subscribers.get(s)?.delete(ws);
    }
  }

  private onRequest(ws: WebSocket, client: Client, data: RawData, isBinary: boolean): void {
    if (isBinary) return;
    let req: Request;
    try {
      const parsed: unknown = JSON.parse(data.toString());
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      req = parsed as Request;
    } catch {
      ws.send(JSON.stringify({ error: { code: 3, msg: 'Invalid JSON: expected value at line 1 column 1' }, id: null }));
      return;
    }
    const id = typeof req.id === 'number' || typeof req.id === 'string' ? req.id : null;
    const params = Array.isArray(req.params) && req.params.every((p) => typeof p === 'string') ? (req.params as string[]) : null;
    switch (req.method) {
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE':
        if (params === null) break;
        if (req.method === 'SUBSCRIBE') this.subscribe(ws, client, params);
        else this.unsubscribe(ws, client, params);
        ws.send(JSON.stringify({ result: null, id }));
        return;
      case 'LIST_SUBSCRIPTIONS':
        ws.send(JSON.stringify({ result: [...client.streams], id }));
        return;
    }
    ws.send(JSON.stringify({ error: { code: 2, msg: `Invalid request: unknown method or params` }, id }));
  }

  private pingAll(): void {
    for (const [ws, client] of this.clients) {
      if (!client.alive) {
        ws.terminate();
        continue;
      }
      client.alive = false;
      ws.ping();
    }
  }
}
