import { describe, expect, it } from 'vitest';
import { EncodedRow } from '../../src/lib/store/client.js';
import { formatDecimal, InvalidValueError } from '../../src/lib/store/decimal.js';
import { tableFor } from '../../src/lib/store/tables.js';
import { encodeRow, recordToRow } from '../../src/lib/store/writer.js';
import type { TradeRecord } from '../../src/lib/records.js';

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

describe('encodeRow', () => {
  it('writes a trade as one JSONEachRow line with unquoted exact decimals', () => {
    const line = encodeRow(tableFor('trade'), recordToRow(trade));
    expect(line).toBe(
      '{"venue":"binance_spot","market_type":"spot","symbol":"BTC-USDT","instrument":"BTCUSDT",' +
        '"event_time":1704067200123,"receive_time":1704067200130,"trade_id":"3366123",' +
        '"price":42000.12,"quantity":0.00012,"side":"buy"}',
    );
    expect(JSON.parse(line)).toMatchObject({ price: 42000.12, trade_id: '3366123' });
  });

  it('escapes strings and renders nullable decimals and decimal arrays', () => {
    const row = {
      venue: 'okx"spot\n',
      market_type: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTC-USDT',
      event_time: 1,
      receive_time: 2,
      last_update_id: 99,
      best_bid_price: '100.5',
      best_ask_price: null,
      bid_prices: ['100.5', '100.4'],
      bid_quantities: ['1', '2.50'],
      ask_prices: [],
      ask_quantities: [],
    };
    const parsed = JSON.parse(encodeRow(tableFor('orderbook'), row)) as Record<string, unknown>;
    expect(parsed).toMatchObject({ venue: 'okx"spot\n', best_ask_price: null, bid_quantities: [1, 2.5], ask_prices: [] });
  });

  it('refuses rows that do not match the column types', () => {
    const row = recordToRow(trade);
    expect(() => encodeRow(tableFor('trade'), { ...row, price: 'x' })).toThrow(InvalidValueError);
    expect(() => encodeRow(tableFor('trade'), { ...row, event_time: -1 })).toThrow(/column event_time: not an unsigned integer/);
    expect(() => encodeRow(tableFor('trade'), { ...row, price: null })).toThrow(/column price/);
    const { side: _side, ...missing } = row;
    expect(() => encodeRow(tableFor('trade'), missing)).toThrow(/column side: missing/);
  });

  it('refuses to serialize a pre-encoded row through plain JSON.stringify', () => {
    expect(() => JSON.stringify(new EncodedRow('{}'))).toThrow(/createClickHouse/);
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
