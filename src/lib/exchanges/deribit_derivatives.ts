import type { DataType, PolledDataType } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { VolatilityIndexRecord } from '../records.js';
import {
  MalformedFrameError,
  isObject,
  parseFrame,
  type ControlAction,
  type PollOptions,
  type RestPoll,
  type VenueAdapter,
  type WsConnectionSpec,
} from './types.js';

/** JSON-RPC error body, REST or WS. */
export interface DeribitErrorBody {
  error: { code: number; message: string; data?: unknown };
}

/** `public/get_volatility_index_data` result: candles oldest first, `[ts, open, high, low, close]`. */
export interface DeribitVolatilityIndexData {
  data: [number, number, number, number, number][];
  continuation: number | null;
}

/** Candle resolution asked for, in seconds; also the record's `resolution`. */
const RESOLUTION = '60';
/** Candles asked for per poll: several intervals back, so a missed poll or two loses nothing. */
const WINDOW_INTERVALS = 3;
const MIN_WINDOW_MS = 5 * 60_000;
/** Keeps one request well under a page (Deribit pages long ranges with `continuation`). */
const MAX_WINDOW_MS = 12 * 3600_000;

/** Deribit DVOL currency (BTC) -> normalized symbol BTC-USD and index name btc_usd. */
export function dvolSymbol(currency: string): { symbol: string; indexName: string } {
  const upper = currency.toUpperCase();
  return { symbol: `${upper}-USD`, indexName: `${upper.toLowerCase()}_usd` };
}

/** Candle window for one poll at `now`: a few poll intervals back, within [5 min, 12 h]. */
export function dvolWindowMs(intervalMs: number): number {
  return Math.min(MAX_WINDOW_MS, Math.max(MIN_WINDOW_MS, WINDOW_INTERVALS * intervalMs));
}

export function dvolUrl(restBaseUrl: string, currency: string, now: number, windowMs: number): string {
  const query = new URLSearchParams({
    currency: currency.toUpperCase(),
    start_timestamp: String(now - windowMs),
    end_timestamp: String(now),
    resolution: RESOLUTION,
  });
  return `${restBaseUrl.replace(/\/+$/, '')}/api/v2/public/get_volatility_index_data?${query.toString()}`;
}

/**
 * A JSON number as a decimal string: its shortest round-trip form, so 0.212860821 stays
 * `0.212860821` with no float noise; tiny or huge values keep exponent form (`1e-7`), which
 * formatDecimal reads.
 */
export function numberText(n: number): string {
  return String(n);
}

function isErrorBody(v: Record<string, unknown>): v is Record<string, unknown> & DeribitErrorBody {
  return isObject(v.error);
}

function venueError(body: DeribitErrorBody, dataType: DataType | null): MalformedFrameError {
  const { code, message } = body.error;
  return new MalformedFrameError('venue_error', `Deribit error ${String(code)}: ${String(message)}`, dataType);
}

function isCandle(v: unknown): v is [number, number, number, number, number] {
  return Array.isArray(v) && v.length >= 5 && Number.isSafeInteger(v[0]) && v.slice(1, 5).every((x) => typeof x === 'number' && Number.isFinite(x));
}

function candlesOf(body: string): [number, number, number, number, number][] {
  const parsed = parseFrame(body, 'volatility_index');
  if (!isObject(parsed)) throw new MalformedFrameError('unexpected_shape', 'DVOL body is not a JSON object', 'volatility_index');
  if (isErrorBody(parsed)) throw venueError(parsed, 'volatility_index');
  const result = parsed.result;
  if (!isObject(result) || !Array.isArray(result.data)) {
    throw new MalformedFrameError('unexpected_shape', 'DVOL body has no result.data array', 'volatility_index');
  }
  const candles: unknown[] = result.data;
  if (!candles.every(isCandle)) {
    throw new MalformedFrameError('unexpected_shape', 'DVOL candle is not [ts, open, high, low, close] numbers', 'volatility_index');
  }
  return candles;
}

/**
 * One record per finished candle, closing value. The newest candle is left out: it may still be
 * running, and its close would change while its Msg-Id (symbol, resolution, ts) would not, so
 * publishing it would freeze a wrong value.
 */
export function parseVolatilityIndex(body: string, currency: string, receiveTime: number): VolatilityIndexRecord[] {
  const candles = candlesOf(body);
  const newest = Math.max(...candles.map((c) => c[0]));
  const { symbol, indexName } = dvolSymbol(currency);
  return candles
    .filter((c) => c[0] !== newest)
    .map(([ts, , , , close]) => ({
      dataType: 'volatility_index',
      venue: 'deribit_derivatives',
      marketType: 'index',
      symbol,
      instrument: indexName,
      eventTime: ts,
      receiveTime,
      resolution: RESOLUTION,
      indexValue: numberText(close),
    }));
}

/** Answer to a heartbeat `test_request`: Deribit closes a connection that does not answer. */
const TEST_REQUEST_ANSWER = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'public/test', params: {} });

function isTestRequest(v: Record<string, unknown>): boolean {
  return v.method === 'heartbeat' && isObject(v.params) && v.params.type === 'test_request';
}

export const deribitDerivatives: VenueAdapter = {
  venue: 'deribit_derivatives',
  marketType: 'index',
  wsDataTypes: [],
  polledDataTypes: ['volatility_index'],
  tradeIds: 'increasing',
  history: {},

  connections(_baseUrl: string, _symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[] {
    for (const dataType of dataTypes) {
      if (dataType === 'volatility_index') continue; // polled over REST: needs no connection
      throw new ConfigError(`collector.venues.deribit_derivatives.dataTypes: ${dataType} is not collected for deribit_derivatives (only volatility_index)`);
    }
    return [];
  },

  /** No channel is subscribed, so only JSON-RPC answers and heartbeats can arrive: they hold no records. */
  normalize(frame: string): void {
    const parsed = parseFrame(frame);
    if (!isObject(parsed)) throw new MalformedFrameError('unexpected_shape', 'frame is not a JSON object');
    if (isErrorBody(parsed)) throw venueError(parsed, null);
    if ('result' in parsed || parsed.method === 'heartbeat') return;
    throw new MalformedFrameError('unexpected_shape', `unexpected frame: ${frame.slice(0, 120)}`);
  },

  control(frame: string): ControlAction {
    let parsed: unknown;
    try {
      parsed = JSON.parse(frame) as unknown;
    } catch {
      return { kind: 'none' };
    }
    return isObject(parsed) && isTestRequest(parsed) ? { kind: 'send', message: TEST_REQUEST_ANSWER } : { kind: 'none' };
  },

  // Symbols are DVOL currencies (BTC); records carry the index name (btc_usd).
  instrumentOf: (currency) => dvolSymbol(currency).indexName,

  polls(restBaseUrl: string, symbols: readonly string[], dataTypes: readonly PolledDataType[], options: PollOptions): RestPoll[] {
    const polls: RestPoll[] = [];
    for (const dataType of dataTypes) {
      if (dataType !== 'volatility_index') {
        throw new ConfigError(`collector.venues.deribit_derivatives.dataTypes: ${dataType} is not collected for deribit_derivatives (only volatility_index)`);
      }
      const intervalMs = options.intervalMs.volatility_index;
      const windowMs = dvolWindowMs(intervalMs);
      for (const currency of symbols) {
        const { indexName } = dvolSymbol(currency);
        polls.push({
          id: `deribit_derivatives/volatility_index/${indexName}`,
          dataType,
          instrument: indexName,
          intervalMs,
          weight: 1,
          // The window ends at the moment of the request, so the URL is built on every read.
          get url() {
            return dvolUrl(restBaseUrl, currency, Date.now(), windowMs);
          },
          parse: (body, receiveTime) => parseVolatilityIndex(body, currency, receiveTime),
        });
      }
    }
    return polls;
  },

  // Deribit refills 10,000 credits/s at 500 per request (~20 req/s, burst 100); stay far below.
  rateLimit: { weightPerWindow: 50, windowMs: 10_000, usedWeightHeader: null },
  book: null,
};
