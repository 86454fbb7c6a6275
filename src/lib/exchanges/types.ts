import type { DataType, Venue } from '../config/schema.js';
import { MprismError } from '../errors.js';
import type { MarketRecord, MarketType } from '../records.js';

/** Why a frame was rejected; becomes the `code` label of mprism_collector_errors_total. */
export type MalformedFrameCode = 'malformed_json' | 'unexpected_shape' | 'unknown_symbol';

/**
 * A frame the venue sent that cannot be turned into records. The collector counts and skips it:
 * one bad frame must never take the connection down.
 */
export class MalformedFrameError extends MprismError {
  constructor(
    readonly code: MalformedFrameCode,
    message: string,
    /** The data type the frame claimed to be, when that much could be read. */
    readonly dataType: DataType | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One WebSocket connection to open: where, and what to send once it is open. */
export interface WsConnectionSpec {
  /** Stable label for logs and metrics, e.g. `binance_spot/0`. */
  id: string;
  url: string;
  /** Text frames to send right after the connection opens (subscriptions). */
  subscribeMessages: readonly string[];
  /** The venue cuts connections at a fixed age; reconnect on our terms before it does. */
  maxConnectionAgeMs: number;
}

/** What the transport must do about a frame that carried no records. */
export type ControlAction =
  | { kind: 'none' }
  /** The venue announced it will drop us, or refused a subscription: open a fresh connection. */
  | { kind: 'reconnect'; reason: string };

/**
 * One venue's WebSocket market data: subscription plan plus pure, synchronous parsing.
 * Transport (feeds/) and publishing (bus/) stay outside, so an adapter is testable on captured frames.
 */
export interface VenueAdapter {
  readonly venue: Venue;
  readonly marketType: MarketType;
  /** Data types this adapter can collect over WebSocket. */
  readonly wsDataTypes: readonly DataType[];
  /**
   * Connections needed for these native symbols and data types. A venue may need several
   * (per-connection stream limits, or data types routed to different endpoints).
   */
  connections(baseUrl: string, symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[];
  /**
   * 0..n records from one text frame. Subscription acks and other control frames yield nothing.
   * Throws MalformedFrameError for frames that are not what the venue documents.
   */
  normalize(frame: string, receiveTime: number): Iterable<MarketRecord>;
  /** Only asked about frames that yielded no records, so data frames are parsed once. */
  control(frame: string): ControlAction;
}

/** JSON.parse that reports failure as a MalformedFrameError instead of a SyntaxError. */
export function parseFrame(frame: string): unknown {
  try {
    return JSON.parse(frame) as unknown;
  } catch (err) {
    throw new MalformedFrameError('malformed_json', `frame is not JSON: ${frame.slice(0, 80)}`, null, { cause: err });
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Quote assets recognised at the end of concatenated instrument ids (BTCUSDT). Longest first, so
 * FDUSD wins over USD and USDT over USD when several match.
 */
export const QUOTE_ASSETS: readonly string[] = [
  'FDUSD',
  'TUSD',
  'USDT',
  'USDC',
  'BUSD',
  'USDP',
  'USD',
  'DAI',
  'BTC',
  'ETH',
  'BNB',
  'EUR',
  'TRY',
  'BRL',
  'GBP',
  'JPY',
  'AUD',
  'UAH',
  'RUB',
].sort((a, b) => b.length - a.length);

/**
 * BTCUSDT -> BTC-USDT. Returns null when no known quote asset ends the id, or nothing is left
 * for the base: guessing a split would publish on a wrong subject forever.
 */
export function splitConcatenatedSymbol(instrument: string): string | null {
  const upper = instrument.toUpperCase();
  for (const quote of QUOTE_ASSETS) {
    if (upper.length > quote.length && upper.endsWith(quote)) {
      return `${upper.slice(0, -quote.length)}-${quote}`;
    }
  }
  return null;
}
