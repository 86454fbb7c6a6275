import type { DataType, PolledDataType } from '../config/schema.js';
import { ConfigError, MprismError } from '../errors.js';
import type { VolatilityIndexRecord } from '../records.js';
import {
  MalformedFrameError,
  isObject,
  parseFrame,
  type ControlAction,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type PollOptions,
  type RestPoll,
  type RestRequest,
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

/** Candle resolution asked for, in seconds; also the record's `resolution`. History asks for the same. */
const RESOLUTION = '60';
/** The candles' spacing: what continuity and repair expect of DVOL observations. */
export const DVOL_RESOLUTION_MS = Number(RESOLUTION) * 1000;
const DVOL_ROUTE = '/api/v2/public/get_volatility_index_data';
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
  return dvolRangeUrl(restBaseUrl, currency, now - windowMs, now);
}

/** Candles whose start lies in [startMs, endMs], both inclusive, as Deribit reads the range. */
function dvolRangeUrl(restBaseUrl: string, currency: string, startMs: number, endMs: number): string {
  const query = new URLSearchParams({
    currency: currency.toUpperCase(),
    start_timestamp: String(startMs),
    end_timestamp: String(endMs),
    resolution: RESOLUTION,
  });
  return `${restBaseUrl.replace(/\/+$/, '')}${DVOL_ROUTE}?${query.toString()}`;
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

type Candle = [number, number, number, number, number];

function isCandle(v: unknown): v is Candle {
  return Array.isArray(v) && v.length >= 5 && Number.isSafeInteger(v[0]) && v.slice(1, 5).every((x) => typeof x === 'number' && Number.isFinite(x));
}

/** One answer: its candles, the paging cursor, and Deribit's clock when it answered. */
interface DvolAnswer {
  candles: Candle[];
  /** Unchecked here: the live poll never pages, so only history validates it. */
  continuation: unknown;
  /** `usOut` of the JSON-RPC envelope, in ms; null where the body has none (the documentation example). */
  venueTimeMs: number | null;
}

function dvolAnswer(body: string): DvolAnswer {
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
  const usOut = parsed.usOut;
  const venueTimeMs = typeof usOut === 'number' && Number.isSafeInteger(usOut) ? Math.floor(usOut / 1000) : null;
  return { candles, continuation: result.continuation, venueTimeMs };
}

/** The one place a candle becomes a record, so live polls and history publish the same value under the same Msg-Id. */
function candleRecord([ts, , , , close]: Candle, currency: string, receiveTime: number): VolatilityIndexRecord {
  const { symbol, indexName } = dvolSymbol(currency);
  return {
    dataType: 'volatility_index',
    venue: 'deribit_derivatives',
    marketType: 'index',
    symbol,
    instrument: indexName,
    eventTime: ts,
    receiveTime,
    resolution: RESOLUTION,
    indexValue: numberText(close),
  };
}

/**
 * One record per finished candle, closing value. The newest candle is left out: it may still be
 * running, and its close would change while its Msg-Id (symbol, resolution, ts) would not, so
 * publishing it would freeze a wrong value.
 */
export function parseVolatilityIndex(body: string, currency: string, receiveTime: number): VolatilityIndexRecord[] {
  const { candles } = dvolAnswer(body);
  const newest = Math.max(...candles.map((c) => c[0]));
  return candles.filter((c) => c[0] !== newest).map((c) => candleRecord(c, currency, receiveTime));
}

/** The DVOL currency of a hole: records carry the index name (btc_usd); a bare currency (BTC) works too. */
export function dvolCurrencyOf(instrument: string): string {
  return instrument.replace(/_usd$/i, '').toUpperCase();
}

/** The range a history request asked for, read back from its URL: parsePage is handed only the request. */
function dvolRequestRange(request: RestRequest): { url: URL; currency: string; startMs: number; endMs: number } {
  const url = new URL(request.url);
  const currency = url.searchParams.get('currency');
  const startMs = Number(url.searchParams.get('start_timestamp') ?? NaN);
  const endMs = Number(url.searchParams.get('end_timestamp') ?? NaN);
  if (!url.pathname.endsWith(DVOL_ROUTE) || currency === null || !Number.isSafeInteger(startMs) || !Number.isSafeInteger(endMs)) {
    throw new MprismError(`not a DVOL history request: ${request.url}`);
  }
  return { url, currency, startMs, endMs };
}

/**
 * DVOL history from `public/get_volatility_index_data`: the newest candles of the range first,
 * older ones by asking again with end_timestamp = `continuation` (null: nothing older in range).
 * Limits, none of which this code depends on:
 * - public, no API key. A non-matching-engine request costs 500 credits of a 50,000 pool refilled
 *   at 10,000/s (20 req/s sustained, burst 100); an empty pool answers 10028 too_many_requests.
 * - rows per answer: not documented; users measure 1000 candles (16.7 h at 60 s). Only
 *   `continuation` decides whether more pages follow.
 * - depth: not documented. DVOL launched in March 2021 (daily candles from 2021-03-24 per users);
 *   how long 60 s candles are kept is unknown.
 */
const dvolHistory: HistorySource = {
  endpoint: `GET ${DVOL_ROUTE}`,
  pagesBy: 'time',
  blockedReason: () => null,

  request(restBaseUrl: string, query: HistoryQuery): RestRequest {
    return { url: dvolRangeUrl(restBaseUrl, dvolCurrencyOf(query.instrument), query.fromMs, query.toMs), weight: 1 };
  },

  parsePage(body: string, query: HistoryQuery, request: RestRequest, receiveTime: number): HistoryPage {
    const range = dvolRequestRange(request);
    const { candles, continuation, venueTimeMs } = dvolAnswer(body);
    if (continuation !== null && !(typeof continuation === 'number' && Number.isSafeInteger(continuation))) {
      throw new MalformedFrameError('unexpected_shape', 'DVOL continuation is neither null nor an integer timestamp', 'volatility_index');
    }
    // A cursor that does not move back in time would fetch the same page forever.
    if (continuation !== null && continuation >= range.endMs) {
      throw new MalformedFrameError(
        'unexpected_shape',
        `DVOL continuation ${String(continuation)} does not page back from end_timestamp ${String(range.endMs)}`,
        'volatility_index',
      );
    }
    // As live: a candle with a newer one beside it is finished. Unlike live, the newest one is kept
    // too once Deribit's clock (ours without usOut) is past its end, so a page boundary loses nothing.
    const newest = Math.max(...candles.map((c) => c[0]));
    const now = venueTimeMs ?? receiveTime;
    const records = candles
      .filter((c) => (c[0] !== newest || c[0] + DVOL_RESOLUTION_MS <= now) && c[0] >= query.fromMs && c[0] <= query.toMs)
      .map((c) => candleRecord(c, range.currency, receiveTime));
    let next: RestRequest | null = null;
    if (continuation !== null && continuation >= range.startMs) {
      range.url.searchParams.set('end_timestamp', String(continuation));
      next = { url: range.url.toString(), weight: 1 };
    }
    return { records, next };
  },
};

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
  history: { volatility_index: dvolHistory },

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
