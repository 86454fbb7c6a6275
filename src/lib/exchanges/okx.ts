import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { DataType, PolledDataType } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { BookMessage, SequenceRules, SequenceVerdict } from '../orderbook/types.js';
import type { LiquidationRecord, MarketType, PriceLevel, TradeRecord } from '../records.js';
import {
  MalformedFrameError,
  shapeError,
  isDecimal,
  isObject,
  joinUrl,
  parseFrame,
  type BookSupport,
  type ControlAction,
  type FrameSink,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type PollOptions,
  type RateLimitPolicy,
  type RestPoll,
  type RestRequest,
  type VenueAdapter,
  type WsConnectionSpec,
} from './types.js';
import { fastOkxTrades } from './fast-frames.js';

// ---------------------------------------------------------------------------------------------
// Raw payloads (OKX API v5, public WebSocket and REST), as documented.

/** `[px, sz, liquidatedOrders (deprecated, always "0"), orderCount]`; sz "0" deletes the level. */
export type OkxLevel = [px: string, sz: string, ...rest: string[]];

/** What a push or a subscription is about. */
export interface OkxArg {
  channel: string;
  instId?: string;
  /** `liquidation-orders` subscribes per instrument type (SWAP), not per instrument. */
  instType?: string;
}

/** Every data push: `{"arg":{...},"action"?:...,"data":[...]}`. */
export interface OkxPush {
  arg: OkxArg;
  /** books channels only. */
  action?: 'snapshot' | 'update';
  data: unknown[];
}

/** One `books` push item. seqId/prevSeqId exist since 2023; checksum is always 0 since 2026-06-23. */
export interface OkxBookData {
  asks: OkxLevel[];
  bids: OkxLevel[];
  /** Push time, ms as a string. */
  ts: string;
  checksum?: number;
  seqId?: number;
  /** -1 on a snapshot. */
  prevSeqId?: number;
}

/** One `trades` push item; `count` (fills aggregated into it) and `seqId` are newer additions. */
export interface OkxTradeData {
  instId: string;
  tradeId: string;
  px: string;
  sz: string;
  /** Taker side. */
  side: 'buy' | 'sell';
  ts: string;
  count?: string;
  seqId?: number;
}

/** One liquidation inside a `liquidation-orders` item. */
export interface OkxLiquidationDetail {
  /** Side of the liquidation order: sell = a long was closed. */
  side: 'buy' | 'sell';
  posSide: string;
  /** Bankruptcy price. */
  bkPx: string;
  bkLoss: string;
  sz: string;
  ts: string;
  ccy: string;
}

export interface OkxLiquidationData {
  instId: string;
  instType: string;
  instFamily?: string;
  uly?: string;
  details: unknown[];
}

/** Subscription acks, refusals (`error`) and service notices. */
export interface OkxEventFrame {
  /** subscribe, unsubscribe, error, notice... */
  event: string;
  code?: string;
  msg?: string;
  arg?: OkxArg;
  connId?: string;
}

/** Every REST response: `{"code":"0","msg":"","data":[...]}`; a non-"0" code is an error. */
export interface OkxRestEnvelope {
  code: string;
  msg: string;
  data: unknown[];
}

// ---------------------------------------------------------------------------------------------
// Checksum

/** Levels per side that OKX's book checksum covers. */
export const OKX_CHECKSUM_DEPTH = 25;

/**
 * OKX v5 book checksum: the best 25 bids and asks interleaved as bid_px:bid_sz:ask_px:ask_sz:...
 * (a side that runs out is skipped), joined with ':', CRC32 (zlib polynomial) read as a signed
 * 32-bit integer. Prices and sizes are the strings exactly as received. Levels best first.
 */
export function okxChecksum(bids: readonly PriceLevel[], asks: readonly PriceLevel[]): number {
  const parts: string[] = [];
  const n = Math.max(Math.min(bids.length, OKX_CHECKSUM_DEPTH), Math.min(asks.length, OKX_CHECKSUM_DEPTH));
  for (let i = 0; i < n; i++) {
    const b = bids[i];
    const a = asks[i];
    if (b !== undefined) parts.push(b[0], b[1]);
    if (a !== undefined) parts.push(a[0], a[1]);
  }
  return crc32(parts.join(':')) | 0;
}

// ---------------------------------------------------------------------------------------------
// Markets and instruments

export type OkxVenue = 'okx_spot' | 'okx_derivatives';

/** What tells the two OKX venues apart: which instruments they carry and how they are named. */
export interface OkxMarket {
  venue: OkxVenue;
  marketType: MarketType;
  /** OKX instType of the market's instruments (the `liquidation-orders` subscription argument). */
  instType: 'SPOT' | 'SWAP';
  /** Normalized BASE-QUOTE of one of this market's instIds; null for an instId of another kind. */
  symbolOf(instId: string): string | null;
}

const SPOT_INST_ID = /^[A-Z0-9]+-[A-Z0-9]+$/;
const SWAP_INST_ID = /^([A-Z0-9]+-[A-Z0-9]+)-SWAP$/;

export const OKX_SPOT_MARKET: OkxMarket = {
  venue: 'okx_spot',
  marketType: 'spot',
  instType: 'SPOT',
  symbolOf: (instId) => (SPOT_INST_ID.test(instId) ? instId : null),
};

export const OKX_SWAP_MARKET: OkxMarket = {
  venue: 'okx_derivatives',
  marketType: 'perpetual',
  instType: 'SWAP',
  // BTC-USDT-SWAP -> BTC-USDT: the market type, not the symbol, says it is a swap.
  symbolOf: (instId) => SWAP_INST_ID.exec(instId)?.[1] ?? null,
};

export function okxSymbol(market: OkxMarket, instId: string, dataType: DataType): string {
  const symbol = market.symbolOf(instId);
  if (symbol === null) {
    throw new MalformedFrameError('unknown_symbol', `${instId} is not a ${market.instType} instrument of ${market.venue}`, dataType);
  }
  return symbol;
}

// ---------------------------------------------------------------------------------------------
// Field validation

const EPOCH_MS = /^\d{1,16}$/;

/** OKX sends times as decimal strings of epoch milliseconds. */
export function isEpochMs(v: unknown): v is string {
  return typeof v === 'string' && EPOCH_MS.test(v);
}


// ---------------------------------------------------------------------------------------------
// WebSocket subscriptions

const WS_ROUTE = '/ws/v5/public';
/** OKX allows fewer than 30 deep (`books`) channels per connection; stay well below it. */
export const OKX_MAX_INSTRUMENTS_PER_CONNECTION = 20;
/** OKX rejects subscribe requests larger than 64 KB. */
export const OKX_MAX_SUBSCRIBE_BYTES = 64 * 1024;
/** OKX closes a connection after 30 s without data; ping well before that. */
const PING_AFTER_SILENCE_MS = 20_000;
/** Two pings unanswered and then some: the connection is dead, not just quiet. */
const STALE_AFTER_MS = 45_000;

/** Channels that carry records or book messages, by the data type they carry. */
const CHANNEL_DATA_TYPE: Readonly<Record<string, DataType>> = {
  books: 'orderbook',
  trades: 'trade',
  'liquidation-orders': 'liquidation',
};

/** Per-instrument channel of each WebSocket data type; liquidations are subscribed per instType. */
const INSTRUMENT_CHANNEL: Partial<Record<DataType, string>> = { orderbook: 'books', trade: 'trades' };

/**
 * `subscribe`/`unsubscribe` requests for these args, as few as fit under OKX's 64 KB request limit
 * (each subscribe counts against the 480 per connection per hour).
 */
export function okxRequests(op: 'subscribe' | 'unsubscribe', args: readonly OkxArg[]): string[] {
  const envelope = Buffer.byteLength(JSON.stringify({ op, args: [] }));
  const frames: string[] = [];
  let batch: OkxArg[] = [];
  let bytes = envelope;
  for (const arg of args) {
    // +1 for the comma that joins it to the previous arg.
    const argBytes = Buffer.byteLength(JSON.stringify(arg)) + 1;
    if (batch.length > 0 && bytes + argBytes > OKX_MAX_SUBSCRIBE_BYTES) {
      frames.push(JSON.stringify({ op, args: batch }));
      batch = [];
      bytes = envelope;
    }
    batch.push(arg);
    bytes += argBytes;
  }
  if (batch.length > 0) frames.push(JSON.stringify({ op, args: batch }));
  return frames;
}

function connectionSpec(id: string, url: string, dataTypes: readonly DataType[], args: readonly OkxArg[]): WsConnectionSpec {
  return {
    id,
    url,
    dataTypes,
    subscribeMessages: okxRequests('subscribe', args),
    // OKX documents no forced disconnect.
    maxConnectionAgeMs: Infinity,
    keepalive: { message: 'ping', afterSilenceMs: PING_AFTER_SILENCE_MS },
    staleAfterMs: STALE_AFTER_MS,
  };
}

/**
 * Public connections for these instruments: groups of instruments with their `books`/`trades`
 * channels, plus one connection for `liquidation-orders`, which pushes for every instrument of the
 * type (a busy feed better kept apart from the books).
 */
export function okxConnections(
  market: OkxMarket,
  wsDataTypes: readonly DataType[],
  baseUrl: string,
  instIds: readonly string[],
  dataTypes: readonly DataType[],
): WsConnectionSpec[] {
  for (const dataType of dataTypes) {
    if (!wsDataTypes.includes(dataType)) {
      throw new ConfigError(`collector.venues.${market.venue}.dataTypes: ${dataType} is not collected over WebSocket for ${market.venue}`);
    }
  }
  for (const instId of instIds) {
    if (market.symbolOf(instId) === null) {
      throw new ConfigError(`collector.venues.${market.venue}.symbols: ${instId} is not a ${market.instType} instId (e.g. ${market.instType === 'SWAP' ? 'BTC-USDT-SWAP' : 'BTC-USDT'})`);
    }
  }
  const url = `${baseUrl.replace(/\/+$/, '')}${WS_ROUTE}`;
  const perInstrument = dataTypes.filter((t) => INSTRUMENT_CHANNEL[t] !== undefined);
  const specs: WsConnectionSpec[] = [];
  if (perInstrument.length > 0) {
    for (let i = 0; i < instIds.length; i += OKX_MAX_INSTRUMENTS_PER_CONNECTION) {
      const args = instIds
        .slice(i, i + OKX_MAX_INSTRUMENTS_PER_CONNECTION)
        .flatMap((instId) => perInstrument.map((t) => ({ channel: INSTRUMENT_CHANNEL[t] as string, instId })));
      specs.push(connectionSpec(`${market.venue}/public/${specs.length}`, url, perInstrument, args));
    }
  }
  if (dataTypes.includes('liquidation')) {
    specs.push(connectionSpec(`${market.venue}/liquidation`, url, ['liquidation'], [{ channel: 'liquidation-orders', instType: market.instType }]));
  }
  return specs;
}

// ---------------------------------------------------------------------------------------------
// Pushes

function isPush(v: Record<string, unknown>): v is Record<string, unknown> & OkxPush {
  return isObject(v.arg) && typeof v.arg.channel === 'string' && Array.isArray(v.data);
}

function isEventFrame(v: Record<string, unknown>): v is Record<string, unknown> & OkxEventFrame {
  return typeof v.event === 'string';
}

function isLevel(v: unknown): v is OkxLevel {
  return Array.isArray(v) && v.length >= 2 && isDecimal(v[0]) && isDecimal(v[1]);
}

function isLevels(v: unknown): v is OkxLevel[] {
  return Array.isArray(v) && v.every(isLevel);
}

function isOptionalInteger(v: unknown): v is number | undefined {
  return v === undefined || Number.isSafeInteger(v);
}

function isBookData(v: unknown): v is OkxBookData {
  return (
    isObject(v) &&
    isLevels(v.asks) &&
    isLevels(v.bids) &&
    isEpochMs(v.ts) &&
    isOptionalInteger(v.checksum) &&
    isOptionalInteger(v.seqId) &&
    isOptionalInteger(v.prevSeqId)
  );
}

function isSide(v: unknown): v is 'buy' | 'sell' {
  return v === 'buy' || v === 'sell';
}

function isTradeData(v: unknown): v is OkxTradeData {
  return (
    isObject(v) &&
    typeof v.instId === 'string' &&
    typeof v.tradeId === 'string' &&
    v.tradeId.length > 0 &&
    isDecimal(v.px) &&
    isDecimal(v.sz) &&
    isSide(v.side) &&
    isEpochMs(v.ts)
  );
}

function isLiquidationData(v: unknown): v is OkxLiquidationData {
  return isObject(v) && typeof v.instId === 'string' && typeof v.instType === 'string' && Array.isArray(v.details);
}

function isLiquidationDetail(v: unknown): v is OkxLiquidationDetail {
  return isObject(v) && isSide(v.side) && isDecimal(v.bkPx) && isDecimal(v.sz) && isEpochMs(v.ts);
}

const toPriceLevel = (l: OkxLevel): PriceLevel => [l[0], l[1]];

/** One `books` item as a BookMessage; throws MalformedFrameError. */
export function okxBookMessage(market: OkxMarket, instId: string, action: unknown, data: unknown, receiveTime: number): BookMessage {
  if (action !== 'snapshot' && action !== 'update') throw shapeError('orderbook', `book push with action ${JSON.stringify(action)}`, data);
  if (!isBookData(data)) throw shapeError('orderbook', 'book item missing or mistyped fields', data);
  return {
    venue: market.venue,
    marketType: market.marketType,
    symbol: okxSymbol(market, instId, 'orderbook'),
    instrument: instId,
    action,
    firstUpdateId: null,
    // Captures from before 2023 carry no seqId/prevSeqId; the checksum is then the only guard.
    lastUpdateId: data.seqId ?? null,
    prevUpdateId: data.prevSeqId ?? null,
    checksum: data.checksum ?? null,
    bids: data.bids.map(toPriceLevel),
    asks: data.asks.map(toPriceLevel),
    eventTime: Number(data.ts),
    receiveTime,
  };
}

/** One `trades` item as a TradeRecord; throws MalformedFrameError. */
export function okxTrade(market: OkxMarket, data: unknown, receiveTime: number): TradeRecord {
  if (!isTradeData(data)) throw shapeError('trade', 'trade item missing or mistyped fields', data);
  return okxTradeRecord(market, data, receiveTime);
}

/** The record of a trade item already checked (isTradeData, or read by fastOkxTrades). */
function okxTradeRecord(market: OkxMarket, data: OkxTradeData, receiveTime: number): TradeRecord {
  return {
    dataType: 'trade',
    venue: market.venue,
    marketType: market.marketType,
    symbol: okxSymbol(market, data.instId, 'trade'),
    instrument: data.instId,
    eventTime: Number(data.ts),
    receiveTime,
    tradeId: data.tradeId,
    price: data.px,
    // In the venue's units: coins on spot, contracts on swaps (contract value differs per instrument).
    quantity: data.sz,
    side: data.side,
  };
}

/** OKX sends no liquidation id: a digest of the fields that identify one (instId, ts, side, sz, bkPx). */
export function okxLiquidationId(instId: string, d: OkxLiquidationDetail): string {
  return createHash('sha256').update(`${instId}|${d.ts}|${d.side}|${d.sz}|${d.bkPx}`).digest('hex').slice(0, 32);
}

/** One `liquidation-orders` item: a record per `details[]` entry; throws MalformedFrameError. */
export function okxLiquidations(market: OkxMarket, data: unknown, receiveTime: number): LiquidationRecord[] {
  if (!isLiquidationData(data)) throw shapeError('liquidation', 'liquidation item missing or mistyped fields', data);
  const symbol = okxSymbol(market, data.instId, 'liquidation');
  return data.details.map((d) => {
    if (!isLiquidationDetail(d)) throw shapeError('liquidation', `liquidation detail of ${data.instId} missing or mistyped fields`, d);
    return {
      dataType: 'liquidation',
      venue: market.venue,
      marketType: market.marketType,
      symbol,
      instrument: data.instId,
      eventTime: Number(d.ts),
      receiveTime,
      liquidationId: okxLiquidationId(data.instId, d),
      side: d.side,
      // Bankruptcy price; size in contracts, as OKX sends it.
      price: d.bkPx,
      quantity: d.sz,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Control frames

/** Service upgrade notice: OKX is about to drop the connection. */
const NOTICE_SERVICE_UPGRADE = '64008';

export function okxControl(frame: string): ControlAction {
  if (frame === 'pong') return { kind: 'none' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame) as unknown;
  } catch {
    return { kind: 'none' };
  }
  if (!isObject(parsed) || !isEventFrame(parsed)) return { kind: 'none' };
  if (parsed.event === 'error') {
    return { kind: 'reconnect', reason: `OKX error ${parsed.code ?? '?'}: ${parsed.msg ?? ''}` };
  }
  if (parsed.event === 'notice' && parsed.code === NOTICE_SERVICE_UPGRADE) {
    return { kind: 'reconnect', reason: `OKX notice ${parsed.code}: ${parsed.msg ?? 'service upgrade'}` };
  }
  return { kind: 'none' };
}

// ---------------------------------------------------------------------------------------------
// Orderbook rules

/**
 * seqId/prevSeqId chaining, with the documented exceptions: a keepalive (no changes) repeats
 * seqId as prevSeqId, and after maintenance the sequence restarts lower (seqId < prevSeqId).
 */
export const okxSequenceRules: SequenceRules = {
  firstAfterSnapshot(snapshotId: number, m: BookMessage): SequenceVerdict {
    // The stream's own snapshot seqId chains exactly like any later message.
    return okxSequenceRules.next(snapshotId, m);
  },
  next(lastAppliedId: number, m: BookMessage): SequenceVerdict {
    const seq = m.lastUpdateId;
    const prev = m.prevUpdateId;
    // Pre-2023 messages carry no sequence at all; the checksum is what validates them.
    if (seq === null) return { kind: 'apply' };
    if (prev === null) return { kind: 'gap', detail: `seqId ${seq} without prevSeqId` };
    // Includes the empty keepalive, whose prevSeqId == seqId == last applied.
    if (prev === lastAppliedId) return { kind: 'apply' };
    if (seq < prev) return { kind: 'apply' };
    if (seq <= lastAppliedId) return { kind: 'skip' };
    return { kind: 'gap', detail: `expected prevSeqId ${lastAppliedId}, got prevSeqId ${prev} (seqId ${seq})` };
  },
};

function okxBookSupport(): BookSupport {
  return {
    rules: okxSequenceRules,
    source: 'stream',
    // OKX pushes a fresh snapshot when a channel is subscribed again.
    resubscribe: (instId) => [...okxRequests('unsubscribe', [{ channel: 'books', instId }]), ...okxRequests('subscribe', [{ channel: 'books', instId }])],
    checksum: okxChecksum,
  };
}

// ---------------------------------------------------------------------------------------------
// REST

/** `data` of an OKX REST response; a non-"0" code is a venue error. Throws MalformedFrameError. */
export function okxRestData(body: string, dataType: DataType | null): unknown[] {
  const parsed = parseFrame(body, dataType);
  if (!isObject(parsed) || typeof parsed.code !== 'string') throw shapeError(dataType, 'not an OKX response envelope', parsed);
  if (parsed.code !== '0') {
    throw new MalformedFrameError('venue_error', `OKX error ${parsed.code}: ${typeof parsed.msg === 'string' ? parsed.msg : ''}`, dataType);
  }
  if (!Array.isArray(parsed.data)) throw shapeError(dataType, 'response data is not an array', parsed);
  return parsed.data;
}

/**
 * One conservative budget for every OKX endpoint we poll (documented: funding rate 10, open interest
 * 20, rubik ratios 5 requests per 2 s per IP and instrument); every request weighs 1.
 */
export const OKX_RATE_LIMIT: RateLimitPolicy = { weightPerWindow: 10, windowMs: 2000, usedWeightHeader: null };

// ---------------------------------------------------------------------------------------------
// History

/** `url` with these query parameters set (or replaced), keeping its base and path prefix. */
export function withParams(url: string, params: Readonly<Record<string, string>>): string {
  const u = new URL(url);
  for (const [name, value] of Object.entries(params)) u.searchParams.set(name, value);
  return u.toString();
}

/** A query parameter of a request we built; null when absent. */
export function paramOf(request: RestRequest, name: string): string | null {
  return new URL(request.url).searchParams.get(name);
}

/** Trades per `history-trades` page: OKX's maximum, and its default. */
export const OKX_TRADE_HISTORY_LIMIT = 100;

const NUMERIC_ID = /^\d{1,40}$/;

function compareIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Trade ids bounding a hole, when both are known and numeric (OKX ids are). */
function idRange(query: HistoryQuery): { from: bigint; to: bigint } | null {
  if (query.fromId === null || query.toId === null || !NUMERIC_ID.test(query.fromId) || !NUMERIC_ID.test(query.toId)) return null;
  return { from: BigInt(query.fromId), to: BigInt(query.toId) };
}

/**
 * `GET /api/v5/market/history-trades`: public trades of the last 3 months, newest first, at most 100
 * a page, 20 requests per 2 s per IP, no API key. `after` asks for trades older than a trade id
 * (type=1) or than a time (type=2, which cannot be combined with `before`). A hole whose missing
 * ids are known starts just above the last of them; one known only by time starts at its end time
 * and then pages by id, since paging by time alone skips trades sharing the boundary millisecond.
 * Items have the `trades` push's fields (without count and seqId), so they become the same records.
 * pagesBy is `time` because the times suffice: ids, when known, only bound the hole exactly.
 */
export function okxTradeHistory(market: OkxMarket): HistorySource {
  return {
    endpoint: 'GET /api/v5/market/history-trades',
    pagesBy: 'time',
    horizonMs: () => 90 * 86_400_000,
    blockedReason: () => null,
    request(restBaseUrl, query): RestRequest {
      const ids = idRange(query);
      const q = encodeURIComponent(query.instrument);
      // `after` is exclusive: one above the hole's last id, one ms after its end.
      const cursor = ids !== null ? `type=1&after=${ids.to + 1n}` : `type=2&after=${query.toMs + 1}`;
      return { url: joinUrl(restBaseUrl, `/api/v5/market/history-trades?instId=${q}&${cursor}&limit=${OKX_TRADE_HISTORY_LIMIT}`), weight: 1 };
    },
    parsePage(body, query, request, receiveTime): HistoryPage {
      const data = okxRestData(body, 'trade');
      const trades = data.map((d) => okxTrade(market, d, receiveTime));
      let oldest: { id: bigint; time: number } | null = null;
      for (const t of trades) {
        // A page about another instrument would refill the wrong stream.
        if (t.instrument !== query.instrument) throw new MalformedFrameError('unexpected_shape', `asked for the trades of ${query.instrument}, got ${t.instrument}`, 'trade');
        if (!NUMERIC_ID.test(t.tradeId)) throw new MalformedFrameError('unexpected_shape', `trade id ${t.tradeId} of ${t.instrument} is not a number to page by`, 'trade');
        const id = BigInt(t.tradeId);
        if (oldest === null || id < oldest.id) oldest = { id, time: t.eventTime };
      }
      const ids = idRange(query);
      const inHole = (id: bigint, time: number) => (ids !== null ? id >= ids.from && id <= ids.to : time >= query.fromMs && time <= query.toMs);
      // Oldest first, the order the stream delivered them in.
      const records = trades.filter((t) => inHole(BigInt(t.tradeId), t.eventTime)).sort((a, b) => compareIds(a.tradeId, b.tradeId));
      // Nothing older (beyond the 3 months): done. A short page proves nothing: a venue may cap pages below the limit asked.
      if (oldest === null) return { records, next: null };
      // Ids and times grow together: once a page reaches below the hole, it is covered. A trade at
      // exactly fromMs may have older siblings in the same millisecond, so times must pass below it.
      const covered = ids !== null ? oldest.id <= ids.from : oldest.time < query.fromMs;
      if (covered) return { records, next: null };
      const previous = paramOf(request, 'type') === '1' ? paramOf(request, 'after') : null;
      // The venue ignored the cursor: asking again would loop.
      if (previous !== null && NUMERIC_ID.test(previous) && oldest.id >= BigInt(previous)) return { records, next: null };
      return { records, next: { url: withParams(request.url, { type: '1', after: String(oldest.id) }), weight: 1 } };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Adapter

export interface OkxAdapterSpec {
  market: OkxMarket;
  wsDataTypes: readonly DataType[];
  polledDataTypes: readonly PolledDataType[];
  polls(restBaseUrl: string, instIds: readonly string[], dataTypes: readonly PolledDataType[], options: PollOptions): RestPoll[];
  /**
   * Instruments whose liquidations are kept: `liquidation-orders` pushes every instrument of the
   * type, and only configured ones may be published.
   */
  liquidationInstIds: ReadonlySet<string>;
  /** REST history of the polled types; trades' history is the same on both markets and added here. */
  polledHistory: Readonly<Partial<Record<PolledDataType, HistorySource>>>;
}

/** A VenueAdapter for one OKX v5 market. */
export function okxAdapter(spec: OkxAdapterSpec): VenueAdapter {
  const { market, wsDataTypes } = spec;
  const collectsTrades = wsDataTypes.includes('trade');

  function normalizePush(push: OkxPush, receiveTime: number, out: FrameSink): void {
    const dataType = CHANNEL_DATA_TYPE[push.arg.channel];
    if (dataType === undefined || !wsDataTypes.includes(dataType)) {
      throw new MalformedFrameError('unexpected_shape', `channel ${push.arg.channel} is not collected for ${market.venue}`);
    }
    if (dataType === 'orderbook') {
      const instId = push.arg.instId;
      if (typeof instId !== 'string') throw shapeError('orderbook', 'book push without arg.instId', push.arg);
      // Validate everything before handing anything out.
      const messages = push.data.map((d) => okxBookMessage(market, instId, push.action, d, receiveTime));
      for (const m of messages) out.book(m);
    } else if (dataType === 'trade') {
      const trades = push.data.map((d) => okxTrade(market, d, receiveTime));
      for (const t of trades) out.record(t);
    } else {
      const records: LiquidationRecord[] = [];
      for (const d of push.data) {
        if (!isLiquidationData(d)) throw shapeError('liquidation', 'liquidation item missing or mistyped fields', d);
        if (spec.liquidationInstIds.has(d.instId)) records.push(...okxLiquidations(market, d, receiveTime));
      }
      for (const r of records) out.record(r);
    }
  }

  return {
    venue: market.venue,
    marketType: market.marketType,
    wsDataTypes,
    polledDataTypes: spec.polledDataTypes,
    tradeIds: 'increasing',
    history: { ...spec.polledHistory, trade: okxTradeHistory(market) },
    // Symbols are instIds, which the records carry as they are.
    instrumentOf: (instId) => instId,
    connections: (baseUrl, instIds, dataTypes) => okxConnections(market, wsDataTypes, baseUrl, instIds, dataTypes),
    normalize(frame: string, receiveTime: number, out: FrameSink): void {
      // Answer to our keepalive ping: plain text, not JSON.
      if (frame === 'pong') return;
      // Trade pushes are most of the frames: read in place, without JSON.parse (see fast-frames).
      if (collectsTrades) {
        const items = fastOkxTrades(frame);
        if (items !== null) {
          const trades = items.map((d) => okxTradeRecord(market, d, receiveTime));
          for (const t of trades) out.record(t);
          return;
        }
      }
      const parsed = parseFrame(frame);
      if (!isObject(parsed)) throw shapeError(null, 'frame is not a JSON object', parsed);
      if (isPush(parsed)) return normalizePush(parsed, receiveTime, out);
      if (isEventFrame(parsed)) return;
      throw shapeError(null, 'frame is neither a push nor an event', parsed);
    },
    control: okxControl,
    polls: spec.polls,
    rateLimit: OKX_RATE_LIMIT,
    book: wsDataTypes.includes('orderbook') ? okxBookSupport() : null,
  };
}
