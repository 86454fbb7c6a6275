import { noise } from './market.js';

/** Funding every 8 hours at 00:00, 08:00 and 16:00 UTC, as both Binance and OKX default to. */
export const FUNDING_INTERVAL_MS = 8 * 3600_000;

export function nextFundingTime(now: number): number {
  return (Math.floor(now / FUNDING_INTERVAL_MS) + 1) * FUNDING_INTERVAL_MS;
}

/** The predicted funding rate, as a fraction: about 0.01 %, changing once a minute. */
export function fundingRate(seed: number, key: string, now: number): number {
  return 0.0001 + (noise(seed, `${key}/funding`, Math.floor(now / 60_000)) - 0.5) * 0.0004;
}

const BASE_OPEN_INTEREST: Readonly<Record<string, number>> = { BTC: 80_000, ETH: 2_000_000 };

/** Open interest in coins: a slow daily swing plus per-second noise. */
export function openInterestCoins(seed: number, key: string, now: number): number {
  const base = Object.entries(BASE_OPEN_INTEREST).find(([b]) => key.includes(b))?.[1] ?? 1_000_000;
  const swing = 0.05 * Math.sin((now / 86_400_000) * 2 * Math.PI);
  return base * (1 + swing + 0.01 * noise(seed, `${key}/oi`, Math.floor(now / 1000)));
}

/** Long and short shares (4 decimals, summing to 1) and their ratio for one period. */
export function longShortShares(seed: number, key: string, ts: number): { long: string; short: string; ratio: string } {
  const longBp = 3500 + Math.floor(noise(seed, key, ts) * 3000);
  const shortBp = 10_000 - longBp;
  return { long: (longBp / 10_000).toFixed(4), short: (shortBp / 10_000).toFixed(4), ratio: (longBp / shortBp).toFixed(4) };
}

const PERIOD_UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3600_000, H: 3600_000, d: 86_400_000, D: 86_400_000 };

/** `5m`, `1h`/`1H`, `1d`/`1D` -> milliseconds, when `allowed` lists it. */
export function periodMs(period: string | null, allowed: readonly string[]): number | null {
  if (period === null || !allowed.includes(period)) return null;
  const m = /^(\d+)([mhHdD])$/.exec(period);
  return m === null ? null : Number(m[1]) * (PERIOD_UNIT_MS[m[2] ?? ''] ?? 0);
}

/**
 * Starts of the newest `limit` whole periods at or before `end` (now when null) and not before
 * `start`, newest first. The newest is the period in progress, as the venues report it.
 */
export function periodStarts(now: number, period: number, limit: number, start: number | null, end: number | null): number[] {
  const newest = Math.floor(Math.min(end ?? now, now) / period) * period;
  const out: number[] = [];
  for (let ts = newest; out.length < limit && ts >= (start ?? 0); ts -= period) out.push(ts);
  return out;
}
