import type { DataType } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { TradeRecord } from '../records.js';
import {
  MalformedFrameError,
  isObject,
  parseFrame,
  splitConcatenatedSymbol,
  type ControlAction,
  type VenueAdapter,
  type WsConnectionSpec,
} from './types.js';

/** `<symbol>@trade` payload as documented (web-socket-streams.md, "Trade Streams"). */
export interface BinanceTradeEvent {
  e: 'trade';
  /** Event time, ms. */
  E: number;
  s: string;
  /** Trade id, sequential per symbol. */
  t: number;
  p: string;
  q: string;
  /** Trade time, ms. */
  T: number;
  /** True when the buyer was the maker. */
  m: boolean;
  M?: boolean;
  /** Buyer/seller order ids: only in frames from before 2023. */
  b?: number;
  a?: number;
}

/** Frames on `/stream` are wrapped; `/ws/<stream>` delivers the bare event. */
export interface BinanceCombinedFrame {
  stream: string;
  data: unknown;
}

/** Answer to a SUBSCRIBE/UNSUBSCRIBE request. */
export interface BinanceResponseFrame {
  result: unknown;
  id: number | string | null;
}

export interface BinanceErrorFrame {
  error: { code: number; msg: string };
  id: number | string | null;
}

/** Documented limit of streams per connection. */
const MAX_STREAMS_PER_CONNECTION = 1024;
/** Binance closes every connection at 24 h; leave an hour of margin to reconnect cleanly. */
const MAX_CONNECTION_AGE_MS = 23 * 3600_000;
/**
 * Events of channels this adapter does not turn into records. aggTrade in particular is not
 * mapped to trades: its id `a` is a different sequence from the trade id `t`, and one aggTrade
 * merges several fills, so storing both would collide ids and double count volume.
 */
const IGNORED_EVENTS: ReadonlySet<string> = new Set(['aggTrade', 'depthUpdate', 'serverShutdown']);

const DECIMAL = /^\d+(\.\d+)?$/;

const STREAM_SUFFIX: Partial<Record<DataType, string>> = { trade: 'trade' };

const symbolCache = new Map<string, string>();

/** Binance concatenated ids (BTCUSDT) to BTC-USDT; memoized because it runs for every trade. */
export function binanceSymbol(instrument: string, dataType: DataType): string {
  const cached = symbolCache.get(instrument);
  if (cached !== undefined) return cached;
  const symbol = splitConcatenatedSymbol(instrument);
  if (symbol === null) {
    throw new MalformedFrameError('unknown_symbol', `no known quote asset ends symbol ${instrument}`, dataType);
  }
  symbolCache.set(instrument, symbol);
  return symbol;
}

function isTradeEvent(v: Record<string, unknown>): v is Record<string, unknown> & BinanceTradeEvent {
  return (
    typeof v.s === 'string' &&
    Number.isSafeInteger(v.t) &&
    typeof v.p === 'string' &&
    DECIMAL.test(v.p) &&
    typeof v.q === 'string' &&
    DECIMAL.test(v.q) &&
    Number.isSafeInteger(v.T) &&
    Number.isSafeInteger(v.E) &&
    typeof v.m === 'boolean'
  );
}

function toTrade(event: BinanceTradeEvent, receiveTime: number): TradeRecord {
  return {
    dataType: 'trade',
    venue: 'binance_spot',
    marketType: 'spot',
    symbol: binanceSymbol(event.s, 'trade'),
    instrument: event.s,
    // The trade time, not the push time E: it is when the fill happened.
    eventTime: event.T,
    receiveTime,
    tradeId: String(event.t),
    price: event.p,
    quantity: event.q,
    // m: the buyer was the maker, so the aggressor (taker) sold.
    side: event.m ? 'sell' : 'buy',
  };
}

function isResponse(v: Record<string, unknown>): v is Record<string, unknown> & BinanceResponseFrame {
  return 'result' in v && 'id' in v;
}

function isErrorFrame(v: Record<string, unknown>): v is Record<string, unknown> & BinanceErrorFrame {
  return isObject(v.error) && typeof v.error.code === 'number' && typeof v.error.msg === 'string' && 'id' in v;
}

function isCombined(v: Record<string, unknown>): v is Record<string, unknown> & BinanceCombinedFrame {
  return typeof v.stream === 'string' && 'data' in v;
}

/** The event inside a frame, unwrapping the combined-stream envelope; null for control frames. */
function eventOf(frame: unknown): Record<string, unknown> | null {
  if (!isObject(frame)) throw new MalformedFrameError('unexpected_shape', 'frame is not a JSON object');
  if (isCombined(frame)) {
    if (!isObject(frame.data)) throw new MalformedFrameError('unexpected_shape', `stream ${frame.stream}: data is not an object`);
    return frame.data;
  }
  if (isResponse(frame) || isErrorFrame(frame)) return null;
  if (typeof frame.e === 'string') return frame;
  throw new MalformedFrameError('unexpected_shape', 'frame is neither an event, a combined-stream frame nor a response');
}

export const binanceSpot: VenueAdapter = {
  venue: 'binance_spot',
  marketType: 'spot',
  wsDataTypes: ['trade'],

  connections(baseUrl: string, symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[] {
    const streams: string[] = [];
    for (const dataType of dataTypes) {
      const suffix = STREAM_SUFFIX[dataType];
      if (suffix === undefined) throw new ConfigError(`collector.venues.binance_spot.dataTypes: ${dataType} is not collected for binance_spot`);
      for (const s of symbols) streams.push(`${s.toLowerCase()}@${suffix}`);
    }
    const url = `${baseUrl.replace(/\/+$/, '')}/stream`;
    const specs: WsConnectionSpec[] = [];
    for (let i = 0; i < streams.length; i += MAX_STREAMS_PER_CONNECTION) {
      const params = streams.slice(i, i + MAX_STREAMS_PER_CONNECTION);
      specs.push({
        id: `binance_spot/${specs.length}`,
        url,
        // One request per connection keeps well under the 5 inbound messages/s limit.
        subscribeMessages: [JSON.stringify({ method: 'SUBSCRIBE', params, id: 1 })],
        maxConnectionAgeMs: MAX_CONNECTION_AGE_MS,
      });
    }
    return specs;
  },

  *normalize(frame: string, receiveTime: number): Generator<TradeRecord> {
    const event = eventOf(parseFrame(frame));
    if (event === null) return;
    if (event.e === 'trade') {
      if (!isTradeEvent(event)) {
        throw new MalformedFrameError('unexpected_shape', `trade event missing or mistyped fields: ${frame.slice(0, 120)}`, 'trade');
      }
      yield toTrade(event, receiveTime);
      return;
    }
    if (typeof event.e === 'string' && IGNORED_EVENTS.has(event.e)) return;
    throw new MalformedFrameError('unexpected_shape', `unexpected event type ${JSON.stringify(event.e)}`);
  },

  control(frame: string): ControlAction {
    let parsed: unknown;
    try {
      parsed = JSON.parse(frame) as unknown;
    } catch {
      return { kind: 'none' };
    }
    if (!isObject(parsed)) return { kind: 'none' };
    if (isErrorFrame(parsed)) {
      return { kind: 'reconnect', reason: `request ${String(parsed.id)} refused: ${parsed.error.code} ${parsed.error.msg}` };
    }
    const event = isObject(parsed.data) ? parsed.data : parsed;
    if (event.e === 'serverShutdown') return { kind: 'reconnect', reason: 'serverShutdown' };
    return { kind: 'none' };
  },
};
