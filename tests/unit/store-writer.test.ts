import { describe, expect, it } from 'vitest';
import { formatDecimal, InvalidValueError } from '../../src/lib/store/decimal.js';
import { batchOf, BODY_CHUNK_CHARS, distinctSorted, encoderFor, insertBody, RowBatch, TableRows, timeRanges, tsvString } from '../../src/lib/store/writer.js';
import type { OrderbookRecord, TradeRecord } from '../../src/lib/records.js';
import { oneOfEachKind, tradeAt } from '../helpers/records.js';

/** A TabSeparated line's cells by column name (cells as written: escapes not undone). */
function cellsOf(record: unknown, line: string): Record<string, string> {
  const cells = line.split('\t');
  return Object.fromEntries(encoderFor(record).spec.columns.map((c, i) => [c.name, cells[i] as string]));
}

/** The one row a record becomes. */
function encode(record: unknown): { table: string; line: string; key: string; time: number } {
  const tables = [...batchOf([record]).byTable()];
  const rows = tables[0] as TableRows;
  expect(tables).toHaveLength(1);
  return { table: rows.spec.table, line: rows.lines[0] as string, key: rows.keys[0] as string, time: rows.times[0] as number };
}

const trade: TradeRecord = {
  dataType: 'trade',
  venue: 'binance_spot',
  marketType: 'spot',
  symbol: 'BTC-USDT',
  instrument: 'BTCUSDT',
  eventTime: 1_704_067_200_123,
  receiveTime: 1_704_067_200_130,
  tradeId: '3366123',
  price: '42000.12000000',
  quantity: '0.00012000',
  side: 'buy',
};

describe('formatDecimal', () => {
  it('keeps every digit of a decimal string and drops trailing zeros', () => {
    expect(formatDecimal('42000.12000000', 38, 18)).toBe('42000.12');
    expect(formatDecimal('12345678901234567890.123456789012345678', 38, 18)).toBe('12345678901234567890.123456789012345678');
    expect(formatDecimal('-0.5', 38, 18)).toBe('-0.5');
    expect(formatDecimal('+7', 38, 18)).toBe('7');
    expect(formatDecimal('000.000', 38, 18)).toBe('0');
    expect(formatDecimal('.5', 38, 18)).toBe('0.5');
  });

  it('rounds half away from zero to the column scale', () => {
    expect(formatDecimal('1.0000000000000000015', 38, 18)).toBe('1.000000000000000002');
    expect(formatDecimal('1.0000000000000000014', 38, 18)).toBe('1.000000000000000001');
    expect(formatDecimal('-2.345', 38, 2)).toBe('-2.35');
    expect(formatDecimal('0.0000000000000000001', 38, 18)).toBe('0');
    expect(formatDecimal('-0.0000000000000000001', 38, 18)).toBe('0');
    expect(formatDecimal('9.995', 38, 2)).toBe('10');
  });

  it('accepts exponents as venues sending JSON numbers produce them', () => {
    expect(formatDecimal('1e-7', 38, 18)).toBe('0.0000001');
    expect(formatDecimal('1.5E3', 38, 18)).toBe('1500');
    expect(formatDecimal('1e-99999', 38, 18)).toBe('0');
  });

  it('rejects text that is not a decimal and values beyond the precision', () => {
    for (const bad of ['', '.', 'abc', '1.2.3', '0x10', 'NaN', 'Infinity', '1e', ' 1', '1,5']) {
      expect(() => formatDecimal(bad, 38, 18), bad).toThrow(InvalidValueError);
    }
    expect(() => formatDecimal('123456789012345678901', 38, 18)).toThrow(/does not fit Decimal\(38, 18\)/);
    expect(() => formatDecimal('1e99999', 38, 18)).toThrow(/does not fit/);
    expect(formatDecimal('99999999999999999999.9', 38, 18)).toBe('99999999999999999999.9');
  });
});

describe('row encoding', () => {
  it('writes a trade as one TabSeparated line in column order, with exact decimals', () => {
    const { table, line, time } = encode(trade);
    expect(table).toBe('trades');
    expect(line).toBe(['binance_spot', 'spot', 'BTC-USDT', 'BTCUSDT', '1704067200123', '1704067200130', '3366123', '42000.12', '0.00012', 'buy'].join('\t'));
    expect(cellsOf(trade, line)).toMatchObject({ price: '42000.12', trade_id: '3366123' });
    expect(time).toBe(trade.eventTime);
  });

  it('escapes strings and renders nullable decimals and decimal arrays', () => {
    const book: OrderbookRecord = {
      dataType: 'orderbook',
      venue: 'okx"spot\n' as OrderbookRecord['venue'],
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTC-USDT',
      eventTime: 1,
      receiveTime: 2,
      lastUpdateId: 99,
      bestBidPrice: '100.5',
      bestAskPrice: null,
      bids: [
        ['100.5', '1'],
        ['100.4', '2.50'],
      ],
      asks: [],
    };
    expect(cellsOf(book, encode(book).line)).toMatchObject({
      venue: 'okx"spot\\n',
      best_bid_price: '100.5',
      best_ask_price: '\\N',
      bid_prices: '[100.5,100.4]',
      bid_quantities: '[1,2.5]',
      ask_prices: '[]',
      ask_quantities: '[]',
    });
    // Every character TabSeparated gives a meaning is escaped, so a line is one row of its cells.
    expect(tsvString('a\tb\nc\\d\re\0f\bg\fh "i\' j')).toBe('a\\tb\\nc\\\\d\\re\\0f\\bg\\fh "i\' j');
    expect(tsvString('BTC-USDT')).toBe('BTC-USDT');
  });

  it('gives every record kind a line with each column of its table', () => {
    for (const record of oneOfEachKind(1_704_067_200_000)) {
      const { line, time } = encode(record);
      const spec = encoderFor(record).spec;
      expect(line.split('\t'), record.dataType).toHaveLength(spec.columns.length);
      expect(time).toBe(record.eventTime);
    }
  });

  it('refuses records that do not match the column types, adding nothing', () => {
    const batch = new RowBatch();
    expect(() => batch.add({ ...trade, price: 'x' })).toThrow(InvalidValueError);
    expect(() => batch.add({ ...trade, eventTime: -1 })).toThrow(/column event_time: not an unsigned integer/);
    expect(() => batch.add({ ...trade, price: null })).toThrow(/column price/);
    const { side: _side, ...missing } = trade;
    expect(() => batch.add(missing)).toThrow(/column side: missing/);
    expect(() => batch.add({ ...trade, dataType: 'candle' })).toThrow(/no table mapping for data type "candle"/);
    expect(() => batch.add({ ...trade, dataType: 'constructor' })).toThrow(InvalidValueError);
    for (const notRecord of [null, 7, 'trade', [trade]]) expect(() => batch.add(notRecord)).toThrow(InvalidValueError);
    expect(() => batch.add({ ...oneOfEachKind(1)[1], bids: [['1', 2]] })).toThrow(/pair of strings/);
    expect(batch.size).toBe(0);
    expect([...batch.byTable()].every((t) => t.size === 0)).toBe(true);
    batch.add(trade);
    expect(batch.size).toBe(1);
  });

  it('keys a row by its key columns only, unambiguously, as a stored row of the same key is keyed', () => {
    const { key } = encode(trade);
    expect(encode({ ...trade, receiveTime: 1, price: '1', quantity: '2', side: 'sell', instrument: 'X' }).key).toBe(key);
    for (const other of [{ eventTime: trade.eventTime + 1 }, { tradeId: '3366124' }, { symbol: 'ETH-USDT' }, { venue: 'okx_spot' }] as const) {
      expect(encode({ ...trade, ...other }).key).not.toBe(key);
    }
    // Text that would run into the next cell if cells were merely joined.
    expect(encode({ ...trade, symbol: 'A,"B', tradeId: 'C' }).key).not.toBe(encode({ ...trade, symbol: 'A', tradeId: 'B",C' }).key);
    expect(encode({ ...trade, symbol: 'A\tB', tradeId: 'C' }).key).not.toBe(encode({ ...trade, symbol: 'A', tradeId: 'B\tC' }).key);
    // ClickHouse returns UInt64 quoted and only the key columns.
    const stored = { event_time: String(trade.eventTime), venue: trade.venue, symbol: trade.symbol, trade_id: trade.tradeId };
    expect(encoderFor(trade).storedKey(stored)).toBe(key);
    const book = oneOfEachKind(1_704_067_200_000)[1] as OrderbookRecord;
    const storedBook = { event_time: String(book.eventTime), venue: book.venue, symbol: book.symbol, last_update_id: String(book.lastUpdateId) };
    expect(encoderFor(book).storedKey(storedBook)).toBe(encode(book).key);
  });

  it('groups a batch by table, in arrival order', () => {
    const [t, book] = oneOfEachKind(1_704_067_200_000) as [TradeRecord, OrderbookRecord];
    const batch = batchOf([t, book, { ...t, tradeId: '2' }, { ...book, lastUpdateId: 2 }, { ...t, tradeId: '3' }]);
    expect(batch.size).toBe(5);
    const tables = [...batch.byTable()];
    expect(tables.map((r) => [r.spec.table, r.size])).toEqual([
      ['trades', 3],
      ['orderbooks', 2],
    ]);
    expect(tables[0]?.lines.map((l) => cellsOf(t, l).trade_id)).toEqual(['77', '2', '3']);
  });

  it('builds an insert body of each key once, leaving out keys stored already, in arrival order', () => {
    const at = (id: string, extra: Partial<TradeRecord> = {}) => ({ ...trade, tradeId: id, ...extra });
    const rows = [...batchOf([at('1'), at('2'), at('1', { receiveTime: 9 }), at('3'), at('4')]).byTable()][0] as TableRows;
    const ids = (chunks: string[]) => chunks.join('\n').split('\n').map((l) => cellsOf(trade, l).trade_id);
    const all = insertBody(rows, new Set());
    expect(all).toMatchObject({ inserted: 4, skipped: 1 });
    // The first of a repeated key is the one kept.
    expect(ids(all.chunks)).toEqual(['1', '2', '3', '4']);
    expect(all.chunks[0]?.split('\n')[0]).toBe(rows.lines[0]);
    const someStored = insertBody(rows, new Set([rows.keys[1] as string, rows.keys[4] as string]));
    expect(someStored).toMatchObject({ inserted: 2, skipped: 3 });
    expect(ids(someStored.chunks)).toEqual(['1', '3']);
    expect(insertBody(rows, new Set(rows.keys))).toEqual({ chunks: [], inserted: 0, skipped: 5 });
  });

  it('cuts a large body into chunks of whole lines, none longer than BODY_CHUNK_CHARS but a single longer line', () => {
    const n = Math.ceil((3 * BODY_CHUNK_CHARS) / encode(trade).line.length);
    const long = { ...trade, tradeId: 'x'.repeat(BODY_CHUNK_CHARS + 10), eventTime: trade.eventTime - 1 };
    const batch = batchOf([long, ...Array.from({ length: n }, (_, i) => ({ ...trade, tradeId: String(i) })), long]);
    const rows = [...batch.byTable()][0] as TableRows;
    const { chunks, inserted, skipped } = insertBody(rows, new Set());
    expect([inserted, skipped]).toEqual([n + 1, 1]);
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks[0]).toBe(rows.lines[0]);
    for (const chunk of chunks.slice(1)) expect(chunk.length).toBeLessThanOrEqual(BODY_CHUNK_CHARS);
    // Joined as the client sends them (each followed by a newline), the chunks are every kept line, in order.
    expect(chunks.map((c) => `${c}\n`).join('')).toBe(`${rows.lines.slice(0, -1).join('\n')}\n`);
  });

  it('lists distinct times in ascending order', () => {
    expect(distinctSorted([5, 3, 5, 1_704_067_200_123, 3, 4])).toEqual([3, 4, 5, 1_704_067_200_123]);
    expect(distinctSorted([])).toEqual([]);
  });

  it("lists the streams a table's rows are of, once each, for the key check to ask for", () => {
    const batch = batchOf([tradeAt(1, '1'), tradeAt(2, '2', { symbol: 'ETH-USDT' }), tradeAt(3, '3'), tradeAt(4, '4', { venue: 'okx_spot' })]);
    const [trades] = [...batch.byTable()];
    expect([...trades!.streams.values()]).toEqual([
      ['binance_spot', 'BTC-USDT'],
      ['binance_spot', 'ETH-USDT'],
      ['okx_spot', 'BTC-USDT'],
    ]);
  });

  it('joins times at most joinMs apart into the ranges the key check asks for', () => {
    expect(timeRanges([1, 2, 3, 10, 20, 31, 1_704_067_200_123], 10)).toEqual([
      [1, 20],
      [31, 31],
      [1_704_067_200_123, 1_704_067_200_123],
    ]);
    expect(timeRanges([5], 10)).toEqual([[5, 5]]);
    expect(timeRanges([], 10)).toEqual([]);
  });
});

describe('formatDecimal fast path', () => {
  /** `e0` keeps the value but sends it down the general (BigInt) path: both must agree, errors included. */
  const general = (v: string, p: number, s: number) => {
    try {
      return formatDecimal(`${v}e0`, p, s);
    } catch (err) {
      return `throws ${(err as Error).message.replace(/e0/, '')}`;
    }
  };
  const fast = (v: string, p: number, s: number) => {
    try {
      return formatDecimal(v, p, s);
    } catch (err) {
      return `throws ${(err as Error).message}`;
    }
  };

  it('gives what the general path gives, for canonical and other values alike', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const digits = (n: number) => Array.from({ length: n }, () => String(rnd(10))).join('');
    const cases = ['0', '-0', '0.5', '-0.5', '65000.5', '65000.50', '00.1', '1.', '.5', '123456789012.12345678', '1234567890123.1', '0.000000001', '-99999999999.99999999'];
    for (let i = 0; i < 3000; i++) cases.push(`${rnd(2) ? '-' : ''}${digits(rnd(14))}${rnd(2) ? `.${digits(rnd(11))}` : ''}`);
    for (const [p, s] of [[20, 8], [18, 8], [12, 4], [38, 18]] as const) {
      for (const v of cases) if (v !== '' && v !== '-') expect(fast(v, p, s), `${v} as Decimal(${p}, ${s})`).toBe(general(v, p, s));
    }
  });
});
