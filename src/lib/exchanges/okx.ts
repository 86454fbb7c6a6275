import { crc32 } from 'node:zlib';
import type { PriceLevel } from '../records.js';

/** Levels per side that OKX's book checksum covers. */
export const OKX_CHECKSUM_DEPTH = 25;

/**
 * OKX v5 book checksum: the best 25 bids and asks interleaved as bid_px:bid_sz:ask_px:ask_sz:...
 * (a side that runs out is skipped), joined with ':', CRC32 (zlib polynomial) read as a signed
 * 32-bit integer. Prices and sizes are the strings exactly as received. Levels best first.
 */
export function okxChecksum(bids: readonly PriceLevel[], asks: readonly PriceLevel[]): number {
  const parts: string[] = [];
  const n = Math.max(Math.min(bids.length, OKX_CHECKSUM_DEPTH), Math.min(asks.length, OKX_CHECKSUM_DEPTH));
  for (let i = 0; i < n; i++) {
    const b = bids[i];
    const a = asks[i];
    if (b !== undefined) parts.push(b[0], b[1]);
    if (a !== undefined) parts.push(a[0], a[1]);
  }
  return crc32(parts.join(':')) | 0;
}
