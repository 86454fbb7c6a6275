import type { Venue } from '../config/schema.js';
import { splitConcatenatedSymbol } from '../exchanges/types.js';
import { UsedWeight, type BinanceHub, sendBinanceMalformed, streamInstrument } from './binance-ws.js';
import { SocketHub } from './hub.js';
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
    this.hub = new SocketHub(venue, { pingIntervalMs: o.pingIntervalMs, idleCloseMs: null }, ctx.metrics, ctx.log, ctx.now);
    this.instruments = new InstrumentSet(venue, ctx, o.maxLevelLots);
    this.weightLimitPerMinute = o.weightLimitPerMinute;
  }

  abstract wsRoute(route: string, query: URLSearchParams): Acceptor | null;
  abstract rest(route: string, query: URLSearchParams): RestReply | null;
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

  /** A subscription creates its instrument, so any listed symbol trades. */
  protected touch(stream: string): void {
    const id = streamInstrument(stream);
    if (id !== null && splitConcatenatedSymbol(id) !== null) this.instruments.get(id);
  }
}
