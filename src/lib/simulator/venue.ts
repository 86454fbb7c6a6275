import type { IncomingHttpHeaders } from 'node:http';
import type { WebSocket } from 'ws';
import type { Venue } from '../config/schema.js';
import type { Logger } from '../log.js';
import { BookModel, gridFor } from './book-model.js';
import type { SimMetrics, SocketHub } from './hub.js';
import { SymbolMarket, hashString, seededRandom, type SimTrade } from './market.js';
import { TradeHistory } from './trade-history.js';

/** Per-instrument count of trades that reached at least one subscriber. */
export interface SymbolSendStats {
  sent: number;
  firstId: number | null;
  lastId: number | null;
}

export interface VenueStats {
  connections: number;
  trades: Record<string, SymbolSendStats>;
  bookUpdates: number;
  liquidations: number;
  restRequests: number;
  faults: Record<string, number>;
}

export interface RestReply {
  status: number;
  body: string;
  headers?: Readonly<Record<string, string>>;
}

/** What every venue family gets from the server. */
export interface VenueContext {
  seed: number;
  /** Unsent bytes after which a client is dropped as too slow. */
  slowClientBytes: number;
  metrics: SimMetrics;
  log: Logger;
  now: () => number;
}

/** Cadence of book updates on every venue (Binance @depth@100ms, OKX books). */
export const BOOK_INTERVAL_MS = 100;

/**
 * One venue's instrument: its trade tape and book, driven by randomness derived from the seed,
 * the venue and the instrument, so every venue has its own reproducible market.
 */
export class InstrumentMarket {
  readonly tape: SymbolMarket;
  readonly book: BookModel;
  /** Venue extras (sequence steps, liquidation sizes) draw from here, apart from the tape and the book. */
  readonly random: () => number;
  /** Last book sequence id produced (Binance u, OKX seqId). Continues from the wall clock, like trade ids. */
  seq: number;
  /** The gap fault: the next book update is produced but never sent. */
  dropNextBookUpdate = false;
  nextBookAt: number;
  nextLiquidationAt: number;
  readonly sendStats: SymbolSendStats = { sent: 0, firstId: null, lastId: null };
  /** Every trade the tape produced, sent or not: what the venue's trade history serves. */
  readonly trades = new TradeHistory();

  constructor(
    readonly venue: Venue,
    readonly id: string,
    seed: number,
    now: number,
    /** Largest book level, in the tape's lots. */
    maxLots: number,
  ) {
    // binance_spot keeps the tape the simulator has always produced for a seed.
    const tapeSeed = venue === 'binance_spot' ? seed : (seed ^ hashString(venue)) >>> 0;
    // Ids continue from the wall clock (100 per ms leaves room for 100k trades/s), so a restarted
    // simulator never reuses trade ids already stored downstream. Prices follow the seed.
    this.tape = new SymbolMarket(id, tapeSeed, now * 100);
    const key = (seed ^ hashString(`${venue}/${id}`)) >>> 0;
    this.book = new BookModel(seededRandom(key), gridFor(this.tape.priceTicks), maxLots, this.tape.priceTicks);
    this.random = seededRandom((key ^ 0x9e3779b9) >>> 0);
    this.seq = now * 10;
    this.nextBookAt = now + BOOK_INTERVAL_MS;
    this.nextLiquidationAt = now + this.liquidationPause();
  }

  /** Seconds between liquidations: a few, varying. */
  liquidationPause(): number {
    return 2000 + Math.floor(this.random() * 4000);
  }

  /** The tape's next trade, kept for the history endpoints whether or not anyone is subscribed. */
  nextTrade(now: number): SimTrade {
    const trade = this.tape.next(now);
    this.trades.push(trade);
    return trade;
  }

  /** Sent trades not yet added to mprism_simulator_trades_sent_total (see reportSent). */
  private unreported = 0;

  countSent(trade: SimTrade): void {
    this.sendStats.sent++;
    this.sendStats.firstId ??= trade.id;
    this.sendStats.lastId = trade.id;
    this.unreported++;
  }

  /** Adds the trades sent since the last call to the counter: once per tick, not once per trade (a label lookup each). */
  reportSent(metrics: SimMetrics): void {
    if (this.unreported === 0) return;
    metrics.tradesSent.inc({ venue: this.venue, symbol: this.id }, this.unreported);
    this.unreported = 0;
  }
}

/** Accepts one upgraded socket on a route the venue serves. */
export type Acceptor = (ws: WebSocket) => void;

/** What the server needs from a venue family: routes, generation and faults. */
export interface VenueSim {
  readonly venue: Venue;
  readonly hub: SocketHub<unknown>;
  /** The handler for a WebSocket route under /<venue>; null: no such route (404). */
  wsRoute(route: string, query: URLSearchParams): Acceptor | null;
  /** A REST route under /<venue>; null: no such route (404). Header names are lower case (an API key). */
  rest(route: string, query: URLSearchParams, headers: IncomingHttpHeaders): RestReply | null;
  /** The venue's answer when its request budget is exhausted (the http_429 fault). */
  tooManyRequests(retryAfterSeconds: number): RestReply;
  /** Pre-creates an instrument from a config symbol such as BTCUSDT; false when the venue has no such form. */
  preCreate(symbol: string): boolean;
  /** Emits what is due: `tradesDue` trades per instrument, book updates, periodic pushes. */
  tick(tradesDue: number): void;
  /** Instruments whose next book update will be withheld. */
  gap(instrument: string | null): string[];
  /** Instruments whose next book message carries a wrong checksum (venues with checksums). */
  badChecksum(instrument: string | null): string[];
  /** Sends malformed frames to subscribed connections; returns how many got them. */
  malformed(instrument: string | null): number;
  disconnect(instrument: string | null): number;
  /** Replay owns the venue's sockets: no synthetic frames while true. */
  synthetic: boolean;
  stats(): Omit<VenueStats, 'faults' | 'restRequests'>;
  close(): void;
}

/** Instruments of a venue, created on first use. */
export class InstrumentSet {
  private readonly byId = new Map<string, InstrumentMarket>();

  constructor(
    private readonly venue: Venue,
    private readonly ctx: VenueContext,
    private readonly maxLots: number,
  ) {}

  get(id: string): InstrumentMarket {
    let m = this.byId.get(id);
    if (m === undefined) {
      m = new InstrumentMarket(this.venue, id, this.ctx.seed, this.ctx.now(), this.maxLots);
      this.byId.set(id, m);
    }
    return m;
  }

  all(): Iterable<InstrumentMarket> {
    return this.byId.values();
  }

  /** One instrument, or all of them (a fault without an instrument). */
  select(id: string | null): InstrumentMarket[] {
    if (id === null) return [...this.byId.values()];
    const m = this.byId.get(id);
    return m === undefined ? [] : [m];
  }

  tradeStats(): Record<string, SymbolSendStats> {
    return Object.fromEntries([...this.byId].map(([id, m]) => [id, { ...m.sendStats }]));
  }
}

/** JSON reply helper for the venues' REST routes. */
export function jsonReply(status: number, body: unknown, headers?: Record<string, string>): RestReply {
  return { status, body: typeof body === 'string' ? body : JSON.stringify(body), headers };
}
