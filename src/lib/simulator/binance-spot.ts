import { splitConcatenatedSymbol } from '../exchanges/types.js';
import type { ModelLevel } from './book-model.js';
import { SocketHub } from './hub.js';
import { PRICE_DECIMALS, QTY_DECIMALS, formatFixed, type SimTrade } from './market.js';
import { UsedWeight, type BinanceHub, binanceAcceptor, framer, parseStreamRoute, sendBinanceMalformed, streamInstrument } from './binance-ws.js';
import { BOOK_INTERVAL_MS, InstrumentSet, jsonReply, type Acceptor, type InstrumentMarket, type RestReply, type VenueContext, type VenueSim } from './venue.js';

/** Binance pings every 20 s and drops a client that has not answered by the next round. */
const PING_INTERVAL_MS = 20_000;
/** Largest book level: 5 coins. */
const MAX_LEVEL_LOTS = 5 * 10 ** QTY_DECIMALS;

export function tradeStream(symbol: string): string {
  return `${symbol.toLowerCase()}@trade`;
}

export function depthStream(symbol: string): string {
  return `${symbol.toLowerCase()}@depth@100ms`;
}

/** The exact field order and formatting of a live spot `@trade` event. */
export function tradeEventJson(t: SimTrade, eventTime: number): string {
  return `{"e":"trade","E":${eventTime},"s":"${t.symbol}","t":${t.id},"p":"${t.price}","q":"${t.quantity}","T":${t.time},"m":${t.buyerIsMaker},"M":true}`;
}

/** Spot prints prices and quantities with 8 decimals. */
export function spotLevels(levels: readonly ModelLevel[]): string {
  return JSON.stringify(levels.map(([p, q]) => [formatFixed(p, PRICE_DECIMALS), formatFixed(q, QTY_DECIMALS)]));
}

/** `GET /api/v3/depth` weight by limit. */
function depthWeight(limit: number): number {
  if (limit <= 100) return 5;
  if (limit <= 500) return 25;
  if (limit <= 1000) return 50;
  return 250;
}

/** Binance's REST error shape. */
export function binanceError(status: number, code: number, msg: string, headers?: Record<string, string>): RestReply {
  return jsonReply(status, { code, msg }, headers);
}

/** Parses `symbol` and `limit` like Binance: 400 with its error codes when they are wrong. */
export function depthParams(query: URLSearchParams, maxLimit: number, defaultLimit: number): { symbol: string; limit: number } | RestReply {
  const symbol = query.get('symbol');
  if (symbol === null || symbol === '') return binanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
  if (!/^[A-Z0-9]{2,30}$/.test(symbol) || splitConcatenatedSymbol(symbol) === null) return binanceError(400, -1121, 'Invalid symbol.');
  const rawLimit = query.get('limit');
  if (rawLimit !== null && !/^[0-9]{1,20}$/.test(rawLimit)) return binanceError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.");
  const limit = rawLimit === null ? defaultLimit : Math.min(Math.max(1, Number(rawLimit)), maxLimit);
  return { symbol, limit };
}

/**
 * Binance spot as the real exchange serves it: `/stream` (combined, optional `?streams=`),
 * `/ws/<stream>` and `/ws` (raw) with `<sym>@trade` and `<sym>@depth@100ms` (U/u contiguous),
 * and the REST snapshot `GET /api/v3/depth` matching the stream at that moment.
 */
export class BinanceSpotSim implements VenueSim {
  readonly venue = 'binance_spot';
  readonly hub: BinanceHub;
  synthetic = true;
  private readonly instruments: InstrumentSet;
  private readonly weight = new UsedWeight();
  private bookUpdates = 0;

  constructor(private readonly ctx: VenueContext) {
    this.hub = new SocketHub(this.venue, { pingIntervalMs: PING_INTERVAL_MS, idleCloseMs: null }, ctx.metrics, ctx.log, ctx.now);
    this.instruments = new InstrumentSet(this.venue, ctx, MAX_LEVEL_LOTS);
  }

  preCreate(symbol: string): boolean {
    if (splitConcatenatedSymbol(symbol) === null) return false;
    this.instruments.get(symbol.toUpperCase());
    return true;
  }

  wsRoute(route: string, query: URLSearchParams): Acceptor | null {
    const parsed = parseStreamRoute(route, query, '');
    if (parsed === null) return null;
    return binanceAcceptor(this.hub, route, parsed.combined, parsed.streams, () => true, (s) => this.touch(s));
  }

  rest(route: string, query: URLSearchParams): RestReply | null {
    if (route !== '/api/v3/depth') return null;
    const params = depthParams(query, 5000, 100);
    if ('status' in params) return params;
    const m = this.instruments.get(params.symbol);
    const { bids, asks } = m.book.levels(params.limit);
    const used = this.weight.add(depthWeight(params.limit), this.ctx.now());
    return jsonReply(200, `{"lastUpdateId":${m.seq},"bids":${spotLevels(bids)},"asks":${spotLevels(asks)}}`, { 'x-mbx-used-weight-1m': String(used) });
  }

  tooManyRequests(retryAfterSeconds: number): RestReply {
    return binanceError(429, -1003, 'Too many requests; current limit of IP is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.', {
      'retry-after': String(retryAfterSeconds),
    });
  }

  tick(tradesDue: number): void {
    const now = this.ctx.now();
    for (const m of this.instruments.all()) {
      for (let i = 0; i < tradesDue; i++) this.publishTrade(m, m.tape.next(now), now);
      if (now >= m.nextBookAt) this.stepBook(m, now);
    }
  }

  gap(instrument: string | null): string[] {
    return this.instruments.select(instrument).map((m) => {
      m.dropNextBookUpdate = true;
      return m.id;
    });
  }

  badChecksum(): string[] {
    return [];
  }

  malformed(instrument: string | null): number {
    return sendBinanceMalformed(this.hub, instrument, this.ctx.now());
  }

  disconnect(instrument: string | null): number {
    return this.hub.disconnect((c) => instrument === null || [...c.topics].some((s) => streamInstrument(s) === instrument));
  }

  stats() {
    return { connections: this.hub.size, trades: this.instruments.tradeStats(), bookUpdates: this.bookUpdates, liquidations: 0 };
  }

  close(): void {
    this.hub.close();
  }

  private touch(stream: string): void {
    const id = streamInstrument(stream);
    if (id !== null && splitConcatenatedSymbol(id) !== null) this.instruments.get(id);
  }

  /** Counted only if at least one socket took it. */
  private publishTrade(m: InstrumentMarket, trade: SimTrade, now: number): void {
    if (!this.synthetic) return;
    const stream = tradeStream(m.id);
    if (!this.hub.hasSubscribers(stream)) return;
    if (this.hub.publish(stream, framer(stream, tradeEventJson(trade, now))) === 0) return;
    this.ctx.metrics.tradesSent.inc({ venue: this.venue, symbol: m.id });
    m.countSent(trade);
  }

  private stepBook(m: InstrumentMarket, now: number): void {
    m.nextBookAt = Math.max(m.nextBookAt + BOOK_INTERVAL_MS, now);
    const diff = m.book.step(m.tape.priceTicks);
    const first = m.seq + 1;
    m.seq += diff.bids.length + diff.asks.length;
    if (m.dropNextBookUpdate) {
      m.dropNextBookUpdate = false;
      return;
    }
    const stream = depthStream(m.id);
    if (!this.synthetic || !this.hub.hasSubscribers(stream)) return;
    const event = `{"e":"depthUpdate","E":${now},"s":"${m.id}","U":${first},"u":${m.seq},"b":${spotLevels(diff.bids)},"a":${spotLevels(diff.asks)}}`;
    if (this.hub.publish(stream, framer(stream, event)) === 0) return;
    this.bookUpdates++;
    this.ctx.metrics.bookUpdates.inc({ venue: this.venue });
  }
}
