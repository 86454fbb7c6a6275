import type { DataType } from '../config/schema.js';
import type { HoleCause, HoleState } from '../records.js';

/** One hole as reports show it (integrity, repair). */
export interface HoleReport {
  holeId: string;
  venue: string;
  dataType: DataType;
  symbol: string;
  instrument: string;
  from: string;
  to: string;
  seconds: number;
  firstMissingId: string | null;
  lastMissingId: string | null;
  missing: number | null;
  cause: HoleCause;
  state: HoleState;
  detail: string;
}

/** `trade binance_spot BTCUSDT 12:00:01.250Z..12:00:02.850Z (1.6 s, 266 missing, ids 101..366) collector_down` */
export function describeHole(h: HoleReport): string {
  const size = [`${h.seconds.toFixed(1)} s`];
  if (h.missing !== null) size.push(`${h.missing} missing`);
  if (h.firstMissingId !== null) size.push(`ids ${h.firstMissingId}..${h.lastMissingId ?? '?'}`);
  return `${h.dataType} ${h.venue} ${h.instrument} ${h.from}..${h.to} (${size.join(', ')}) ${h.cause}`;
}

