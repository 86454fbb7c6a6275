/**
 * Type guards for JSON of unknown shape (venue frames, API bodies, /health answers, config):
 * the one place they are defined.
 */

/** A JSON object: not null, not an array. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const DECIMAL = /^\d+(\.\d+)?$/;
const SIGNED_DECIMAL = /^-?\d+(\.\d+)?$/;

/** A non-negative decimal as a string (prices, sizes): venues send them as text to keep precision. */
export function isDecimal(v: unknown): v is string {
  return typeof v === 'string' && DECIMAL.test(v);
}

/** Rates (funding) may be negative. */
export function isSignedDecimal(v: unknown): v is string {
  return typeof v === 'string' && SIGNED_DECIMAL.test(v);
}
