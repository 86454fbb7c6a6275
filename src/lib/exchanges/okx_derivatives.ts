import type { PolledDataType } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { FundingRateRecord, LsrAllAccountRecord, LsrTopPositionRecord, MarketRecord, OpenInterestRecord } from '../records.js';
import { OKX_SWAP_MARKET, isEpochMs, okxAdapter, okxRestData, okxSymbol, paramOf, withParams } from './okx.js';
import { multiplyDecimals } from './contracts.js';
import {
  MalformedFrameError,
  shapeError,
  isDecimal,
  isObject,
  isSignedDecimal,
  joinUrl,
  periodToMs,
  type ContractValueSupport,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type PollOptions,
  type RestPoll,
  type RestRequest,
  type VenueAdapter,
} from './types.js';

/** `GET /api/v5/public/funding-rate` item (the `funding-rate` WebSocket push has the same fields). */
export interface OkxFundingRateData {
  instId: string;
  instType: string;
  /** Current rate of the running funding interval. */
  fundingRate: string;
  /** When the running interval settles, ms: the venue's next funding. */
  fundingTime: string;
  /** The settlement after fundingTime; "" in some pushes. */
  nextFundingTime?: string;
  /** Observation time, ms; missing in pushes from before 2023. */
  ts?: string;
  premium?: string;
}

/** `GET /api/v5/public/open-interest` item. */
export interface OkxOpenInterestData {
  instId: string;
  instType: string;
  /** Contracts. */
  oi: string;
  /** Coins. */
  oiCcy: string;
  /** USD value; missing in pushes from before 2024. */
  oiUsd?: string;
  ts: string;
}

/** `GET /api/v5/public/instruments` item, the fields that size a contract. */
export interface OkxInstrumentData {
  instId: string;
  /** Contract value: a linear swap counts it in the base coin, an inverse one in USD. */
  ctVal: string;
  ctMult: string;
  ctValCcy: string;
  ctType: string;
}

/** Rubik long/short ratio point, newest first. */
export type OkxRatioPoint = [ts: string, ratio: string];

/** `GET /api/v5/public/funding-rate-history` item: one settled funding interval. */
export interface OkxFundingHistoryData {
  instId: string;
  instType: string;
  /** The rate that was predicted for the interval. */
  fundingRate: string;
  /** The rate actually settled; missing in answers from before it was added. */
  realizedRate?: string;
  /** Settlement time, ms. */
  fundingTime: string;
  formulaType?: string;
  method?: string;
}

/** `GET /api/v5/rubik/stat/contracts/open-interest-history` row, newest first. */
export type OkxOpenInterestRow = [ts: string, oi: string, oiCcy: string, oiUsd: string, ...rest: string[]];

const VENUE = 'okx_derivatives';
const POLLED: readonly PolledDataType[] = ['funding_rate', 'open_interest', 'lsr_top_position', 'lsr_all_account'];

/** Our lsrPeriod spelling to OKX's (hours and days upper case). */
const OKX_PERIOD: Readonly<Record<string, string>> = {
  '5m': '5m',
  '15m': '15m',
  '30m': '30m',
  '1h': '1H',
  '2h': '2H',
  '4h': '4H',
  '6h': '6H',
  '12h': '12H',
  '1d': '1D',
};


function isFundingRateData(v: unknown): v is OkxFundingRateData {
  return (
    isObject(v) &&
    typeof v.instId === 'string' &&
    isSignedDecimal(v.fundingRate) &&
    isEpochMs(v.fundingTime) &&
    (v.ts === undefined || isEpochMs(v.ts))
  );
}

function isOpenInterestData(v: unknown): v is OkxOpenInterestData {
  return (
    isObject(v) &&
    typeof v.instId === 'string' &&
    isDecimal(v.oiCcy) &&
    (v.oiUsd === undefined || v.oiUsd === '' || isDecimal(v.oiUsd)) &&
    isEpochMs(v.ts)
  );
}

function isRatioPoint(v: unknown): v is OkxRatioPoint {
  return Array.isArray(v) && v.length >= 2 && isEpochMs(v[0]) && isDecimal(v[1]);
}

/** A response item must be about the instrument asked for. */
function checkInstrument(dataType: PolledDataType, asked: string, got: string): void {
  if (got !== asked) throw new MalformedFrameError('unexpected_shape', `asked for ${asked}, got ${got}`, dataType);
}

/** A swap's funding record; OKX publishes no mark price with it. */
function fundingRecord(instId: string, eventTime: number, fundingRate: string, nextFundingTime: number, receiveTime: number): FundingRateRecord {
  return {
    dataType: 'funding_rate',
    venue: VENUE,
    marketType: OKX_SWAP_MARKET.marketType,
    symbol: okxSymbol(OKX_SWAP_MARKET, instId, 'funding_rate'),
    instrument: instId,
    eventTime,
    receiveTime,
    fundingRate,
    nextFundingTime,
    markPrice: null,
  };
}

export function okxFundingRates(data: readonly unknown[], instId: string, receiveTime: number): FundingRateRecord[] {
  return data.map((d) => {
    if (!isFundingRateData(d)) throw shapeError('funding_rate', 'funding rate item missing or mistyped fields', d);
    checkInstrument('funding_rate', instId, d.instId);
    // eventTime is the observation time: the same rate polled again is the same observation only if
    // ts repeats. fundingRate settles at fundingTime; OKX's own nextFundingTime is the settlement after it.
    return fundingRecord(d.instId, Number(d.ts ?? d.fundingTime), d.fundingRate, Number(d.fundingTime), receiveTime);
  });
}

export function okxOpenInterest(data: readonly unknown[], instId: string, receiveTime: number): OpenInterestRecord[] {
  return data.map((d) => {
    if (!isOpenInterestData(d)) throw shapeError('open_interest', 'open interest item missing or mistyped fields', d);
    checkInstrument('open_interest', instId, d.instId);
    return {
      dataType: 'open_interest',
      venue: VENUE,
      marketType: OKX_SWAP_MARKET.marketType,
      symbol: okxSymbol(OKX_SWAP_MARKET, d.instId, 'open_interest'),
      instrument: d.instId,
      eventTime: Number(d.ts),
      receiveTime,
      // oiCcy is in coins; oi counts contracts, whose size differs per instrument.
      openInterest: d.oiCcy,
      openInterestValue: d.oiUsd === undefined || d.oiUsd === '' ? null : d.oiUsd,
    };
  });
}

/** One record per distinct timestamp (the first, i.e. newest, where OKX repeats one); OKX gives the ratio only. */
export function okxLongShortRatios(
  dataType: 'lsr_top_position' | 'lsr_all_account',
  data: readonly unknown[],
  instId: string,
  period: string,
  receiveTime: number,
): (LsrTopPositionRecord | LsrAllAccountRecord)[] {
  const symbol = okxSymbol(OKX_SWAP_MARKET, instId, dataType);
  const seen = new Set<string>();
  const records: (LsrTopPositionRecord | LsrAllAccountRecord)[] = [];
  for (const point of data) {
    if (!isRatioPoint(point)) throw shapeError(dataType, 'long/short ratio point is not [ts, ratio]', point);
    const [ts, ratio] = point;
    if (seen.has(ts)) continue;
    seen.add(ts);
    const base = { venue: VENUE, marketType: OKX_SWAP_MARKET.marketType, symbol, instrument: instId, eventTime: Number(ts), receiveTime, period, longShortRatio: ratio } as const;
    records.push(
      dataType === 'lsr_top_position'
        ? { ...base, dataType, longPositionPct: null, shortPositionPct: null }
        : { ...base, dataType, longAccountPct: null, shortAccountPct: null },
    );
  }
  return records;
}

function okxPeriod(period: string): string {
  const okx = OKX_PERIOD[period];
  if (okx === undefined) throw new ConfigError(`collector.lsrPeriod: ${period} has no OKX equivalent`);
  return okx;
}

/** The rubik endpoint of each long/short ratio. */
const LSR_PATH: Readonly<Record<'lsr_all_account' | 'lsr_top_position', string>> = {
  lsr_all_account: '/api/v5/rubik/stat/contracts/long-short-account-ratio-contract',
  lsr_top_position: '/api/v5/rubik/stat/contracts/long-short-position-ratio-contract-top-trader',
};

interface PollTarget {
  route: string;
  parse(data: unknown[], receiveTime: number): MarketRecord[];
}

function pollTarget(dataType: PolledDataType, instId: string, options: PollOptions): PollTarget {
  const q = encodeURIComponent(instId);
  switch (dataType) {
    case 'funding_rate':
      return { route: `/api/v5/public/funding-rate?instId=${q}`, parse: (d, t) => okxFundingRates(d, instId, t) };
    case 'open_interest':
      return { route: `/api/v5/public/open-interest?instType=SWAP&instId=${q}`, parse: (d, t) => okxOpenInterest(d, instId, t) };
    case 'lsr_all_account':
    case 'lsr_top_position': {
      return {
        // Two points: a poll that comes late still finds the one it missed.
        route: `${LSR_PATH[dataType]}?instId=${q}&period=${okxPeriod(options.lsrPeriod)}&limit=2`,
        parse: (d, t) => okxLongShortRatios(dataType, d, instId, options.lsrPeriod, t),
      };
    }
    case 'volatility_index':
      throw new ConfigError(`collector.venues.${VENUE}.dataTypes: ${dataType} is not polled for ${VENUE}`);
  }
}

function okxPolls(restBaseUrl: string, instIds: readonly string[], dataTypes: readonly PolledDataType[], options: PollOptions): RestPoll[] {
  return instIds.flatMap((instId) =>
    dataTypes.map((dataType): RestPoll => {
      const target = pollTarget(dataType, instId, options);
      return {
        id: `${VENUE}/${dataType}/${instId}`,
        url: joinUrl(restBaseUrl, target.route),
        weight: 1,
        dataType,
        instrument: instId,
        intervalMs: options.intervalMs[dataType],
        parse: (body, receiveTime) => target.parse(okxRestData(body, dataType), receiveTime),
      };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// History: every endpoint below lists newest first and pages back with an exclusive upper bound.

/** OKX's maximum (and default) funding-rate-history page. */
const FUNDING_HISTORY_LIMIT = 400;
/** OKX's maximum (and default) rubik page. */
const RUBIK_LIMIT = 100;
/** OKX's finest open interest bar: history refills a hole with a point every 5 minutes. */
const OPEN_INTEREST_HISTORY_PERIOD = '5m';

function isFundingHistoryData(v: unknown): v is OkxFundingHistoryData {
  return (
    isObject(v) &&
    typeof v.instId === 'string' &&
    isEpochMs(v.fundingTime) &&
    typeof v.fundingRate === 'string' &&
    (isSignedDecimal(v.realizedRate) || isSignedDecimal(v.fundingRate))
  );
}

/**
 * Settled funding intervals as records: eventTime is the settlement (the only time history has) and
 * the rate the settled one. History says nothing of the interval after it (nextFundingTime 0), nor
 * of the mark price, which the live poll does not carry either.
 */
export function okxFundingHistory(data: readonly unknown[], instId: string, receiveTime: number): FundingRateRecord[] {
  return data.map((d) => {
    if (!isFundingHistoryData(d)) throw shapeError('funding_rate', 'funding rate history item missing or mistyped fields', d);
    checkInstrument('funding_rate', instId, d.instId);
    return fundingRecord(d.instId, Number(d.fundingTime), isSignedDecimal(d.realizedRate) ? d.realizedRate : d.fundingRate, 0, receiveTime);
  });
}

function isOpenInterestRow(v: unknown): v is OkxOpenInterestRow {
  return Array.isArray(v) && v.length >= 4 && v.slice(0, 4).every((x) => typeof x === 'string');
}

/** Open interest history rows, through the live poll's parser: coins from oiCcy, USD from oiUsd. */
export function okxOpenInterestHistory(data: readonly unknown[], instId: string, receiveTime: number): OpenInterestRecord[] {
  const items = data.map((row) => {
    if (!isOpenInterestRow(row)) throw shapeError('open_interest', 'open interest history row is not [ts, oi, oiCcy, oiUsd]', row);
    const [ts, oi, oiCcy, oiUsd] = row;
    return { instId, instType: 'SWAP', oi, oiCcy, oiUsd, ts };
  });
  return okxOpenInterest(items, instId, receiveTime);
}

/** Our period spelling of an OKX bar size (inverse of OKX_PERIOD). */
function periodOf(request: RestRequest): string {
  const okx = paramOf(request, 'period');
  const ours = Object.entries(OKX_PERIOD).find(([, v]) => v === okx)?.[0];
  if (ours === undefined) throw new MalformedFrameError('unexpected_shape', `history request without a known period: ${request.url}`);
  return ours;
}

/**
 * The next, older page: below the oldest time of this one. Null once a page reaches the hole's
 * start, comes back empty (nothing older is kept), or does not move (the venue ignored the cursor).
 * A short page proves nothing: a venue may cap pages below the limit asked.
 */
function olderPage(request: RestRequest, cursor: 'after' | 'end', times: readonly number[], fromMs: number): RestRequest | null {
  if (times.length === 0) return null;
  const oldest = Math.min(...times);
  if (oldest <= fromMs) return null;
  const previous = Number(paramOf(request, cursor));
  if (!(oldest < previous)) return null;
  return { url: withParams(request.url, { [cursor]: String(oldest) }), weight: 1 };
}

/** The rubik endpoints keep the latest 1,440 bars of a period. */
const RUBIK_HORIZON_BARS = 1440;

interface TimePagedSpec {
  dataType: PolledDataType;
  endpoint: string;
  horizonMs(options: PollOptions): number;
  /** Route of the first page, given exclusive bounds: the hole's start - 1 and its end + 1. */
  route(instId: string, newerThan: number, olderThan: number, options: PollOptions): string;
  cursor: 'after' | 'end';
  parse(data: unknown[], query: HistoryQuery, request: RestRequest, receiveTime: number): MarketRecord[];
}

function timePagedHistory(spec: TimePagedSpec): HistorySource {
  return {
    endpoint: spec.endpoint,
    pagesBy: 'time',
    horizonMs: spec.horizonMs,
    blockedReason: () => null,
    request: (restBaseUrl, query, _credentials, options) => ({
      url: joinUrl(restBaseUrl, spec.route(encodeURIComponent(query.instrument), Math.max(0, query.fromMs - 1), query.toMs + 1, options)),
      weight: 1,
    }),
    parsePage(body, query, request, receiveTime): HistoryPage {
      const all = spec.parse(okxRestData(body, spec.dataType), query, request, receiveTime);
      const records = all.filter((r) => r.eventTime >= query.fromMs && r.eventTime <= query.toMs).sort((a, b) => a.eventTime - b.eventTime);
      return { records, next: olderPage(request, spec.cursor, all.map((r) => r.eventTime), query.fromMs) };
    },
  };
}

/**
 * Settled funding rates, 3 months back: `GET /api/v5/public/funding-rate-history`, 400 a page, 10
 * requests per 2 s per IP and instrument. `after`/`before`: older/newer than a fundingTime.
 */
const fundingRateHistory = timePagedHistory({
  dataType: 'funding_rate',
  endpoint: 'GET /api/v5/public/funding-rate-history',
  horizonMs: () => 90 * 86_400_000,
  cursor: 'after',
  route: (q, before, after) => `/api/v5/public/funding-rate-history?instId=${q}&before=${before}&after=${after}&limit=${FUNDING_HISTORY_LIMIT}`,
  parse: (data, query, _request, t) => okxFundingHistory(data, query.instrument, t),
});

/**
 * 5-minute open interest: `GET /api/v5/rubik/stat/contracts/open-interest-history`, 100 a page, the
 * latest 1,440 bars only (5 days at 5m), 10 requests per 2 s per IP and instrument. `end`/`begin`:
 * older/newer than a ts.
 */
const openInterestHistory = timePagedHistory({
  dataType: 'open_interest',
  endpoint: 'GET /api/v5/rubik/stat/contracts/open-interest-history',
  horizonMs: () => RUBIK_HORIZON_BARS * 5 * 60_000,
  cursor: 'end',
  route: (q, begin, end) => `/api/v5/rubik/stat/contracts/open-interest-history?instId=${q}&period=${OPEN_INTEREST_HISTORY_PERIOD}&begin=${begin}&end=${end}&limit=${RUBIK_LIMIT}`,
  parse: (data, query, _request, t) => okxOpenInterestHistory(data, query.instrument, t),
});

/**
 * The live polls' rubik endpoints with begin/end: the latest 1,440 points of the configured period
 * (5 days at 5m), 100 a page, 5 requests per 2 s per IP and instrument. Rows parse as the polls'.
 */
function longShortRatioHistory(dataType: 'lsr_top_position' | 'lsr_all_account'): HistorySource {
  return timePagedHistory({
    dataType,
    endpoint: `GET ${LSR_PATH[dataType]}`,
    horizonMs: (options) => RUBIK_HORIZON_BARS * periodToMs(options.lsrPeriod),
    cursor: 'end',
    route: (q, begin, end, options) => `${LSR_PATH[dataType]}?instId=${q}&period=${okxPeriod(options.lsrPeriod)}&begin=${begin}&end=${end}&limit=${RUBIK_LIMIT}`,
    parse: (data, query, request, t) => okxLongShortRatios(dataType, data, query.instrument, periodOf(request), t),
  });
}

const POLLED_HISTORY: Readonly<Record<Exclude<PolledDataType, 'volatility_index'>, HistorySource>> = {
  funding_rate: fundingRateHistory,
  open_interest: openInterestHistory,
  lsr_top_position: longShortRatioHistory('lsr_top_position'),
  lsr_all_account: longShortRatioHistory('lsr_all_account'),
};

function isInstrumentData(v: unknown): v is OkxInstrumentData {
  return isObject(v) && typeof v.instId === 'string' && isDecimal(v.ctVal) && isDecimal(v.ctMult) && typeof v.ctValCcy === 'string' && typeof v.ctType === 'string';
}

/**
 * Coins per contract of one swap: ctVal x ctMult, from `GET /api/v5/public/instruments`. Only a
 * linear swap's contract is worth a fixed number of coins; an inverse swap's is worth USD, and its
 * size in coins would depend on the price, so it is refused.
 */
export const okxContractValues: ContractValueSupport = {
  request: (restBaseUrl, instId) => ({
    url: joinUrl(restBaseUrl, `/api/v5/public/instruments?instType=SWAP&instId=${encodeURIComponent(instId)}`),
    weight: 1,
  }),
  // Without instId OKX lists every swap (a few hundred, one page).
  listAll: (restBaseUrl) => ({ url: joinUrl(restBaseUrl, '/api/v5/public/instruments?instType=SWAP'), weight: 1 }),
  reader(body) {
    const byId = new Map<unknown, unknown>();
    // The first item of an instId counts, as OKX lists each once.
    for (const d of okxRestData(body, null)) if (isObject(d) && !byId.has(d.instId)) byId.set(d.instId, d);
    return (instId) => okxContractValue(byId.get(instId), instId);
  },
};

/** Coins per contract from an instruments item (undefined: the answer did not list instId). */
function okxContractValue(item: unknown, instId: string): string {
  if (item === undefined) throw new MalformedFrameError('unknown_symbol', `OKX lists no swap ${instId}`);
  if (!isInstrumentData(item)) throw new MalformedFrameError('unexpected_shape', `instrument ${instId} without ctVal, ctMult, ctValCcy, ctType: ${JSON.stringify(item).slice(0, 160)}`);
  const base = instId.split('-')[0];
  if (item.ctType !== 'linear' || item.ctValCcy !== base) {
    throw new MalformedFrameError('unexpected_shape', `${instId} is worth ${item.ctVal} ${item.ctValCcy} a contract (ctType ${item.ctType}); only linear swaps valued in ${base ?? 'the base coin'} can be sized in coins`);
  }
  const value = multiplyDecimals(item.ctVal, item.ctMult);
  if (!/[1-9]/.test(value)) throw new MalformedFrameError('unexpected_shape', `${instId} has a contract value of 0`);
  return value;
}

/**
 * OKX perpetual swaps (instIds like BTC-USDT-SWAP, symbol BTC-USDT): books, trades and liquidations
 * over the public WebSocket; funding, open interest and long/short ratios polled. `instIds` are the
 * configured instruments: the liquidation channel pushes every swap, and only these are kept.
 * Trade, liquidation and book sizes come in contracts; the collector publishes them in coins
 * (`contracts`). Trades and every polled type refill from REST history; liquidations cannot.
 */
export function okxDerivatives(instIds: readonly string[]): VenueAdapter {
  const adapter = okxAdapter({
    market: OKX_SWAP_MARKET,
    wsDataTypes: ['orderbook', 'trade', 'liquidation'],
    polledDataTypes: POLLED,
    polls: okxPolls,
    liquidationInstIds: new Set(instIds),
    polledHistory: POLLED_HISTORY,
  });
  return { ...adapter, contracts: okxContractValues };
}
