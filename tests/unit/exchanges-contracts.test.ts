import { describe, expect, it } from 'vitest';
import { multiplyDecimals, recordInCoins } from '../../src/lib/exchanges/contracts.js';
import { okxContractValues, okxDerivatives } from '../../src/lib/exchanges/okx_derivatives.js';
import { MalformedFrameError } from '../../src/lib/exchanges/types.js';
import type { FundingRateRecord, LiquidationRecord, OrderbookRecord, TradeRecord } from '../../src/lib/records.js';

describe('multiplyDecimals', () => {
  it.each([
    ['12', '0.01', '0.12'],
    ['3', '0.1', '0.3'],
    ['0.5', '0.01', '0.005'],
    ['250', '0.01', '2.5'],
    ['100', '0.1', '10'],
    ['0', '0.01', '0'],
    ['1.000', '10', '10'],
    ['123456789012345678901234', '0.000001', '123456789012345678.901234'],
    ['0.00000001', '0.00000001', '0.0000000000000001'],
  ])('%s x %s = %s', (a, b, product) => {
    expect(multiplyDecimals(a, b)).toBe(product);
  });

  it('refuses what is not a plain non-negative decimal', () => {
    for (const bad of ['-1', '1e-5', '', '.5', '1.', 'abc']) expect(() => multiplyDecimals(bad, '1')).toThrow(RangeError);
  });
});

describe('recordInCoins', () => {
  const base = { venue: 'okx_derivatives', marketType: 'perpetual', symbol: 'BTC-USDT', instrument: 'BTC-USDT-SWAP', eventTime: 1, receiveTime: 2 } as const;

  it('turns trade, liquidation and book sizes into coins and leaves prices and other records alone', () => {
    const trade: TradeRecord = { ...base, dataType: 'trade', tradeId: '7', price: '65000.1', quantity: '12', side: 'buy' };
    expect(recordInCoins(trade, '0.01')).toEqual({ ...trade, quantity: '0.12' });
    const liquidation: LiquidationRecord = { ...base, dataType: 'liquidation', liquidationId: 'x', side: 'sell', price: '64000', quantity: '3' };
    expect(recordInCoins(liquidation, '0.01')).toEqual({ ...liquidation, quantity: '0.03' });
    const book: OrderbookRecord = {
      ...base,
      dataType: 'orderbook',
      lastUpdateId: 9,
      bestBidPrice: '64999.9',
      bestAskPrice: '65000',
      bids: [['64999.9', '150']],
      asks: [['65000', '2'], ['65000.5', '0.5']],
    };
    expect(recordInCoins(book, '0.01')).toEqual({ ...book, bids: [['64999.9', '1.5']], asks: [['65000', '0.02'], ['65000.5', '0.005']] });
    const funding: FundingRateRecord = { ...base, dataType: 'funding_rate', fundingRate: '0.0001', nextFundingTime: 0, markPrice: null };
    expect(recordInCoins(funding, '0.01')).toBe(funding);
  });
});

describe('okxContractValues', () => {
  const item = (o: Record<string, string>) =>
    JSON.stringify({ code: '0', msg: '', data: [{ instType: 'SWAP', instId: 'BTC-USDT-SWAP', ctVal: '0.01', ctMult: '1', ctValCcy: 'BTC', ctType: 'linear', state: 'live', ...o }] });

  it('asks for the one swap and reads ctVal x ctMult in coins', () => {
    expect(okxDerivatives(['BTC-USDT-SWAP']).contracts).toBe(okxContractValues);
    expect(okxContractValues.request('http://h/okx_derivatives/', 'BTC-USDT-SWAP')).toEqual({
      url: 'http://h/okx_derivatives/api/v5/public/instruments?instType=SWAP&instId=BTC-USDT-SWAP',
      weight: 1,
    });
    expect(okxContractValues.reader(item({}))('BTC-USDT-SWAP')).toBe('0.01');
    expect(okxContractValues.reader(item({ ctVal: '0.1', ctMult: '10' }))('BTC-USDT-SWAP')).toBe('1');
  });

  it('refuses an inverse swap, an unlisted one, a venue error and a missing field, with a reason', () => {
    const inverse = JSON.stringify({ code: '0', msg: '', data: [{ instId: 'BTC-USD-SWAP', ctVal: '100', ctMult: '1', ctValCcy: 'USD', ctType: 'inverse' }] });
    expect(() => okxContractValues.reader(inverse)('BTC-USD-SWAP')).toThrow(/BTC-USD-SWAP is worth 100 USD a contract \(ctType inverse\); only linear swaps valued in BTC/);
    expect(() => okxContractValues.reader(item({}))('ETH-USDT-SWAP')).toThrow(/OKX lists no swap ETH-USDT-SWAP/);
    expect(() => okxContractValues.reader('{"code":"51001","msg":"Instrument ID does not exist","data":[]}')('X-USDT-SWAP')).toThrow(/OKX error 51001/);
    expect(() => okxContractValues.reader(item({ ctVal: '' }))('BTC-USDT-SWAP')).toThrow(MalformedFrameError);
    expect(() => okxContractValues.reader(item({ ctVal: '0' }))('BTC-USDT-SWAP')).toThrow(/contract value of 0/);
    expect(() => okxContractValues.reader('not json')('BTC-USDT-SWAP')).toThrow(MalformedFrameError);
  });
});
