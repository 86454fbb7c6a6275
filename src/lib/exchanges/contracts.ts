import type { MarketRecord, PriceLevel, RecordKind } from '../records.js';
import { isDecimal } from './types.js';

/** Records whose sizes a contract venue counts in contracts. */
export const CONTRACT_SIZED: ReadonlySet<RecordKind> = new Set(['trade', 'liquidation', 'orderbook']);

/** A plain non-negative decimal as integer digits and a decimal scale: "12.50" -> 1250, 2. */
interface Scaled {
  digits: number;
  scale: number;
}

/**
 * One pass over the characters, no regex and no intermediate strings: this runs for every size
 * the collector publishes from a contract venue. null when not a plain decimal, or when the digits
 * do not fit a double exactly (the BigInt path takes those).
 */
function scaled(s: string): Scaled | null {
  const n = s.length;
  if (n === 0 || s.charCodeAt(0) === 46 || s.charCodeAt(n - 1) === 46) return null;
  let digits = 0;
  let scale = -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (scale >= 0) return null;
      scale = 0;
    } else if (c >= 48 && c <= 57) {
      digits = digits * 10 + (c - 48);
      if (scale >= 0) scale++;
    } else {
      return null;
    }
  }
  return digits > Number.MAX_SAFE_INTEGER ? null : { digits, scale: Math.max(scale, 0) };
}

/** `digits` (a non-negative integer as text) divided by 10^scale, with no trailing zeros. */
function withScale(digits: string, scale: number): string {
  if (scale === 0) return digits;
  const padded = digits.padStart(scale + 1, '0');
  const whole = padded.length - scale;
  let end = padded.length;
  while (end > whole && padded.charCodeAt(end - 1) === 48) end--;
  return end === whole ? padded.slice(0, whole) : `${padded.slice(0, whole)}.${padded.slice(whole, end)}`;
}

/**
 * The exact product of two non-negative decimal strings (`"12"` x `"0.01"` = `"0.12"`), with no
 * exponent and no trailing zeros. Exact because sizes stay decimal strings end to end; a float
 * product would turn 3 x 0.1 into 0.30000000000000004.
 */
export function multiplyDecimals(a: string, b: string): string {
  const x = scaled(a);
  const y = scaled(b);
  if (x !== null && y !== null) {
    const product = x.digits * y.digits;
    // Integer products below 2^53 are exact in a double, and far cheaper than BigInt.
    if (product <= Number.MAX_SAFE_INTEGER) return withScale(String(product), x.scale + y.scale);
  }
  if (!isDecimal(a) || !isDecimal(b)) throw new RangeError(`not a plain non-negative decimal: ${isDecimal(a) ? b : a}`);
  const [aWhole, aFraction = ''] = a.split('.');
  const [bWhole, bFraction = ''] = b.split('.');
  const product = BigInt(`${aWhole}${aFraction}`) * BigInt(`${bWhole}${bFraction}`);
  return withScale(product.toString(), aFraction.length + bFraction.length);
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
