import type { TradeRecord } from '../../src/lib/records.js';

/** A plausible Binance spot BTC-USDT trade at event time t; override any field. */
export function tradeAt(t: number, tradeId: string, overrides: Partial<TradeRecord> = {}): TradeRecord {
  return {
    dataType: 'trade',
    venue: 'binance_spot',
    marketType: 'spot',
    symbol: 'BTC-USDT',
    instrument: 'BTCUSDT',
    eventTime: t,
    receiveTime: t + 3,
    tradeId,
    price: '42000.5',
    quantity: '0.25',
    side: 'sell',
    ...overrides,
  };
}
