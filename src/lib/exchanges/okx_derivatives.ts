import type { PolledDataType } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { FundingRateRecord, LsrAllAccountRecord, LsrTopPositionRecord, MarketRecord, OpenInterestRecord } from '../records.js';
import { OKX_SWAP_MARKET, isEpochMs, okxAdapter, okxRestData, okxSymbol } from './okx.js';
import { multiplyDecimals } from './contracts.js';
import { MalformedFrameError, isDecimal, isObject, isSignedDecimal, joinUrl, type ContractValueSupport, type PollOptions, type RestPoll, type VenueAdapter } from './types.js';

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

function shapeError(dataType: PolledDataType, what: string, item: unknown): MalformedFrameError {
  return new MalformedFrameError('unexpected_shape', `${what}: ${JSON.stringify(item)?.slice(0, 160)}`, dataType);
}

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

export function okxFundingRates(data: readonly unknown[], instId: string, receiveTime: number): FundingRateRecord[] {
  return data.map((d) => {
    if (!isFundingRateData(d)) throw shapeError('funding_rate', 'funding rate item missing or mistyped fields', d);
    checkInstrument('funding_rate', instId, d.instId);
    return {
      dataType: 'funding_rate',
      venue: VENUE,
      marketType: OKX_SWAP_MARKET.marketType,
      symbol: okxSymbol(OKX_SWAP_MARKET, d.instId, 'funding_rate'),
      instrument: d.instId,
      // The observation time: the same rate polled again is the same observation only if ts repeats.
      eventTime: Number(d.ts ?? d.fundingTime),
      receiveTime,
      fundingRate: d.fundingRate,
      // fundingRate settles at fundingTime; OKX's own nextFundingTime is the settlement after it.
      nextFundingTime: Number(d.fundingTime),
      markPrice: null,
    };
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
      const path = dataType === 'lsr_all_account' ? 'long-short-account-ratio-contract' : 'long-short-position-ratio-contract-top-trader';
      return {
        // Two points: a poll that comes late still finds the one it missed.
        route: `/api/v5/rubik/stat/contracts/${path}?instId=${q}&period=${okxPeriod(options.lsrPeriod)}&limit=2`,
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
  parse(body, instId) {
    const item = okxRestData(body, null).find((d) => isObject(d) && d.instId === instId);
    if (item === undefined) throw new MalformedFrameError('unknown_symbol', `OKX lists no swap ${instId}`);
    if (!isInstrumentData(item)) throw new MalformedFrameError('unexpected_shape', `instrument ${instId} without ctVal, ctMult, ctValCcy, ctType: ${JSON.stringify(item).slice(0, 160)}`);
    const base = instId.split('-')[0];
    if (item.ctType !== 'linear' || item.ctValCcy !== base) {
      throw new MalformedFrameError('unexpected_shape', `${instId} is worth ${item.ctVal} ${item.ctValCcy} a contract (ctType ${item.ctType}); only linear swaps valued in ${base ?? 'the base coin'} can be sized in coins`);
    }
    const value = multiplyDecimals(item.ctVal, item.ctMult);
    if (!/[1-9]/.test(value)) throw new MalformedFrameError('unexpected_shape', `${instId} has a contract value of 0`);
    return value;
  },
};

/**
 * OKX perpetual swaps (instIds like BTC-USDT-SWAP, symbol BTC-USDT): books, trades and liquidations
 * over the public WebSocket; funding, open interest and long/short ratios polled. `instIds` are the
 * configured instruments: the liquidation channel pushes every swap, and only these are kept.
 * Trade, liquidation and book sizes come in contracts; the collector publishes them in coins
 * (`contracts`).
 */
export function okxDerivatives(instIds: readonly string[]): VenueAdapter {
  const adapter = okxAdapter({
    market: OKX_SWAP_MARKET,
    wsDataTypes: ['orderbook', 'trade', 'liquidation'],
    polledDataTypes: POLLED,
    polls: okxPolls,
    liquidationInstIds: new Set(instIds),
  });
  return { ...adapter, contracts: okxContractValues };
}
