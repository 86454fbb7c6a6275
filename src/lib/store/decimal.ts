import { MprismError } from '../errors.js';

/** A record field that cannot be stored as its column type (malformed decimal, out of range). */
export class InvalidValueError extends MprismError {}

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

const isDigit = (c: number) => c >= 48 && c <= 57;

/**
 * Whether `value` is its own output: already canonical (/^-?(0|[1-9]\d*)(?:\.(\d*[1-9]))?$/, no
 * exponent, no leading or trailing zero; `-0` excepted) and within precision and scale. A scan, not
 * that regular expression: storage formats two or more decimals per row, and its match arrays were
 * garbage to collect.
 */
function isOwnOutput(value: string, precision: number, scale: number): boolean {
  const n = value.length;
  const negative = value.charCodeAt(0) === 45;
  let i = negative ? 1 : 0;
  const first = value.charCodeAt(i);
  if (first === 48) i++;
  else if (first >= 49 && first <= 57) while (i < n && isDigit(value.charCodeAt(i))) i++;
  else return false;
  const whole = first === 48 ? 0 : i - (negative ? 1 : 0);
  let fraction = 0;
  if (i < n) {
    if (value.charCodeAt(i) !== 46) return false;
    const fractionStart = ++i;
    while (i < n && isDigit(value.charCodeAt(i))) i++;
    fraction = n - fractionStart;
    if (i !== n || fraction === 0 || value.charCodeAt(n - 1) === 48) return false;
  } else if (first === 48 && negative) return false;
  return fraction <= scale && whole + scale <= precision;
}

/**
 * Decimal string -> plain decimal text with at most `scale` fraction digits, rounded half away from
 * zero (a cell of the insert: see writer.ts). ClickHouse 18.16 rejects decimals with more fraction
 * digits than the column scale, and going through a JS number would lose digits, so the text is rewritten exactly
 * with BigInt arithmetic. Accepts exponents because venues that send JSON numbers end up as `1e-7`.
 */
export function formatDecimal(value: string, precision: number, scale: number): string {
  // Fast path, storage's common case (`65000.5`).
  if (isOwnOutput(value, precision, scale)) return value;
  const m = DECIMAL_RE.exec(value);
  const intDigits = m?.[2] ?? '';
  const fracDigits = m?.[3] ?? '';
  if (!m || intDigits.length + fracDigits.length === 0) throw new InvalidValueError(`not a decimal: ${JSON.stringify(value)}`);
  const negative = m[1] === '-';
  const exponent = Number(m[4] ?? '0');
  const digits = (intDigits + fracDigits).replace(/^0+/, '');
  if (digits === '') return '0';
  // value = digits * 10^(exponent - fracDigits.length); the stored integer is value * 10^scale.
  const shift = exponent - fracDigits.length + scale;
  if (digits.length + shift > precision) {
    throw new InvalidValueError(`${value} does not fit Decimal(${precision}, ${scale})`);
  }
  let scaled: bigint;
  if (shift >= 0) {
    scaled = BigInt(digits) * 10n ** BigInt(shift);
  } else if (-shift > digits.length) {
    // Below half a unit of the last kept digit: rounds to zero.
    return '0';
  } else {
    const divisor = 10n ** BigInt(-shift);
    const n = BigInt(digits);
    scaled = n / divisor;
    if ((n % divisor) * 2n >= divisor) scaled += 1n;
  }
  if (scaled === 0n) return '0';
  let text = scaled.toString();
  if (text.length > precision) throw new InvalidValueError(`${value} does not fit Decimal(${precision}, ${scale})`);
  text = text.padStart(scale + 1, '0');
  const whole = text.slice(0, text.length - scale);
  const fraction = text.slice(text.length - scale).replace(/0+$/, '');
  return (negative ? '-' : '') + whole + (fraction ? `.${fraction}` : '');
}
