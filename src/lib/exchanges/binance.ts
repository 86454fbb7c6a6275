import type { DataType, Venue } from '../config/schema.js';
import { ConfigError, MprismError } from '../errors.js';
import type { BookMessage, SequenceRules } from '../orderbook/types.js';
import type { MarketType, TradeRecord } from '../records.js';
import {
  MalformedFrameError,
  isDecimal,
  isObject,
  joinUrl,
  parseFrame,
  splitConcatenatedSymbol,
  type BookSupport,
  type ControlAction,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type RestRequest,
  type VenueCredentials,
  type WsConnectionSpec,
} from './types.js';

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

/**
 * `<symbol>@trade` payload (spot: web-socket-streams.md "Trade Streams"; USD-M: undocumented but live,
 * same fields plus X).
 */
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
  /** Buyer/seller order ids: only in spot frames from before 2023. */
  b?: number;
  a?: number;
  /** USD-M only: MARKET, INSURANCE_FUND, ADL, ...; absent in frames from 2019. */
  X?: string;
}

/** `<symbol>@depth@100ms` diff event; `pu` (and `T`) only on USD-M. */
export interface BinanceDepthEvent {
  e: 'depthUpdate';
  E: number;
  T?: number;
  s: string;
  /** First update id in the event. */
  U: number;
  /** Final update id in the event. */
  u: number;
  /** USD-M: final update id of the previous event on this stream. */
  pu?: number;
  b: [string, string][];
  a: [string, string][];
}

/** `GET /api/v3/depth` and `GET /fapi/v1/depth` body; no symbol in it. `E`/`T` only on USD-M. */
export interface BinanceDepthSnapshot {
  lastUpdateId: number;
  E?: number;
  T?: number;
  bids: [string, string][];
  asks: [string, string][];
}

/** Documented limit of streams per connection, spot and USD-M. */
const MAX_STREAMS_PER_CONNECTION = 1024;
/** Binance closes every connection at 24 h; leave an hour of margin to reconnect cleanly. */
const MAX_CONNECTION_AGE_MS = 23 * 3600_000;

const ZERO = /^0+(\.0+)?$/;

/** True for "0", "0.00000000" and the like: Binance marks absent prices and sizes with zero. */
export function isZeroDecimal(s: string): boolean {
  return ZERO.test(s);
}

export function isTimestamp(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

const symbolCache = new Map<string, string>();

/** Binance concatenated ids (BTCUSDT) to BTC-USDT; memoized because it runs for every message. */
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

function isResponse(v: Record<string, unknown>): v is Record<string, unknown> & BinanceResponseFrame {
  return 'result' in v && 'id' in v;
}

function isErrorFrame(v: Record<string, unknown>): v is Record<string, unknown> & BinanceErrorFrame {
  return isObject(v.error) && typeof v.error.code === 'number' && typeof v.error.msg === 'string' && 'id' in v;
}

function isCombined(v: Record<string, unknown>): v is Record<string, unknown> & BinanceCombinedFrame {
  return typeof v.stream === 'string' && 'data' in v;
}

const STREAM_DATA_TYPES: ReadonlyMap<string, DataType> = new Map([
  ['trade', 'trade'],
  ['depth', 'orderbook'],
  ['depthUpdate', 'orderbook'],
  ['forceOrder', 'liquidation'],
]);

/**
 * The data type a frame that could not be parsed was meant to carry, read from its stream name or
 * event type, so the error is counted against the right stream. Only used on the failure path.
 */
function sniffDataType(frame: string): DataType | null {
  const match = /"stream"\s*:\s*"[^"@]*@([A-Za-z]+)/.exec(frame) ?? /"e"\s*:\s*"([A-Za-z]+)"/.exec(frame);
  return STREAM_DATA_TYPES.get(match?.[1] ?? '') ?? null;
}

/**
 * The event inside a Binance WebSocket frame, unwrapping the combined-stream envelope; null for
 * subscription answers and refusals (control() decides what to do about those).
 */
export function binanceEvent(frame: string): Record<string, unknown> | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame) as unknown;
  } catch (err) {
    throw new MalformedFrameError('malformed_json', `not JSON: ${frame.slice(0, 80)}`, sniffDataType(frame), { cause: err });
  }
  if (!isObject(parsed)) throw new MalformedFrameError('unexpected_shape', 'frame is not a JSON object');
  if (isCombined(parsed)) {
    if (!isObject(parsed.data)) {
      throw new MalformedFrameError('unexpected_shape', `stream ${parsed.stream}: data is not an object`, sniffDataType(frame));
    }
    return parsed.data;
  }
  if (isResponse(parsed) || isErrorFrame(parsed)) return null;
  if (typeof parsed.e === 'string') return parsed;
  throw new MalformedFrameError('unexpected_shape', 'frame is neither an event, a combined-stream frame nor a response');
}

/** A refused request or an announced shutdown needs a fresh connection; everything else needs nothing. */
export function binanceControl(frame: string): ControlAction {
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
}

export function isTradeEvent(v: Record<string, unknown>): v is Record<string, unknown> & BinanceTradeEvent {
  return (
    typeof v.s === 'string' &&
    Number.isSafeInteger(v.t) &&
    isDecimal(v.p) &&
    isDecimal(v.q) &&
    isTimestamp(v.T) &&
    isTimestamp(v.E) &&
    typeof v.m === 'boolean' &&
    (v.X === undefined || typeof v.X === 'string')
  );
}

export function toTrade(event: BinanceTradeEvent, venue: Venue, marketType: MarketType, receiveTime: number): TradeRecord {
  return {
    dataType: 'trade',
    venue,
    marketType,
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

/** Every entry a [price, quantity] pair of decimal strings. */
function isLevelList(v: unknown): v is [string, string][] {
  if (!Array.isArray(v)) return false;
  for (const level of v) {
    if (!Array.isArray(level) || level.length !== 2 || !isDecimal(level[0]) || !isDecimal(level[1])) return false;
  }
  return true;
}

export function isDepthEvent(v: Record<string, unknown>): v is Record<string, unknown> & BinanceDepthEvent {
  return (
    typeof v.s === 'string' &&
    isTimestamp(v.E) &&
    Number.isSafeInteger(v.U) &&
    Number.isSafeInteger(v.u) &&
    (v.U as number) <= (v.u as number) &&
    isLevelList(v.b) &&
    isLevelList(v.a)
  );
}

/** A diff event as a book update; prevUpdateId is USD-M's `pu` and null on spot. */
export function toBookUpdate(event: BinanceDepthEvent, venue: Venue, marketType: MarketType, receiveTime: number): BookMessage {
  return {
    venue,
    marketType,
    symbol: binanceSymbol(event.s, 'orderbook'),
    instrument: event.s,
    action: 'update',
    firstUpdateId: event.U,
    lastUpdateId: event.u,
    prevUpdateId: event.pu ?? null,
    checksum: null,
    bids: event.b,
    asks: event.a,
    eventTime: event.E,
    receiveTime,
  };
}

function isDepthSnapshot(v: unknown): v is BinanceDepthSnapshot {
  return (
    isObject(v) &&
    Number.isSafeInteger(v.lastUpdateId) &&
    (v.E === undefined || isTimestamp(v.E)) &&
    isLevelList(v.bids) &&
    isLevelList(v.asks)
  );
}

/**
 * A REST depth body as a snapshot BookMessage. The body names no symbol, so the instrument it was
 * requested for is taken as given. Event time: the body's `E` (USD-M) or, where there is none
 * (spot), the receive time.
 */
export function parseDepthSnapshot(body: string, venue: Venue, marketType: MarketType, instrument: string, receiveTime: number): BookMessage {
  const parsed = parseFrame(body, 'orderbook');
  if (!isDepthSnapshot(parsed)) {
    throw new MalformedFrameError('unexpected_shape', `depth snapshot for ${instrument} missing or mistyped fields: ${body.slice(0, 120)}`, 'orderbook');
  }
  return {
    venue,
    marketType,
    symbol: binanceSymbol(instrument, 'orderbook'),
    instrument,
    action: 'snapshot',
    firstUpdateId: null,
    lastUpdateId: parsed.lastUpdateId,
    prevUpdateId: null,
    checksum: null,
    bids: parsed.bids,
    asks: parsed.asks,
    eventTime: parsed.E ?? receiveTime,
    receiveTime,
  };
}

/** One route's share of the subscriptions: streams on one URL, split at the per-connection limit. */
export interface StreamGroup {
  /** Connection id prefix, e.g. `binance_derivatives/market`. */
  idPrefix: string;
  url: string;
  dataTypes: readonly DataType[];
  streams: readonly string[];
  staleAfterMs: number;
}

/** Connection specs for stream groups: one SUBSCRIBE per connection, well under 5 inbound messages/s. */
export function streamConnections(groups: readonly StreamGroup[]): WsConnectionSpec[] {
  const specs: WsConnectionSpec[] = [];
  for (const group of groups) {
    for (let i = 0; i < group.streams.length; i += MAX_STREAMS_PER_CONNECTION) {
      const params = group.streams.slice(i, i + MAX_STREAMS_PER_CONNECTION);
      specs.push({
        id: `${group.idPrefix}/${i / MAX_STREAMS_PER_CONNECTION}`,
        url: group.url,
        dataTypes: group.dataTypes,
        subscribeMessages: [JSON.stringify({ method: 'SUBSCRIBE', params, id: 1 })],
        maxConnectionAgeMs: MAX_CONNECTION_AGE_MS,
        // Binance pings us and answers our pongs itself (ws handles them).
        keepalive: null,
        staleAfterMs: group.staleAfterMs,
      });
    }
  }
  return specs;
}

/** Refuses data types a venue does not collect the asked way, naming the config path to fix. */
export function requireSupported<T extends DataType>(venue: Venue, supported: readonly T[], dataTypes: readonly DataType[], how: string): T[] {
  const wanted: T[] = [];
  for (const dataType of dataTypes) {
    if (!(supported as readonly DataType[]).includes(dataType)) {
      const instead = supported.length > 0 ? supported.join(', ') : 'nothing';
      throw new ConfigError(`collector.venues.${venue}.dataTypes: ${venue} does not collect ${dataType} ${how} (it collects ${instead} ${how})`);
    }
    wanted.push(dataType as T);
  }
  return wanted;
}

/** Binance's book support: the stream's diffs on top of a REST depth snapshot of `limit` levels at `weight`. */
export function binanceRestBook(o: { rules: SequenceRules; venue: Venue; marketType: MarketType; depthRoute: string; limit: number; weight: number }): BookSupport {
  return {
    rules: o.rules,
    source: 'rest',
    snapshotRequest: (restBaseUrl, instrument) => ({ url: joinUrl(restBaseUrl, `${o.depthRoute}?symbol=${instrument}&limit=${o.limit}`), weight: o.weight }),
    parseSnapshot: (body, instrument, receiveTime) => parseDepthSnapshot(body, o.venue, o.marketType, instrument, receiveTime),
  };
}

/** Streams take the symbol in lower case; events and REST answers carry it in upper case. */
export function binanceInstrumentOf(symbol: string): string {
  return symbol.toUpperCase();
}

/**
 * One row of `GET /api/v3/historicalTrades` (spot) and `GET /fapi/v1/historicalTrades` (USD-M).
 * The body names no symbol: the instrument is the one asked for.
 */
export interface BinanceHistoricalTrade {
  id: number;
  price: string;
  qty: string;
  quoteQty?: string;
  /** Trade time, ms: the `T` of the `@trade` event. */
  time: number;
  isBuyerMaker: boolean;
  /** Spot only. */
  isBestMatch?: boolean;
  /** USD-M only, since 2025-11-18. */
  isRPITrade?: boolean;
}

function isHistoricalTrade(v: unknown): v is BinanceHistoricalTrade {
  return isObject(v) && Number.isSafeInteger(v.id) && isDecimal(v.price) && isDecimal(v.qty) && isTimestamp(v.time) && typeof v.isBuyerMaker === 'boolean';
}

/** The request with its query parameters replaced: the next page keeps URL, headers and weight. */
export function withParams(request: RestRequest, params: Readonly<Record<string, string | number>>): RestRequest {
  const url = new URL(request.url);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, String(value));
  return { ...request, url: url.toString() };
}

/** An integer query parameter of a request this adapter built; absent only if the request was not. */
export function requestParam(request: RestRequest, name: string): number {
  const raw = new URL(request.url).searchParams.get(name);
  if (raw === null || !/^\d+$/.test(raw)) throw new MprismError(`history request ${request.url} has no ${name}`);
  return Number(raw);
}

function hasApiKey(credentials: VenueCredentials): credentials is { apiKey: string } {
  return credentials.apiKey !== null && credentials.apiKey !== '';
}

/**
 * Binance trade history, paged by trade id: each row becomes exactly the record the `@trade`
 * normalization makes of the same trade (toTrade on the same fields), so the Msg-Id and the
 * storage row are the ones the stream would have produced.
 */
export function binanceTradeHistory(o: {
  venue: Venue;
  marketType: MarketType;
  route: string;
  /** The endpoint's maximum page size. */
  limit: number;
  weight: number;
  /** USD-M: MARKET_DATA security, the X-MBX-APIKEY header is mandatory. Spot: NONE since 2023-07-11. */
  needsApiKey: boolean;
  /** Rows the live normalizer drops too (USD-M price-0 placeholders). */
  keep: (row: BinanceHistoricalTrade) => boolean;
  /** How far back the venue keeps trades, where documented (USD-M: 3 months). */
  horizonMs?: number;
}): HistorySource {
  const endpoint = `GET ${o.route}`;
  const horizonMs = o.horizonMs;
  return {
    endpoint,
    pagesBy: 'id',
    ...(horizonMs === undefined ? {} : { horizonMs: () => horizonMs }),
    blockedReason: (credentials) => (o.needsApiKey && !hasApiKey(credentials) ? `${endpoint} needs an API key: set collector.venues.${o.venue}.apiKey` : null),
    request(restBaseUrl: string, query: HistoryQuery, credentials: VenueCredentials): RestRequest {
      if (query.fromId === null || !/^\d+$/.test(query.fromId)) {
        throw new MprismError(`${endpoint} pages by trade id: the query for ${query.instrument} needs a numeric fromId, got ${String(query.fromId)}`);
      }
      return {
        url: joinUrl(restBaseUrl, `${o.route}?symbol=${query.instrument}&fromId=${query.fromId}&limit=${o.limit}`),
        weight: o.weight,
        // Spot ignores the header since it became a NONE endpoint; only send the key where it is needed.
        ...(o.needsApiKey && hasApiKey(credentials) ? { headers: { 'X-MBX-APIKEY': credentials.apiKey } } : {}),
      };
    },
    parsePage(body: string, query: HistoryQuery, request: RestRequest, receiveTime: number): HistoryPage {
      const rows = parseFrame(body, 'trade');
      if (!Array.isArray(rows) || !rows.every(isHistoricalTrade)) {
        throw new MalformedFrameError('unexpected_shape', `${endpoint} response missing or mistyped fields: ${body.slice(0, 120)}`, 'trade');
      }
      const records = rows.filter(o.keep).map((row) =>
        toTrade({ e: 'trade', E: row.time, s: query.instrument, t: row.id, p: row.price, q: row.qty, T: row.time, m: row.isBuyerMaker }, o.venue, o.marketType, receiveTime),
      );
      return { records, next: nextTradePage(rows, query, request) };
    },
  };
}

/**
 * The page after `rows`: from one past the highest id, unless the hole is covered (past toId, or
 * past toMs when the last missing id is unknown) or the venue had no more (a short page).
 */
function nextTradePage(rows: readonly BinanceHistoricalTrade[], query: HistoryQuery, request: RestRequest): RestRequest | null {
  const fromId = requestParam(request, 'fromId');
  if (rows.length < requestParam(request, 'limit')) return null;
  let last = rows[0] as BinanceHistoricalTrade;
  for (const row of rows) if (row.id > last.id) last = row;
  if (query.toId !== null ? last.id >= Number(query.toId) : last.time > query.toMs) return null;
  // A venue that ignored fromId would otherwise be asked the same page forever.
  if (last.id < fromId) return null;
  return withParams(request, { fromId: last.id + 1 });
}
