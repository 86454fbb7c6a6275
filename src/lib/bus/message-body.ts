import { isObject } from '../json-guards.js';
import type { MarketRecord, TradeRecord } from '../records.js';

/**
 * What a JetStream message of market data carries (bus/publisher.ts encodeBatches writes it,
 * recordsIn reads it):
 *   - one record: the record, a JSON object;
 *   - several records of one subject: a JSON array of them;
 *   - several trades of one stream: `{"trades": {venue, marketType, symbol, instrument}, "rows":
 *     [[eventTime, receiveTime, tradeId, price, quantity, side], ...]}`. What every trade of the
 *     stream shares goes once, and no field names: a third of the bytes, which the collector
 *     encodes, NATS carries and storage parses at tens of thousands of trades a second.
 * A storage daemon older than the trade rows cannot read them: upgrade storage before collectors.
 */

/** A trade's own fields, in a row's order. */
const TRADE_ROW = ['eventTime', 'receiveTime', 'tradeId', 'price', 'quantity', 'side'] as const;

/** The fields a stream's trades share, sent once per message. */
type TradeStream = Pick<TradeRecord, 'venue' | 'marketType' | 'symbol' | 'instrument'>;

/** A field added to TradeRecord without a place in the head or a row fails to compile here. */
const tradeFieldsCovered: Exclude<keyof TradeRecord, keyof TradeStream | 'dataType' | (typeof TRADE_ROW)[number]> extends never ? true : never = true;
void tradeFieldsCovered;

/** A record's part of a message body of records like `first` (see bodyOf). */
export function bodyPart(first: MarketRecord, record: MarketRecord): string {
  if (first.dataType !== 'trade' || record.dataType !== 'trade') return JSON.stringify(record);
  return JSON.stringify([record.eventTime, record.receiveTime, record.tradeId, record.price, record.quantity, record.side]);
}

/** Can `record` share a message with `first`: same type, and for trades the same stream (what the rows leave out). */
export function sharesBody(first: MarketRecord, record: MarketRecord): boolean {
  if (first.dataType !== record.dataType) return false;
  if (first.dataType !== 'trade') return true;
  return record.venue === first.venue && record.marketType === first.marketType && record.symbol === first.symbol && record.instrument === first.instrument;
}

/** Characters a body adds to its parts (commas aside), at most: the trade rows' head, or an array's brackets. */
export function bodyOverhead(first: MarketRecord): number {
  return first.dataType === 'trade' ? tradeHead(first).length + 2 : 2;
}

/**
 * The body of a message holding `first` and the records whose parts follow it (bodyPart of each,
 * `first` included, in order); a lone record is sent whole.
 */
export function bodyOf(first: MarketRecord, parts: readonly string[]): string {
  if (parts.length === 1) return first.dataType === 'trade' ? JSON.stringify(first) : (parts[0] as string);
  return first.dataType === 'trade' ? `${tradeHead(first)}${parts.join(',')}]}` : `[${parts.join(',')}]`;
}

function tradeHead(t: TradeRecord): string {
  const stream: TradeStream = { venue: t.venue, marketType: t.marketType, symbol: t.symbol, instrument: t.instrument };
  return `{"trades":${JSON.stringify(stream)},"rows":[`;
}

/**
 * The records a message body holds, in any of its forms; not validated (a row that is not one
 * comes back as it is, and storage's encoder refuses it like any other malformed record).
 */
export function recordsIn(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (isObject(body) && isObject(body.trades) && Array.isArray(body.rows)) {
    const { venue, marketType, symbol, instrument } = body.trades;
    return body.rows.map((row: unknown) => {
      if (!Array.isArray(row) || row.length !== TRADE_ROW.length) return row;
      const [eventTime, receiveTime, tradeId, price, quantity, side] = row as unknown[];
      return { dataType: 'trade', venue, marketType, symbol, instrument, eventTime, receiveTime, tradeId, price, quantity, side };
    });
  }
  return [body];
}
