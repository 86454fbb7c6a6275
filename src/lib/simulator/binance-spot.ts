import { BinanceSim, depthParams, historicalTradesParams } from './binance-sim.js';
import { StreamNames, binanceAcceptor, framer, parseStreamRoute } from './binance-ws.js';
import type { ModelLevel } from './book-model.js';
import { PRICE_DECIMALS, QTY_DECIMALS, formatFixed, levelRowsJson, type SimTrade } from './market.js';
import { BOOK_INTERVAL_MS, jsonReply, type Acceptor, type InstrumentMarket, type RestReply, type VenueContext } from './venue.js';

/** Binance pings every 20 s and drops a client that has not answered by the next round. */
const PING_INTERVAL_MS = 20_000;
/** Largest book level: 5 coins. */
const MAX_LEVEL_LOTS = 5 * 10 ** QTY_DECIMALS;

export function tradeStream(symbol: string): string {
  return `${symbol.toLowerCase()}@trade`;
}

export function depthStream(symbol: string): string {
  return `${symbol.toLowerCase()}@depth@100ms`;
}

/** The exact field order and formatting of a live spot `@trade` event. */
export function tradeEventJson(t: SimTrade, eventTime: number): string {
  return `{"e":"trade","E":${eventTime},"s":"${t.symbol}","t":${t.id},"p":"${t.price}","q":"${t.quantity}","T":${t.time},"m":${t.buyerIsMaker},"M":true}`;
}

/** One row of `GET /api/v3/historicalTrades`: the same trade, price and quantity strings as the `@trade` event. */
export function historicalTradeJson(t: SimTrade): string {
  // Ticks of 10^-2 times lots of 10^-5: the exact quote quantity in 10^-7.
  const quoteQty = formatFixed(t.priceTicks * t.qtyLots, PRICE_DECIMALS + QTY_DECIMALS);
  return `{"id":${t.id},"price":"${t.price}","qty":"${t.quantity}","quoteQty":"${quoteQty}","time":${t.time},"isBuyerMaker":${t.buyerIsMaker},"isBestMatch":true}`;
}

/** Spot prints prices and quantities with 8 decimals. */
export function spotLevels(levels: readonly ModelLevel[]): string {
  return levelRowsJson(levels, spotRow);
}

const spotRow = (p: number, q: number) => `"${formatFixed(p, PRICE_DECIMALS)}","${formatFixed(q, QTY_DECIMALS)}"`;

/** `GET /api/v3/depth` weight by limit. */
function depthWeight(limit: number): number {
  if (limit <= 100) return 5;
  if (limit <= 500) return 25;
  if (limit <= 1000) return 50;
  return 250;
}

/** `GET /api/v3/historicalTrades` costs 25 whatever the limit (default 500, max 1000). */
const HISTORICAL_TRADES_WEIGHT = 25;

/**
 * Binance spot as the real exchange serves it: `/stream` (combined, optional `?streams=`),
 * `/ws/<stream>` and `/ws` (raw) with `<sym>@trade` and `<sym>@depth@100ms` (U/u contiguous),
 * the REST snapshot `GET /api/v3/depth` matching the stream at that moment, and
 * `GET /api/v3/historicalTrades` listing the trades the stream sent or would have sent (no API
 * key needed since 2023-07-11; a key sent is ignored).
 */
export class BinanceSpotSim extends BinanceSim {
  private readonly streamNames = new StreamNames();

  constructor(ctx: VenueContext) {
    super('binance_spot', ctx, { pingIntervalMs: PING_INTERVAL_MS, maxLevelLots: MAX_LEVEL_LOTS, weightLimitPerMinute: 6000 });
  }

  wsRoute(route: string, query: URLSearchParams): Acceptor | null {
    const parsed = parseStreamRoute(route, query, '');
    if (parsed === null) return null;
    return binanceAcceptor(this.hub, route, parsed.combined, parsed.streams, () => true, (s) => this.touch(s));
  }

  rest(route: string, query: URLSearchParams): RestReply | null {
    switch (route) {
      case '/api/v3/depth': {
        const params = depthParams(query, 5000, 100);
        if ('status' in params) return params;
        const m = this.instruments.get(params.symbol);
        const { bids, asks } = m.book.levels(params.limit);
        return this.reply(depthWeight(params.limit), `{"lastUpdateId":${m.seq},"bids":${spotLevels(bids)},"asks":${spotLevels(asks)}}`);
      }
      case '/api/v3/historicalTrades': {
        const params = historicalTradesParams(query, 1000, 500);
        if ('status' in params) return params;
        return this.reply(HISTORICAL_TRADES_WEIGHT, `[${this.historicalTrades(params).map(historicalTradeJson).join(',')}]`);
      }
      default:
        return null;
    }
  }

  private reply(weight: number, body: string): RestReply {
    return jsonReply(200, body, { 'x-mbx-used-weight-1m': String(this.weight.add(weight, this.ctx.now())) });
  }

  tick(tradesDue: number): void {
    const now = this.ctx.now();
    for (const m of this.instruments.all()) {
      for (let i = 0; i < tradesDue; i++) this.publishTrade(m, m.nextTrade(now), now);
      m.reportSent(this.ctx.metrics);
      if (now >= m.nextBookAt) this.stepBook(m, now);
    }
  }

  /** Counted only if at least one socket took it. */
  private publishTrade(m: InstrumentMarket, trade: SimTrade, now: number): void {
    if (!this.synthetic) return;
    const stream = this.streamNames.get(m.id, tradeStream);
    if (!this.hub.hasSubscribers(stream)) return;
    if (this.hub.publish(stream, framer(stream, tradeEventJson(trade, now))) === 0) return;
    m.countSent(trade);
  }

  private stepBook(m: InstrumentMarket, now: number): void {
    m.nextBookAt = Math.max(m.nextBookAt + BOOK_INTERVAL_MS, now);
    const diff = m.book.step(m.tape.priceTicks);
    const first = m.seq + 1;
    m.seq += diff.bids.length + diff.asks.length;
    if (m.dropNextBookUpdate) {
      m.dropNextBookUpdate = false;
      return;
    }
    const stream = this.streamNames.get(m.id, depthStream);
    if (!this.synthetic || !this.hub.hasSubscribers(stream)) return;
    const event = `{"e":"depthUpdate","E":${now},"s":"${m.id}","U":${first},"u":${m.seq},"b":${spotLevels(diff.bids)},"a":${spotLevels(diff.asks)}}`;
    if (this.hub.publish(stream, framer(stream, event)) === 0) return;
    this.bookUpdates++;
    this.ctx.metrics.bookUpdates.inc({ venue: this.venue });
  }
}
