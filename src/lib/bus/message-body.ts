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

const TRADES_OPEN = '{"trades":';
const ROWS_OPEN = ',"rows":[';
const QUOTE = 34;
const BACKSLASH = 92;
/** Digits of an integer read by hand: 15 stay exact in a double (event times have 13). */
const MAX_INT_DIGITS = 15;

/**
 * The records of a message body as text: what recordsIn(JSON.parse(text)) returns; throws what
 * JSON.parse throws. Trade rows, nearly every message under load, are read by hand (see
 * tradeRowsIn).
 */
export function recordsOfBody(text: string): unknown[] {
  return tradeRowsIn(text) ?? recordsIn(JSON.parse(text));
}

/**
 * A trade-rows body read without JSON.parse, or null for anything but the form the publisher
 * writes (no whitespace; rows of two plain integers and four strings without escapes), which is
 * then left to JSON.parse. Why: JSON.parse interns every string of up to ten characters (prices,
 * sizes, trade ids, sides), and at tens of thousands of trades a second the string-table lookups
 * were a third of storage's CPU. Where it returns records they are exactly what the general path
 * returns (tests/unit/message-body-reader.test.ts holds it to that over edited bodies).
 */
export function tradeRowsIn(text: string): unknown[] | null {
  if (!text.startsWith(TRADES_OPEN)) return null;
  const rowsAt = text.indexOf(ROWS_OPEN, TRADES_OPEN.length);
  if (rowsAt < 0) return null;
  let head: unknown;
  try {
    // The head ends at the first `,"rows":[`; one inside a string leaves it unterminated, and JSON.parse says so.
    head = JSON.parse(text.slice(TRADES_OPEN.length, rowsAt));
  } catch {
    return null;
  }
  if (!isObject(head)) return null;
  const { venue, marketType, symbol, instrument } = head;
  const n = text.length;
  const out: unknown[] = [];
  // Each reader takes the position of its cell and returns the position after it (the cell in
  // `value`), or -1 when the text is not of the simple form there; -1 in gives -1 out.
  let value: number | string = 0;
  const int = (at: number): number => {
    if (at < 0) return -1;
    let v = 0;
    let j = at;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      j++;
    }
    const digits = j - at;
    // JSON allows no leading zero; a longer number may not be exact here: both go to the general path.
    if (digits === 0 || digits > MAX_INT_DIGITS || (digits > 1 && text.charCodeAt(at) === 48)) return -1;
    value = v;
    return j;
  };
  const str = (at: number): number => {
    if (at < 0 || text.charCodeAt(at) !== QUOTE) return -1;
    let j = at + 1;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === QUOTE) break;
      // An escape or a raw control character (invalid JSON): the general path decides.
      if (c === BACKSLASH || c < 32) return -1;
      j++;
    }
    if (j >= n) return -1;
    value = text.slice(at + 1, j);
    return j + 1;
  };
  const comma = (at: number): number => (at >= 0 && text.charCodeAt(at) === 44 ? at + 1 : -1);
  let i = rowsAt + ROWS_OPEN.length;
  if (text.charCodeAt(i) === 93) {
    i++;
  } else {
    for (;;) {
      if (text.charCodeAt(i) !== 91) return null;
      let j = int(i + 1);
      const eventTime = value;
      j = int(comma(j));
      const receiveTime = value;
      j = str(comma(j));
      const tradeId = value;
      j = str(comma(j));
      const price = value;
      j = str(comma(j));
      const quantity = value;
      j = str(comma(j));
      const side = value;
      if (j < 0 || text.charCodeAt(j) !== 93) return null;
      out.push({ dataType: 'trade', venue, marketType, symbol, instrument, eventTime, receiveTime, tradeId, price, quantity, side });
      i = j + 1;
      const next = text.charCodeAt(i);
      if (next === 93) {
        i++;
        break;
      }
      if (next !== 44) return null;
      i++;
    }
  }
  return i === n - 1 && text.charCodeAt(i) === 125 ? out : null;
}
