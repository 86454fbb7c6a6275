import type { MarketRecord, TradeRecord } from '../../src/lib/records.js';

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

/** One plausible record of every kind at event time t, for round trips through the bus and the store. */
export function oneOfEachKind(t: number): MarketRecord[] {
  const base = { receiveTime: t + 3, eventTime: t } as const;
  const perp = { ...base, venue: 'binance_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTCUSDT' } as const;
  return [
    tradeAt(t, '77'),
    {
      ...base,
      dataType: 'orderbook',
      venue: 'okx_spot',
      marketType: 'spot',
      symbol: 'BTC-USDT',
      instrument: 'BTC-USDT',
      lastUpdateId: 123456789,
      bestBidPrice: '42000.1',
      bestAskPrice: '42000.2',
      bids: [['42000.1', '1.5'], ['42000', '0.001']],
      asks: [['42000.2', '3'], ['42001', '2.25']],
    },
    { ...perp, dataType: 'funding_rate', fundingRate: '0.00010000', nextFundingTime: t + 3_600_000, markPrice: '42001.5' },
    { ...perp, dataType: 'open_interest', openInterest: '81234.567', openInterestValue: null },
    { ...perp, dataType: 'liquidation', liquidationId: 'a1b2c3', side: 'sell', price: '41000.1', quantity: '0.014' },
    { ...perp, dataType: 'lsr_top_position', period: '5m', longShortRatio: '1.9559', longPositionPct: '0.6617', shortPositionPct: '0.3383' },
    { ...perp, dataType: 'lsr_all_account', period: '5m', longShortRatio: '0.53', longAccountPct: null, shortAccountPct: null },
    { ...base, dataType: 'volatility_index', venue: 'deribit_derivatives', marketType: 'index', symbol: 'BTC-USD', instrument: 'btc_usd', resolution: '60', indexValue: '52.41' },
    { ...perp, dataType: 'orderbook_gap', lastUpdateId: 600859605926, reason: 'sequence_gap', detail: 'expected pu 1, got 3' },
    {
      ...perp,
      dataType: 'stream_hole',
      holeDataType: 'trade',
      holeId: `binance_derivatives/trade/BTCUSDT/${t - 1000}/101`,
      fromTime: t - 1000,
      toTime: t - 10,
      firstMissingId: '101',
      lastMissingId: '120',
      missingCount: null,
      cause: 'frames_lost',
      state: 'open',
      detail: 'BTCUSDT book on binance_derivatives/public/0: sequence_gap',
    },
  ];
}
