import type { DataType, Venue } from './config/schema.js';

export type MarketType = 'spot' | 'perpetual' | 'options' | 'index';
export type Side = 'buy' | 'sell';

/**
 * What a record is: one of the eight market data types, a marker the collector leaves where an
 * orderbook lost sync, or a hole in a stream (stored beside the data so `integrity` can report it).
 */
export type RecordKind = DataType | 'orderbook_gap' | 'stream_hole';

/** Fields every normalized record carries. Times are epoch milliseconds. */
export interface RecordBase {
  dataType: RecordKind;
  venue: Venue;
  marketType: MarketType;
  /** Normalized BASE-QUOTE, e.g. BTC-USDT (swaps: BTC-USDT too; market type tells them apart). */
  symbol: string;
  /** The venue's own instrument id, e.g. BTCUSDT, BTC-USDT-SWAP. */
  instrument: string;
  /** Exchange event time: when the venue says the observation was made. */
  eventTime: number;
  /** When the collector received the frame or response. */
  receiveTime: number;
}

/** Prices and sizes stay decimal strings end to end: no float rounding on the way to ClickHouse. */
export interface TradeRecord extends RecordBase {
  dataType: 'trade';
  tradeId: string;
  price: string;
  quantity: string;
  /** Taker side. */
  side: Side;
}

/** [price, quantity] as decimal strings. */
export type PriceLevel = readonly [price: string, quantity: string];

/** Top-N of a locally maintained, validated book. Never crossed: best bid < best ask. */
export interface OrderbookRecord extends RecordBase {
  dataType: 'orderbook';
  /** The venue's sequence number of the last update applied (Binance u, OKX seqId, Deribit change_id). */
  lastUpdateId: number;
  bestBidPrice: string | null;
  bestAskPrice: string | null;
  /** Best first. */
  bids: readonly PriceLevel[];
  asks: readonly PriceLevel[];
}

export interface FundingRateRecord extends RecordBase {
  dataType: 'funding_rate';
  /** Current (predicted) rate for the running funding interval. */
  fundingRate: string;
  /** Epoch ms of the next funding; 0 when the venue does not say. */
  nextFundingTime: number;
  markPrice: string | null;
}

export interface OpenInterestRecord extends RecordBase {
  dataType: 'open_interest';
  /** In base currency units (coins), whatever unit the venue counts contracts in. */
  openInterest: string;
  /** In quote currency (USD/USDT) when the venue says; null otherwise. */
  openInterestValue: string | null;
}

export interface LiquidationRecord extends RecordBase {
  dataType: 'liquidation';
  /** The venue's id, or a digest of the event fields where the venue sends none. */
  liquidationId: string;
  /** Side of the liquidation order: sell = a long was liquidated. */
  side: Side;
  price: string;
  quantity: string;
}

/** Top traders' long/short POSITION ratio (Binance topLongShortPositionRatio, OKX ...-top-trader). */
export interface LsrTopPositionRecord extends RecordBase {
  dataType: 'lsr_top_position';
  /** e.g. 5m */
  period: string;
  longShortRatio: string;
  /** Shares of long and short positions (0..1); null where the venue gives only the ratio (OKX). */
  longPositionPct: string | null;
  shortPositionPct: string | null;
}

/** All accounts' long/short ACCOUNT ratio (Binance globalLongShortAccountRatio, OKX ...-account-ratio-contract). */
export interface LsrAllAccountRecord extends RecordBase {
  dataType: 'lsr_all_account';
  period: string;
  longShortRatio: string;
  longAccountPct: string | null;
  shortAccountPct: string | null;
}

/** DVOL: one candle close, or one live push (resolution `live`). */
export interface VolatilityIndexRecord extends RecordBase {
  dataType: 'volatility_index';
  /** Candle resolution as the venue names it (`60` = 1 min), or `live`. */
  resolution: string;
  indexValue: string;
}

/** Why a book lost sync. */
export type GapReason = 'sequence_gap' | 'checksum_mismatch' | 'crossed_book' | 'disconnect' | 'snapshot_failed';

/** A hole in one symbol's book stream: from the last good update to the moment the book was resynced. */
export interface OrderbookGapRecord extends RecordBase {
  dataType: 'orderbook_gap';
  reason: GapReason;
  /** Last update id applied before the gap (0: none yet). */
  lastUpdateId: number;
  /** Human-readable detail, e.g. `expected pu 123 got 130`. */
  detail: string;
}

/** Detail of the `disconnect` marker a stopping collector leaves on each synced book. */
export const COLLECTOR_STOPPED_DETAIL = 'collector stopped';

/** Why a stream has a hole. */
export type HoleCause =
  /** The collector was not running (stopped, killed, power loss): found at its next start. */
  | 'collector_down'
  /** The connection carrying the stream dropped or was replaced without overlap. */
  | 'disconnect'
  /** The connection went silent (no frames, no pings) and was replaced. */
  | 'stall'
  /**
   * The connection dropped frames without closing: a book on it skipped sequence ids. Streams
   * sharing it (trades) may have lost frames too; repair finds out from the venue's history.
   */
  | 'frames_lost'
  /** Trade ids jumped where the venue's ids are contiguous. */
  | 'id_gap'
  /** Polls failed (rate limit, network, bad answers) for longer than the stream's spacing. */
  | 'poll_failed'
  /** Polled observations are further apart than the stream's spacing, with no failure seen. */
  | 'poll_gap'
  /** An orderbook lost sync (sequence gap, checksum, crossed book) and was resynced. */
  | 'book_resync'
  /**
   * The NATS server dropped: it acknowledges a publish before its write reaches the disk, so the
   * records acknowledged just before may be gone. Repair refills them from history (idempotently).
   */
  | 'nats_lost';

/**
 * `open`: not refilled yet (integrity fails). `repaired`: refilled from the venue's history and
 * verified in hot. `unrepairable`: cannot be refilled (orderbooks, no public history, an API key
 * is needed); `detail` says why.
 */
export type HoleState = 'open' | 'repaired' | 'unrepairable';

/**
 * One hole in one stream (venue x data type x instrument): an interval in which it was not
 * received. Rows are immutable: each state a hole goes through is a row of its own (eventTime =
 * when that state was reached); a hole's state is its newest row's.
 */
export interface StreamHoleRecord extends RecordBase, HoleExtent {
  dataType: 'stream_hole';
  /** The stream's data type. */
  holeDataType: DataType;
  /** Stable identity of the hole across its state rows. */
  holeId: string;
  state: HoleState;
}

/** Where a hole lies and why: what detection finds, and what each of its state rows repeats. */
export interface HoleExtent {
  /** Exchange event times bounding the hole, epoch ms: the last record before it and the first after. */
  fromTime: number;
  toTime: number;
  /** Trades: the first and last missing id where the ids around the hole are known; else null. */
  firstMissingId: string | null;
  lastMissingId: string | null;
  /** Records missing, where the venue's ids are contiguous; else null (unknown). */
  missingCount: number | null;
  cause: HoleCause;
  /** Why: the break detected; later rows, what repair did or why it cannot. */
  detail: string;
}

export type MarketRecord =
  | TradeRecord
  | OrderbookRecord
  | FundingRateRecord
  | OpenInterestRecord
  | LiquidationRecord
  | LsrTopPositionRecord
  | LsrAllAccountRecord
  | VolatilityIndexRecord
  | OrderbookGapRecord
  | StreamHoleRecord;

/** NATS subject: {data_type}.{venue}.{market_type}.{symbol} */
export function subjectFor(r: RecordBase): string {
  return `${r.dataType}.${r.venue}.${r.marketType}.${r.symbol}`;
}

/**
 * Deterministic JetStream Msg-Id: the same exchange observation always gets the same id, so a
 * re-published one (reconnect replay, overlapping REST polls) is dropped by the server.
 */
export function msgIdFor(r: MarketRecord): string {
  const head = `${r.dataType}:${r.venue}:${r.symbol}`;
  switch (r.dataType) {
    case 'trade':
      return `${head}:${r.tradeId}`;
    case 'orderbook':
      return `${head}:${r.lastUpdateId}:${r.eventTime}`;
    case 'liquidation':
      return `${head}:${r.liquidationId}`;
    case 'lsr_top_position':
    case 'lsr_all_account':
      return `${head}:${r.period}:${r.eventTime}`;
    case 'volatility_index':
      return `${head}:${r.resolution}:${r.eventTime}`;
    case 'orderbook_gap':
      return `${head}:${r.lastUpdateId}:${r.eventTime}`;
    case 'stream_hole':
      return `${head}:${r.holeId}:${r.state}`;
    case 'funding_rate':
    case 'open_interest':
      return `${head}:${r.eventTime}`;
  }
}
