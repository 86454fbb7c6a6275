import type { MarketRecord, PriceLevel, RecordKind } from '../records.js';

/** Records whose sizes a contract venue counts in contracts. */
export const CONTRACT_SIZED: ReadonlySet<RecordKind> = new Set(['trade', 'liquidation', 'orderbook']);

const DECIMAL = /^\d+(\.\d+)?$/;
/** Digits whose product stays below 2^53, so Number multiplies them exactly. */
const EXACT_NUMBER_DIGITS = 15;

/**
 * The exact product of two non-negative decimal strings (`"12"` x `"0.01"` = `"0.12"`), with no
 * exponent and no trailing zeros. Exact because sizes stay decimal strings end to end; a float
 * product would turn 3 x 0.1 into 0.30000000000000004.
 */
export function multiplyDecimals(a: string, b: string): string {
  if (!DECIMAL.test(a) || !DECIMAL.test(b)) throw new RangeError(`not a plain non-negative decimal: ${DECIMAL.test(a) ? b : a}`);
  const aDot = a.indexOf('.');
  const bDot = b.indexOf('.');
  const aDigits = aDot < 0 ? a : a.slice(0, aDot) + a.slice(aDot + 1);
  const bDigits = bDot < 0 ? b : b.slice(0, bDot) + b.slice(bDot + 1);
  const scale = (aDot < 0 ? 0 : a.length - aDot - 1) + (bDot < 0 ? 0 : b.length - bDot - 1);
  // Integer products of up to 15 digits are exact in a double, and far cheaper than BigInt.
  const product =
    aDigits.length + bDigits.length <= EXACT_NUMBER_DIGITS ? String(Number(aDigits) * Number(bDigits)) : (BigInt(aDigits) * BigInt(bDigits)).toString();
  if (scale === 0) return product;
  const digits = product.padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  let end = digits.length;
  while (end > whole.length && digits.charCodeAt(end - 1) === 48) end--;
  return end === whole.length ? whole : `${whole}.${digits.slice(whole.length, end)}`;
}

const levelsInCoins = (levels: readonly PriceLevel[], coinsPerContract: string): PriceLevel[] =>
  levels.map(([price, contracts]) => [price, multiplyDecimals(contracts, coinsPerContract)]);

/**
 * A record of a venue that counts sizes in contracts, with its sizes in coins: trade, liquidation
 * and book sizes are multiplied by the instrument's contract value. Other records carry no size
 * in contracts (open interest is taken in coins from the venue) and come back as they are.
 */
export function recordInCoins(record: MarketRecord, coinsPerContract: string): MarketRecord {
  switch (record.dataType) {
    case 'trade':
    case 'liquidation':
      return { ...record, quantity: multiplyDecimals(record.quantity, coinsPerContract) };
    case 'orderbook':
      return { ...record, bids: levelsInCoins(record.bids, coinsPerContract), asks: levelsInCoins(record.asks, coinsPerContract) };
    default:
      return record;
  }
}
