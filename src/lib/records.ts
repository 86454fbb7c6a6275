import type { DataType, Venue } from './config/schema.js';

export type MarketType = 'spot' | 'perpetual' | 'options';
export type Side = 'buy' | 'sell';

/** Fields every normalized record carries. Times are epoch milliseconds. */
export interface RecordBase {
  dataType: DataType;
  venue: Venue;
  marketType: MarketType;
  /** Normalized BASE-QUOTE, e.g. BTC-USDT. */
  symbol: string;
  /** The venue's own instrument id, e.g. BTCUSDT. */
  instrument: string;
  /** Exchange event time. */
  eventTime: number;
  /** When the collector received the frame. */
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

export type MarketRecord = TradeRecord;

/** NATS subject: {data_type}.{venue}.{market_type}.{symbol} */
export function subjectFor(r: RecordBase): string {
  return `${r.dataType}.${r.venue}.${r.marketType}.${r.symbol}`;
}

/** Deterministic JetStream Msg-Id, so a re-published observation is dropped by the server. */
export function msgIdFor(r: MarketRecord): string {
  return `${r.dataType}:${r.venue}:${r.symbol}:${r.tradeId}`;
}
