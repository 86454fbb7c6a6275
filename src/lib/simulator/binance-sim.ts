import type { IncomingHttpHeaders } from 'node:http';
import type { Venue } from '../config/schema.js';
import { splitConcatenatedSymbol } from '../exchanges/types.js';
import { UsedWeight, type BinanceHub, sendBinanceMalformed, streamInstrument } from './binance-ws.js';
import { SocketHub } from './hub.js';
import type { SimTrade } from './market.js';
import { InstrumentSet, jsonReply, type Acceptor, type RestReply, type VenueContext, type VenueSim } from './venue.js';

/** Binance's REST error shape. */
export function binanceError(status: number, code: number, msg: string, headers?: Record<string, string>): RestReply {
  return jsonReply(status, { code, msg }, headers);
}

/** A `symbol` parameter as Binance checks it: 400 with its error codes when missing or invalid. */
export function symbolParam(symbol: string | null): string | RestReply {
  if (symbol === null || symbol === '') return binanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
  if (!/^[A-Z0-9]{2,30}$/.test(symbol) || splitConcatenatedSymbol(symbol) === null) return binanceError(400, -1121, 'Invalid symbol.');
  return symbol;
}

/** Parses `symbol` and `limit` like Binance: 400 with its error codes when they are wrong. */
export function depthParams(query: URLSearchParams, maxLimit: number, defaultLimit: number): { symbol: string; limit: number } | RestReply {
  const symbol = symbolParam(query.get('symbol'));
  if (typeof symbol !== 'string') return symbol;
  const rawLimit = query.get('limit');
  if (rawLimit !== null && !/^[0-9]{1,20}$/.test(rawLimit)) return binanceError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.");
  const limit = rawLimit === null ? defaultLimit : Math.min(Math.max(1, Number(rawLimit)), maxLimit);
  return { symbol, limit };
}

/** An optional LONG parameter: absent is null, anything but digits is Binance's -1100. */
export function longParam(query: URLSearchParams, name: string): number | null | RestReply {
  const raw = query.get(name);
  if (raw === null) return null;
  if (!/^[0-9]{1,20}$/.test(raw)) return binanceError(400, -1100, `Illegal characters found in parameter '${name}'; legal range is '^[0-9]{1,20}$'.`);
  return Number(raw);
}

export function isReply<T>(v: T | RestReply): v is RestReply {
  return typeof v === 'object' && v !== null && 'status' in v;
}

/** `symbol`, `limit` and `fromId` of a historicalTrades request, checked like Binance. */
export function historicalTradesParams(query: URLSearchParams, maxLimit: number, defaultLimit: number): { symbol: string; limit: number; fromId: number | null } | RestReply {
  const params = depthParams(query, maxLimit, defaultLimit);
  if ('status' in params) return params;
  const fromId = longParam(query, 'fromId');
  return isReply(fromId) ? fromId : { ...params, fromId };
}

/**
 * MARKET_DATA endpoints without an X-MBX-APIKEY header: Binance answers 401 with -2014. Any key is
 * taken: the simulator has no accounts to check it against.
 */
export function apiKeyRefusal(headers: IncomingHttpHeaders): RestReply | null {
  const key = headers['x-mbx-apikey'];
  return typeof key === 'string' && key !== '' ? null : binanceError(401, -2014, 'API-key format invalid.');
}

/**
 * What the Binance spot and USD-M simulators share: the socket hub, instruments created from
 * config symbols and subscribed streams, the used-weight counter, and the faults (Binance has no
 * checksum to break).
 */
export abstract class BinanceSim implements VenueSim {
  readonly hub: BinanceHub;
  synthetic = true;
  protected readonly instruments: InstrumentSet;
  protected readonly weight = new UsedWeight();
  protected bookUpdates = 0;
  protected liquidations = 0;
  private readonly weightLimitPerMinute: number;

  constructor(
    readonly venue: Venue,
    protected readonly ctx: VenueContext,
    o: { pingIntervalMs: number; maxLevelLots: number; weightLimitPerMinute: number },
  ) {
    this.hub = new SocketHub(venue, { pingIntervalMs: o.pingIntervalMs, idleCloseMs: null, slowClientBytes: ctx.slowClientBytes }, ctx.metrics, ctx.log, ctx.now);
    this.instruments = new InstrumentSet(venue, ctx, o.maxLevelLots);
    this.weightLimitPerMinute = o.weightLimitPerMinute;
  }

  abstract wsRoute(route: string, query: URLSearchParams): Acceptor | null;
  abstract rest(route: string, query: URLSearchParams, headers: IncomingHttpHeaders): RestReply | null;
  abstract tick(tradesDue: number): void;

  preCreate(symbol: string): boolean {
    if (splitConcatenatedSymbol(symbol) === null) return false;
    this.instruments.get(symbol.toUpperCase());
    return true;
  }

  tooManyRequests(retryAfterSeconds: number): RestReply {
    const msg = `Too many requests; current limit of IP is ${this.weightLimitPerMinute} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`;
    return binanceError(429, -1003, msg, { 'retry-after': String(retryAfterSeconds) });
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
    return { connections: this.hub.size, trades: this.instruments.tradeStats(), bookUpdates: this.bookUpdates, liquidations: this.liquidations };
  }

  close(): void {
    this.hub.close();
  }

  /**
   * The trades historicalTrades lists: from fromId on, or the newest ones without it. They come
   * from the tape's history, so they are the trades the stream sent or would have sent.
   */
  protected historicalTrades(params: { symbol: string; limit: number; fromId: number | null }): SimTrade[] {
    const trades = this.instruments.get(params.symbol).trades;
    return params.fromId === null ? trades.newest(params.limit) : trades.fromId(params.fromId, params.limit);
  }

  /** A subscription creates its instrument, so any listed symbol trades. */
  protected touch(stream: string): void {
    const id = streamInstrument(stream);
    if (id !== null && splitConcatenatedSymbol(id) !== null) this.instruments.get(id);
  }
}
