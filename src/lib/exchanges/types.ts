import type { DataType, PolledDataType, Venue } from '../config/schema.js';
import { MprismError } from '../errors.js';
import type { BookChecksum, BookMessage, SequenceRules, SnapshotSource } from '../orderbook/types.js';
import type { MarketRecord, MarketType } from '../records.js';

/** Why a frame was rejected; becomes the `code` label of mprism_collector_errors_total. */
export type MalformedFrameCode = 'malformed_json' | 'unexpected_shape' | 'unknown_symbol' | 'venue_error';

/**
 * A frame or REST body the venue sent that cannot be turned into records. The collector counts and
 * skips it: one bad frame must never take the connection down.
 */
export class MalformedFrameError extends MprismError {
  override readonly code = 'malformed_frame';
  constructor(
    readonly reason: MalformedFrameCode,
    message: string,
    /** The data type the frame claimed to be, when that much could be read. */
    readonly dataType: DataType | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A frame or body of the wrong shape: `what` says which part, and the start of the item is shown. */
export function shapeError(dataType: DataType | null, what: string, item: unknown): MalformedFrameError {
  const shown = typeof item === 'string' ? item : JSON.stringify(item);
  return new MalformedFrameError('unexpected_shape', `${what}: ${shown?.slice(0, 160)}`, dataType);
}

/** Client-side keepalive for venues that expect us to ping (OKX: text `ping` -> `pong`). */
export interface Keepalive {
  /** Text frame to send. */
  message: string;
  /** Sent after this long without any frame from the venue. */
  afterSilenceMs: number;
}

/** One WebSocket connection to open: where, and what to send once it is open. */
export interface WsConnectionSpec {
  /** Stable label for logs and metrics, e.g. `binance_derivatives/market/0`. */
  id: string;
  url: string;
  /** Data types this connection carries (health and metrics map connections to streams with it). */
  dataTypes: readonly DataType[];
  /** Text frames to send right after the connection opens (subscriptions, heartbeat set-up). */
  subscribeMessages: readonly string[];
  /** The venue cuts connections at a fixed age; reconnect on our terms before it does. Infinity: never. */
  maxConnectionAgeMs: number;
  /** null: the venue pings us (Binance), or heartbeats are requested in subscribeMessages (Deribit). */
  keepalive: Keepalive | null;
  /**
   * No frame and no ping for this long: the connection is dead and is replaced. Tuned per feed so
   * that a quiet symbol is not mistaken for a dead socket; null: the collector's staleAfterSeconds.
   */
  staleAfterMs: number | null;
}

/** What the transport must do about a frame that carried no records. */
export type ControlAction =
  | { kind: 'none' }
  /** The venue announced it will drop us, or refused a subscription: open a fresh connection. */
  | { kind: 'reconnect'; reason: string }
  /** The venue asked for an answer on this connection (Deribit `test_request`). */
  | { kind: 'send'; message: string };

/** Receives what one frame holds; normalize() calls it synchronously, in frame order. */
export interface FrameSink {
  record(record: MarketRecord): void;
  book(message: BookMessage): void;
}

/** One HTTP GET against the venue. */
export interface RestRequest {
  url: string;
  /** Cost against the venue's rate budget (Binance request weight; 1 elsewhere). */
  weight: number;
  /** Extra request headers (an API key); secrets: never logged or captured. */
  headers?: Readonly<Record<string, string>>;
}

/** A REST endpoint polled at an interval; each response becomes 0..n records. */
export interface RestPoll extends RestRequest {
  /** Stable label, e.g. `binance_derivatives/open_interest/BTCUSDT`. */
  id: string;
  dataType: PolledDataType;
  /** The instrument id its records carry (VenueAdapter.instrumentOf of the symbol). */
  instrument: string;
  intervalMs: number;
  /**
   * Records in the body. Each carries the exchange's own timestamp as eventTime, so polling the same
   * observation twice publishes it once (same Msg-Id). Throws MalformedFrameError.
   */
  parse(body: string, receiveTime: number): MarketRecord[];
}

/** A venue's REST rate limit, as the collector budgets it (per IP). */
export interface RateLimitPolicy {
  /** Weight allowed per window; the collector keeps below it with a safety margin. */
  weightPerWindow: number;
  windowMs: number;
  /** Response header with the weight already used in the current window (Binance `x-mbx-used-weight-1m`). */
  usedWeightHeader: string | null;
}

/** Orderbook support of a venue. */
export interface BookSupport {
  rules: SequenceRules;
  source: SnapshotSource;
  /** source `rest`: the snapshot request for one instrument. */
  snapshotRequest?(restBaseUrl: string, instrument: string): RestRequest;
  /** source `rest`: the snapshot body as a `snapshot` BookMessage. Throws MalformedFrameError. */
  parseSnapshot?(body: string, instrument: string, receiveTime: number): BookMessage;
  /** source `stream`: frames that make the venue push a fresh snapshot of one instrument (unsubscribe + subscribe). */
  resubscribe?(instrument: string): string[];
  /** Set where the venue sends a checksum to verify the book against. */
  checksum?: BookChecksum;
}

const PERIOD_UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A long/short ratio period as configured (`5m`, `1h`, `1d`) in milliseconds; 0 for anything else. */
export function periodToMs(period: string): number {
  const m = /^(\d+)([mhd])$/.exec(period);
  return m === null ? 0 : Number(m[1]) * (PERIOD_UNIT_MS[m[2] ?? ''] ?? 0);
}

export interface PollOptions {
  /** Poll interval per data type, ms. */
  intervalMs: Readonly<Record<PolledDataType, number>>;
  /** Long/short ratio period, e.g. 5m. */
  lsrPeriod: string;
}

/**
 * One venue's market data: WebSocket subscription plan, pure synchronous parsing, REST polls and
 * orderbook rules. Transport (feeds/) and publishing (bus/) stay outside, so an adapter is
 * testable on captured frames.
 */
export interface VenueAdapter {
  readonly venue: Venue;
  readonly marketType: MarketType;
  /** Data types this adapter collects over WebSocket. */
  readonly wsDataTypes: readonly DataType[];
  /** Data types this adapter collects by polling REST. */
  readonly polledDataTypes: readonly PolledDataType[];
  /**
   * Connections needed for these native symbols and (WebSocket) data types. A venue may need several
   * (per-connection stream limits, or data types routed to different endpoints). `baseUrl` is
   * scheme://host[:port][/prefix]; the adapter appends its routes.
   */
  connections(baseUrl: string, symbols: readonly string[], dataTypes: readonly DataType[]): WsConnectionSpec[];
  /**
   * Hands the records and book messages of one text frame to `out`. Subscription acks, pongs and
   * other control frames yield nothing. Throws MalformedFrameError for frames that are not what the
   * venue documents (after handing out nothing).
   */
  normalize(frame: string, receiveTime: number, out: FrameSink): void;
  /** Only asked about frames that yielded nothing, so data frames are parsed once. */
  control(frame: string): ControlAction;
  /** The instrument id this venue's records carry for a configured symbol (health expects each). */
  instrumentOf(symbol: string): string;
  /** REST polls for these symbols and polled data types. */
  polls(restBaseUrl: string, symbols: readonly string[], dataTypes: readonly PolledDataType[], options: PollOptions): RestPoll[];
  readonly rateLimit: RateLimitPolicy;
  /** null: no orderbooks from this venue. */
  readonly book: BookSupport | null;
  /** Set where the venue counts sizes in contracts (OKX swaps): how to learn each instrument's value. */
  readonly contracts?: ContractValueSupport;
  /**
   * `contiguous`: each instrument's trade ids count up by one with no id left out, so a jump in ids
   * is a hole (Binance spot `@trade`). `increasing`: ids only grow; the venue leaves some out
   * (Binance USD-M drops insurance-fund fills from the stream, OKX `trades` aggregates fills), so
   * only the collector's coverage tells a hole.
   */
  readonly tradeIds: 'contiguous' | 'increasing';
  /** The venue's REST history per data type it can refill; a type missing here cannot be refilled. */
  readonly history: Readonly<Partial<Record<HistoryDataType, HistorySource>>>;
}

/** Data types a venue's REST history can refill: trades and the polled types. Books and liquidations cannot. */
export type HistoryDataType = 'trade' | PolledDataType;

/** Credentials some history endpoints need. Secrets: never logged, never in --json. */
export interface VenueCredentials {
  apiKey: string | null;
}

/** One hole, as asked of a venue's history. */
export interface HistoryQuery {
  /** The venue's instrument id, as records carry it (BTCUSDT, BTC-USDT-SWAP, DVOL currency BTC). */
  instrument: string;
  /** Exchange event times, epoch ms, both inclusive. */
  fromMs: number;
  toMs: number;
  /** Trade holes whose missing ids are known: the first and last missing id, inclusive. Else null. */
  fromId: string | null;
  toId: string | null;
}

/** One page of history: its records and the request for the next page. */
export interface HistoryPage {
  /**
   * Records exactly as the live feed or poll yields them for the same observation (same event time,
   * fields and so Msg-Id), in venue units (contract sizing is applied by the caller, as live).
   * The page may hold records outside the query; the caller keeps only those inside it.
   */
  records: MarketRecord[];
  /** The next page, or null once the query's range is covered (or the venue has no more). */
  next: RestRequest | null;
}

/**
 * A venue's REST history for one data type: how to page through a hole. Pure: the caller does the
 * requests (within the venue's rate budget), filters to the query and publishes.
 */
export interface HistorySource {
  /** The endpoint as the venue documents it, for messages: `GET /api/v3/historicalTrades`. */
  readonly endpoint: string;
  /** `id`: pages by trade id (needs query.fromId); `time`: by event time. */
  readonly pagesBy: 'id' | 'time';
  /**
   * How far back the venue keeps this history, where it says: a hole that began earlier cannot be
   * refilled (the venue answers with nothing, which must not pass for "nothing was missing").
   */
  horizonMs?(options: PollOptions): number;
  /** Why these credentials cannot read it (`needs an API key (apiKey of binance_derivatives)`); null: they can. */
  blockedReason(credentials: VenueCredentials): string | null;
  /** The first page's request. */
  request(restBaseUrl: string, query: HistoryQuery, credentials: VenueCredentials, options: PollOptions): RestRequest;
  /** Records of one page and the next page's request. Throws MalformedFrameError. */
  parsePage(body: string, query: HistoryQuery, request: RestRequest, receiveTime: number): HistoryPage;
}

/**
 * Venues that count trade, liquidation and book sizes in contracts, whose value differs per
 * instrument. The collector asks for each configured instrument's contract value before it opens
 * the feeds, and publishes every size in coins (recordInCoins): a BTC size then means the same on
 * every venue. normalize() itself keeps the venue's units, which the OKX checksum is computed on.
 */
export interface ContractValueSupport {
  request(restBaseUrl: string, instrument: string): RestRequest;
  /**
   * The venue's list of every contract in one request, where it has one: what reader reads for any
   * instrument it lists (an instrument it lacks throws MalformedFrameError `unknown_symbol`).
   */
  listAll?(restBaseUrl: string): RestRequest;
  /**
   * An answer, read once (throws MalformedFrameError when it is not one): the function gives an
   * instrument's coins per contract, as a decimal string, or throws MalformedFrameError. Once, so a
   * listing of every contract is not parsed again for each configured instrument.
   */
  reader(body: string): (instrument: string) => string;
}

/** Everything one frame holds, collected (tests, benchmarks, replay tools). */
export function normalizeAll(adapter: VenueAdapter, frame: string, receiveTime: number): { records: MarketRecord[]; books: BookMessage[] } {
  const records: MarketRecord[] = [];
  const books: BookMessage[] = [];
  adapter.normalize(frame, receiveTime, { record: (r) => records.push(r), book: (m) => books.push(m) });
  return { records, books };
}

/** JSON.parse that reports failure as a MalformedFrameError instead of a SyntaxError. */
export function parseFrame(frame: string, dataType: DataType | null = null): unknown {
  try {
    return JSON.parse(frame) as unknown;
  } catch (err) {
    throw new MalformedFrameError('malformed_json', `not JSON: ${frame.slice(0, 80)}`, dataType, { cause: err });
  }
}

/** `${base}${route}`, keeping any path prefix of the base (the simulator serves venues under /<venue>). */
export function joinUrl(base: string, route: string): string {
  return `${base.replace(/\/+$/, '')}${route}`;
}

/** Unsigned decimal as venues write prices and sizes in JSON strings: no sign, no exponent. */
export { isDecimal, isObject, isSignedDecimal } from '../json-guards.js';

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
