import { createHash } from 'node:crypto';
import type { DataType, PolledDataType } from '../config/schema.js';
import { MprismError } from '../errors.js';
import type { BookMessage, SequenceRules, SequenceVerdict } from '../orderbook/types.js';
import type {
  FundingRateRecord,
  LiquidationRecord,
  LsrAllAccountRecord,
  LsrTopPositionRecord,
  MarketRecord,
  OpenInterestRecord,
  RecordBase,
} from '../records.js';
import {
  binanceControl,
  binanceInstrumentOf,
  binanceRestBook,
  binanceEvent,
  binanceSymbol,
  binanceTradeHistory,
  isDepthEvent,
  isTimestamp,
  isTradeEvent,
  isZeroDecimal,
  requestParam,
  requireSupported,
  streamConnections,
  toBookUpdate,
  toTrade,
  withParams,
  type StreamGroup,
} from './binance.js';
import {
  MalformedFrameError,
  shapeError,
  isDecimal,
  isObject,
  isSignedDecimal,
  joinUrl,
  parseFrame,
  type FrameSink,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type PollOptions,
  type RestPoll,
  type RestRequest,
  type VenueAdapter,
  type WsConnectionSpec,
} from './types.js';
import { fastBinanceTrade } from './fast-frames.js';

/** `<symbol>@forceOrder` event ("Liquidation Order Streams"); `!forceOrder@arr` pushes the same shape. */
export interface BinanceForceOrderEvent {
  e: 'forceOrder';
  E: number;
  o: {
    s: string;
    S: 'BUY' | 'SELL';
    /** Order type (LIMIT), time in force (IOC), status (FILLED). */
    o?: string;
    f?: string;
    X?: string;
    /** Original quantity. */
    q: string;
    /** Order price. */
    p: string;
    /** Average fill price; "0" before any fill. */
    ap: string;
    /** Last filled quantity. */
    l?: string;
    /** Accumulated filled quantity. */
    z: string;
    /** Trade time, ms. */
    T: number;
  };
}

/** `GET /fapi/v1/premiumIndex?symbol=` body. */
export interface BinancePremiumIndex {
  symbol: string;
  markPrice: string;
  indexPrice?: string;
  estimatedSettlePrice?: string;
  /** The rate of the running funding interval; negative when shorts pay. */
  lastFundingRate: string;
  nextFundingTime: number;
  interestRate?: string;
  time: number;
}

/** `GET /fapi/v1/openInterest?symbol=` body. */
export interface BinanceOpenInterest {
  symbol: string;
  /** In base units (coins). */
  openInterest: string;
  time: number;
}

/**
 * One entry of `/futures/data/topLongShortPositionRatio` and `/futures/data/globalLongShortAccountRatio`.
 * On the position endpoint longAccount/shortAccount are the shares of long and short POSITIONS,
 * despite their names.
 */
export interface BinanceLongShortRatio {
  symbol: string;
  longShortRatio: string;
  longAccount: string;
  shortAccount: string;
  /** The docs print a string, other pages a number; both occur. */
  timestamp: number | string;
}

/** One row of `GET /fapi/v1/fundingRate`: a settled rate at its funding time. */
export interface BinanceFundingRateHistory {
  symbol: string;
  fundingRate: string;
  fundingTime: number;
  /** Mark price at the funding; the docs mark it optional, and old rows may have "" or lack it. */
  markPrice?: string;
}

/** One row of `GET /futures/data/openInterestHist`; timestamp is the period start. */
export interface BinanceOpenInterestHist {
  symbol: string;
  /** In base units (coins). */
  sumOpenInterest: string;
  /** In the quote asset. */
  sumOpenInterestValue: string;
  CMCCirculatingSupply?: string;
  /** A string in the docs, a number on other pages; both occur. */
  timestamp: number | string;
}

const VENUE = 'binance_derivatives';
const MARKET_TYPE = 'perpetual';

const WS_DATA_TYPES = ['orderbook', 'trade', 'liquidation'] as const satisfies readonly DataType[];
type WsDataType = (typeof WS_DATA_TYPES)[number];
const POLLED_DATA_TYPES = ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'] as const satisfies readonly PolledDataType[];
type BinancePolledType = (typeof POLLED_DATA_TYPES)[number];

/**
 * USD-M WebSocket routes (mandatory since 2026-04-23): depth and trade on /public, forceOrder on
 * /market. A stream on the wrong route is acknowledged and then silently never delivered.
 */
const STREAMS: Readonly<Record<WsDataType, { route: 'public' | 'market'; suffix: string }>> = {
  orderbook: { route: 'public', suffix: 'depth@100ms' },
  trade: { route: 'public', suffix: 'trade' },
  liquidation: { route: 'market', suffix: 'forceOrder' },
};

/**
 * The server pings every 3 minutes, so silence is only proof of a dead socket after two missed
 * pings: forceOrder and quiet trade streams can go minutes without an event. Depth @100ms pushes
 * continuously, so a connection carrying it is dead after a minute of silence.
 */
const STALE_QUIET_MS = 8 * 60_000;
const STALE_WITH_DEPTH_MS = 60_000;

/**
 * Events this adapter does not turn into records: aggTrade (a different id space that merges fills;
 * trades come from @trade) and markPriceUpdate (funding is polled from premiumIndex).
 */
const IGNORED_EVENTS: ReadonlySet<string> = new Set(['aggTrade', 'markPriceUpdate', 'serverShutdown']);

/** Snapshot depth and its request weight (limit 1000 costs 20). */
const SNAPSHOT_LIMIT = 1000;
const SNAPSHOT_WEIGHT = 20;

const EPOCH_MS_STRING = /^\d+$/;

/**
 * USD-M diff-depth chaining: `pu` names the final id of the previous event on the stream, so each
 * event must point at the last one applied (U is not previous u + 1 on futures).
 */
export const binanceFuturesSequence: SequenceRules = {
  firstAfterSnapshot(snapshotId: number, m: BookMessage): SequenceVerdict {
    const last = m.lastUpdateId ?? 0;
    if (last < snapshotId) return { kind: 'skip' };
    if (m.firstUpdateId !== null && m.firstUpdateId <= snapshotId) return { kind: 'apply' };
    // A snapshot taken exactly at an event boundary: this event follows it with nothing in between.
    if (m.prevUpdateId === snapshotId) return { kind: 'apply' };
    return { kind: 'gap', detail: `snapshot ${snapshotId} older than first buffered event U ${String(m.firstUpdateId)}` };
  },
  next(lastAppliedId: number, m: BookMessage): SequenceVerdict {
    if (m.prevUpdateId === lastAppliedId) return { kind: 'apply' };
    // A repeat (resent after a hiccup) holds nothing the book lacks.
    if ((m.lastUpdateId ?? 0) <= lastAppliedId) return { kind: 'skip' };
    return { kind: 'gap', detail: `expected pu ${lastAppliedId} got ${String(m.prevUpdateId)}` };
  },
};

function isForceOrderEvent(v: Record<string, unknown>): v is Record<string, unknown> & BinanceForceOrderEvent {
  const o = v.o;
  return (
    isTimestamp(v.E) &&
    isObject(o) &&
    typeof o.s === 'string' &&
    (o.S === 'BUY' || o.S === 'SELL') &&
    isDecimal(o.q) &&
    isDecimal(o.p) &&
    isDecimal(o.ap) &&
    isDecimal(o.z) &&
    isTimestamp(o.T)
  );
}

/**
 * Binance sends no liquidation id; a digest of the fields that identify the event makes the same
 * event (seen again after a reconnect) publish once.
 */
export function liquidationDigest(symbol: string, time: number, side: string, quantity: string, price: string): string {
  return createHash('sha256').update(`${symbol}|${time}|${side}|${quantity}|${price}`).digest('hex').slice(0, 24);
}

function toLiquidation(event: BinanceForceOrderEvent, receiveTime: number): LiquidationRecord {
  const o = event.o;
  // Before a fill the average price and accumulated quantity are 0: fall back to the order's own.
  const price = isZeroDecimal(o.ap) ? o.p : o.ap;
  const quantity = isZeroDecimal(o.z) ? o.q : o.z;
  return {
    dataType: 'liquidation',
    venue: VENUE,
    marketType: MARKET_TYPE,
    symbol: binanceSymbol(o.s, 'liquidation'),
    instrument: o.s,
    eventTime: o.T,
    receiveTime,
    liquidationId: liquidationDigest(o.s, o.T, o.S, o.q, price),
    side: o.S === 'SELL' ? 'sell' : 'buy',
    price,
    quantity,
  };
}

function base(instrument: string, dataType: BinancePolledType, eventTime: number, receiveTime: number): RecordBase {
  return {
    dataType,
    venue: VENUE,
    marketType: MARKET_TYPE,
    symbol: binanceSymbol(instrument, dataType),
    instrument,
    eventTime,
    receiveTime,
  };
}


function isPremiumIndex(v: unknown): v is BinancePremiumIndex {
  return (
    isObject(v) &&
    typeof v.symbol === 'string' &&
    isDecimal(v.markPrice) &&
    isSignedDecimal(v.lastFundingRate) &&
    isTimestamp(v.nextFundingTime) &&
    isTimestamp(v.time)
  );
}

function isOpenInterest(v: unknown): v is BinanceOpenInterest {
  return isObject(v) && typeof v.symbol === 'string' && isDecimal(v.openInterest) && isTimestamp(v.time);
}

function isLongShortRatio(v: unknown): v is BinanceLongShortRatio {
  return (
    isObject(v) &&
    typeof v.symbol === 'string' &&
    isDecimal(v.longShortRatio) &&
    isDecimal(v.longAccount) &&
    isDecimal(v.shortAccount) &&
    (isTimestamp(v.timestamp) || (typeof v.timestamp === 'string' && EPOCH_MS_STRING.test(v.timestamp)))
  );
}

function parseFundingRate(body: string, receiveTime: number): FundingRateRecord[] {
  const v = parseFrame(body, 'funding_rate');
  if (!isPremiumIndex(v)) throw shapeError('funding_rate', 'funding_rate response missing or mistyped fields', body);
  return [
    {
      ...base(v.symbol, 'funding_rate', v.time, receiveTime),
      dataType: 'funding_rate',
      fundingRate: v.lastFundingRate,
      nextFundingTime: v.nextFundingTime,
      markPrice: v.markPrice,
    },
  ];
}

function parseOpenInterest(body: string, receiveTime: number): OpenInterestRecord[] {
  const v = parseFrame(body, 'open_interest');
  if (!isOpenInterest(v)) throw shapeError('open_interest', 'open_interest response missing or mistyped fields', body);
  return [{ ...base(v.symbol, 'open_interest', v.time, receiveTime), dataType: 'open_interest', openInterest: v.openInterest, openInterestValue: null }];
}

function isFundingRateHistory(v: unknown): v is BinanceFundingRateHistory {
  return (
    isObject(v) &&
    typeof v.symbol === 'string' &&
    isSignedDecimal(v.fundingRate) &&
    isTimestamp(v.fundingTime) &&
    (v.markPrice === undefined || v.markPrice === '' || isDecimal(v.markPrice))
  );
}

function isEpochMs(v: unknown): v is number | string {
  return isTimestamp(v) || (typeof v === 'string' && EPOCH_MS_STRING.test(v));
}

function isOpenInterestHist(v: unknown): v is BinanceOpenInterestHist {
  return isObject(v) && typeof v.symbol === 'string' && isDecimal(v.sumOpenInterest) && isDecimal(v.sumOpenInterestValue) && isEpochMs(v.timestamp);
}

/** Settled rates: no next funding time is known for them, and the mark price only where the row has one. */
function parseFundingHistory(body: string, receiveTime: number): { rows: BinanceFundingRateHistory[]; records: FundingRateRecord[] } {
  const v = parseFrame(body, 'funding_rate');
  if (!Array.isArray(v) || !v.every(isFundingRateHistory)) throw shapeError('funding_rate', 'funding_rate response missing or mistyped fields', body);
  const records = v.map(
    (r): FundingRateRecord => ({
      ...base(r.symbol, 'funding_rate', r.fundingTime, receiveTime),
      dataType: 'funding_rate',
      fundingRate: r.fundingRate,
      nextFundingTime: 0,
      markPrice: r.markPrice === undefined || r.markPrice === '' ? null : r.markPrice,
    }),
  );
  return { rows: v, records };
}

function parseOpenInterestHist(body: string, receiveTime: number): OpenInterestRecord[] {
  const v = parseFrame(body, 'open_interest');
  if (!Array.isArray(v) || !v.every(isOpenInterestHist)) throw shapeError('open_interest', 'open_interest response missing or mistyped fields', body);
  return v.map((r) => ({
    ...base(r.symbol, 'open_interest', Number(r.timestamp), receiveTime),
    dataType: 'open_interest',
    openInterest: r.sumOpenInterest,
    openInterestValue: r.sumOpenInterestValue,
  }));
}

function parseRatios(body: string, dataType: 'lsr_top_position' | 'lsr_all_account'): BinanceLongShortRatio[] {
  const v = parseFrame(body, dataType);
  if (!Array.isArray(v) || !v.every(isLongShortRatio)) throw shapeError(dataType, `${dataType} response missing or mistyped fields`, body);
  return v;
}

function parseTopPosition(body: string, receiveTime: number, period: string): LsrTopPositionRecord[] {
  return parseRatios(body, 'lsr_top_position').map((r) => ({
    ...base(r.symbol, 'lsr_top_position', Number(r.timestamp), receiveTime),
    dataType: 'lsr_top_position',
    period,
    longShortRatio: r.longShortRatio,
    longPositionPct: r.longAccount,
    shortPositionPct: r.shortAccount,
  }));
}

function parseAllAccount(body: string, receiveTime: number, period: string): LsrAllAccountRecord[] {
  return parseRatios(body, 'lsr_all_account').map((r) => ({
    ...base(r.symbol, 'lsr_all_account', Number(r.timestamp), receiveTime),
    dataType: 'lsr_all_account',
    period,
    longShortRatio: r.longShortRatio,
    longAccountPct: r.longAccount,
    shortAccountPct: r.shortAccount,
  }));
}

/** What each polled type asks for; limit=2 so the latest closed period is there even at a boundary. */
function pollRequest(dataType: BinancePolledType, instrument: string, period: string): { route: string; parse: RestPoll['parse'] } {
  switch (dataType) {
    case 'funding_rate':
      return { route: `/fapi/v1/premiumIndex?symbol=${instrument}`, parse: parseFundingRate };
    case 'open_interest':
      return { route: `/fapi/v1/openInterest?symbol=${instrument}`, parse: parseOpenInterest };
    case 'lsr_top_position':
      return {
        route: `/futures/data/topLongShortPositionRatio?symbol=${instrument}&period=${period}&limit=2`,
        parse: (body, receiveTime) => parseTopPosition(body, receiveTime, period),
      };
    case 'lsr_all_account':
      return {
        route: `/futures/data/globalLongShortAccountRatio?symbol=${instrument}&period=${period}&limit=2`,
        parse: (body, receiveTime) => parseAllAccount(body, receiveTime, period),
      };
  }
}

/**
 * premiumIndex and openInterest cost weight 1. The /futures/data endpoints cost no weight; they have
 * their own 1000 requests per 5 min per IP, far above any sensible poll rate.
 */
const POLL_WEIGHT: Readonly<Record<BinancePolledType, number>> = {
  funding_rate: 1,
  open_interest: 1,
  lsr_top_position: 0,
  lsr_all_account: 0,
};

/**
 * `GET /fapi/v1/historicalTrades` (MARKET_DATA: X-MBX-APIKEY header, no signature): weight 20,
 * limit max 500, market trades only (no insurance-fund or ADL fills, as on the stream), the last
 * three months only.
 */
const TRADE_HISTORY = binanceTradeHistory({
  venue: VENUE,
  marketType: MARKET_TYPE,
  route: '/fapi/v1/historicalTrades',
  limit: 500,
  weight: 20,
  needsApiKey: true,
  keep: (row) => !isZeroDecimal(row.price),
  horizonMs: 90 * 86_400_000,
});

/**
 * `GET /fapi/v1/fundingRate`: settled rates, ascending; more than `limit` in the range come back as
 * the first `limit` from startTime, so pages move forward. No request weight: its own 500 requests
 * per 5 min per IP (shared with fundingInfo), and one page of 1000 covers 41 days even at 1 h funding.
 */
const FUNDING_HISTORY_LIMIT = 1000;

const FUNDING_HISTORY: HistorySource = {
  endpoint: 'GET /fapi/v1/fundingRate',
  pagesBy: 'time',
  blockedReason: () => null,
  request: (restBaseUrl: string, query: HistoryQuery): RestRequest => ({
    url: joinUrl(restBaseUrl, `/fapi/v1/fundingRate?symbol=${query.instrument}&startTime=${query.fromMs}&endTime=${query.toMs}&limit=${FUNDING_HISTORY_LIMIT}`),
    weight: 0,
  }),
  parsePage(body: string, query: HistoryQuery, request: RestRequest, receiveTime: number): HistoryPage {
    const { rows, records } = parseFundingHistory(body, receiveTime);
    // A short page is the end of the range; a full one continues after its last funding time.
    if (rows.length < requestParam(request, 'limit')) return { records, next: null };
    const last = Math.max(...rows.map((r) => r.fundingTime));
    // A venue that ignored startTime would otherwise be asked the same page forever.
    const done = last >= query.toMs || last < requestParam(request, 'startTime');
    return { records, next: done ? null : withParams(request, { startTime: last + 1 }) };
  },
};

/**
 * Rows per page of the /futures/data period endpoints (openInterestHist and the long/short ratios):
 * the documented maximum. Weight 0, their own 1000 requests per 5 min per IP, the latest 30 days.
 */
const PERIOD_HISTORY_LIMIT = 500;

const PERIOD_MS: Readonly<Record<string, number>> = {
  '5m': 300_000,
  '15m': 900_000,
  '30m': 1_800_000,
  '1h': 3_600_000,
  '2h': 7_200_000,
  '4h': 14_400_000,
  '6h': 21_600_000,
  '12h': 43_200_000,
  '1d': 86_400_000,
};

/**
 * History of one /futures/data period endpoint. Which end a range holding more than `limit` rows is
 * cut at is not documented, so each request asks for a window of at most `limit` periods and the
 * next page is the window after it: nothing is cut whichever end the venue keeps.
 */
function periodHistory(
  dataType: 'open_interest' | 'lsr_top_position' | 'lsr_all_account',
  route: string,
  parse: (body: string, receiveTime: number, period: string) => MarketRecord[],
): HistorySource {
  return {
    endpoint: `GET ${route}`,
    pagesBy: 'time',
    horizonMs: () => 30 * 86_400_000,
    blockedReason: () => null,
    request(restBaseUrl: string, query: HistoryQuery, _credentials, options: PollOptions): RestRequest {
      const periodMs = PERIOD_MS[options.lsrPeriod];
      if (periodMs === undefined) throw new MprismError(`${dataType} history: unknown period ${options.lsrPeriod}`);
      const endTime = Math.min(query.toMs, query.fromMs + PERIOD_HISTORY_LIMIT * periodMs - 1);
      return {
        url: joinUrl(restBaseUrl, `${route}?symbol=${query.instrument}&period=${options.lsrPeriod}&startTime=${query.fromMs}&endTime=${endTime}&limit=${PERIOD_HISTORY_LIMIT}`),
        weight: 0,
      };
    },
    parsePage(body: string, query: HistoryQuery, request: RestRequest, receiveTime: number): HistoryPage {
      const period = new URL(request.url).searchParams.get('period');
      if (period === null) throw new MprismError(`history request ${request.url} has no period`);
      const records = parse(body, receiveTime, period);
      const start = requestParam(request, 'startTime');
      const end = requestParam(request, 'endTime');
      if (end >= query.toMs) return { records, next: null };
      return { records, next: withParams(request, { startTime: end + 1, endTime: Math.min(query.toMs, end + (end - start + 1)) }) };
    },
  };
}

const HISTORY: Readonly<Record<'trade' | BinancePolledType, HistorySource>> = {
  trade: TRADE_HISTORY,
  funding_rate: FUNDING_HISTORY,
  open_interest: periodHistory('open_interest', '/futures/data/openInterestHist', (body, receiveTime) => parseOpenInterestHist(body, receiveTime)),
  // The same endpoints and parsers as the live polls, so a refilled row is the polled record.
  lsr_top_position: periodHistory('lsr_top_position', '/futures/data/topLongShortPositionRatio', parseTopPosition),
  lsr_all_account: periodHistory('lsr_all_account', '/futures/data/globalLongShortAccountRatio', parseAllAccount),
};

/**
 * Insurance-fund and ADL fills, and price-0 placeholders, are not market trades. Frames from before
 * X existed were all market trades.
 */
function isMarketTrade(event: { X?: string; p: string }): boolean {
  return (event.X === undefined || event.X === 'MARKET') && !isZeroDecimal(event.p);
}

export const binanceDerivatives: VenueAdapter = {
  venue: VENUE,
  marketType: MARKET_TYPE,
  wsDataTypes: WS_DATA_TYPES,
  polledDataTypes: POLLED_DATA_TYPES,
  tradeIds: 'increasing',
  history: HISTORY,

  connections(baseUrl: string, symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[] {
    const wanted = requireSupported(VENUE, WS_DATA_TYPES, dataTypes, 'over WebSocket');
    const groups: StreamGroup[] = [];
    for (const route of ['public', 'market'] as const) {
      const onRoute = wanted.filter((dataType) => STREAMS[dataType].route === route);
      if (onRoute.length === 0) continue;
      groups.push({
        idPrefix: `${VENUE}/${route}`,
        url: joinUrl(baseUrl, `/${route}/stream`),
        dataTypes: onRoute,
        streams: onRoute.flatMap((dataType) => symbols.map((s) => `${s.toLowerCase()}@${STREAMS[dataType].suffix}`)),
        staleAfterMs: onRoute.includes('orderbook') ? STALE_WITH_DEPTH_MS : STALE_QUIET_MS,
      });
    }
    return streamConnections(groups);
  },

  normalize(frame: string, receiveTime: number, out: FrameSink): void {
    // Nearly every frame is one trade: read in place, without JSON.parse (see fast-frames).
    const trade = fastBinanceTrade(frame);
    if (trade !== null) {
      if (isMarketTrade(trade)) out.record(toTrade(trade, VENUE, MARKET_TYPE, receiveTime));
      return;
    }
    const event = binanceEvent(frame);
    if (event === null) return;
    switch (event.e) {
      case 'depthUpdate':
        if (!isDepthEvent(event) || !Number.isSafeInteger(event.pu)) {
          throw new MalformedFrameError('unexpected_shape', `depth event missing or mistyped fields: ${frame.slice(0, 120)}`, 'orderbook');
        }
        out.book(toBookUpdate(event, VENUE, MARKET_TYPE, receiveTime));
        return;
      case 'trade':
        if (!isTradeEvent(event)) {
          throw new MalformedFrameError('unexpected_shape', `trade event missing or mistyped fields: ${frame.slice(0, 120)}`, 'trade');
        }
        if (!isMarketTrade(event)) return;
        out.record(toTrade(event, VENUE, MARKET_TYPE, receiveTime));
        return;
      case 'forceOrder':
        if (!isForceOrderEvent(event)) {
          throw new MalformedFrameError('unexpected_shape', `forceOrder event missing or mistyped fields: ${frame.slice(0, 120)}`, 'liquidation');
        }
        out.record(toLiquidation(event, receiveTime));
        return;
      default:
        if (typeof event.e === 'string' && IGNORED_EVENTS.has(event.e)) return;
        throw new MalformedFrameError('unexpected_shape', `unexpected event type ${JSON.stringify(event.e)}`);
    }
  },

  control: binanceControl,

  instrumentOf: binanceInstrumentOf,

  polls(restBaseUrl: string, symbols: readonly string[], dataTypes: readonly PolledDataType[], options: PollOptions): RestPoll[] {
    const polls: RestPoll[] = [];
    for (const dataType of requireSupported(VENUE, POLLED_DATA_TYPES, dataTypes, 'by polling')) {
      // REST wants the symbol in upper case, as the records carry it.
      for (const instrument of symbols.map((s) => s.toUpperCase())) {
        const { route, parse } = pollRequest(dataType, instrument, options.lsrPeriod);
        polls.push({
          id: `${VENUE}/${dataType}/${instrument}`,
          url: joinUrl(restBaseUrl, route),
          weight: POLL_WEIGHT[dataType],
          dataType,
          instrument,
          intervalMs: options.intervalMs[dataType],
          parse,
        });
      }
    }
    return polls;
  },

  rateLimit: { weightPerWindow: 2400, windowMs: 60_000, usedWeightHeader: 'x-mbx-used-weight-1m' },

  book: binanceRestBook({ rules: binanceFuturesSequence, venue: VENUE, marketType: MARKET_TYPE, depthRoute: '/fapi/v1/depth', limit: SNAPSHOT_LIMIT, weight: SNAPSHOT_WEIGHT }),
};
