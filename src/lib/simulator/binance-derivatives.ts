import type { IncomingHttpHeaders } from 'node:http';
import { BinanceSim, apiKeyRefusal, binanceError, depthParams, historicalTradesParams, isReply, longParam, symbolParam } from './binance-sim.js';
import { StreamNames, binanceAcceptor, framer, parseStreamRoute } from './binance-ws.js';
import type { ModelLevel } from './book-model.js';
import { FUNDING_INTERVAL_MS, fundingRate, longShortShares, nextFundingTime, openInterestCoins, periodMs, periodStarts } from './derivatives-model.js';
import { PRICE_DECIMALS, QTY_DECIMALS, formatFixed, levelRowsJson, type SimTrade } from './market.js';
import { BOOK_INTERVAL_MS, jsonReply, type Acceptor, type InstrumentMarket, type RestReply, type VenueContext } from './venue.js';

/** USD-M pings every 3 minutes. */
const PING_INTERVAL_MS = 180_000;
/** Futures quantities have 3 decimals: book lots are 10^-3 coins, up to 5 coins a level. */
const LOT_DECIMALS = 3;
const MAX_LEVEL_LOTS = 5000;
const LSR_PERIODS = ['5m', '15m', '30m', '1h', '2h', '4h', '6h', '12h', '1d'];
/** The /futures/data statistics keep the latest 30 days. */
const STATS_HORIZON_MS = 30 * 86_400_000;
/** `GET /fapi/v1/historicalTrades` weight (default limit 100, max 500). */
const HISTORICAL_TRADES_WEIGHT = 20;

/** Streams each route carries since the 2026 split; the legacy routes act as /public. */
const PUBLIC_STREAM = /^[a-z0-9]+@(depth@100ms|trade)$/;
const MARKET_STREAM = /^([a-z0-9]+@(aggTrade|markPrice|markPrice@1s|forceOrder)|!forceOrder@arr)$/;
const ROUTES: ReadonlyArray<{ prefix: string; delivers: RegExp }> = [
  { prefix: '/public', delivers: PUBLIC_STREAM },
  { prefix: '/market', delivers: MARKET_STREAM },
  { prefix: '', delivers: PUBLIC_STREAM },
];

const price = (ticks: number) => formatFixed(ticks, PRICE_DECIMALS, PRICE_DECIMALS);
const p8 = (ticks: number) => formatFixed(ticks, PRICE_DECIMALS);
const qty = (lots: number) => formatFixed(lots, LOT_DECIMALS, LOT_DECIMALS);
/** The tape counts 10^-5 lots; futures trade in 10^-3. */
const tradeLots = (t: SimTrade) => Math.max(1, Math.round(t.qtyLots / 10 ** (QTY_DECIMALS - LOT_DECIMALS)));

/** One row of `GET /fapi/v1/historicalTrades`: the price and quantity strings of the `@trade` event. */
function historicalTradeJson(t: SimTrade): string {
  const lots = tradeLots(t);
  const quoteQty = formatFixed(t.priceTicks * lots, PRICE_DECIMALS + LOT_DECIMALS, PRICE_DECIMALS + LOT_DECIMALS);
  return `{"id":${t.id},"price":"${price(t.priceTicks)}","qty":"${qty(lots)}","quoteQty":"${quoteQty}","time":${t.time},"isBuyerMaker":${t.buyerIsMaker},"isRPITrade":false}`;
}

const tradeStreamOf = (id: string) => `${id.toLowerCase()}@trade`;
const aggTradeStreamOf = (id: string) => `${id.toLowerCase()}@aggTrade`;
const depthStreamOf = (id: string) => `${id.toLowerCase()}@depth@100ms`;

/** USD-M book levels: prices with 2 decimals, quantities with 3. */
export function futuresLevels(levels: readonly ModelLevel[]): string {
  return levelRowsJson(levels, futuresRow);
}

const futuresRow = (p: number, q: number) => `"${price(p)}","${qty(q)}"`;

/** `GET /fapi/v1/depth` weight by limit. */
function depthWeight(limit: number): number {
  if (limit <= 50) return 2;
  if (limit <= 100) return 5;
  if (limit <= 500) return 10;
  return 20;
}

function optionalTime(query: URLSearchParams, name: string): number | null {
  const v = query.get(name);
  return v !== null && /^\d+$/.test(v) ? Number(v) : null;
}

/**
 * Funding times of settled rates (at or before now) as `GET /fapi/v1/fundingRate` lists them:
 * ascending, the first `limit` from startTime, or the newest `limit` without one.
 */
function fundingTimes(now: number, limit: number, start: number | null, end: number | null): number[] {
  const last = Math.floor(Math.min(end ?? now, now) / FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS;
  const first = start === null ? last - (limit - 1) * FUNDING_INTERVAL_MS : Math.ceil(start / FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS;
  const out: number[] = [];
  for (let t = Math.max(0, first); t <= last && out.length < limit; t += FUNDING_INTERVAL_MS) out.push(t);
  return out;
}

/**
 * Binance USD-M perpetuals: `/public` (`@depth@100ms` with U/u/pu, `@trade`), `/market`
 * (`@aggTrade`, `@markPrice[@1s]`, `@forceOrder`, `!forceOrder@arr`), the legacy `/stream` and
 * `/ws` that ack everything but deliver only public streams, and the REST depth, premium index,
 * open interest and long/short ratio endpoints. The history endpoints answer from the same model:
 * historicalTrades (API key required) from the tape's trades, fundingRate from the rate at each
 * funding time, openInterestHist and the ratios from each period's start.
 */
export class BinanceDerivativesSim extends BinanceSim {
  private nextMarkPriceAt: number;
  private readonly streamNames = new StreamNames();

  constructor(ctx: VenueContext) {
    super('binance_derivatives', ctx, { pingIntervalMs: PING_INTERVAL_MS, maxLevelLots: MAX_LEVEL_LOTS, weightLimitPerMinute: 2400 });
    this.nextMarkPriceAt = ctx.now() + 1000;
  }

  wsRoute(route: string, query: URLSearchParams): Acceptor | null {
    for (const { prefix, delivers } of ROUTES) {
      const parsed = parseStreamRoute(route, query, prefix);
      if (parsed === null) continue;
      return binanceAcceptor(this.hub, route, parsed.combined, parsed.streams, (s) => delivers.test(s), (s) => this.touch(s));
    }
    return null;
  }

  rest(route: string, query: URLSearchParams, headers: IncomingHttpHeaders): RestReply | null {
    const now = this.ctx.now();
    switch (route) {
      case '/fapi/v1/historicalTrades': {
        const refusal = apiKeyRefusal(headers);
        if (refusal !== null) return refusal;
        const params = historicalTradesParams(query, 500, 100);
        if ('status' in params) return params;
        return this.reply(HISTORICAL_TRADES_WEIGHT, `[${this.historicalTrades(params).map(historicalTradeJson).join(',')}]`);
      }
      case '/fapi/v1/fundingRate':
        return this.fundingHistory(query, now);
      case '/futures/data/openInterestHist':
        return this.periodStats(route, query, now, (m, ts) => {
          const oiLots = Math.round(openInterestCoins(this.ctx.seed, `${this.venue}/${m.id}`, ts) * 1000);
          // Lots of 10^-3 coins times ticks of 10^-2: the value in 10^-5, exactly.
          return `"sumOpenInterest":"${formatFixed(oiLots, LOT_DECIMALS)}","sumOpenInterestValue":"${formatFixed(oiLots * this.priceAt(m, ts), PRICE_DECIMALS + LOT_DECIMALS)}"`;
        });
      case '/fapi/v1/depth': {
        const params = depthParams(query, 1000, 500);
        if ('status' in params) return params;
        const m = this.instruments.get(params.symbol);
        const { bids, asks } = m.book.levels(params.limit);
        return this.reply(depthWeight(params.limit), `{"lastUpdateId":${m.seq},"E":${now},"T":${now - 1},"bids":${futuresLevels(bids)},"asks":${futuresLevels(asks)}}`);
      }
      case '/fapi/v1/premiumIndex': {
        const symbol = query.get('symbol');
        if (symbol === null) return this.reply(10, `[${[...this.instruments.all()].map((m) => this.premiumIndex(m, now)).join(',')}]`);
        const m = this.instrument(symbol);
        return 'status' in m ? m : this.reply(1, this.premiumIndex(m, now));
      }
      case '/fapi/v1/openInterest': {
        const m = this.instrument(query.get('symbol'));
        if ('status' in m) return m;
        const oi = Math.round(openInterestCoins(this.ctx.seed, `${this.venue}/${m.id}`, now) * 1000);
        return this.reply(1, `{"openInterest":"${qty(oi)}","symbol":"${m.id}","time":${now}}`);
      }
      case '/futures/data/topLongShortPositionRatio':
      case '/futures/data/globalLongShortAccountRatio':
        return this.periodStats(route, query, now, (m, ts, period) => {
          const r = longShortShares(this.ctx.seed, `${this.venue}/${m.id}${route}/${period}`, ts);
          return `"longShortRatio":"${r.ratio}","longAccount":"${r.long}","shortAccount":"${r.short}"`;
        });
      default:
        return null;
    }
  }

  tick(tradesDue: number): void {
    const now = this.ctx.now();
    const markPriceDue = now >= this.nextMarkPriceAt;
    if (markPriceDue) this.nextMarkPriceAt = Math.max(this.nextMarkPriceAt + 1000, now);
    for (const m of this.instruments.all()) {
      for (let i = 0; i < tradesDue; i++) this.publishTrade(m, m.nextTrade(now), now);
      m.reportSent(this.ctx.metrics);
      if (now >= m.nextBookAt) this.stepBook(m, now);
      if (now >= m.nextLiquidationAt) this.liquidate(m, now);
      // @markPrice pushes every 3 s, @markPrice@1s every second.
      if (markPriceDue) this.publishMarkPrice(m, now, Math.floor(now / 1000) % 3 === 0);
    }
  }

  private reply(weight: number, body: string): RestReply {
    return jsonReply(200, body, { 'x-mbx-used-weight-1m': String(this.weight.add(weight, this.ctx.now())) });
  }

  private instrument(symbol: string | null): InstrumentMarket | RestReply {
    const checked = symbolParam(symbol);
    return typeof checked === 'string' ? this.instruments.get(checked) : checked;
  }

  private premiumIndex(m: InstrumentMarket, now: number): string {
    const mark = m.tape.priceTicks;
    const index = mark - Math.round(mark * 0.0002);
    const rate = fundingRate(this.ctx.seed, `${this.venue}/${m.id}`, now);
    return `{"symbol":"${m.id}","markPrice":"${p8(mark)}","indexPrice":"${p8(index)}","estimatedSettlePrice":"${p8(index)}","lastFundingRate":"${rate.toFixed(8)}","interestRate":"0.00010000","nextFundingTime":${nextFundingTime(now)},"time":${now}}`;
  }

  /**
   * A /futures/data statistics endpoint: a row per period start in the range (the newest `limit`,
   * oldest first), within the 30 days kept. `fields` prints a row's own fields.
   */
  private periodStats(route: string, query: URLSearchParams, now: number, fields: (m: InstrumentMarket, ts: number, period: number) => string): RestReply {
    const m = this.instrument(query.get('symbol'));
    if ('status' in m) return m;
    const period = periodMs(query.get('period'), LSR_PERIODS);
    if (period === null) return binanceError(400, -1120, 'Invalid interval.');
    const rawLimit = query.get('limit');
    const limit = rawLimit === null ? 30 : Math.min(Math.max(1, Number(rawLimit) || 30), 500);
    const start = Math.max(optionalTime(query, 'startTime') ?? 0, now - STATS_HORIZON_MS);
    const rows = periodStarts(now, period, limit, start, optionalTime(query, 'endTime'))
      .reverse()
      .map((ts) => `{"symbol":"${m.id}",${fields(m, ts, period)},"timestamp":${ts}}`);
    return this.reply(0, `[${rows.join(',')}]`);
  }

  /** Settled rates: the predicted rate at the funding time, and the last trade price then as the mark. */
  private fundingHistory(query: URLSearchParams, now: number): RestReply {
    const symbol = query.get('symbol');
    const markets = symbol === null ? [...this.instruments.all()] : [this.instrument(symbol)];
    const picked: InstrumentMarket[] = [];
    for (const m of markets) {
      if ('status' in m) return m;
      picked.push(m);
    }
    const start = longParam(query, 'startTime');
    if (isReply(start)) return start;
    const end = longParam(query, 'endTime');
    if (isReply(end)) return end;
    const rawLimit = longParam(query, 'limit');
    if (isReply(rawLimit)) return rawLimit;
    const limit = Math.min(Math.max(1, rawLimit ?? 100), 1000);
    const times = fundingTimes(now, limit, start, end);
    const rows = times.flatMap((t) =>
      picked.map((m) => {
        const rate = fundingRate(this.ctx.seed, `${this.venue}/${m.id}`, t).toFixed(8);
        return `{"symbol":"${m.id}","fundingRate":"${rate}","fundingTime":${t},"markPrice":"${p8(this.priceAt(m, t))}"}`;
      }),
    );
    // Its own 500 requests per 5 min, no request weight.
    return this.reply(0, `[${rows.slice(0, limit).join(',')}]`);
  }

  /**
   * The price in ticks at `time`: the last trade at or before it, so a history row reads the same on
   * every request. Before the kept trades, the oldest kept one; with none yet, the tape's price.
   */
  private priceAt(m: InstrumentMarket, time: number): number {
    const trade = m.trades.inTimeNewestFirst(0, time, 1)[0] ?? m.trades.fromId(0, 1)[0];
    return trade?.priceTicks ?? m.tape.priceTicks;
  }

  private publishTrade(m: InstrumentMarket, t: SimTrade, now: number): void {
    if (!this.synthetic) return;
    const tradeStream = this.streamNames.get(m.id, tradeStreamOf);
    const aggStream = this.streamNames.get(m.id, aggTradeStreamOf);
    const toTrade = this.hub.hasSubscribers(tradeStream);
    const toAgg = this.hub.hasSubscribers(aggStream);
    if (!toTrade && !toAgg) return;
    const q = qty(tradeLots(t));
    const p = price(t.priceTicks);
    let delivered = 0;
    if (toTrade) {
      const event = `{"e":"trade","E":${now},"T":${t.time},"s":"${m.id}","t":${t.id},"p":"${p}","q":"${q}","X":"MARKET","m":${t.buyerIsMaker}}`;
      delivered += this.hub.publish(tradeStream, framer(tradeStream, event));
    }
    if (toAgg) {
      const event = `{"e":"aggTrade","E":${now},"s":"${m.id}","a":${t.id},"p":"${p}","q":"${q}","nq":"${q}","f":${t.id},"l":${t.id},"T":${t.time},"m":${t.buyerIsMaker}}`;
      delivered += this.hub.publish(aggStream, framer(aggStream, event));
    }
    if (delivered === 0) return;
    m.countSent(t);
  }

  private stepBook(m: InstrumentMarket, now: number): void {
    m.nextBookAt = Math.max(m.nextBookAt + BOOK_INTERVAL_MS, now);
    const diff = m.book.step(m.tape.priceTicks);
    const prev = m.seq;
    // Futures ids advance by more than the event's own range: U is not previous u + 1 here.
    const first = prev + 1 + Math.floor(m.random() * 5);
    m.seq = first + diff.bids.length + diff.asks.length;
    if (m.dropNextBookUpdate) {
      m.dropNextBookUpdate = false;
      return;
    }
    const stream = this.streamNames.get(m.id, depthStreamOf);
    if (!this.synthetic || !this.hub.hasSubscribers(stream)) return;
    const event = `{"e":"depthUpdate","E":${now},"T":${now - 1},"s":"${m.id}","U":${first},"u":${m.seq},"pu":${prev},"b":${futuresLevels(diff.bids)},"a":${futuresLevels(diff.asks)}}`;
    if (this.hub.publish(stream, framer(stream, event)) === 0) return;
    this.bookUpdates++;
    this.ctx.metrics.bookUpdates.inc({ venue: this.venue });
  }

  private liquidate(m: InstrumentMarket, now: number): void {
    m.nextLiquidationAt = now + m.liquidationPause();
    if (!this.synthetic) return;
    const side = m.random() < 0.5 ? 'SELL' : 'BUY';
    const q = qty(1 + Math.floor(m.random() ** 2 * 2000));
    // A long liquidated sells below the market, a short buys above it.
    const p = price(m.tape.priceTicks + (side === 'SELL' ? -1 : 1) * Math.round(m.tape.priceTicks * 0.001));
    const event = `{"e":"forceOrder","E":${now},"o":{"s":"${m.id}","S":"${side}","o":"LIMIT","f":"IOC","q":"${q}","p":"${p}","ap":"${p}","X":"FILLED","l":"${q}","z":"${q}","T":${now - 1}}}`;
    const stream = `${m.id.toLowerCase()}@forceOrder`;
    const delivered = this.hub.publish(stream, framer(stream, event)) + this.hub.publish('!forceOrder@arr', framer('!forceOrder@arr', event));
    if (delivered > 0) this.liquidations++;
  }

  private publishMarkPrice(m: InstrumentMarket, now: number, everyThreeSeconds: boolean): void {
    if (!this.synthetic) return;
    const lower = m.id.toLowerCase();
    const streams = [`${lower}@markPrice@1s`, ...(everyThreeSeconds ? [`${lower}@markPrice`] : [])].filter((s) => this.hub.hasSubscribers(s));
    if (streams.length === 0) return;
    const mark = m.tape.priceTicks;
    const rate = fundingRate(this.ctx.seed, `${this.venue}/${m.id}`, now).toFixed(8);
    const event = `{"e":"markPriceUpdate","E":${now},"s":"${m.id}","p":"${p8(mark)}","i":"${p8(mark - Math.round(mark * 0.0002))}","P":"${p8(mark)}","r":"${rate}","T":${nextFundingTime(now)}}`;
    for (const s of streams) this.hub.publish(s, framer(s, event));
  }
}
